"""COMET checkpoints through unbabel-comet: find, load (once per process) and run one, for the evaluator's
metric and the search's ``comet-qe`` reward alike.

A model spec is either a local checkpoint (the ``model.ckpt`` file, or a directory holding
``checkpoints/model.ckpt`` and ``hparams.yaml`` as comet saves them) or a Hub name that comet downloads
where a network exists. Anything that prevents getting a model (offline, gated model, missing encoder files)
becomes a ``CometUnavailable`` with the reason, for the caller to report in its own terms.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any


class CometUnavailable(Exception):
    """No COMET model can be had here for the spec given; the message says why and what to do."""


def _offline() -> bool:
    # Read at call time: huggingface_hub reads HF_HUB_OFFLINE once, at import.
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def resolve_checkpoint(spec: str) -> Path:
    """The ``model.ckpt`` a spec names, downloading a Hub model if it is not a local path."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        ckpt = path / "checkpoints" / "model.ckpt"
        if not ckpt.is_file():
            raise CometUnavailable(f"{path} is not a COMET model directory (no checkpoints/model.ckpt)")
        return ckpt
    from comet import download_model

    try:
        return Path(download_model(spec, local_files_only=_offline()))
    except Exception:  # comet folds every download failure into one KeyError; say what can be done
        where = "HF_HUB_OFFLINE is set" if _offline() else "no network, a gated model, or an unknown name"
        raise CometUnavailable(
            f"COMET model {spec!r} is not a local checkpoint and could not be fetched ({where}); "
            "pass --comet-model PATH to a local checkpoint"
        ) from None


@functools.cache
def load_model(ckpt: Path) -> Any:
    from comet import load_from_checkpoint

    try:
        return load_from_checkpoint(str(ckpt), local_files_only=_offline())
    except Exception as exc:  # e.g. the encoder's tokenizer is neither cached nor downloadable
        raise CometUnavailable(f"could not load COMET checkpoint {ckpt}: {type(exc).__name__}: {exc}") from None


def load(spec: str) -> Any:
    """The loaded model a spec names (cached per checkpoint)."""
    return load_model(resolve_checkpoint(spec))


def predict(model: Any, samples: list[dict[str, str]], *, batch_size: int, gpus: int | None = None,
            progress_bar: bool = False) -> list[float]:
    """One score per sample (``src``, ``mt`` and, for reference-based models, ``ref``); on a GPU when
    there is one, unless ``gpus`` says otherwise."""
    if gpus is None:
        import torch

        gpus = 1 if torch.cuda.is_available() else 0
    return list(model.predict(samples, batch_size=batch_size, gpus=gpus, progress_bar=progress_bar).scores)
