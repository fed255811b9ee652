"""COMET as a metric: each hypothesis scored against each of its references (or, with a reference-free QE
model such as CometKiwi, against its source alone). With several references a segment's score is the mean of
its scores against each (COMET itself takes one reference at a time).

Finding and loading the model is ``translator.comet``'s job (the search's ``comet-qe`` reward shares it);
a model that cannot be had becomes a ``MetricUnavailable`` with the reason, so the other metrics still run.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, ClassVar

from eval.metrics.base import MeanOfSegments, MetricOptions, MetricUnavailable, Refs, refs_count, refs_of_segment
from translator import comet


def _load(spec: str) -> Any:
    try:
        return comet.load(spec)
    except comet.CometUnavailable as exc:
        raise MetricUnavailable(str(exc)) from None


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
        model = _load(self.model)
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
        scores = comet.predict(model, samples, batch_size=self.batch_size, gpus=self.gpus,
                               progress_bar=self.progress_bar)
        totals, counts = [0.0] * len(hyps), [0] * len(hyps)
        for i, value in zip(owners, scores):
            totals[i] += value
            counts[i] += 1
        self._signature = f"model:{self.model}|nrefs:{nrefs}|refagg:mean|version:{version('unbabel-comet')}"
        return [t / c for t, c in zip(totals, counts)]
