"""Throughput of ``marco-translate batch``: segments/s per strategy and batch size, on WMT22 zh-en dev.

    python -m eval.batch_throughput --limit 50 [--batch-sizes 1,8,16] [--strategies direct,cot]

Each cell is one full run of the batch tool (``translator.batch.main``, no journal to resume from, no
cache), timed from the command to the written output, with the model already loaded. It prints a table
and writes the numbers, with the machine's load and thread count, to JSON: on a shared CPU the absolute
figures mean little without them. It also counts how many translations match batch size 1's, since
batched decoding in bf16 can flip a greedy choice, and the segments that failed (a cot that thinks past the
token cap gives no translation: a real outcome that costs the same decoding, so it is counted, not fatal).
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.batch_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=shared_data_dir() / "wmt22" / "dev.zh-en.zh")
    parser.add_argument("--limit", type=int, default=50, help="first N lines of the source (default: 50)")
    parser.add_argument("--strategies", default="direct,cot")
    parser.add_argument("--batch-sizes", type=_ints, default=[1, 8, 16])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="cap every strategy's output (default: each strategy's own: direct 256, cot 768)")
    parser.add_argument("--json", type=Path, default=Path("batch_bench.json"), help="where to write the numbers")
    args = parser.parse_args(argv)

    lines = args.source.read_text(encoding="utf-8").splitlines()[: args.limit]
    load_before = os.getloadavg()
    started = time.perf_counter()
    model_flags = ["--model", args.model, "--backend", args.backend] + (["--dtype", args.dtype] if args.dtype else [])
    model_flags += ["--threads", str(args.threads)] if args.threads else []
    translator = load_translator(batch_parser().parse_args(["-", *model_flags]))  # the load every cell reuses
    load_seconds = time.perf_counter() - started
    import torch

    def report() -> dict:
        return {
            "model": translator.model_name, "backend": type(translator.backend).__name__,
            "threads": getattr(translator.backend, "threads", None), "source": str(args.source), "lines": len(lines),
            "max_new_tokens": args.max_new_tokens, "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "model_load_seconds": load_seconds,
            "cells": [{**asdict(c), "segments_per_second": c.segments_per_second,
                       "tokens_per_second": c.tokens_per_second} for c in cells],
        }

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
                print(f"{strategy} batch {size}: {seconds:.1f} s", file=sys.stderr, flush=True)
                args.json.write_text(json.dumps(report(), indent=1) + "\n", encoding="utf-8")  # a long run keeps its cells

    print(f"model {translator.model_name}, {len(lines)} lines of {args.source}, torch threads "
          f"{torch.get_num_threads()}, load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"{'strategy':<9}{'batch':>6}{'seconds':>10}{'seg/s':>9}{'tok/s':>9}{'speed-up':>10}{'failed':>8}"
          f"{'same as b1':>12}")
    for cell in cells:
        first = next(c for c in cells if c.strategy == cell.strategy)
        print(f"{cell.strategy:<9}{cell.batch_size:>6}{cell.seconds:>10.1f}{cell.segments_per_second:>9.3f}"
              f"{cell.tokens_per_second:>9.1f}{first.seconds / cell.seconds:>9.2f}x{cell.failed:>8}"
              f"{cell.same_as_batch_1:>7}/{cell.segments}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
