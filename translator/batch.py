"""``marco-translate batch``: translate a file of segments, resumably.

    marco-translate batch INPUT [-o OUTPUT] [--trace TRACE.jsonl] [--glossary TERMS.tsv] [--cache DIR] ...

INPUT is plain text (one segment a line), JSONL (``--field``, default ``src``), TSV or CSV (``--field``
names the column), or ``-`` for stdin; the output is the same format with the translation added, always
UTF-8. Every input record gives one output record, in order: a blank segment stays blank and a failed one
is empty (or ``--failed-marker``), with its reason on stderr and in the trace.

Resuming: decoded segments go to an append-only, fsynced journal (``OUTPUT.partial.jsonl``, or
``--journal``); rerunning the same command after Ctrl-C, kill -9 or power loss skips them and produces
the output an uninterrupted run would have (segments that failed with a model error are tried again). The
output and the trace are written atomically once every segment is done, and then the journal is deleted.
Output to stdout is resumable only with an explicit ``--journal``. Identical segments are decoded once;
``--cache DIR`` keeps results across runs.

Exit codes: 0 every segment translated (blank ones skipped), 1 some segments failed (or the model could
not be loaded), 2 usage error (nothing written), 130 interrupted (finished segments saved).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from translator.api import Translator, make_request
from translator.batch_cache import DiskCache
from translator.durable_files import write_atomic
from translator.batch_formats import FORMATS, Document, FormatOptions, Translated, json_line, read_document
from translator.batch_glossary import Glossary, load_glossary
from translator.batch_journal import Journal, run_settings
from translator.batch_run import BatchRunner, RunStats, SegmentRecord, progress_bar
from translator.errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, InputError, TranslatorError,
                               print_error, quiet_broken_pipe)
from translator.options import (add_common_options, add_strategy_options, build_translator, lexicon_from_args,
                                lexicon_settings, model_settings, positive_int, strategy_options)
from translator.strategies import make_config

PROG = "marco-translate batch"
_SHOWN_FAILURES = 5  # on stderr; the trace has them all

logger = logging.getLogger("translator.batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Translate a file, one segment per line or record, resumably.",
        epilog="Exit codes: 0 all segments translated, 1 some failed, 2 usage error, 130 interrupted. "
               "Rerun the same command after an interruption to resume.")
    parser.add_argument("input", help="input file, or - for stdin")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="output file, written when every segment is done (default: stdout)")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS),
                        help="input (and output) format; auto: from the suffix (.jsonl, .tsv, .csv), else text")
    parser.add_argument("--field", "--column", dest="field", default="src", metavar="NAME",
                        help="JSONL field or TSV/CSV column holding the source (default: src)")
    parser.add_argument("--output-field", default="translation", metavar="NAME",
                        help="JSONL field or TSV/CSV column for the translation (default: translation)")
    parser.add_argument("--encoding", default=None,
                        help="the input's encoding, when it is not UTF-8 (e.g. gb18030, latin-1)")
    parser.add_argument("--failed-marker", default="", metavar="TEXT",
                        help="output text for a failed segment in text/TSV/CSV (default: empty)")
    parser.add_argument("--trace", default=None, metavar="FILE.jsonl",
                        help="write the full result of every segment (thought, path, scores, timings)")
    parser.add_argument("--journal", default=None, metavar="FILE",
                        help="resume journal (default: OUTPUT.partial.jsonl; needed to resume when writing to stdout)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="keep every translation in DIR and reuse it in later runs with the same settings")
    parser.add_argument("--glossary", default=None, metavar="FILE.tsv",
                        help="'source term<TAB>target term' lines, put into the prompt of segments that contain a term")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                        help="segments decoded together by direct and cot (default: 8; mcts: always 1); "
                             "a run resumes only at the size it began with")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: only on a terminal)")
    add_common_options(parser)
    add_strategy_options(parser)
    return parser


_LOADED: dict[tuple, Translator] = {}


def load_translator(args: argparse.Namespace) -> Translator:
    """One load per process and model options, so repeated ``main()`` calls (tests, notebooks) pay for it once."""
    key = tuple(getattr(args, name, None) for name in _MODEL_OPTIONS)
    if key not in _LOADED:
        if len(_LOADED) >= 2:
            _LOADED.pop(next(iter(_LOADED)))
        # The runner puts the dictionary notes into each request; the translator needs no lexicon of its own.
        _LOADED[key] = build_translator(args, lexicon=False)
    return _LOADED[key]


_MODEL_OPTIONS = ("model", "backend", "device", "dtype", "trust_remote_code", "served_model", "n_ctx", "threads")


@dataclass
class Job:
    """A run with every input read and checked, and nothing written yet (bar an empty --cache folder)."""

    document: Document
    runner: BatchRunner
    finished: dict[int, dict]  # the journal's entries by segment index
    output: Path | None  # None: stdout
    trace: Path | None
    journal: Journal | None


def _read_input(spec: str) -> tuple[bytes, str]:
    if spec == "-":
        if sys.stdin is None:
            raise InputError("no stdin to read")
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        return Path(spec).read_bytes(), spec
    except OSError as exc:
        raise InputError(f"cannot read {spec}: {exc.strerror or exc}") from None


def _check_writable(path: Path, what: str) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {what} {path}: folder {folder} does not exist")
    if path.is_dir():
        raise InputError(f"cannot write {what} {path}: it is a folder")
    if not os.access(folder, os.W_OK):
        raise InputError(f"cannot write {what} {path}: folder {folder} is not writable")


def _paths(args: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    """Output, trace and journal, checked to be writable and distinct from each other and the input."""
    output = Path(args.output) if args.output not in (None, "-") else None
    trace = Path(args.trace) if args.trace else None
    journal = Path(args.journal) if args.journal else (Path(f"{output}.partial.jsonl") if output else None)
    seen = {Path(args.input).resolve(): "input"} if args.input != "-" else {}
    for path, what in ((output, "output"), (trace, "trace"), (journal, "journal")):
        if path is None:
            continue
        _check_writable(path, what)
        if path.resolve() in seen:
            raise InputError(f"the {what} file {path} is also the {seen[path.resolve()]}: give another path")
        seen[path.resolve()] = what
    return output, trace, journal


def prepare(args: argparse.Namespace, on_progress: Callable[[RunStats], None] | None = None) -> Job:
    """Check everything a user can get wrong before the model loads or any file is written."""
    probe = make_request("probe", args.src, args.tgt)  # refuses unknown or identical languages
    options = strategy_options(args)
    config = make_config(args.strategy, options)  # refuses bad options now, not after the model loads
    output, trace, journal_path = _paths(args)
    data, name = _read_input(args.input)
    document = read_document(data, name, FormatOptions(args.format, args.field, args.output_field, args.encoding))
    glossary = load_glossary(Path(args.glossary)) if args.glossary else Glossary()
    lexicon = lexicon_from_args(args)
    from translator.registry import DEFAULT_MODEL  # light; kept after the input checks all the same

    settings = run_settings(model_settings(args, DEFAULT_MODEL), args.strategy, dataclasses.asdict(config),
                            probe.src.code, probe.tgt.code, args.batch_size,
                            **lexicon_settings(args, probe.src.code, probe.tgt.code))
    journal = Journal(journal_path, settings) if journal_path else None
    finished = journal.load() if journal else {}
    if journal is None:
        logger.info("output goes to stdout without --journal: an interrupted run will start over")

    def load_strategy():
        return load_translator(args).strategy(args.strategy, **options)

    runner = BatchRunner(
        load_strategy=load_strategy, settings=settings, src=probe.src, tgt=probe.tgt,
        glossary=glossary, lexicon=lexicon, journal=journal,
        cache=DiskCache(Path(args.cache)) if args.cache else None,
        on_progress=on_progress)
    return Job(document, runner, finished, output, trace, journal)


def _write_results(job: Job, records: list[SegmentRecord], failed_marker: str) -> None:
    outputs = [Translated(r.translation or "", r.error) for r in records]
    text = job.document.render(outputs, failed_marker).encode("utf-8")
    if job.trace is not None:
        write_atomic(job.trace, "".join(json_line(dataclasses.asdict(r)) + "\n" for r in records).encode("utf-8"))
    if job.output is not None:
        write_atomic(job.output, text)
    else:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
    if job.journal is not None:
        job.journal.remove()


def _summary(stats: RunStats, elapsed: float) -> str:
    return (f"{PROG}: {stats.finished}/{stats.total} segments: {stats.ok} done, {stats.failed} failed, "
            f"{stats.skipped} skipped (blank); {stats.resumed} from the journal, {stats.reused} reused; "
            f"{elapsed:.1f} s, {stats.tokens_per_second:.1f} tokens/s")


def _error(message: object) -> None:
    print_error(PROG, message)


@quiet_broken_pipe
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[2:] if argv is None else argv)  # as in `marco-translate batch ...`
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    started = time.perf_counter()
    report, close_bar = progress_bar(args.progress if args.progress is not None else
                                     (not args.quiet and sys.stderr.isatty()), "translating")
    job: Job | None = None
    try:
        job = prepare(args, report)
        records = job.runner.run(job.document.segments, job.finished)
        _write_results(job, records, args.failed_marker)
    except InputError as exc:
        close_bar()
        _error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        close_bar()
        if job is None:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        where = (f"saved in {job.journal.path}; rerun the same command to resume" if job.journal
                 else "not saved (give --journal to make a run to stdout resumable)")
        print(_summary(job.runner.stats, time.perf_counter() - started), file=sys.stderr)
        print(f"{PROG}: interrupted; {job.runner.stats.ok} finished segment(s) {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise  # the reader closed stdout: main's wrapper ends quietly
    except (TranslatorError, OSError) as exc:
        close_bar()
        _error(exc)
        return EXIT_FAILED
    finally:
        close_bar()
        if job is not None and job.journal is not None:
            job.journal.close()
    failures = [r for r in records if r.status == "failed"]
    for record in failures[:_SHOWN_FAILURES]:
        print(f"{PROG}: line {record.line} failed: {record.error}", file=sys.stderr)
    if len(failures) > _SHOWN_FAILURES:
        print(f"{PROG}: ... and {len(failures) - _SHOWN_FAILURES} more (see --trace)", file=sys.stderr)
    print(_summary(job.runner.stats, time.perf_counter() - started), file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK
