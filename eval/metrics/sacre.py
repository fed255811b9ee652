"""BLEU, chrF and TER through sacrebleu's Python API, configured per target language so that the scores
and signatures are exactly what the ``sacrebleu`` CLI prints for the same options.

Chinese is written without spaces, so for Chinese targets BLEU uses sacrebleu's ``zh`` tokenizer and TER
its normalised, Asian-aware tokenisation (``--ter-normalized --ter-asian-support``); without these a
Chinese sentence is a single "word". Both choices show in the signature. Other targets get the
defaults (``13a``, plain TER). chrF works on characters and needs no change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric as SacreMetric

from eval.metrics.base import Metric, MetricOptions, MetricScore, Refs, refs_of_segment, require_refs


class _Sacre(Metric):
    """Shared plumbing: sacrebleu does the maths, this class adapts it to our interface."""

    def __init__(self, corpus: SacreMetric, sentence: SacreMetric) -> None:
        # Two objects because sacrebleu metrics remember the last reference count for their signature,
        # and sentence-level BLEU wants different settings (effective order) from corpus BLEU.
        self._corpus = corpus
        self._sentence = sentence

    def evaluate(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None, *, segments: bool) -> MetricScore:
        require_refs(refs, self.label)
        result = self._corpus.corpus_score(list(hyps), [list(stream) for stream in refs])
        seg = None
        if segments:
            seg = [self._sentence.sentence_score(h, refs_of_segment(refs, i)).score for i, h in enumerate(hyps)]
        return MetricScore(
            metric=self.name,
            label=self.label,
            score=float(result.score),
            signature=self.signature(),
            segments=seg,
            detail=self._detail(result),
        )

    def stats(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None) -> np.ndarray:
        require_refs(refs, self.label)
        # The same private pair sacrebleu's own paired tests use; there is no public equivalent.
        stats = self._corpus._extract_corpus_statistics(list(hyps), [list(stream) for stream in refs])
        return np.array(stats, dtype=np.float64)

    def score_from_stats(self, total: np.ndarray) -> float:
        return float(self._corpus._compute_score_from_stats(total).score)

    def signature(self) -> str:
        return self._corpus.get_signature().format()

    def _detail(self, result) -> str | None:
        return None


class Bleu(_Sacre):
    name: ClassVar[str] = "bleu"
    label: ClassVar[str] = "BLEU"

    def __init__(self, tgt_lang: str) -> None:
        tokenize = "zh" if tgt_lang == "zh" else "13a"
        super().__init__(BLEU(tokenize=tokenize), BLEU(tokenize=tokenize, effective_order=True))

    @classmethod
    def from_options(cls, tgt_lang: str, options: MetricOptions) -> Bleu:
        return cls(tgt_lang)

    def _detail(self, result) -> str:
        # The n-gram precisions and brevity penalty, as sacrebleu's CLI prints them.
        return result._verbose


class ChrF(_Sacre):
    name: ClassVar[str] = "chrf"
    label: ClassVar[str] = "chrF2"

    def __init__(self) -> None:
        super().__init__(CHRF(), CHRF())

    @classmethod
    def from_options(cls, tgt_lang: str, options: MetricOptions) -> ChrF:
        return cls()


class Ter(_Sacre):
    name: ClassVar[str] = "ter"
    label: ClassVar[str] = "TER"

    def __init__(self, tgt_lang: str) -> None:
        asian = tgt_lang == "zh"
        super().__init__(TER(normalized=asian, asian_support=asian), TER(normalized=asian, asian_support=asian))

    @classmethod
    def from_options(cls, tgt_lang: str, options: MetricOptions) -> Ter:
        return cls(tgt_lang)
