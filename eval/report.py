"""The benchmark's report: scores, paired bootstrap and compute per strategy, as Markdown, JSON and a plot.

Scores come from ``eval.scoring.score`` and significance from ``eval.significance.paired_bootstrap``, the
same code ``marco-eval score`` runs, so a report's figures can be recomputed from the saved translations.
A metric that cannot run (COMET without a model, the English-only similarity model on another target) is
reported with its reason rather than left out, so a missing column is never mistaken for a bad score.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import fmean
from typing import Any

from eval.data import TestSet
from eval.metrics import REGISTRY, MetricOptions, MetricScore, build_metric
from eval.scoring import score
from eval.significance import DEFAULT_SAMPLES, DEFAULT_SEED, paired_bootstrap
from translator.durable_files import write_atomic
from translator.languages import resolve_language
from translator.result import TranslationResult
from translator.script_guard import applies, holds_chinese
from translator.strategies import STRATEGIES

METRICS: tuple[str, ...] = ("bleu", "chrf", "comet", "semsim")  # report columns, in this order
DECIMALS = {"bleu": 2, "chrf": 2, "ter": 2}  # sacrebleu's 0-100 scales; model scores (0-1) get 4
COMET_NOT_REQUESTED = ("not requested: pass --comet-model NAME_OR_PATH (a local checkpoint, or a Hub name where a "
                       "network exists)")
PLOT_FILE = "plot.png"


@dataclass
class SystemOutput:
    """One strategy's translations of a whole test set, in item order, as the report needs them."""

    label: str
    strategy: str
    params: dict[str, Any]
    file: str  # the journal holding them, relative to the output folder
    results: list[TranslationResult]
    new: int  # translated by the invocation that writes this report
    failures: dict[int, str] = field(default_factory=dict)  # segment index -> why it has no result (scored as "")


@dataclass
class Bootstrap:
    """A strategy's bootstrap figures on one metric; the comparison fields are None for the baseline."""

    mean: float
    ci: float  # half-width of the 95% interval (sacrebleu's "μ ± ci")
    ci_low: float
    ci_high: float
    signature: str
    delta: float | None = None  # strategy - baseline, on the actual corpus scores
    p_value: float | None = None
    significant: bool | None = None  # p < 0.05


@dataclass
class StrategyReport:
    label: str
    strategy: str
    params: dict[str, Any]
    file: str
    n_segments: int
    new_segments: int
    tokens_per_segment: float
    seconds_per_segment: float
    answered_rate: float  # the headline: segments whose answer reached a translation
    fallback_rate: float  # segments answered by the direct fallback (the reasoning reached no translation)
    hinted_rate: float  # segments whose prompt held at least one dictionary note
    format_ok_rate: float | None  # closed its Output block; None for direct, which is asked for no format
    models: list[str]
    logprobs_sources: list[str]
    metrics: dict[str, MetricScore]  # every column in METRICS, scored or skipped with its reason
    bootstrap: dict[str, Bootstrap] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)  # {"segment": 1-based, "error": ...}
    # Chinese source into a language not written with Han characters: translations that still hold some
    # (the untranslated term a translator must fix; see translator.script_guard). None for other pairs.
    untranslated_rate: float | None = None


@dataclass
class DatasetReport:
    data: str
    src_lang: str
    tgt_lang: str
    n_segments: int
    folder: str  # holds the journals, relative to the output folder
    plot: str  # relative to the output folder
    strategies: list[StrategyReport]


@dataclass
class BenchReport:
    date: str
    command: str
    model: str  # the spec given
    dtype: str | None
    model_names: list[str]  # what the loader reported for it
    logprobs_sources: list[str]
    comet_model: str | None
    bootstrap_samples: int
    bootstrap_seed: int | None
    datasets: list[DatasetReport]


