"""``marco-eval``: score translations from the command line.

Each subcommand is a ``register(subparsers)`` function that adds its parser and sets ``handler`` to a
function taking the parsed arguments and returning the exit code; adding one (``bench`` lives in
``eval/bench.py``) means writing its ``register`` and listing it in ``SUBCOMMANDS``. Errors the user can
fix (``translator.errors.TranslatorError``) print one line on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict

from eval import PROG
from eval.bench import register as register_bench
from eval.data import read_lines
from eval.metrics import DEFAULT_COMET_MODEL, METRIC_NAMES, MetricOptions
from eval.reward_eval import register as register_rewards
from eval.scoring import DEFAULT_METRICS, Comparison, ScoreReport, compare, parse_metric_names, score
from eval.significance import DEFAULT_SAMPLES
from translator.errors import EXIT_OK, EXIT_USAGE, InputError, TranslatorError, exit_code, quiet_broken_pipe
from translator.options import positive_int

REFERENCE_FREE = ("comet",)  # with a QE checkpoint (CometKiwi); every other metric compares with references


def _run_score(args: argparse.Namespace) -> int:
    needing_refs = [m for m in args.metrics if m not in REFERENCE_FREE]
    if not args.ref and needing_refs:
        raise InputError(f"no --ref given, and {', '.join(needing_refs)} need references: give --ref FILE, or "
                         "ask only for reference-free metrics (--metrics comet with a QE model such as CometKiwi)")
    hyps = read_lines(args.hyp)
    refs = [read_lines(path) for path in args.ref]
    srcs = read_lines(args.src) if args.src else None
    report = score(
        hyps,
        refs,
        srcs,
        args.tgt,
        metrics=args.metrics,
        comet_model=args.comet_model,
        segments=args.segments,
        comet_batch_size=args.comet_batch_size,
        gpus=args.gpus,
        progress_bar=args.progress,
    )
    comparisons = None
    if args.baseline:
        options = MetricOptions(comet_model=args.comet_model, comet_batch_size=args.comet_batch_size,
                                gpus=args.gpus, progress_bar=args.progress)
        comparisons = compare(hyps, read_lines(args.baseline), refs, srcs, args.tgt, args.metrics, options,
                              n_samples=args.paired_bs_n)
    if args.json:
        data = report.to_dict()
        if comparisons is not None:
            data["paired_bootstrap"] = {"baseline": args.baseline, "metrics": [asdict(c) for c in comparisons]}
        print(json.dumps(data, ensure_ascii=False, indent=1))
    else:
        print(_text(report, args.segments, comparisons, args.baseline))
    return EXIT_OK


def _text(report: ScoreReport, segments: bool, comparisons: list[Comparison] | None = None,
          baseline: str | None = None) -> str:
    lines = [report.summary()]
    if comparisons:
        n = next((c.test.n_samples for c in comparisons if c.test), None)
        lines.append(f"Paired bootstrap against {baseline}" + (f" ({n} resamples, 95% CI; * p < 0.05):" if n else ":"))
        lines.extend(f"  {c.summary()}" for c in comparisons)
    scored = [m for m in report.metrics.values() if m.segments is not None]
    if segments and scored:
        lines.append("\t".join(["segment", *(m.label for m in scored)]))
        for i in range(report.n_segments):
            lines.append("\t".join([str(i + 1), *(f"{m.segments[i]:.4f}" for m in scored)]))
    return "\n".join(lines)


def _metric_list(text: str) -> list[str]:
    try:
        return parse_metric_names(text)
    except TranslatorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register_score(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score a hypothesis file against reference files",
        description="Corpus scores with sacrebleu-style signatures; metrics that cannot run here "
        "(e.g. COMET offline without a local checkpoint) are reported as skipped, with the reason.",
    )
    p.add_argument("--hyp", required=True, metavar="FILE", help="hypotheses, one segment a line (UTF-8)")
    p.add_argument("--ref", action="extend", nargs="+", default=[], metavar="FILE",
                   help="reference file(s); repeat or list several for multiple references")
    p.add_argument("--src", metavar="FILE", help="source file (needed by COMET)")
    p.add_argument("--tgt", required=True, metavar="LANG", help="target language code or name (zh, en, Chinese...)")
    p.add_argument("--metrics", type=_metric_list, default=list(DEFAULT_METRICS),
                   help=f"comma-separated, from {','.join(METRIC_NAMES)} (default: {','.join(DEFAULT_METRICS)})")
    p.add_argument("--comet-model", default=DEFAULT_COMET_MODEL, metavar="NAME_OR_PATH",
                   help="Hub model name or local checkpoint (model.ckpt or its model folder); QE models need no --ref")
    p.add_argument("--comet-batch-size", type=positive_int, default=16, metavar="N")
    p.add_argument("--gpus", type=int, default=None, metavar="N",
                   help="GPUs for COMET (default: 1 if CUDA is available, else 0)")
    p.add_argument("--progress", action="store_true", help="show COMET's progress bar")
    p.add_argument("--segments", action="store_true", help="also print per-segment scores")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--baseline", metavar="FILE",
                   help="another system's output for the same segments: paired bootstrap resampling of --hyp "
                   "against it on each metric (as sacrebleu --paired-bs), to compare two runs")
    p.add_argument("--paired-bs-n", type=positive_int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"resamples for --baseline (default {DEFAULT_SAMPLES})")
    p.set_defaults(handler=_run_score)


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (register_score, register_bench,
                                                                        register_rewards)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Evaluate translations (BLEU, chrF, TER, COMET...).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


@quiet_broken_pipe
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (TranslatorError, KeyboardInterrupt) as exc:
        return exit_code(PROG, exc, failed=EXIT_USAGE)  # what marco-eval refuses is all input
