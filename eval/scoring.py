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
from eval.significance import DEFAULT_SAMPLES, DEFAULT_SEED, PairedBootstrap, paired_bootstrap
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


def _prepare(hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None, tgt_lang: str,
             metrics: str | Sequence[str]) -> tuple[str, list[str]]:
    """Checks shared by ``score`` and ``compare``: the target language's code and the metric names."""
    try:
        tgt = resolve_language(tgt_lang).code
    except UnknownLanguageError as exc:
        raise InputError(str(exc)) from None
    names = parse_metric_names(metrics)
    _check_inputs(hyps, refs, srcs)
    return tgt, names


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
    tgt, names = _prepare(hyps, refs, srcs, tgt_lang, metrics)
    options = MetricOptions(comet_model=comet_model or DEFAULT_COMET_MODEL, comet_batch_size=comet_batch_size,
                            gpus=gpus, progress_bar=progress_bar)
    results: dict[str, MetricScore] = {}
    for name in names:
        try:
            results[name] = build_metric(name, tgt, options).evaluate(hyps, refs, srcs, segments=segments)
        except MetricUnavailable as why:
            results[name] = MetricScore(metric=name, label=REGISTRY[name].label, skipped=str(why))
    return ScoreReport(n_segments=len(hyps), tgt_lang=tgt, metrics=results)


@dataclass
class Comparison:
    """One metric's paired bootstrap of a system against a baseline, or why it could not run."""

    metric: str
    label: str
    test: PairedBootstrap | None = None
    skipped: str | None = None

    def summary(self) -> str:
        if self.test is None:
            return f"{self.label} skipped: {self.skipped}"
        t = self.test
        mark = " *" if t.significant() else ""
        return (f"{self.label}: baseline {t.baseline.score:.4g} (μ {t.baseline.mean:.4g} ± {t.baseline.ci:.4g}), "
                f"system {t.system.score:.4g} (μ {t.system.mean:.4g} ± {t.system.ci:.4g}), "
                f"Δ {t.delta:+.4g} (p = {t.p_value:.4f}){mark}")


def compare(
    hyps: Sequence[str],
    baseline: Sequence[str],
    refs: Refs,
    srcs: Sequence[str] | None,
    tgt_lang: str,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    options: MetricOptions | None = None,
    *,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int | None = DEFAULT_SEED,
) -> list[Comparison]:
    """Paired bootstrap of ``hyps`` against ``baseline`` on each metric (as ``sacrebleu --paired-bs``, and
    as the benchmark compares strategies), so outputs of two separate runs on the same segments can be
    tested against each other. Segment i of both must translate the same source. Raises InputError for
    malformed input, a baseline of another length included."""
    tgt, names = _prepare(hyps, refs, srcs, tgt_lang, metrics)
    if len(baseline) != len(hyps):
        raise InputError(f"the baseline has {len(baseline)} segments but there are {len(hyps)} hypotheses")
    options = options or MetricOptions()
    out = []
    for name in names:
        label = REGISTRY[name].label
        try:
            metric = build_metric(name, tgt, options)
            out.append(Comparison(name, label, paired_bootstrap(metric, baseline, hyps, refs, srcs,
                                                                n_samples=n_samples, seed=seed)))
        except MetricUnavailable as why:
            out.append(Comparison(name, label, skipped=str(why)))
    return out
