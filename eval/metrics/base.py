"""What every metric shares: the result record, the "cannot run here" signal, and the two interfaces the
scorer and the paired bootstrap rely on.

The bootstrap needs per-segment *sufficient statistics* that can be summed over any resample and turned
back into a corpus score (sacrebleu's own design); the report needs a corpus score, a signature and
optional segment scores. Keeping both on one object lets every registered metric be bootstrapped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

DEFAULT_COMET_MODEL = "Unbabel/wmt22-comet-da"

# refs[j][i] is the j-th reference of segment i (sacrebleu's layout); None where segment i has fewer refs.
Refs = Sequence[Sequence[str | None]]


@dataclass
class MetricScore:
    """One metric's outcome. ``skipped`` is set (and ``score`` is None) when the metric could not run, so
    a missing model shows up as a reason instead of a zero."""

    metric: str
    label: str
    score: float | None = None
    signature: str | None = None
    segments: list[float] | None = None
    detail: str | None = None
    skipped: str | None = None

    def summary(self) -> str:
        if self.skipped is not None:
            return f"{self.label} skipped: {self.skipped}"
        line = f"{self.label} = {self.score:.4f}  {self.signature}"
        return f"{line}  {self.detail}" if self.detail else line


@dataclass(frozen=True)
class MetricOptions:
    """Settings only some metrics use; one object so the registry can build any metric the same way."""

    comet_model: str = DEFAULT_COMET_MODEL  # Hub name (downloaded where a network exists) or local checkpoint
    comet_batch_size: int = 16
    gpus: int | None = None  # None: one GPU if CUDA is available, else CPU
    progress_bar: bool = False


class MetricUnavailable(Exception):
    """The metric cannot run here (no model, no network, unsuitable target language, missing input).
    The scorer reports the message as the skip reason and carries on with the other metrics."""


class Metric(ABC):
    """A corpus metric. ``signature()`` describes the last computation (like sacrebleu's, whose reference
    count is only known once references have been read)."""

    name: ClassVar[str]  # registry key and CLI spelling
    label: ClassVar[str]  # what reports print

    @classmethod
    @abstractmethod
    def from_options(cls, tgt_lang: str, options: MetricOptions) -> Metric:
        """Build for a target language code; raises MetricUnavailable when it cannot apply."""

    @abstractmethod
    def evaluate(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None, *, segments: bool) -> MetricScore:
        """Corpus score with signature, plus per-segment scores when ``segments`` is true."""

    @abstractmethod
    def stats(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None) -> np.ndarray:
        """Per-segment sufficient statistics, shape (n_segments, k); rows of any resample are summed."""

    @abstractmethod
    def score_from_stats(self, total: np.ndarray) -> float:
        """The corpus score for statistics already summed over segments."""

    @abstractmethod
    def signature(self) -> str: ...


class MeanOfSegments(Metric):
    """A metric whose corpus score is the mean of its segment scores (COMET, embedding similarity).
    Its statistics are (score, 1) per segment, so a resample's sum divides back into a mean."""

    _signature: str = ""

    @abstractmethod
    def segment_scores(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None) -> list[float]:
        """One score per segment; sets the signature as a side effect."""

    def evaluate(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None, *, segments: bool) -> MetricScore:
        seg = self.segment_scores(hyps, refs, srcs)
        return MetricScore(
            metric=self.name,
            label=self.label,
            score=float(np.mean(seg)),
            signature=self.signature(),
            segments=seg if segments else None,
        )

    def stats(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None) -> np.ndarray:
        seg = self.segment_scores(hyps, refs, srcs)
        return np.column_stack([seg, np.ones(len(seg))])

    def score_from_stats(self, total: np.ndarray) -> float:
        return float(total[0] / total[1])

    def signature(self) -> str:
        return self._signature


def refs_of_segment(refs: Refs, i: int) -> list[str]:
    """The references segment ``i`` actually has (streams may be padded with None)."""
    return [stream[i] for stream in refs if stream[i] is not None]


def require_refs(refs: Refs, label: str) -> None:
    if not refs:
        raise MetricUnavailable(f"{label} needs at least one reference")


def refs_count(refs: Refs) -> str:
    """Reference count for a signature: a number, or "var" when segments have different counts."""
    counts = {sum(stream[i] is not None for stream in refs) for i in range(len(refs[0]))} if refs else {0}
    return str(counts.pop()) if len(counts) == 1 else "var"
