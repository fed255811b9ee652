"""``marco-translate batch``: formats, failures, dedup, glossary, and resuming after a real SIGKILL.

Runs go through ``main([...])`` in-process (the small model loads once), except where the process
itself is the subject: exit codes, SIGKILL and Ctrl-C. Translation quality is irrelevant here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from translator.batch import main
from translator.batch_formats import FormatOptions, one_line, read_document
from translator.batch_glossary import Glossary
from translator.batch_journal import Journal, RunSettings, code_version
from translator.batch_run import NO_ANSWER
from translator.errors import InputError
from translator.prompt import GlossaryEntry
from translator.strategies import chunk_size
from translator.strategies.greedy import Direct

REPO = Path(__file__).resolve().parents[1]
MODEL = ["--model", "smollm2-135m", "--dtype", "fp32", "--strategy", "direct", "--max-new-tokens", "4"]
SOURCES = ["你好", "今天天气很好", "我爱你", "这双鞋给人一种踩屎感。", "他又把我鸽了。", "绝绝子",
           "yyds", "真的会谢", "我太难了", "躺平", "内卷", "打工人"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Other jobs share this machine's cores; torch's default of a thread per core then mostly waits
    (one thread ran the small model ~7x faster than two under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def batch(*args: str) -> int:
    return main([*map(str, args), *MODEL, "--quiet"])


def trace_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]  # must survive splitlines


def run_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # SIGINT restored: a test run started in the background by a shell inherits SIGINT ignored, and Python
    # then installs no Ctrl-C handler in the child, so the Ctrl-C test would see the run go on to its end.
    return subprocess.Popen([sys.executable, "-m", "translator", "batch", *map(str, args), *MODEL], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture
def spy(monkeypatch) -> list[list]:
    """Every list of requests the direct strategy is asked to decode."""
    calls: list[list] = []
    real = Direct.translate

    def translate(self, requests, hooks=None):
        calls.append(list(requests))
        return real(self, requests, hooks)

    monkeypatch.setattr(Direct, "translate", translate)
    return calls


# --- formats --------------------------------------------------------------------------------------------


def test_text_keeps_order_blank_lines_and_odd_unicode(tmp_path: Path) -> None:
    lines = ["你好", "", "👋🏽 早上好 🎉", "  ", "مرحبا بالعالم", "e\u0301te\u0301 cafe\u0301", "x" * 2500,
             "第一句\u2028第二句"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out, trace = tmp_path / "out.txt", tmp_path / "trace.jsonl"
    assert batch(src, "-o", out, "--trace", trace) == 1  # the 2500-character line failed
    got = out.read_text(encoding="utf-8").split("\n")
    assert got[-1] == "" and len(got) - 1 == len(lines)  # one output line per input line, U+2028 kept inside
    records = trace_of(trace)
    assert [r["index"] for r in records] == list(range(len(lines)))
    assert [r["source"] for r in records] == lines
    assert [r["status"] for r in records] == ["ok", "skipped", "ok", "skipped", "ok", "ok", "failed", "ok"]
    assert got[1] == got[3] == got[6] == ""
    assert "2500 characters" in records[6]["error"]
    for record, line in zip(records, got):
        if record["status"] == "ok":
            assert one_line(record["translation"]) == line
            assert record["result"]["tokens_generated"] >= 1 and record["result"]["wall_time_s"] > 0
    assert not (tmp_path / "out.txt.partial.jsonl").exists()


def test_jsonl_from_stdin_to_stdout_carries_fields(tmp_path: Path, monkeypatch, capsys) -> None:
    rows = [{"id": 1, "text": "我爱你", "meta": {"tags": ["a"]}}, None, {"text": "", "id": 2},
            {"id": 3, "text": "躺平", "en": "stale"}]
    data = "\n".join(json.dumps(r, ensure_ascii=False) if r else "" for r in rows) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf" + data.encode())))
    assert batch("-", "--format", "jsonl", "--field", "text", "--output-field", "en") == 0
    out = capsys.readouterr().out.split("\n")
    assert out[1] == "" and out[-1] == "" and len(out) == 5
    first, blank, last = json.loads(out[0]), json.loads(out[2]), json.loads(out[3])
    assert list(first) == ["id", "text", "meta", "en"] and first["meta"] == {"tags": ["a"]} and first["en"]
    assert blank == {"text": "", "id": 2, "en": ""}
    assert list(last) == ["id", "text", "en"] and last["en"] != "stale"


@pytest.mark.parametrize("kind", ["tsv", "csv"])
def test_tables_add_a_column(tmp_path: Path, kind: str) -> None:
    header, rows = ["id", "src", "note"], [["1", "你好", 'says "hi", twice'], [], ["2", "谢谢"]]
    src = tmp_path / f"in.{kind}"
    if kind == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        src.write_text(buffer.getvalue(), encoding="utf-8")
    else:
        src.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    out = tmp_path / f"out.{kind}"
    assert batch(src, "-o", out) == 0
    text = out.read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(text), delimiter="," if kind == "csv" else "\t"))
    assert table[0] == [*header, "translation"] and table[2] == []
    assert table[1][:3] == rows[0] and table[1][3]
    assert table[3][:3] == ["2", "谢谢", ""] and table[3][3]


def test_reading_checks_without_a_model() -> None:
    opts = FormatOptions(format="text")
    doc = read_document(b"\xef\xbb\xbfa\r\nb\xe2\x80\xa8c\n\nd", "x", opts)
    assert [s.text for s in doc.segments] == ["a", "b\u2028c", "", "d"]
    assert read_document("é\n".encode("latin-1"), "x", FormatOptions(encoding="latin-1")).segments[0].text == "é"
    with pytest.raises(InputError, match=r"line 2 is not valid UTF-8 \(byte 0xe9 at column 1\)"):
        read_document("a\né\n".encode("latin-1"), "x", opts)
    with pytest.raises(InputError, match="UTF-16"):
        read_document("a\n".encode("utf-16"), "x", opts)
    with pytest.raises(InputError, match="line 2 is an array"):
        read_document(b'{"src": "a"}\n[1]\n', "x", FormatOptions(format="jsonl"))
    with pytest.raises(InputError, match="line 1: field 'src' is null"):
        read_document(b'{"src": null}\n', "x", FormatOptions(format="jsonl"))
    with pytest.raises(InputError, match="line 3 has 4 cells but the header has 2"):
        read_document(b"id\tsrc\n1\ta\n2\tb\tc\td\n", "x", FormatOptions(format="tsv"))


# --- failures, bad inputs, exit codes ------------------------------------------------------------------


def test_a_model_error_or_no_answer_fails_one_segment_and_the_run_goes_on(tmp_path: Path, monkeypatch) -> None:
    real = Direct.translate

    def translate(self, requests, hooks=None):
        if any("鸽" in r.text for r in requests):
            raise RuntimeError("boom\nsecond line")
        results = real(self, requests, hooks)
        for result in results:
            if result.source == "躺平":
                result.translation = ""  # as when the token budget runs out before an answer
        return results

    monkeypatch.setattr(Direct, "translate", translate)
    src, out, trace = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "t.jsonl"
    src.write_text("他又把我鸽了。\n你好\n躺平\n", encoding="utf-8")
    assert batch(src, "-o", out, "--trace", trace, "--failed-marker", "[FAILED]") == 1
    first, second, third = out.read_text(encoding="utf-8").splitlines()
    assert first == third == "[FAILED]" and second and second != "[FAILED]"
    records = trace_of(trace)
    assert records[0]["error"] == "model error: RuntimeError: boom second line" and records[0]["result"] is None
    assert records[2]["error"] == NO_ANSWER and records[2]["result"]["translation"] == ""


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_INPUTS = {
    "binary": (lambda d: [_write(d / "in.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")], [],
               "looks like a binary file (NUL byte on line 3)"),
    "missing column": (lambda d: [_write(d / "in.tsv", b"id\ttext\n1\t\xe4\xbd\xa0\n")], [],
                       "has no column 'src' (its columns: 'id', 'text')"),
    "malformed json": (lambda d: [_write(d / "in.jsonl", b'{"src": "a"}\n{"src": "b"\n')], [],
                       "line 2 is not valid JSON"),
    "unreadable path": (lambda d: [d / "nope.txt"], [], "cannot read"),
    "output folder missing": (lambda d: [_write(d / "in.txt", b"a\n")], ["-o", "{d}/no/such/out.txt"],
                              "folder {d}/no/such does not exist"),
    "bad glossary": (lambda d: [_write(d / "in.txt", b"a\n"), _write(d / "g.tsv", b"a\tb\nonly one cell\n")],
                     ["--glossary", "{d}/g.tsv"], "line 2 is not 'source term<TAB>target term'"),
    "same languages": (lambda d: [_write(d / "in.txt", b"a\n")], ["--tgt", "Chinese"], "both Chinese"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_inputs_are_usage_errors_that_leave_nothing(tmp_path: Path, capsys, case: str) -> None:
    make, extra, message = BAD_INPUTS[case]
    inputs = make(tmp_path)
    extra = [a.format(d=tmp_path) for a in extra] or ["-o", str(tmp_path / "out.txt")]
    assert batch(inputs[0], *extra) == 2
    err = capsys.readouterr().err
    assert message.format(d=tmp_path) in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == sorted(p for p in inputs if p.exists())


def test_a_journal_from_other_settings_is_refused(tmp_path: Path, capsys) -> None:
    src, out = _write(tmp_path / "in.txt", "你好\n".encode()), tmp_path / "out.txt"
    journal = Journal(tmp_path / "out.txt.partial.jsonl", RunSettings({"strategy": "cot"}, 8))
    journal.append([{"index": 0, "key": "k", "record": {}}])
    journal.close()
    assert batch(src, "-o", out) == 2
    err = capsys.readouterr().err
    assert "is from a run with other settings (" in err and "strategy 'cot' -> 'direct'" in err
    assert not out.exists()


def test_exit_codes_of_the_real_process(tmp_path: Path) -> None:
    binary = _write(tmp_path / "in.bin", b"\x00\x01")
    proc = run_cli(binary)
    assert proc.wait(timeout=120) == 2 and "binary" in proc.stderr.read()


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.txt", "你好\n我爱你\n".encode())
    proc = run_cli(src, "--journal", tmp_path / "run.partial.jsonl")
    proc.stdout.close()  # as `| head -0` would: the reader is gone before the output is written
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141 and "Traceback" not in err and "Broken pipe" not in err, err


def test_numeric_options_below_one_are_refused(tmp_path: Path, capsys) -> None:
    src, out = _write(tmp_path / "in.txt", "你好\n".encode()), tmp_path / "out.txt"
    with pytest.raises(SystemExit):  # argparse's own refusal, exit code 2
        main([str(src), "-o", str(out), *MODEL, "--batch-size", "0", "--quiet"])
    assert "must be at least 1" in capsys.readouterr().err
    assert main([str(src), "-o", str(out), *MODEL, "--max-new-tokens", "0", "--quiet"]) == 2
    assert "max_new_tokens must be at least 1" in capsys.readouterr().err
    assert not out.exists()


# --- dedup, cache, glossary ----------------------------------------------------------------------------


def test_repeated_lines_are_decoded_once_and_cached_across_runs(tmp_path: Path, spy, capsys) -> None:
    src, out, trace, cache = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "t.jsonl", tmp_path / "cache"
    src.write_text("你好\n谢谢\n你好\n 你好 \n", encoding="utf-8")
    assert main([str(src), "-o", str(out), "--trace", str(trace), "--cache", str(cache), "--progress", *MODEL]) == 0
    assert [r.text for call in spy for r in call] == ["你好", "谢谢"]
    records = trace_of(trace)
    assert [r["reused"] for r in records] == [None, None, "duplicate of line 1", "duplicate of line 1"]
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == lines[2] == lines[3]
    err = capsys.readouterr().err
    assert "tok/s" in err and "4 done, 0 failed, 0 skipped (blank); 0 from the journal, 2 reused" in err
    assert len(list(cache.glob("*.json"))) == 2

    spy.clear()
    assert batch(src, "-o", out, "--trace", trace, "--cache", cache) == 0
    assert spy == []  # everything came from the cache
    assert [r["reused"] for r in trace_of(trace)] == ["cache", "cache", "duplicate of line 1", "duplicate of line 1"]
    assert out.read_text(encoding="utf-8").splitlines() == lines


def test_glossary_entries_go_into_the_prompt_and_the_trace(tmp_path: Path, spy) -> None:
    src, out, trace = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "t.jsonl"
    src.write_text("这双鞋有踩屎感\n普通的一句话\n", encoding="utf-8")
    glossary = _write(tmp_path / "g.tsv", "# term\ttranslation\n踩屎感\tsoft and cushy\ncat\tchat\n".encode())
    assert batch(src, "-o", out, "--trace", trace, "--glossary", glossary) == 0
    assert [r.glossary for call in spy for r in call] == [(GlossaryEntry("踩屎感", "soft and cushy"),), ()]
    records = trace_of(trace)
    assert records[0]["glossary"] == [{"source": "踩屎感", "target": "soft and cushy"}]
    assert records[1]["glossary"] == []


def test_glossary_terms_match_whole_latin_words_and_any_cjk() -> None:
    g = Glossary.of([GlossaryEntry("cat", "chat"), GlossaryEntry("鸽", "stand up")])
    assert g.matching("The CAT sat") == (GlossaryEntry("cat", "chat"),)
    assert g.matching("category") == ()
    assert g.matching("他又把我鸽了") == (GlossaryEntry("鸽", "stand up"),)


# --- resume ----------------------------------------------------------------------------------------------


def test_a_torn_last_journal_line_is_dropped_and_appends_follow_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, RunSettings({"a": 1}, 1))
    journal.append([{"index": 0, "key": "k0", "record": {}}, {"index": 1, "key": "k1", "record": {}}])
    journal.close()
    with open(path, "ab") as f:
        f.write(b'{"index": 2, "key": "k2", "rec')
    again = Journal(path, RunSettings({"a": 1}, 1))
    assert sorted(again.load()) == [0, 1]
    again.append([{"index": 3, "key": "k3", "record": {}}])
    again.close()
    assert sorted(Journal(path, RunSettings({"a": 1}, 1)).load()) == [0, 1, 3]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def _interrupted_run(tmp_path: Path, spy: list[list], monkeypatch, lines: str, size: int) -> tuple[Path, Path, Path]:
    """A batch run of ``lines`` stopped by Ctrl-C as the direct strategy starts its second batch, the spied
    decoder put back; returns the source, the output and the journal the run left."""
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text(lines, encoding="utf-8")
    decode = Direct.translate  # the spy

    def interrupt_the_second_batch(self, requests, hooks=None):
        if spy:
            raise KeyboardInterrupt
        return decode(self, requests, hooks)

    monkeypatch.setattr(Direct, "translate", interrupt_the_second_batch)
    assert batch(src, "-o", out, "--batch-size", str(size)) == 130
    monkeypatch.setattr(Direct, "translate", decode)
    return src, out, tmp_path / "out.txt.partial.jsonl"


def test_a_journal_resumes_only_at_the_batch_size_it_was_decoded_in(tmp_path: Path, spy, monkeypatch,
                                                                    capsys) -> None:
    """Batched bf16 decoding can pick other tokens at another batch size, so mixing sizes would not give
    the output an uninterrupted run gives; the size only matters to strategies that batch segments."""
    src, out, journal = _interrupted_run(tmp_path, spy, monkeypatch, "你好\n谢谢\n再见\n", 2)
    saved = journal.read_bytes()
    assert json.loads(saved.splitlines()[0])["chunk_size"] == 2 and _entries(journal) == 2

    assert batch(src, "-o", out, "--batch-size", "3") == 2
    assert "was decoded in batches of 2" in capsys.readouterr().err
    assert journal.read_bytes() == saved and not out.exists()

    assert batch(src, "-o", out, "--batch-size", "2") == 0
    assert [r.text for r in spy[1]] == ["再见"] and len(out.read_text(encoding="utf-8").splitlines()) == 3
    assert (chunk_size("direct", 16), chunk_size("cot", 16), chunk_size("mcts", 16)) == (16, 16, 1)


def test_a_journal_written_by_other_code_is_refused_naming_both_versions(tmp_path: Path, spy, monkeypatch,
                                                                         capsys) -> None:
    src, out, journal = _interrupted_run(tmp_path, spy, monkeypatch, "你好\n谢谢\n", 1)
    header = json.loads(journal.read_bytes().splitlines()[0])
    assert header["code"] == code_version() and header["code"].startswith(header["code"].split("+")[0] + "+src.")
    saved = journal.read_bytes().replace(code_version().encode(), b"0.0.1+src.000000000000")
    journal.write_bytes(saved)
    capsys.readouterr()
    assert batch(src, "-o", out, "--batch-size", "1") == 2
    err = capsys.readouterr().err
    assert f"written by other code (code '0.0.1+src.000000000000' -> '{code_version()}')" in err
    assert err.count("\n") == 1 and journal.read_bytes() == saved and not out.exists()

    old = {"journal": "marco-translate batch journal", "version": 1, "settings": header["settings"]}
    journal.write_text(json.dumps(old) + "\n", encoding="utf-8")  # the first format: no code version
    assert batch(src, "-o", out, "--batch-size", "1") == 2
    assert "written by an older marco-translate (journal format 1" in capsys.readouterr().err


def test_the_code_version_follows_the_translator_sources(tmp_path: Path, monkeypatch) -> None:
    import shutil

    import translator
    from translator import batch_journal

    real = code_version()
    copy = tmp_path / "translator"
    shutil.copytree(Path(translator.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(batch_journal, "__file__", str(copy / "batch_journal.py"))
    batch_journal.code_version.cache_clear()
    try:
        same = batch_journal.code_version()
        (copy / "prompt.py").write_text((copy / "prompt.py").read_text() + "\n# edited\n")
        batch_journal.code_version.cache_clear()
        edited = batch_journal.code_version()
    finally:
        batch_journal.code_version.cache_clear()
    assert same == real and edited != same and edited.split("+")[0] == same.split("+")[0]


def _entries(journal: Path) -> int:
    try:
        return max(0, journal.read_bytes().count(b"\n") - 1)  # minus the header
    except FileNotFoundError:
        return 0


def _wait_for_entries(proc: subprocess.Popen, journal: Path, n: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _entries(journal) < n:
        assert proc.poll() is None, f"the run ended early: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.1)


def test_sigkill_then_ctrl_c_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    # One segment fails in every run alike; the sources four times over (each copy distinct, so decoded, not
    # reused), so that on a fast machine the resumed run is still busy when Ctrl-C comes (CI's once was not).
    lines = [*SOURCES[:6], "x" * 2100, *SOURCES[6:], *[f"{s} ({i})" for i, s in enumerate(SOURCES * 3)]]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    clean_out, clean_trace = tmp_path / "clean.txt", tmp_path / "clean.jsonl"
    assert batch(src, "-o", clean_out, "--trace", clean_trace, "--batch-size", "1") == 1

    out, trace = tmp_path / "out.txt", tmp_path / "trace.jsonl"
    journal = tmp_path / "out.txt.partial.jsonl"
    args = (src, "-o", out, "--trace", trace, "--batch-size", "1")
    proc = run_cli(*args)
    _wait_for_entries(proc, journal, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not out.exists() and not trace.exists()
    killed_at = _entries(journal)
    with open(journal, "ab") as f:  # as if the power failed mid-append
        f.write(b'{"index": 11, "key": "0123')

    proc = run_cli(*args)
    _wait_for_entries(proc, journal, killed_at + 1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "rerun the same command to resume" in proc.stderr.read()
    assert not out.exists()

    proc = run_cli(*args)
    assert proc.wait(timeout=300) == 1  # the long line
    summary = re.search(r"(\d+)/(\d+) segments: (\d+) done, .*; (\d+) from the journal", proc.stderr.read())
    assert summary and int(summary[1]) == int(summary[2]) == len(lines) and int(summary[3]) == len(lines) - 1
    assert int(summary[4]) >= killed_at + 1  # what the SIGKILL and the Ctrl-C left in the journal
    assert out.read_text(encoding="utf-8") == clean_out.read_text(encoding="utf-8")
    records = trace_of(trace)
    assert [r["index"] for r in records] == list(range(len(lines)))
    assert [r["translation"] for r in records] == [r["translation"] for r in trace_of(clean_trace)]
    assert not journal.exists() and not list(tmp_path.glob(".*.tmp"))

