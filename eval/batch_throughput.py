"""Throughput of ``marco-translate batch``: segments/s per strategy and batch size, on WMT22 zh-en dev.

    python -m eval.batch_throughput --limit 50 [--batch-sizes 1,8,16] [--strategies direct,cot]
        [--backends llama-cpp,transformers]

Each cell is one full run of the batch tool (``translator.batch.main``, no journal to resume from, no
cache), timed from the command to the written output, with the model already loaded. It prints a table
and writes the numbers, with the machine's load and thread count, to JSON: on a shared CPU the absolute
figures mean little without them. It also counts how many translations match batch size 1's, since
batched decoding in bf16 can flip a greedy choice, and the segments that failed (a cot that thinks past the
token cap gives no translation: a real outcome that costs the same decoding, so it is counted, not fatal).
With several ``--backends`` (``llama-cpp,transformers``), each runs every cell in turn on the same lines in
the same process, and the table's last column is the first backend's segments/s over that row's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from eval.data import shared_data_dir
from translator.backends import BACKENDS
from translator.batch import EXIT_FAILED, EXIT_OK, build_parser as batch_parser, load_translator, main as batch_main
from translator.registry import DEFAULT_MODEL


@dataclass
class Cell:
    strategy: str
    batch_size: int
    segments: int
    seconds: float
    tokens: int
    failed: int  # segments without a translation (cot that thinks past --max-new-tokens): decoded all the same
    same_as_batch_1: int  # translations identical to the batch-size-1 run's

    @property
    def segments_per_second(self) -> float:
        return self.segments / self.seconds

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def run_cell(source: Path, work: Path, strategy: str, batch_size: int, extra: list[str]) -> tuple[float, list[dict]]:
    out, trace = work / f"{strategy}-{batch_size}.txt", work / f"{strategy}-{batch_size}.jsonl"
    start = time.perf_counter()
    code = batch_main([str(source), "-o", str(out), "--trace", str(trace), "--strategy", strategy,
                       "--batch-size", str(batch_size), "--quiet", "--no-progress", *extra])
    seconds = time.perf_counter() - start
    if code not in (EXIT_OK, EXIT_FAILED):
        raise SystemExit(f"batch run {strategy}/{batch_size} exited with {code}")
    return seconds, [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]


def _backends(text: str) -> list[str]:
    names = [x for x in text.split(",") if x]
    unknown = [x for x in names if x not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {unknown or text!r}; choose from {', '.join(BACKENDS)}")
    return names


def run_backend(args: argparse.Namespace, backend: str, lines: list[str]) -> dict:
    """Every strategy x batch size cell on one backend, the model loaded once before the timed cells."""
    import torch

    load_before = os.getloadavg()
    started = time.perf_counter()
    model_flags = ["--model", args.model, "--backend", backend] + (["--dtype", args.dtype] if args.dtype else [])
    model_flags += ["--threads", str(args.threads)] if args.threads else []
    translator = load_translator(batch_parser().parse_args(["-", *model_flags]))  # the load every cell reuses
    load_seconds = time.perf_counter() - started
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        work = Path(tmp)
        source = work / "source.zh"
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for strategy in args.strategies.split(","):
            extra = list(model_flags)
            if args.max_new_tokens:
                extra += ["--max-new-tokens", str(args.max_new_tokens)]
            baseline: list[str] | None = None
            for size in args.batch_sizes:
                seconds, records = run_cell(source, work, strategy, size, extra)
                translations = [r["translation"] for r in records]
                baseline = baseline or translations
                tokens = sum(r["result"]["tokens_generated"] for r in records if r["result"] and not r["reused"])
                cells.append(Cell(strategy, size, len(records), seconds, tokens,
                                  sum(r["status"] == "failed" for r in records),
                                  sum(a == b for a, b in zip(translations, baseline))))
                print(f"{backend} {strategy} batch {size}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return {
        "backend": backend, "engine": type(translator.backend).__name__, "model": translator.model_name,
        "threads": getattr(translator.backend, "threads", None), "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "model_load_seconds": load_seconds,
        "cells": [{**asdict(c), "segments_per_second": c.segments_per_second,
                   "tokens_per_second": c.tokens_per_second} for c in cells],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.batch_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=shared_data_dir() / "wmt22" / "dev.zh-en.zh")
    parser.add_argument("--limit", type=int, default=50, help="first N lines of the source (default: 50)")
    parser.add_argument("--strategies", default="direct,cot")
    parser.add_argument("--batch-sizes", type=_ints, default=[1, 8, 16])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--backends", type=_backends, default=["auto"],
                        help="comma-separated backends, run one after the other on the same lines; segments/s "
                             "of the first over each other's are reported side by side (default: auto)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="cap every strategy's output (default: each strategy's own: direct 256, cot 768)")
    parser.add_argument("--json", type=Path, default=Path("batch_bench.json"), help="where to write the numbers")
    args = parser.parse_args(argv)

    lines = args.source.read_text(encoding="utf-8").splitlines()[: args.limit]
    report = {"source": str(args.source), "lines": len(lines), "max_new_tokens": args.max_new_tokens,
              "cpu_count": os.cpu_count(), "runs": []}
    for backend in args.backends:
        report["runs"].append(run_backend(args, backend, lines))
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")  # a long run keeps its backends
    first = report["runs"][0]
    for run in report["runs"][1:]:
        report[f"{first['backend']}_over_{run['backend']}_segments_per_second"] = {
            f"{a['strategy']}/{a['batch_size']}": a["segments_per_second"] / b["segments_per_second"]
            for a, b in zip(first["cells"], run["cells"])}
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

    print(f"{len(lines)} lines of {args.source}")
    print(f"{'backend':<13}{'threads':>8}{'strategy':>9}{'batch':>6}{'seconds':>10}{'seg/s':>9}{'tok/s':>9}"
          f"{'speed-up':>10}{'failed':>8}{'same as b1':>12}{'vs first':>10}")
    for run in report["runs"]:
        for cell, lead in zip(run["cells"], first["cells"]):
            b1 = next(c for c in run["cells"] if c["strategy"] == cell["strategy"])
            print(f"{run['backend']:<13}{run['threads'] or run['torch_threads']:>8}{cell['strategy']:>9}"
                  f"{cell['batch_size']:>6}{cell['seconds']:>10.1f}{cell['segments_per_second']:>9.3f}"
                  f"{cell['tokens_per_second']:>9.1f}{b1['seconds'] / cell['seconds']:>9.2f}x{cell['failed']:>8}"
                  f"{cell['same_as_batch_1']:>7}/{cell['segments']}"
                  f"{lead['segments_per_second'] / cell['segments_per_second']:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
