"""``score()``: the one entry point the CLI, the benchmark and the app use to score translations.

It validates the inputs once (so each metric can trust them), runs every requested metric, and turns a
metric that cannot run here into a report entry that says why, never a zero and never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from eval.metrics import (
    DEFAULT_COMET_MODEL,
    METRIC_NAMES,
    REGISTRY,
    MetricOptions,
    MetricScore,
    MetricUnavailable,
    Refs,
    build_metric,
)
from translator.errors import InputError
from translator.languages import UnknownLanguageError, resolve_language

DEFAULT_METRICS: tuple[str, ...] = ("bleu", "chrf", "ter")


@dataclass
class ScoreReport:
    n_segments: int
    tgt_lang: str
    metrics: dict[str, MetricScore]  # by registry name, in the order asked

    def __getitem__(self, name: str) -> MetricScore:
        return self.metrics[name]

    @property
    def skipped(self) -> dict[str, str]:
        return {name: m.skipped for name, m in self.metrics.items() if m.skipped is not None}

    def summary(self) -> str:
        return "\n".join(m.summary() for m in self.metrics.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)


def parse_metric_names(names: str | Sequence[str]) -> list[str]:
    """``"bleu,chrf"`` or ``["bleu", "chrf"]`` to a checked, de-duplicated list (order kept)."""
    items = names.split(",") if isinstance(names, str) else list(names)
    wanted = list(dict.fromkeys(n.strip().lower() for n in items if n.strip()))
    unknown = [n for n in wanted if n not in REGISTRY]
    if unknown or not wanted:
        raise InputError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(METRIC_NAMES)}")
    return wanted


def _check_inputs(hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None) -> None:
    n = len(hyps)
    if n == 0:
        raise InputError("nothing to score: there are no hypotheses")
    for j, stream in enumerate(refs, 1):
        if len(stream) != n:
            raise InputError(f"reference {j} has {len(stream)} segments but there are {n} hypotheses")
    if srcs is not None and len(srcs) != n:
        raise InputError(f"the source has {len(srcs)} segments but there are {n} hypotheses")
    if refs:
        for i in range(n):
            if all(stream[i] is None for stream in refs):
                raise InputError(f"segment {i + 1} has no reference")


def score(
    hyps: Sequence[str],
    refs: Refs,
    srcs: Sequence[str] | None,
    tgt_lang: str,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    comet_model: str | None = DEFAULT_COMET_MODEL,
    segments: bool = False,
    *,
    comet_batch_size: int = 16,
    gpus: int | None = None,
    progress_bar: bool = False,
) -> ScoreReport:
    """Score ``hyps`` against ``refs`` (``refs[j][i]`` = j-th reference of segment i, as in sacrebleu;
    ``[]`` for reference-free COMET QE only). ``tgt_lang`` is any code or name ``resolve_language``
    accepts. ``comet_model`` None means the default model. Raises InputError for malformed input."""
    try:
        tgt = resolve_language(tgt_lang).code
    except UnknownLanguageError as exc:
        raise InputError(str(exc)) from None
    names = parse_metric_names(metrics)
    _check_inputs(hyps, refs, srcs)
    options = MetricOptions(
        comet_model=comet_model or DEFAULT_COMET_MODEL,
        comet_batch_size=comet_batch_size,
        gpus=gpus,
        progress_bar=progress_bar,
    )
    results: dict[str, MetricScore] = {}
    for name in names:
        try:
            results[name] = build_metric(name, tgt, options).evaluate(hyps, refs, srcs, segments=segments)
        except MetricUnavailable as why:
            results[name] = MetricScore(metric=name, label=REGISTRY[name].label, skipped=str(why))
    return ScoreReport(n_segments=len(hyps), tgt_lang=tgt, metrics=results)