def _bootstraps(outputs: Sequence[SystemOutput], scored: list[dict[str, MetricScore]], testset: TestSet,
                comet_model: str | None) -> list[dict[str, Bootstrap]]:
    """Each strategy against the first, on every metric that ran. The baseline's own interval is the one
    its first comparison drew (every comparison uses the same resamples, as sacrebleu's does)."""
    figures: list[dict[str, Bootstrap]] = [{} for _ in outputs]
    if len(outputs) < 2:
        return figures
    refs, srcs = testset.references(), testset.sources
    base = [r.translation for r in outputs[0].results]
    options = MetricOptions(comet_model=comet_model) if comet_model else MetricOptions()
    for name in METRICS:
        if any(s[name].skipped is not None for s in scored):
            continue
        metric = build_metric(name, testset.tgt_lang, options)
        for i, output in enumerate(outputs[1:], 1):
            test = paired_bootstrap(metric, base, [r.translation for r in output.results], refs, srcs,
                                    n_samples=DEFAULT_SAMPLES, seed=DEFAULT_SEED)
            if i == 1:
                b = test.baseline
                figures[0][name] = Bootstrap(b.mean, b.ci, b.ci_low, b.ci_high, test.signature)
            s = test.system
            figures[i][name] = Bootstrap(s.mean, s.ci, s.ci_low, s.ci_high, test.signature, test.delta,
                                         test.p_value, test.significant())
    return figures


def evaluate_dataset(testset: TestSet, outputs: Sequence[SystemOutput], comet_model: str | None,
                     folder: str) -> DatasetReport:
    """Score every strategy's output on ``testset`` (segment scores kept, for the plot's deltas)."""
    names = [n for n in METRICS if n != "comet" or comet_model]
    scored = []
    for output in outputs:
        report = score([r.translation for r in output.results], testset.references(), testset.sources,
                       testset.tgt_lang, metrics=names, comet_model=comet_model, segments=True)
        metrics = dict(report.metrics)
        metrics.setdefault("comet", MetricScore("comet", REGISTRY["comet"].label, skipped=COMET_NOT_REQUESTED))
        scored.append({n: metrics[n] for n in METRICS})
    rows = []
    for output, metrics, boot in zip(outputs, scored, _bootstraps(outputs, scored, testset, comet_model)):
        results = output.results
        rows.append(StrategyReport(
            label=output.label, strategy=output.strategy, params=output.params, file=output.file,
            n_segments=len(results), new_segments=output.new,
            tokens_per_segment=fmean(r.tokens_generated for r in results),
            seconds_per_segment=fmean(r.wall_time_s for r in results),
            answered_rate=fmean(1.0 if r.answered else 0.0 for r in results),
            fallback_rate=fmean(1.0 if r.stats.get("fallback") else 0.0 for r in results),
            hinted_rate=fmean(1.0 if r.hints else 0.0 for r in results),
            format_ok_rate=(fmean(1.0 if r.format_ok else 0.0 for r in results)
                            if STRATEGIES[output.strategy].reasoning else None),
            models=sorted({r.model for i, r in enumerate(results) if i not in output.failures}),
            logprobs_sources=sorted({r.logprobs_source for i, r in enumerate(results) if i not in output.failures}),
            metrics=metrics, bootstrap=boot,
            failed=[{"segment": i + 1, "error": why} for i, why in sorted(output.failures.items())],
            untranslated_rate=(fmean(1.0 if holds_chinese(r.translation) else 0.0 for r in results)
                               if testset.src_lang == "zh" and applies(resolve_language(testset.tgt_lang)) else None),
        ))
    return DatasetReport(testset.name, testset.src_lang, testset.tgt_lang, len(testset), folder,
                         f"{folder}/{PLOT_FILE}", rows)


def build_report(command: str, model: str, dtype: str | None, comet_model: str | None,
                 datasets: list[DatasetReport]) -> BenchReport:
    rows = [row for d in datasets for row in d.strategies]
    return BenchReport(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=command, model=model, dtype=dtype,
        model_names=sorted({m for row in rows for m in row.models}),
        logprobs_sources=sorted({s for row in rows for s in row.logprobs_sources}),
        comet_model=comet_model, bootstrap_samples=DEFAULT_SAMPLES, bootstrap_seed=DEFAULT_SEED, datasets=datasets,
    )


def _number(name: str, value: float) -> str:
    return f"{value:.{DECIMALS.get(name, 4)}f}"


