"""Turn a model spec into a ready (model, tokenizer) pair for the transformers backend.

What a spec is, the registry of packaged models and the cache directory live in ``translator.registry``
(no torch there); this module loads weights. Dequantizing a GGUF with transformers is slow (50-90 s and
~10 GB peak for the 1.5B default on a CPU), so the first load saves the dequantized weights as safetensors
in the cache directory, keyed by the GGUF's sha256 and the dtype, and later loads read those instead
(about a second). The llama.cpp backend reads the GGUF itself and never needs this.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from translator.durable_files import publish_dir
from translator.errors import ModelLoadError
from translator.model_checks import check_device, check_hub_id
from translator.registry import (  # noqa: F401 - re-exported: the registry API was first defined here
    DEFAULT_MODEL, REGISTRY, PackagedModel, assemble, cache_dir, classify_spec, file_sha256,
    gguf_of, list_registry, registry_gguf, remember_sha256, resolve_spec)
from translator.tokenizer import fix_tokenizer

logger = logging.getLogger("translator.models")


@dataclass
class LoadedModel:
    model: PreTrainedModel  # eval mode, on device
    tokenizer: PreTrainedTokenizerBase
    spec: str  # as the user gave it
    name: str  # for display
    device: torch.device
    dtype: torch.dtype
    stop_token_ids: list[int]  # any of these ends generation
    load_seconds: float
    source: str  # "registry", "gguf", "hf" or "dequantized-cache"


def _pick_device(device: str | None) -> torch.device:
    return check_device(device)  # an unavailable device is refused before anything is loaded or written


_DTYPES = {
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
}


def _pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype | None:
    """None for "auto" (the checkpoint's own dtype); default bf16 (3x faster than fp32 on CPU here)."""
    if dtype == "auto":
        return None
    if dtype is not None:
        try:
            return _DTYPES[dtype.lower()]
        except KeyError:
            raise ModelLoadError(f"unknown dtype {dtype!r}: use bfloat16, float16, float32 or auto") from None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _dtype_tag(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[dtype]


def _from_pretrained(path: str | Path, device: torch.device, dtype: torch.dtype | str, **kwargs) -> PreTrainedModel:
    device_map = {"": device} if device.type != "cpu" else None
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device_map, **kwargs)


def _dequantized_dir(sha256: str, dtype: torch.dtype) -> Path:
    return cache_dir() / "dequantized" / f"{sha256[:16]}-{_dtype_tag(dtype)}"


def _load_gguf(
    locate: Callable[[], Path], sha256: str, device: torch.device, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, bool]:
    """Load from the dequantized cache if present (the GGUF is then never located), else dequantize
    ``locate()``; the bool says whether the cache was used."""
    cached = _dequantized_dir(sha256, dtype)
    if cached.is_dir():
        try:
            # transformers 4.57.3+ warns about a Mistral regex for any tokenizer saved by those versions;
            # these are Qwen/SmolLM tokenizers, so say explicitly that no fix applies.
            tokenizer = AutoTokenizer.from_pretrained(cached, fix_mistral_regex=False)
            return _from_pretrained(cached, device, dtype), tokenizer, True
        except Exception as exc:  # a damaged cache must not stop us: the GGUF is still there
            logger.warning("dequantized cache %s is unusable (%s); rebuilding it", cached, exc)
            shutil.rmtree(cached, ignore_errors=True)
    gguf = locate()
    logger.info("dequantizing %s (slow, once per dtype)…", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    return model, tokenizer, False


def _save_cache(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dest: Path) -> None:
    """Failing to save is not an error: the model in memory is fine, the next start just dequantizes again."""
    logger.info("saving dequantized cache to %s…", dest)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        # legacy_format=False: only tokenizer.json; the slow format would copy the whole GGUF as its vocab.
        tokenizer.save_pretrained(tmp, legacy_format=False)

    if (error := publish_dir(dest, fill)) is not None:
        logger.warning("could not save the dequantized cache (%s); the next start dequantizes again", error)


def _fix_special_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's fix (``translator.tokenizer.fix_tokenizer``), and a generation config that agrees."""
    stop_ids = fix_tokenizer(tokenizer)
    model.generation_config.eos_token_id = stop_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return stop_ids


def _load_hf(
    spec: str, local: bool, device: torch.device, dtype: torch.dtype | None, trust_remote_code: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if not local:  # a few seconds to refuse an id nobody has, instead of a minute of hub retries
        check_hub_id(spec, f"not a registry name ({', '.join(REGISTRY)}), not a local path")
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec, trust_remote_code=trust_remote_code)
        model = _from_pretrained(spec, device, dtype or "auto", trust_remote_code=trust_remote_code)
    except OSError as exc:  # transformers reports a missing repo, no network and offline mode as OSError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if local:
            raise ModelLoadError(f"model {spec!r} (a local directory) could not be loaded: {reason}") from exc
        raise ModelLoadError(
            f"model {spec!r} could not be loaded: not a registry name ({', '.join(REGISTRY)}), not a local "
            f"path, and the Hugging Face hub did not provide it (unreachable, offline or no such repo): {reason}"
        ) from exc
    return model, tokenizer


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load ``spec`` (see the module docstring) in eval mode on ``device`` (default: cuda if available).

    ``dtype``: bfloat16/bf16, float16/fp16, float32/fp32 or auto; default bf16 (fp16 on a CUDA card
    without bf16). For GGUF specs "auto" means the default, since a GGUF has no float dtype of its own.
    """
    start = time.perf_counter()
    kind, target = classify_spec(spec)
    dev = _pick_device(device)
    torch_dtype = _pick_dtype(dtype, dev)
    try:
        if kind in ("registry", "gguf"):
            torch_dtype = torch_dtype or _pick_dtype(None, dev)
            if kind == "registry":
                entry = REGISTRY[target]
                name, sha256, locate = entry.display_name, entry.sha256, partial(registry_gguf, entry)
            else:
                name, sha256, locate = Path(target).stem, file_sha256(Path(target)), partial(Path, target)
            model, tokenizer, from_cache = _load_gguf(locate, sha256, dev, torch_dtype)
            source = "dequantized-cache" if from_cache else ("registry" if kind == "registry" else "gguf")
        else:
            model, tokenizer = _load_hf(target, kind == "dir", dev, torch_dtype, trust_remote_code)
            name, source = (Path(target).name if kind == "dir" else target), "hf"
        stop_ids = _fix_special_tokens(model, tokenizer)
        if source in ("registry", "gguf"):
            _save_cache(model, tokenizer, _dequantized_dir(sha256, torch_dtype))
            model = model.to(dev)
    except ModelLoadError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"model {spec!r} ({resolve_spec(spec)}) could not be loaded: {exc}") from exc
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        name=name,
        device=dev,
        dtype=model.dtype,
        stop_token_ids=stop_ids,
        load_seconds=time.perf_counter() - start,
        source=source,
    )
