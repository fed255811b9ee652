"""``marco-eval bench``: translate test sets with several strategies, keep every output, and compare them.

    marco-eval bench --data slang:zh-en [--data wmt22-dev:zh-en ...] \\
        --strategies direct,cot,mcts:rollouts=8,children=2,granularity=step \\
        [--model SPEC [--served-model NAME]] [--limit N] [--comet-model NAME_OR_PATH] --out DIR

``--strategies`` is a comma-separated list of ``NAME[:KEY=VALUE,...]``: an item with ``=`` sets an option
of the strategy before it, so ``cot:max_new_tokens=24,mcts:rollouts=2,children=2`` is two strategies.
Values take the type of the strategy's Config field (bool: true/false/1/0). Each spec string is also its
label, so one strategy can be compared with itself under other settings.

A spec may also say ``lexicon=on`` or ``lexicon=off`` (dictionary notes in its prompts; default: ``--lexicon``)
and ``max_hints=N`` (notes per segment at most; default: ``--max-hints``), so ``direct:lexicon=off,direct,cot``
compares plain and lexicon-aided decoding in one run, and ``direct,direct:max_hints=1,direct:max_hints=8``
how many notes help.

``--data`` may be repeated; each test set gets its own folder ``DIR/<data>/`` and its own report section.
In it, ``<label>.jsonl`` is a resume journal: each (test set, strategy) runs through the batch tool's runner
(``translator.batch_run``) with its journal schema (``translator.batch_journal``). Its first line records
the settings (strategy options, model, served model, dtype, data, languages, batch size, code version),
each later line one finished segment with its whole result minus per-token log-probs. Lines are appended
and fsynced after every batch, so Ctrl-C or a crash loses at most the batch in flight; a rerun decodes only
what is missing (a torn last line included) and refuses a journal made with other settings or other code
instead of mixing the two. A segment whose decoding raises fails alone: it is scored as an empty
translation, listed in the report, and tried again by the next run. The model is loaded only if something
is left to translate. Journals of the first format (no code version) are reported when complete.

After translating, ``DIR/report.md`` and ``DIR/report.json`` (see ``eval.report``) compare the strategies.
An mcts row is followed (at the end of its table) by one row per other ``--select`` rule, scored on what
that rule returns from the same trees (``LABEL -> select=RULE``; see ``with_selections``).
Exit codes: 0 done, 1 some segments failed (the report is written; rerun to retry them), 2 usage error,
130 interrupted (finished segments kept: rerun the same command).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.data import TestSet, load_testset
from eval.report import SystemOutput, build_report, evaluate_dataset, write_report
from eval import PROG
from translator.api import Translator, language
from translator.batch_formats import Segment
from translator.batch_journal import Journal, RunSettings, differences, read_journal, run_settings
from translator.batch_run import BatchRunner, SegmentRecord, progress_bar
from translator.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, InputError
from translator.lexicon import Lexicon
from translator.options import (MODEL_SPEC_HELP, add_lexicon_options, add_model_options, base_type, build_translator,
                                lexicon_from_args, lexicon_settings, model_settings, positive_int)
from translator.result import TranslationResult
from translator.strategies import STRATEGIES, make_config

DEFAULT_BATCH_SIZE = 8
_SHOWN_FAILURES = 5  # on stderr; the report lists them all


@dataclass(frozen=True)
class StrategySpec:
    label: str  # the spec as written: names the run in reports and (slugged) its journal
    name: str
    options: dict[str, Any]
    lexicon: bool | None = None  # ``lexicon=on|off`` in the spec; None: the bench's --lexicon
    max_hints: int | None = None  # ``max_hints=N`` in the spec; None: the bench's --max-hints

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
        lexicon: bool | None = None
        max_hints: int | None = None
        try:
            for pair in ([first] if first else []) + group[1:]:
                key, eq, value = (s.strip() for s in pair.partition("="))
                if not eq or not key:
                    raise InputError(f"expected KEY=VALUE, got {pair!r}")
                if key in options or (key == "lexicon" and lexicon is not None) or (
                        key == "max_hints" and max_hints is not None):
                    raise InputError(f"{key} is given twice")
                # lexicon and max_hints are not strategy options: they set the dictionary notes of the prompts
                if key == "lexicon":
                    if value not in ("on", "off"):
                        raise InputError(f"lexicon must be on or off, not {value!r}")
                    lexicon = value == "on"
                elif key == "max_hints":
                    if not value.isdigit():
                        raise InputError(f"max_hints must be a whole number >= 0, not {value!r}")
                    max_hints = int(value)
                else:
                    options[key] = _option_value(name, key, value)
            make_config(name, options)  # types, known keys and each Config's own validation, before any model loads
        except InputError as exc:
            raise InputError(f"strategy {label!r}: {exc}") from None
        specs.append(StrategySpec(label, name, options, lexicon, max_hints))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise InputError(f"--strategies names the same strategy spec twice: {text!r}")
    return specs


def slug(text: str) -> str:
    """A file name for a label or data spec that stays readable (``mcts_rollouts=8_children=2``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_.") or "_"


@dataclass
class Run:
    """One strategy on one test set: its journal, and once run, a record per segment.

    Runs go through the batch tool's runner (``translator.batch_run``), so a segment whose decoding raises
    fails alone (its batch is retried one segment at a time), is marked in the report, and is tried again
    by the next run of the same command."""

    spec: StrategySpec
    testset: TestSet
    journal: Journal
    params: dict[str, Any]  # the strategy's settings, as the report shows them
    finished: dict[int, dict[str, Any]]  # the journal's entries by segment index
    legacy: list[TranslationResult] | None = None  # a complete journal from before code versions were recorded
    records: list[SegmentRecord] = field(default_factory=list)
    new: int = 0  # segments decoded (or tried) by this invocation

    def output(self) -> SystemOutput:
        file = f"{self.journal.path.parent.name}/{self.journal.path.name}"  # relative to --out
        if self.legacy is not None:
            return SystemOutput(self.spec.label, self.spec.name, self.params, file, self.legacy, 0)
        results, failures = [], {}
        for record in self.records:
            if record.result is None:  # a model error or an untranslatable source: scored as no translation
                failures[record.index] = record.error or "failed"
                results.append(_no_result(record, self.testset, self.spec.name))
            else:
                results.append(TranslationResult.from_dict(record.result))
        return SystemOutput(self.spec.label, self.spec.name, self.params, file, results, self.new, failures)


def with_selections(outputs: list[SystemOutput]) -> list[SystemOutput]:
    """The outputs, then for each mcts output whose results record what every ``--select`` rule returns
    from the same tree (``stats.selections``) one more row per other rule, labelled ``LABEL -> select=RULE``:
    the rules compared on the same searches, at no extra decoding (tokens and seconds are the search's)."""
    extra = []
    for o in outputs:
        chosen = o.params.get("select")
        if not o.results or not all("selections" in r.stats for r in o.results):
            continue
        for rule in o.results[0].stats["selections"]:
            if rule == chosen:
                continue
            results = [dataclasses.replace(r, translation=r.stats["selections"][rule],
                                           answered=bool(r.stats["selections"][rule].strip())) for r in o.results]
            extra.append(SystemOutput(f"{o.label} -> select={rule}", o.strategy, {**o.params, "select": rule},
                                      o.file, results, 0, dict(o.failures)))
    return outputs + extra


def _no_result(record: SegmentRecord, testset: TestSet, strategy: str) -> TranslationResult:
    return TranslationResult(source=record.source, src_lang=testset.src_lang, tgt_lang=testset.tgt_lang,
                             translation="", thought="", raw_output="", strategy=strategy, model="", params={},
                             tokens_generated=0, wall_time_s=0.0, format_ok=False, confidence=None)


def _full_result(result: TranslationResult) -> dict[str, Any]:
    """What the benchmark journals of a result: everything (the whole mcts tree) but per-token log-probs."""
    return result.to_dict(with_tokens=False)


def _legacy_results(path: Path, testset: TestSet,
                    settings: RunSettings) -> tuple[dict[str, Any], list[TranslationResult]] | None:
    """The recorded strategy options and the results of a journal in the benchmark's first format (version 1:
    no code version, entries with ``id``, ``src`` and ``result``), which ``eval/results/`` keeps: a complete
    one is reported as it is, since nothing is left to decode and so nothing is resumed under other code; an
    incomplete one is refused. None when the journal is not of that format."""
    header, entries, _ = read_journal(path)
    if header is None or header.get("version") != 1 or any("result" not in e for e in entries.values()):
        return None
    old = header.get("settings") or {}
    new = {**settings.decoding, "options": {k: settings.decoding["options"].get(k) for k in old.get("options", {})}}
    # Options added since then do not count (their defaults keep the old behaviour), nor does the label: it
    # names the run, the settings decide it (a spec may now have to spell out what was once a default).
    diffs = differences({k: v for k, v in old.items() if k != "label"}, {k: v for k, v in new.items() if k != "label"})
    if diffs:
        raise InputError(f"journal {path} is from a run with other settings ({'; '.join(diffs)}): rerun with "
                         "those settings to report it, or delete it to start over")
    results = []
    for i, item in enumerate(testset.items):
        entry = entries.get(i)
        if entry is None or entry.get("id") != item.id or entry.get("src") != item.src:
            raise InputError(f"journal {path} was written by older code that did not record its version, and "
                             f"holds only {len(results)} of the {len(testset)} segments in order: it can be "
                             "reported whole, not resumed; delete it to translate the set with this code")
        results.append(TranslationResult.from_dict(entry["result"]))
    return old.get("options", {}), results


def open_run(folder: Path, testset: TestSet, spec: StrategySpec, model: dict[str, Any], batch_size: int,
             lexicon: dict[str, Any] | None = None) -> Run:
    """Load the journal, refusing one from other settings, batch size or code.

    ``model``: the model's part of the settings (``translator.options.model_settings``); ``lexicon``: the
    lexicon's (``translator.options.lexicon_settings``), absent in journals made before the lexicon."""
    settings = run_settings(model, spec.name, spec.params(), testset.src_lang, testset.tgt_lang, batch_size,
                            label=spec.label, data=testset.name, **(lexicon or {}))
    journal = Journal(folder / f"{slug(spec.label)}.jsonl", settings)
    try:
        legacy = _legacy_results(journal.path, testset, settings)
        if legacy is not None:
            return Run(spec, testset, journal, legacy[0], {}, legacy[1])
        return Run(spec, testset, journal, spec.params(), journal.load())
    except InputError as exc:
        raise InputError(f"{spec.label} on {testset.name}: {exc}") from None


def translate_pending(run: Run, translator: Callable[[], Translator], lexicon: Lexicon | None = None) -> None:
    """Decode, through the batch runner, what the journal lacks; each batch is journaled as soon as it is done.
    ``translator`` loads the model: it is called only if something is left to decode; ``lexicon`` gives
    each prompt its dictionary notes."""
    if run.legacy is not None:
        return
    report, close = progress_bar(True, f"{run.testset.name} {run.spec.label}")
    runner = BatchRunner(load_strategy=lambda: translator().strategy(run.spec.name, **run.spec.options),
                         settings=run.journal.settings,
                         src=language(run.testset.src_lang), tgt=language(run.testset.tgt_lang),
                         journal=run.journal, on_progress=report, summarize=_full_result, lexicon=lexicon)
    segments = [Segment(i, i + 1, item.src) for i, item in enumerate(run.testset.items)]
    try:
        run.records = runner.run(segments, run.finished)
    finally:
        close()
    run.new = runner.stats.total - runner.stats.resumed


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, every setting spelled out (defaults included)."""
    parts = ["marco-eval", "bench", *(a for spec in args.data for a in ("--data", spec)),
             "--strategies", args.strategies, "--model", args.model]
    for flag, value in (("--served-model", args.served_model), ("--limit", args.limit), ("--dtype", args.dtype),
                        ("--device", args.device),
                        ("--batch-size", args.batch_size), ("--comet-model", args.comet_model),
                        ("--lexicon", args.lexicon), ("--max-hints", args.max_hints)):
        if value is not None:
            parts += [flag, str(value)]
    for path in args.lexicon_file:
        parts += ["--lexicon-file", path]
    if args.trust_remote_code:
        parts.append("--trust-remote-code")
    return shlex.join([*parts, "--out", args.out])


def _run(args: argparse.Namespace) -> int:
    from translator.registry import DEFAULT_MODEL

    args.model = args.model or DEFAULT_MODEL
    specs = parse_strategies(args.strategies)
    testsets = [load_testset(spec, limit=args.limit) for spec in dict.fromkeys(args.data)]
    folders = [Path(args.out) / slug(t.name) for t in testsets]
    if len(set(folders)) != len(folders):
        raise InputError("two --data specs map to the same folder name; give them distinct names")
    def lexicon_of(spec: StrategySpec, testset: TestSet) -> tuple[Lexicon | None, dict[str, Any]]:
        """The spec's lexicon (its own ``lexicon=on|off`` and ``max_hints=N``, else --lexicon and --max-hints)
        and its part of the settings for a test set (its direction)."""
        wanted = argparse.Namespace(**{**vars(args), "lexicon": {True: "on", False: "off"}.get(spec.lexicon, args.lexicon),
                                       "max_hints": args.max_hints if spec.max_hints is None else spec.max_hints})
        return lexicon_from_args(wanted), lexicon_settings(wanted, testset.src_lang, testset.tgt_lang)

    runs: list[list[Run]] = []
    for testset, folder in zip(testsets, folders):
        folder.mkdir(parents=True, exist_ok=True)
        runs.append([open_run(folder, testset, spec, model_settings(args, DEFAULT_MODEL), args.batch_size,
                              lexicon_of(spec, testset)[1]) for spec in specs])

    loaded: list[Translator] = []

    def translator() -> Translator:
        if not loaded:
            loaded.append(build_translator(args, lexicon=False))  # the runner puts the notes into each request
        return loaded[0]

    try:
        for run in (r for dataset_runs in runs for r in dataset_runs):
            translate_pending(run, translator, lexicon_of(run.spec, run.testset)[0])
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished segments are saved under {args.out}: rerun the same command to "
              "continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for run in (r for dataset_runs in runs for r in dataset_runs):
            run.journal.close()

    outputs = [with_selections([run.output() for run in dataset_runs]) for dataset_runs in runs]
    for dataset_runs, dataset_outputs in zip(runs, outputs):
        print(f"{dataset_runs[0].testset.name}: " + "; ".join(
            f"{o.label}: {len(o.results)} segments ({o.new} new" + (f", {len(o.failures)} failed)" if o.failures else ")")
            for o in dataset_outputs[: len(dataset_runs)]), file=sys.stderr)  # the decoded runs, not the rule rows
    datasets = [evaluate_dataset(r[0].testset, o, args.comet_model, folder.name)
                for r, o, folder in zip(runs, outputs, folders)]
    md, _ = write_report(build_report(command_line(args), args.model, args.dtype, args.comet_model, datasets),
                         Path(args.out))
    print(f"report: {md}", file=sys.stderr)
    failures = [(o.label, d.testset.name, i, why) for dataset_runs, dataset_outputs in zip(runs, outputs)
                for d, o in zip(dataset_runs, dataset_outputs) for i, why in o.failures.items()]
    for label, data, index, why in failures[:_SHOWN_FAILURES]:
        print(f"{PROG}: {label} on {data}, segment {index + 1} failed: {why}", file=sys.stderr)
    if len(failures) > _SHOWN_FAILURES:
        print(f"{PROG}: ... and {len(failures) - _SHOWN_FAILURES} more (see the report)", file=sys.stderr)
    if failures:
        print(f"{PROG}: failed segments are scored as empty translations; rerun the same command to retry them",
              file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


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
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="first N segments of each test set")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the journals, report and plots")
    p.add_argument("--comet-model", default=None, metavar="NAME_OR_PATH",
                   help="COMET model (local checkpoint, or Hub name where a network exists); "
                   "without it COMET is skipped")
    add_model_options(p)
    add_lexicon_options(p)
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help="segments decoded together by strategies that batch (direct, cot; "
                   f"default {DEFAULT_BATCH_SIZE})")
    p.set_defaults(handler=_run)
