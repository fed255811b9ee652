"""Metric registry: the name a user types (``--metrics bleu,comet``) maps to a metric class, so a new
metric is one class and one line here, and the CLI's choices follow automatically.

Heavy libraries (comet, torch, transformers) are imported only when a model metric actually runs, so
``--metrics bleu`` starts in a fraction of a second.
"""

from __future__ import annotations

from eval.metrics.base import (
    DEFAULT_COMET_MODEL,
    MeanOfSegments,
    Metric,
    MetricOptions,
    MetricScore,
    MetricUnavailable,
    Refs,
)
from eval.metrics.comet_metric import Comet
from eval.metrics.sacre import Bleu, ChrF, Ter
from eval.metrics.semsim import SemanticSimilarity

REGISTRY: dict[str, type[Metric]] = {cls.name: cls for cls in (Bleu, ChrF, Ter, Comet, SemanticSimilarity)}
METRIC_NAMES: tuple[str, ...] = tuple(REGISTRY)


def build_metric(name: str, tgt_lang: str, options: MetricOptions = MetricOptions()) -> Metric:
    """A ready metric for a target language code. KeyError for an unknown name; MetricUnavailable when
    the metric does not apply (e.g. the English-only similarity model on a Chinese target)."""
    return REGISTRY[name].from_options(tgt_lang, options)


__all__ = [
    "DEFAULT_COMET_MODEL",
    "METRIC_NAMES",
    "REGISTRY",
    "MeanOfSegments",
    "Metric",
    "MetricOptions",
    "MetricScore",
    "MetricUnavailable",
    "Refs",
    "build_metric",
]
