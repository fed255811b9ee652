"""``marco-eval bench``: a tiny real run on the small model (report contents, figures recomputed from the
saved JSONL, resume, torn last line), and the refusals that must happen before any model loads.

The real runs are subprocesses with one torch thread: on a shared CPU, torch's worker threads spin
against other jobs and slow a 135M model down tenfold; one thread is plenty for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from statistics import fmean

import pytest

from eval import bench
from eval.bench import parse_strategies
from eval.cli import main
from eval.data import load_testset
from eval.scoring import score
from translator.errors import InputError
from translator.result import TranslationResult

REPO = Path(__file__).resolve().parents[1]
DATA = "slang:zh-en"
STRATEGIES = ("direct:max_new_tokens=24,cot:max_new_tokens=24,"
              "mcts:rollouts=2,children=2,max_new_tokens=24,granularity=mini-32")
LABELS = ["direct:max_new_tokens=24", "cot:max_new_tokens=24",
          "mcts:rollouts=2,children=2,max_new_tokens=24,granularity=mini-32"]
SCORED = ("bleu", "chrf", "semsim")


def run_bench(out: Path, *extra: str, strategies: str = STRATEGIES) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = ["bench", "--data", DATA, "--limit", "3", "--strategies", strategies, "--model", "smollm2-135m",
            "--out", str(out), *extra]
    return subprocess.run([sys.executable, "-m", "eval", *args], capture_output=True, text=True, cwd=REPO, env=env)


def journal(path: Path) -> tuple[dict, list[dict]]:
    header, *entries = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return header, entries


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    result = run_bench(out, "--dtype", "fp32")
    assert result.returncode == 0, result.stderr
    return out


def test_report_has_a_row_per_strategy_with_bootstrap(done: Path) -> None:
    assert (done / "report.md").is_file() and (done / "slang_zh-en" / "plot.png").stat().st_size > 10_000
    report = json.loads((done / "report.json").read_text(encoding="utf-8"))
    assert report["model"] == "smollm2-135m" and report["dtype"] == "fp32" and report["logprobs_sources"] == ["raw"]
    assert report["date"] and f"--strategies {STRATEGIES}" in report["command"] and report["bootstrap_samples"] == 1000
    (dataset,) = report["datasets"]
    assert dataset["data"] == DATA and dataset["n_segments"] == 3 and dataset["plot"] == "slang_zh-en/plot.png"
    rows = dataset["strategies"]
    assert [r["label"] for r in rows] == LABELS and [r["new_segments"] for r in rows] == [3, 3, 3]
    for i, row in enumerate(rows):
        assert "not requested" in row["metrics"]["comet"]["skipped"]
        for name in SCORED:
            boot = row["bootstrap"][name]
            assert boot["ci_low"] <= boot["mean"] <= boot["ci_high"] and boot["ci"] >= 0
            assert (boot["p_value"] is None) == (i == 0) and (boot["delta"] is None) == (i == 0)
    markdown = (done / "report.md").read_text(encoding="utf-8")
    for text in ("COMET: not requested", "Log-probs source: raw", "Paired bootstrap against `direct:max_new_tokens=24`",
                 "](slang_zh-en/plot.png)", f"`{DATA}` (3 segments)", *(f"| `{label}` |" for label in LABELS)):
        assert text in markdown


def test_figures_equal_a_recomputation_from_the_jsonl(done: Path) -> None:
    testset = load_testset(DATA, limit=3)
    report = json.loads((done / "report.json").read_text(encoding="utf-8"))
    for row in report["datasets"][0]["strategies"]:
        header, entries = journal(done / row["file"])
        assert header["settings"]["label"] == row["label"] and header["settings"]["options"] == row["params"]
        results = [TranslationResult.from_dict(e["result"]) for e in sorted(entries, key=lambda e: e["index"])]
        expected = score([r.translation for r in results], testset.references(), testset.sources, "en", SCORED)
        for name in SCORED:  # sacrebleu's exactly; the embedding model's up to float32 noise across thread counts
            assert row["metrics"][name]["score"] == pytest.approx(expected[name].score, rel=1e-6, abs=1e-12)
            assert row["metrics"][name]["signature"] == expected[name].signature
        assert row["tokens_per_segment"] == pytest.approx(fmean(r.tokens_generated for r in results))
        assert row["seconds_per_segment"] == pytest.approx(fmean(r.wall_time_s for r in results))
        assert row["format_ok_rate"] == pytest.approx(fmean(r.format_ok for r in results))
    assert results[0].tree is not None and results[0].steps  # the mcts trace is kept whole


def test_rerun_translates_nothing_and_a_torn_line_is_redone(done: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    shutil.copytree(done, out)
    files = sorted((out / "slang_zh-en").glob("*.jsonl"))
    before = {f: f.read_bytes() for f in files}

    again = run_bench(out, "--dtype", "fp32")
    assert again.returncode == 0, again.stderr
    assert {f: f.read_bytes() for f in files} == before
    assert again.stderr.count("(0 new)") == 3 and "%|" not in again.stderr  # no progress bar: nothing decoded
    rows = json.loads((out / "report.json").read_text(encoding="utf-8"))["datasets"][0]["strategies"]
    assert [r["new_segments"] for r in rows] == [0, 0, 0]

    torn = out / "slang_zh-en" / "direct_max_new_tokens=24.jsonl"
    data = before[torn]
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    torn.write_bytes(data[: last_start + (len(data) - last_start) // 2])  # a write cut off mid-line
    redo = run_bench(out, "--dtype", "fp32")
    assert redo.returncode == 0, redo.stderr
    rows = json.loads((out / "report.json").read_text(encoding="utf-8"))["datasets"][0]["strategies"]
    assert [r["new_segments"] for r in rows] == [1, 0, 0]
    after = torn.read_bytes()
    assert after.startswith(data[:last_start]) and after.count(b"\n") == data.count(b"\n")
    assert json.loads(after[last_start:])["index"] == 2
    assert all(f.read_bytes() == before[f] for f in files if f != torn)


def test_other_settings_or_batch_size_for_a_label_are_refused(done: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    shutil.copytree(done, out)
    result = run_bench(out, "--dtype", "bf16", strategies="direct:max_new_tokens=24")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "other settings" in result.stderr and "dtype 'fp32' -> 'bf16'" in result.stderr
    resized = run_bench(out, "--dtype", "fp32", "--batch-size", "3", strategies="direct:max_new_tokens=24")
    assert resized.returncode == 2 and "decoded in batches of" in resized.stderr


@pytest.mark.parametrize(
    ("strategies", "message"),
    [
        ("mcts:rollouts=abc", "rollouts must be an int, not 'abc'"),
        ("direct,mcts:rollouts=2,beam_width=4", "beam_width do not apply to strategy 'mcts'"),
        ("direct,beam", "unknown strategy 'beam'"),
        ("mcts:granularity=sentence", "granularity must be one of"),
        ("mcts:reflection=maybe", "reflection must be true, false, 1 or 0"),
        ("rollouts=2,mcts", "comes before any strategy"),
        ("direct,direct", "same strategy spec twice"),
    ],
)
def test_bad_strategy_specs_exit_2_before_anything_loads(strategies, message, tmp_path, capsys) -> None:
    out = tmp_path / "never"
    assert main(["bench", "--data", DATA, "--strategies", strategies, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("marco-eval: error: ") and message in err
    assert not out.exists()


def test_options_take_their_config_types() -> None:
    (direct, mcts) = parse_strategies("direct, mcts:rollouts=8,granularity=mini-64,reflection=1,max_seconds=2.5")
    assert (direct.label, direct.options) == ("direct", {})
    assert mcts.label == "mcts:rollouts=8,granularity=mini-64,reflection=1,max_seconds=2.5"
    assert mcts.options == {"rollouts": 8, "granularity": "mini-64", "reflection": True, "max_seconds": 2.5}
    assert type(mcts.options["max_seconds"]) is float and mcts.params()["children"] == 3
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_strategies("mcts:=3")


class _FakeStrategy:
    """One segment per call, instantly; "Ctrl-C'd" during call number ``interrupt_on``."""

    batches_segments = False

    def __init__(self, interrupt_on: int | None) -> None:
        self.interrupt_on = interrupt_on
        self.calls = 0

    def translate(self, requests, hooks=None):
        self.calls += 1
        if self.calls == self.interrupt_on:
            raise KeyboardInterrupt
        return [TranslationResult(source=r.text, src_lang="zh", tgt_lang="en", translation="It is fine.",
                                  thought="", raw_output="It is fine.", strategy="mcts", model="fake", params={},
                                  tokens_generated=5, wall_time_s=0.1, format_ok=True, confidence=None)
                for r in requests]


def test_ctrl_c_keeps_finished_segments_and_a_rerun_finishes(tmp_path, monkeypatch, capsys) -> None:
    interrupt_on: list[int | None] = [2]

    class FakeTranslator:
        def __init__(self, model, **_):
            pass

        def strategy(self, name, **options):
            return _FakeStrategy(interrupt_on[0])

    monkeypatch.setattr(bench, "Translator", FakeTranslator)
    args = ["bench", "--data", DATA, "--limit", "3", "--strategies", "mcts:rollouts=2", "--model", "fake",
            "--out", str(tmp_path)]
    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err and not (tmp_path / "report.md").exists()
    _, entries = journal(tmp_path / "slang_zh-en" / "mcts_rollouts=2.jsonl")
    assert [e["index"] for e in entries] == [0]

    interrupt_on[0] = None
    assert main(args) == 0
    assert "3 segments (2 new)" in capsys.readouterr().err
    assert "No paired bootstrap: it needs at least two strategies." in (tmp_path / "report.md").read_text("utf-8")
