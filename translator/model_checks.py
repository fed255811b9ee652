"""Fast refusals before a model load: a device this machine does not have, a hub id nobody can provide.

Both used to surface late and loudly: ``--device cuda`` without CUDA wrote a dequantized copy into the
cache and then died in a traceback; ``--model not-a-model`` spent 50 s in Hugging Face retries. Each check
here answers in a second or two with one line naming the option, and is called before anything is loaded
or written.
"""

from __future__ import annotations

import os

from translator.errors import InputError, ModelLoadError

HUB_TIMEOUT_S = 5.0  # one metadata request; a hub that does not answer by then is treated as unreachable


def check_device(device: str | None):
    """The torch device for ``device`` (None: cuda when available, else cpu), or InputError when it is not
    a device name or this machine does not have it."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} is not available: torch finds no CUDA GPU here (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} is not available: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} is not available on this machine (use --device cpu)")
    return dev


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_hub_id(spec: str, what_else: str) -> None:
    """Refuse, in at most ~HUB_TIMEOUT_S, a hub id that is neither in the local Hugging Face cache nor
    known to a reachable hub. ``what_else`` lists what the spec is not (registry names, paths) for the
    message. An id found in the cache passes at once: transformers then loads it without the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(spec, "config.json")
    except Exception:  # not a valid repo id at all (spaces, too many slashes...)
        raise ModelLoadError(f"model {spec!r} could not be loaded: {what_else}, and not a valid Hugging Face "
                             "repo id") from None
    if isinstance(cached, str):
        return
    prefix = f"model {spec!r} could not be loaded: {what_else}, and not in the local Hugging Face cache"
    if _offline():
        raise ModelLoadError(f"{prefix} (HF_HUB_OFFLINE is set, so the hub was not asked)")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(spec, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return  # it exists; transformers explains the access it needs
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{prefix}; the hub has no such model (or it is private)") from None
    except Exception as exc:  # no network, DNS failure, timeout, proxy: one line, no retries
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{prefix}; the hub could not be reached ({reason})") from None