def _score_cell(name: str, row: StrategyReport) -> str:
    m = row.metrics[name]
    if m.skipped is not None:
        return "skipped"
    boot = row.bootstrap.get(name)
    return _number(name, m.score) + (f" (μ {_number(name, boot.mean)} ± {_number(name, boot.ci)})" if boot else "")


def _delta_cell(name: str, boot: Bootstrap) -> str:
    return f"{boot.delta:+.{DECIMALS.get(name, 4)}f} (p = {boot.p_value:.4f}){'*' if boot.significant else ''}"


def _dataset_markdown(d: DatasetReport) -> list[str]:
    rows = d.strategies
    labels = [rows[0].metrics[n].label.split(" (")[0] for n in METRICS]
    left = rows[0].untranslated_rate is not None  # a Chinese source into a language without Han characters
    lines = [f"## {d.data} ({d.src_lang}→{d.tgt_lang}, {d.n_segments} segments)", "",
             "| strategy | " + " | ".join(labels) + " | answered (fallback)" + (" | Chinese left" if left else "")
             + " | hinted | tokens/seg | s/seg | Output closed | new |",
             "|---|" + "---:|" * (len(METRICS) + 6 + left)]
    for row in rows:
        cells = [_score_cell(n, row) for n in METRICS]
        closed = "—" if row.format_ok_rate is None else f"{row.format_ok_rate:.0%}"
        lines.append(f"| `{row.label}` | " + " | ".join(cells) + f" | {row.answered_rate:.0%} "
                     f"({row.fallback_rate:.0%})" + (f" | {row.untranslated_rate:.0%}" if left else "")
                     + f" | {row.hinted_rate:.0%} | {row.tokens_per_segment:.1f} | "
                     f"{row.seconds_per_segment:.2f} | {closed} | {row.new_segments} |")
    compared = [n for n in METRICS if n in rows[0].bootstrap]
    if compared:
        lines += ["", f"Paired bootstrap against `{rows[0].label}` (Δ = strategy − baseline; * p < 0.05):", "",
                  "| strategy | " + " | ".join(f"{labels[METRICS.index(n)]} Δ (p)" for n in compared) + " |",
                  "|---|" + "---:|" * len(compared)]
        for row in rows[1:]:
            lines.append(f"| `{row.label}` | " + " | ".join(_delta_cell(n, row.bootstrap[n]) for n in compared) + " |")
    elif len(rows) < 2:
        lines += ["", "No paired bootstrap: it needs at least two strategies."]
    for row in (r for r in rows if r.failed):
        lines += ["", f"`{row.label}`: {len(row.failed)} segment(s) failed and are scored as empty translations "
                  "(rerun the same command to retry them):"] + [f"- segment {f['segment']}: {f['error']}"
                                                                for f in row.failed]
    skipped = {m.label: m.skipped for m in rows[0].metrics.values() if m.skipped is not None}
    if skipped:
        lines += ["", "Skipped:"] + [f"- {label}: {why}" for label, why in skipped.items()]
    signatures = {m.label: m.signature for m in rows[0].metrics.values() if m.signature}
    if signatures:
        lines += ["", "Signatures:"] + [f"- {label}: `{sig}`" for label, sig in signatures.items()]
    lines += ["", "Outputs: " + ", ".join(f"`{file}`" for file in dict.fromkeys(row.file for row in rows)), "",
              f"![chrF against compute]({d.plot})", ""]
    return lines


