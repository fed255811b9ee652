"""``marco-eval bench``: translate test sets with several strategies, keep every output, and compare them.

    marco-eval bench --data slang:zh-en [--data wmt22-dev:zh-en ...] \\
        --strategies direct,cot,mcts:rollouts=8,children=2,granularity=step \\
        [--model SPEC [--served-model NAME]] [--limit N] [--comet-model NAME_OR_PATH] --out DIR

``--strategies`` is a comma-separated list of ``NAME[:KEY=VALUE,...]``: an item with ``=`` sets an option
of the strategy before it, so ``cot:max_new_tokens=24,mcts:rollouts=2,children=2`` is two strategies.
Values take the type of the strategy's Config field (bool: true/false/1/0). Each spec string is also its
label, so one strategy can be compared with itself under other settings.

``--data`` may be repeated; each test set gets its own folder ``DIR/<data>/`` and its own report section.
In it, ``<label>.jsonl`` is a resume journal (``translator.batch_journal``, shared with the batch tool):
its first line records the settings (strategy options, model, served model, dtype, data, languages), each later line
one finished segment with its whole result minus per-token log-probs. Lines are appended and fsynced
after every batch, so Ctrl-C or a crash loses at most the batch in flight; a rerun decodes only what is
missing (a torn last line included) and refuses a journal made with other settings instead of mixing
the two. The model is loaded only if something is left to translate.

After translating, ``DIR/report.md`` and ``DIR/report.json`` (see ``eval.report``) compare the strategies.
Exit codes: 0 done, 2 usage error, 130 interrupted (finished segments kept: rerun the same command).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.data import TestSet, load_testset
from eval.report import SystemOutput, build_report, evaluate_dataset, write_report
from translator.api import Translator, make_request
from translator.batch_journal import Journal
from translator.errors import InputError
from translator.options import MODEL_SPEC_HELP, add_model_options, base_type, model_settings
from translator.prompt import TranslationRequest
from translator.result import TranslationResult
from translator.strategies import STRATEGIES, Hooks, Progress, chunk_size, make_config

DEFAULT_BATCH_SIZE = 8
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class StrategySpec:
    label: str  # the spec as written: names the run in reports and (slugged) its journal
    name: str
    options: dict[str, Any]

    def params(self) -> dict[str, Any]:
        """Every setting of the strategy, defaults included: what the journal and the report record."""
        return dataclasses.asdict(make_config(self.name, self.options))


def _option_value(strategy: str, key: str, text: str) -> Any:
    """``text`` as the type the strategy's Config declares for ``key``; unknown keys stay strings, for
    ``make_config`` to refuse with the list of valid ones."""
    config = STRATEGIES[strategy].Config if strategy in STRATEGIES else None
    hint = typing.get_type_hints(config).get(key) if config else None
    if hint is None:
        return text
    kind = base_type(hint)
    if kind is bool:
        flags = {"true": True, "1": True, "false": False, "0": False}
        if text.lower() not in flags:
            raise InputError(f"{key} must be true, false, 1 or 0, not {text!r}")
        return flags[text.lower()]
    try:
        return kind(text)
    except ValueError:
        raise InputError(f"{key} must be {'an' if kind is int else 'a'} {kind.__name__}, not {text!r}") from None


def parse_strategies(text: str) -> list[StrategySpec]:
    """``direct,mcts:rollouts=8,children=3`` -> specs with typed options, checked against each Config."""
    groups: list[list[str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise InputError(f"empty item in --strategies {text!r}")
        if "=" in item and ":" not in item.split("=", 1)[0]:
            if not groups:
                raise InputError(f"option {item!r} comes before any strategy in --strategies {text!r}")
            groups[-1].append(item)
        else:
            groups.append([item])
    specs = []
    for group in groups:
        label = ",".join(group)
        name, _, first = group[0].partition(":")
        options: dict[str, Any] = {}
        try:
            for pair in ([first] if first else []) + group[1:]:
                key, eq, value = (s.strip() for s in pair.partition("="))
                if not eq or not key:
                    raise InputError(f"expected KEY=VALUE, got {pair!r}")
                if key in options:
                    raise InputError(f"{key} is given twice")
                options[key] = _option_value(name, key, value)
            make_config(name, options)  # types, known keys and each Config's own validation, before any model loads
        except InputError as exc:
            raise InputError(f"strategy {label!r}: {exc}") from None
        specs.append(StrategySpec(label, name, options))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise InputError(f"--strategies names the same strategy spec twice: {text!r}")
    return specs


def slug(text: str) -> str:
    """A file name for a label or data spec that stays readable (``mcts_rollouts=8_children=2``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_.") or "_"


@dataclass
class Run:
    """One strategy on one test set: its journal and the results it holds, by segment index."""

    spec: StrategySpec
    testset: TestSet
    journal: Journal
    results: dict[int, TranslationResult]
    new: int = 0  # segments translated by this invocation

    @property
    def pending(self) -> list[int]:
        return [i for i in range(len(self.testset)) if i not in self.results]

    def save(self, indices: list[int], results: list[TranslationResult]) -> None:
        self.journal.append([{"index": i, "id": self.testset.items[i].id, "src": self.testset.items[i].src,
                              "result": r.to_dict(with_tokens=False)} for i, r in zip(indices, results)])
        self.results.update(zip(indices, results))
        self.new += len(indices)

    def output(self) -> SystemOutput:
        file = f"{self.journal.path.parent.name}/{self.journal.path.name}"  # relative to --out
        return SystemOutput(self.spec.label, self.spec.name, self.spec.params(), file,
                            [self.results[i] for i in range(len(self.testset))], self.new)


def open_run(folder: Path, testset: TestSet, spec: StrategySpec, model: dict[str, Any], batch_size: int) -> Run:
    """Load the journal, refusing one from other settings or batch size; entries whose source changed are redone.

    ``model``: the model's part of the settings (``translator.options.model_settings``)."""
    settings = {"label": spec.label, "strategy": spec.name, "options": spec.params(), **model,
                "data": testset.name, "src": testset.src_lang, "tgt": testset.tgt_lang}
    journal = Journal(folder / f"{slug(spec.label)}.jsonl", settings, chunk_size(spec.name, batch_size))
    try:
        entries = journal.load()
    except InputError as exc:
        raise InputError(f"{spec.label} on {testset.name}: {exc}") from None
    results = {}
    for i, item in enumerate(testset.items):
        entry = entries.get(i)
        if entry is not None and entry.get("id") == item.id and entry.get("src") == item.src:
            results[i] = TranslationResult.from_dict(entry["result"])
    return Run(spec, testset, journal, results)


def translate_pending(run: Run, requests: list[TranslationRequest], translator: Callable[[], Translator]) -> None:
    """Decode what the journal lacks, batching within fixed chunks of the test set (not a window over
    whatever is left), and journal each batch as soon as it is done."""
    if not run.pending:
        return
    strategy = translator().strategy(run.spec.name, **run.spec.options)
    size = run.journal.chunk_size
    with tqdm(total=len(run.testset), initial=len(run.results), unit="seg", file=sys.stderr, dynamic_ncols=True,
              desc=f"{run.testset.name} {run.spec.label}") as bar:
        def progress(p: Progress) -> None:
            bar.set_postfix_str(f"rollouts {p.done}/{p.budget}")

        for start in range(0, len(run.testset), size):
            todo = [i for i in range(start, min(start + size, len(run.testset))) if i not in run.results]
            if todo:
                run.save(todo, strategy.translate([requests[i] for i in todo], Hooks(on_progress=progress)))
                bar.update(len(todo))


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, every setting spelled out (defaults included)."""
    parts = ["marco-eval", "bench", *(a for spec in args.data for a in ("--data", spec)),
             "--strategies", args.strategies, "--model", args.model]
    for flag, value in (("--served-model", args.served_model), ("--limit", args.limit), ("--dtype", args.dtype),
                        ("--device", args.device),
                        ("--batch-size", args.batch_size), ("--comet-model", args.comet_model)):
        if value is not None:
            parts += [flag, str(value)]
    if args.trust_remote_code:
        parts.append("--trust-remote-code")
    return shlex.join([*parts, "--out", args.out])


def _requests(testset: TestSet) -> list[TranslationRequest]:
    ids = [item.id for item in testset.items]
    if len(set(ids)) != len(ids):
        raise InputError(f"test set {testset.name} has duplicate item ids; results could not be matched on resume")
    requests = []
    for item in testset.items:
        try:
            requests.append(make_request(item.src, testset.src_lang, testset.tgt_lang))
        except InputError as exc:
            raise InputError(f"test set {testset.name}, item {item.id}: {exc}") from None
    return requests


def _run(args: argparse.Namespace) -> int:
    from translator.models import DEFAULT_MODEL  # imports torch: only once a bench actually runs

    args.model = args.model or DEFAULT_MODEL
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    specs = parse_strategies(args.strategies)
    testsets = [load_testset(spec, limit=args.limit) for spec in dict.fromkeys(args.data)]
    folders = [Path(args.out) / slug(t.name) for t in testsets]
    if len(set(folders)) != len(folders):
        raise InputError("two --data specs map to the same folder name; give them distinct names")
    requests = [_requests(t) for t in testsets]
    runs: list[list[Run]] = []
    for testset, folder in zip(testsets, folders):
        folder.mkdir(parents=True, exist_ok=True)
        runs.append([open_run(folder, testset, spec, model_settings(args, DEFAULT_MODEL), args.batch_size)
                     for spec in specs])

    loaded: list[Translator] = []

    def translator() -> Translator:
        if not loaded:
            loaded.append(Translator(args.model, device=args.device, dtype=args.dtype,
                                     trust_remote_code=args.trust_remote_code, served_model=args.served_model))
        return loaded[0]

    try:
        for dataset_runs, dataset_requests in zip(runs, requests):
            for run in dataset_runs:
                translate_pending(run, dataset_requests, translator)
    except KeyboardInterrupt:
        from eval.cli import PROG  # not at the top: eval.cli imports this module

        print(f"{PROG}: interrupted; finished segments are saved under {args.out}: rerun the same command to "
              "continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for run in (r for dataset_runs in runs for r in dataset_runs):
            run.journal.close()

    for dataset_runs in runs:
        print(f"{dataset_runs[0].testset.name}: " + "; ".join(
            f"{r.spec.label}: {len(r.results)} segments ({r.new} new)" for r in dataset_runs), file=sys.stderr)
    datasets = [evaluate_dataset(r[0].testset, [run.output() for run in r], args.comet_model, folder.name)
                for r, folder in zip(runs, folders)]
    md, _ = write_report(build_report(command_line(args), args.model, args.dtype, args.comet_model, datasets),
                         Path(args.out))
    print(f"report: {md}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="translate test sets with several strategies and compare them (resumable)",
        description="Translates each --data test set with each strategy, keeps every output with its trace "
        "(resumable JSONL per strategy), and writes DIR/report.md and DIR/report.json: BLEU, chrF, COMET "
        "(with --comet-model), semantic similarity (English targets), tokens and seconds per segment, "
        "format compliance, and paired bootstrap resampling of each strategy against the first.",
    )
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="test set (slang:zh-en, wmt22-dev:zh-en, petci, FILE.jsonl, SRC,REF...); repeat for several")
    p.add_argument("--strategies", required=True, metavar="SPECS",
                   help="comma-separated NAME[:KEY=VALUE,...], e.g. direct,cot,mcts:rollouts=8,granularity=mini-64; "
                   f"strategies: {', '.join(STRATEGIES)}; the first is the baseline")
    p.add_argument("--model", default=None, metavar="SPEC",
                   help=f"{MODEL_SPEC_HELP} (default: the translator's default model)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N segments of each test set")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the journals, report and plots")
    p.add_argument("--comet-model", default=None, metavar="NAME_OR_PATH",
                   help="COMET model (local checkpoint, or Hub name where a network exists); "
                   "without it COMET is skipped")
    add_model_options(p)
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help="segments decoded together by strategies that batch (direct, cot; "
                   f"default {DEFAULT_BATCH_SIZE})")
    p.set_defaults(handler=_run)
