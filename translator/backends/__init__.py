"""Model backends: where tokens come from. Pick one from a model spec."""

from __future__ import annotations

from translator.backends.base import Backend, BackendStats, Chunk, Continuation, GenRequest, Sampling


def open_backend(spec: str | None = None, *, device: str | None = None, dtype: str | None = None,
                 trust_remote_code: bool = False, reuse_cache: bool = True, batch: bool = True,
                 served_model: str | None = None, tokenizer=None) -> Backend:
    """Load the model a spec names and wrap it in the in-process backend.

    ``openai:http://HOST:PORT/v1``: an OpenAI-compatible server instead (see ``openai_backend``);
    ``served_model`` is the model name it serves, also the tokenizer spec unless ``tokenizer`` (or the
    ``MARCO_TOKENIZER`` environment variable) names another; only the tokenizer is loaded here, and the
    server is asked once whether it answers and serves that model.
    """
    if spec and spec.startswith("openai:"):
        import os

        from translator.backends.openai_backend import OpenAIBackend

        tokenizer = tokenizer or os.environ.get("MARCO_TOKENIZER") or served_model
        backend = OpenAIBackend(spec[len("openai:"):], served_model, tokenizer)
        try:
            backend.check()
        except BaseException:
            backend.close()
            raise
        return backend
    from translator.backends.transformers_backend import TransformersBackend
    from translator.models import DEFAULT_MODEL, load_model

    loaded = load_model(spec or DEFAULT_MODEL, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    return TransformersBackend(loaded, reuse_cache=reuse_cache, batch=batch)


__all__ = ["Backend", "BackendStats", "Chunk", "Continuation", "GenRequest", "Sampling", "open_backend"]
