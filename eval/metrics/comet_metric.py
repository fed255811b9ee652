"""COMET through unbabel-comet, loaded lazily and cached per process (a model load costs far more than
scoring a test set).

A model spec is either a local checkpoint (the ``model.ckpt`` file, or a directory holding
``checkpoints/model.ckpt`` and ``hparams.yaml`` as comet saves them) or a Hub name that comet downloads
where a network exists. Reference-free QE models (CometKiwi) are scored without references. With
several references a segment's score is the mean of its scores against each reference (COMET itself
takes one reference at a time).

Anything that prevents getting a model (offline, gated model, missing encoder files) becomes a
``MetricUnavailable`` with the reason, so the other metrics still run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

from eval.metrics.base import MeanOfSegments, MetricOptions, MetricUnavailable, Refs, refs_count, refs_of_segment


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
            raise MetricUnavailable(f"{path} is not a COMET model directory (no checkpoints/model.ckpt)")
        return ckpt
    from comet import download_model

    try:
        return Path(download_model(spec, local_files_only=_offline()))
    except Exception:  # comet folds every download failure into one KeyError; say what can be done
        where = "HF_HUB_OFFLINE is set" if _offline() else "no network, a gated model, or an unknown name"
        raise MetricUnavailable(
            f"COMET model {spec!r} is not a local checkpoint and could not be fetched ({where}); "
            "pass --comet-model PATH to a local checkpoint"
        ) from None


@functools.cache
def load_model(ckpt: Path) -> Any:
    from comet import load_from_checkpoint

    try:
        return load_from_checkpoint(str(ckpt), local_files_only=_offline())
    except Exception as exc:  # e.g. the encoder's tokenizer is neither cached nor downloadable
        raise MetricUnavailable(f"could not load COMET checkpoint {ckpt}: {type(exc).__name__}: {exc}") from None


class Comet(MeanOfSegments):
    name: ClassVar[str] = "comet"
    label: ClassVar[str] = "COMET"

    def __init__(self, model: str, *, batch_size: int = 16, gpus: int | None = None, progress_bar: bool = False) -> None:
        self.model = model
        self.batch_size = batch_size
        self.gpus = gpus
        self.progress_bar = progress_bar

    @classmethod
    def from_options(cls, tgt_lang: str, options: MetricOptions) -> Comet:
        return cls(
            options.comet_model,
            batch_size=options.comet_batch_size,
            gpus=options.gpus,
            progress_bar=options.progress_bar,
        )

    def segment_scores(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None) -> list[float]:
        if srcs is None:
            raise MetricUnavailable("COMET needs the source sentences (--src)")
        model = load_model(resolve_checkpoint(self.model))
        if model.requires_references():
            if not refs:
                raise MetricUnavailable(f"{self.model} is a reference-based COMET model; give at least one reference")
            pairs = [(i, ref) for i in range(len(hyps)) for ref in refs_of_segment(refs, i)]
            samples = [{"src": srcs[i], "mt": hyps[i], "ref": ref} for i, ref in pairs]
            owners = [i for i, _ in pairs]
            nrefs = refs_count(refs)
        else:
            samples = [{"src": s, "mt": h} for s, h in zip(srcs, hyps)]
            owners = list(range(len(hyps)))
            nrefs = "0(qe)"
        prediction = model.predict(
            samples, batch_size=self.batch_size, gpus=self._gpus(), progress_bar=self.progress_bar
        )
        totals, counts = [0.0] * len(hyps), [0] * len(hyps)
        for i, value in zip(owners, prediction.scores):
            totals[i] += value
            counts[i] += 1
        self._signature = f"model:{self.model}|nrefs:{nrefs}|refagg:mean|version:{version('unbabel-comet')}"
        return [t / c for t, c in zip(totals, counts)]

    def _gpus(self) -> int:
        if self.gpus is not None:
            return self.gpus
        import torch

        return 1 if torch.cuda.is_available() else 0
