"""The tokenizer of a model spec, without its weights, and the special-token fix every backend needs.

Every backend (transformers, llama.cpp, HTTP) encodes prompts and decodes tokens with the same Hugging Face
tokenizer, so prompts, token ids and chunk texts mean the same whichever engine runs. For a GGUF (a
registry name or a ``.gguf`` path) the tokenizer is built from the file's vocabulary once (a few seconds for
a 150k vocabulary) and kept as ``tokenizer.json`` in the cache, keyed by the GGUF's sha256.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from translator.errors import ModelLoadError
from translator.registry import REGISTRY, cache_dir, classify_spec, file_sha256, registry_gguf

logger = logging.getLogger("translator.models")

# Used only when a ChatML tokenizer carries no template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def fix_tokenizer(tokenizer: Any) -> list[int]:
    """Make eos, pad and the chat template agree; return the ids that end generation.

    transformers' GGUF loader swaps bos/eos (SmolLM2 comes out with eos ``<|im_start|>``), and llama.cpp's
    GGUF metadata can name another eos too, so a ChatML model gets ``<|im_end|>`` as its eos explicitly,
    and ``<|endoftext|>`` also stops generation.
    """
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        tokenizer.eos_token = "<|im_end|>"
        if not tokenizer.chat_template and "<|im_start|>" in vocab:
            logger.warning("the tokenizer has no chat template; using plain ChatML")
            tokenizer.chat_template = CHATML_TEMPLATE
    if not tokenizer.chat_template:
        logger.warning("the tokenizer has no chat template; chat prompts cannot be built for this model")
    candidates = [vocab.get("<|im_end|>"), vocab.get("<|endoftext|>"), tokenizer.eos_token_id]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return list(dict.fromkeys(i for i in candidates if i is not None))


def _tokenizer_dir(sha256: str) -> Path:
    return cache_dir() / "tokenizers" / sha256[:16]


def _load_cached(directories: list[Path]) -> Any | None:
    from transformers import AutoTokenizer

    for directory in directories:
        try:
            # These are Qwen/SmolLM tokenizers: no Mistral regex fix applies (transformers warns otherwise).
            return AutoTokenizer.from_pretrained(directory, fix_mistral_regex=False)
        except Exception:  # noqa: BLE001 - a damaged cache: fall back to the GGUF
            continue
    return None


def _save(tokenizer: Any, dest: Path) -> None:
    """Into a temp dir, then renamed: the cache dir exists only once complete; failing costs a rebuild."""
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
        # legacy_format=False: only tokenizer.json; the slow format would copy the whole GGUF as its vocab.
        tokenizer.save_pretrained(tmp, legacy_format=False)
        os.rename(tmp, dest)
    except OSError as exc:
        if not dest.is_dir():
            logger.warning("could not cache the tokenizer (%s); the next start rebuilds it", exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def load_tokenizer(spec: str) -> tuple[Any, list[int]]:
    """The (fixed) tokenizer of a model spec and its stop token ids; never loads weights."""
    from transformers import AutoTokenizer

    try:
        kind, target = classify_spec(spec)
        if kind in ("registry", "gguf"):
            if kind == "registry":
                entry = REGISTRY[target]
                sha, locate = entry.sha256, lambda: registry_gguf(entry)
            else:
                sha, locate = file_sha256(Path(target)), lambda: Path(target)
            # Our own cache, else a dequantized model's (it holds the same tokenizer.json), else the GGUF.
            cached = [_tokenizer_dir(sha), *sorted((cache_dir() / "dequantized").glob(f"{sha[:16]}-*"))]
            tokenizer = _load_cached([d for d in cached if d.is_dir()])
            if tokenizer is None:
                gguf = locate()
                tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                _save(tokenizer, _tokenizer_dir(sha))
        else:
            tokenizer = AutoTokenizer.from_pretrained(target)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"tokenizer {spec!r} could not be loaded: {exc}") from exc
    return tokenizer, fix_tokenizer(tokenizer)