def to_markdown(report: BenchReport) -> str:
    datasets = ", ".join(f"`{d.data}` ({d.n_segments} segments)" for d in report.datasets)
    lines = [
        "# Strategy benchmark", "",
        f"- Date: {report.date}",
        f"- Command: `{report.command}`",
        f"- Model: `{report.model}` = {', '.join(report.model_names)}, dtype {report.dtype or 'default'}",
        f"- Log-probs source: {', '.join(report.logprobs_sources)}",
        f"- Data: {datasets}",
        f"- Paired bootstrap resampling: {report.bootstrap_samples} samples, 95% CI, seed {report.bootstrap_seed}, "
        "each strategy against the first (as `sacrebleu --paired-bs`)",
        "- tokens/seg: tokens generated per segment (mcts: every rollout); s/seg: wall time per segment "
        "(strategies that batch segments share a batch's time evenly); answered: the answer reached a "
        "translation (fallback: the share answered by the direct fallback because the reasoning reached none); "
        "Chinese left (Chinese sources into languages not written with Han characters): translations that still "
        "hold Chinese characters; hinted: the prompt held at least one dictionary note; Output closed: the reasoning strategies' answer "
        "also closed its Output block (an answer that ends at end-of-sequence right after its translation is "
        "answered but not closed)", "",
    ]
    for d in report.datasets:
        lines += _dataset_markdown(d)
    return "\n".join(lines)


PLOT_METRICS = (("chrf", "chrF"), ("bleu", "BLEU"), ("semsim", "SemSim"), ("comet", "COMET"))


def plot_dataset(d: DatasetReport, path: Path) -> None:
    """Each scored metric against tokens per segment (quality against compute: a search rewarded with chrF
    must be judged on the others too), chrF against seconds per segment, and each segment's chrF change
    from the baseline. Drawn on the Agg canvas directly: no pyplot state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    rows = d.strategies
    metrics = [(key, name) for key, name in PLOT_METRICS
               if any(row.metrics[key].score is not None for row in rows if key in row.metrics)]
    fig = Figure(figsize=(5.4 * max(3, len(metrics)), 9.6), layout="constrained")
    FigureCanvasAgg(fig)
    top = fig.subplots(2, max(3, len(metrics)), squeeze=False)
    ax_sec, ax_seg = top[1][0], top[1][1]
    for ax in top[1][2:]:
        ax.set_axis_off()
    for ax, (key, name) in zip(top[0], metrics):
        for i, row in enumerate(rows):
            m = row.metrics.get(key)
            if m is not None and m.score is not None:
                ax.scatter([row.tokens_per_segment], [m.score], s=60, color=f"C{i}", label=row.label)
        ax.set(xlabel="tokens generated per segment", ylabel=name, title=f"{d.data}: {name} vs tokens")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^1, 3x10^1... would overlap
        ax.grid(alpha=0.3)
    handles, labels = top[0][0].get_legend_handles_labels()
    top[1][2].legend(handles, labels, fontsize=8, loc="upper left", title="strategy")  # in the free panel
    chrf = [row.metrics["chrf"] for row in rows]
    for i, (row, m) in enumerate(zip(rows, chrf)):
        if m.score is not None:
            ax_sec.scatter([row.seconds_per_segment], [m.score], s=60, color=f"C{i}", label=row.label)
    ax_sec.set(xlabel="seconds per segment", ylabel="chrF", title="chrF vs time")
    ax_sec.grid(alpha=0.3)
    base = chrf[0].segments
    others = [(i, row, m.segments) for i, (row, m) in enumerate(zip(rows, chrf)) if i and m.segments and base]
    width = 0.8 / max(1, len(others))
    for k, (i, row, seg) in enumerate(others):
        xs = [j + 1 + (k - (len(others) - 1) / 2) * width for j in range(len(seg))]
        ax_seg.bar(xs, [s - b for s, b in zip(seg, base)], width=width, color=f"C{i}", label=row.label)
    ax_seg.axhline(0, color="black", linewidth=0.8)
    ax_seg.set(xlabel="segment", ylabel=f"chrF − {rows[0].label}", title="per-segment chrF change from the baseline")
    if not others:  # the colours are the strategies' of the legend panel
        ax_seg.text(0.5, 0.5, "needs a second strategy", ha="center", va="center", transform=ax_seg.transAxes)
    fig.savefig(path, dpi=90)


def write_report(report: BenchReport, out: Path) -> tuple[Path, Path]:
    """``out/report.md``, ``out/report.json`` and a plot per test set, each replaced atomically."""
    for d in report.datasets:
        plot_dataset(d, out / d.plot)
    md, js = out / "report.md", out / "report.json"
    write_atomic(md, to_markdown(report).encode("utf-8"))
    write_atomic(js, (json.dumps(asdict(report), ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return md, js
