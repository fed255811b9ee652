"""Model backends: where tokens come from. Pick one from a model spec."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from translator.backends.base import Backend, BackendStats, Chunk, Continuation, GenRequest, Sampling
from translator.errors import InputError, ModelLoadError

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "llama-cpp")


def _gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, without importing torch (``--help`` and the llama.cpp path do not)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def choose_backend(spec: str | None, backend: str = "auto", device: str | None = None) -> str:
    """Which in-process engine serves ``spec``: ``llama-cpp`` for a GGUF (a registry name or a ``.gguf``
    path) on a CPU, ``transformers`` for Hugging Face models, local directories and GPUs; an explicit
    ``backend`` is taken as it is (``openai:`` specs are served by their server whatever this says)."""
    from translator.registry import DEFAULT_MODEL, classify_spec

    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    kind, _ = classify_spec(spec or DEFAULT_MODEL)
    on_cpu = device == "cpu" or (device is None and not _gpu_present())
    return "llama-cpp" if kind in ("registry", "gguf") and on_cpu else "transformers"


def open_backend(spec: str | None = None, *, backend: str = "auto", device: str | None = None,
                 dtype: str | None = None, trust_remote_code: bool = False, reuse_cache: bool = True,
                 batch: bool = True, served_model: str | None = None, tokenizer=None, n_ctx: int | None = None,
                 threads: int | None = None) -> Backend:
    """Load the model a spec names and wrap it in a backend (see ``choose_backend``).

    ``openai:http://HOST:PORT/v1``: an OpenAI-compatible server instead (see ``openai_backend``);
    ``served_model`` is the model name it serves, also the tokenizer spec unless ``tokenizer`` (or the
    ``MARCO_TOKENIZER`` environment variable) names another; only the tokenizer is loaded here, and the
    server is asked once whether it answers and serves that model.
    ``llama-cpp``: the GGUF is read by llama.cpp (``n_ctx`` KV cells for the whole tree, ``threads``);
    never dequantized. ``transformers``: ``threads`` sets torch's thread count.
    """
    from translator.registry import DEFAULT_MODEL

    if spec and spec.startswith("openai:"):
        import os

        from translator.backends.openai_backend import OpenAIBackend

        tokenizer = tokenizer or os.environ.get("MARCO_TOKENIZER") or served_model
        server = OpenAIBackend(spec[len("openai:"):], served_model, tokenizer)
        try:
            server.check()
        except BaseException:
            server.close()
            raise
        return server
    spec = spec or DEFAULT_MODEL
    kind = choose_backend(spec, backend, device)
    if kind == "llama-cpp" and backend == "auto" and importlib.util.find_spec("llama_cpp") is None:
        logger.warning("llama-cpp-python is not installed: %s runs on transformers (slower; dequantized once)", spec)
        kind = "transformers"
    if kind == "llama-cpp":
        if dtype is not None:
            logger.warning("--dtype applies to the transformers backend only; llama.cpp runs the GGUF as it is")
        from translator.registry import classify_spec

        if classify_spec(spec)[0] not in ("registry", "gguf"):
            raise ModelLoadError(f"the llama-cpp backend reads GGUF files: {spec!r} is not a registry name or a "
                                 ".gguf path (use --backend transformers for Hugging Face models)")
        if device not in (None, "cpu"):
            raise ModelLoadError(f"the llama-cpp backend runs on the CPU here, not {device!r}: "
                                 "use --backend transformers for a GPU")
        from translator.backends.llama_cpp_backend import open_llama_cpp

        return open_llama_cpp(spec, n_ctx=n_ctx, threads=threads)
    if n_ctx is not None:
        logger.warning("--n-ctx applies to the llama-cpp backend only; ignored")
    import torch

    from translator.backends.transformers_backend import TransformersBackend
    from translator.models import load_model

    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    return TransformersBackend(loaded, reuse_cache=reuse_cache, batch=batch)


__all__ = ["BACKENDS", "Backend", "BackendStats", "Chunk", "Continuation", "GenRequest", "Sampling",
           "choose_backend", "open_backend"]
