"""``marco-eval bench``: a tiny real run on the small model (report contents, figures recomputed from the
saved JSONL, resume, torn last line), and the refusals that must happen before any model loads.

The real runs are subprocesses with one torch thread: on a shared CPU, torch's worker threads spin
against other jobs and slow a 135M model down tenfold; one thread is plenty for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
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
from translator.selection import SELECT_RULES
from translator.strategies.mcts import MctsConfig

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
    # the mcts row, then what the other --select rules return from the same trees
    others = [rule for rule in SELECT_RULES if rule != MctsConfig().select]
    assert len(others) == 2
    assert [r["label"] for r in rows] == LABELS + [f"{LABELS[2]} -> select={rule}" for rule in others]
    assert [r["new_segments"] for r in rows] == [3, 3, 3, 0, 0]
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
        label, _, rule = row["label"].partition(" -> select=")
        assert header["settings"]["label"] == label
        decoded = {**row["params"], "select": MctsConfig().select} if rule else row["params"]  # the default rule
        assert header["settings"]["options"] == decoded
        results = [TranslationResult.from_dict(e["record"]["result"])
                   for e in sorted(entries, key=lambda e: e["index"])]
        if rule:  # scored on what that rule picks from the same trees
            picks = [r.stats["selections"][rule] for r in results]
            results = [replace(r, translation=t, answered=bool(t.strip())) for r, t in zip(results, picks)]
        expected = score([r.translation for r in results], testset.references(), testset.sources, "en", SCORED)
        for name in SCORED:  # sacrebleu's exactly; the embedding model's up to float32 noise across thread counts
            assert row["metrics"][name]["score"] == pytest.approx(expected[name].score, rel=1e-6, abs=1e-6)
            assert row["metrics"][name]["signature"] == expected[name].signature
        assert row["tokens_per_segment"] == pytest.approx(fmean(r.tokens_generated for r in results))
        assert row["seconds_per_segment"] == pytest.approx(fmean(r.wall_time_s for r in results))
        assert row["answered_rate"] == pytest.approx(fmean(r.answered for r in results))
        assert row["fallback_rate"] == pytest.approx(fmean("fallback" in r.stats for r in results))
        assert row["hinted_rate"] == pytest.approx(fmean(bool(r.hints) for r in results))
        assert row["untranslated_rate"] == pytest.approx(fmean(bool(re.search("[\u3000-\u9fff]", r.translation))
                                                               for r in results))  # zh->en: Chinese left
        if row["strategy"] == "direct":  # asked for no format: closure is not reported
            assert row["format_ok_rate"] is None
        else:
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
    assert [r["new_segments"] for r in rows] == [0, 0, 0, 0, 0]  # the two --select rule rows decode nothing

    torn = out / "slang_zh-en" / "direct_max_new_tokens=24.jsonl"
    data = before[torn]
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    torn.write_bytes(data[: last_start + (len(data) - last_start) // 2])  # a write cut off mid-line
    redo = run_bench(out, "--dtype", "fp32")
    assert redo.returncode == 0, redo.stderr
    rows = json.loads((out / "report.json").read_text(encoding="utf-8"))["datasets"][0]["strategies"]
    assert [r["new_segments"] for r in rows] == [1, 0, 0, 0, 0]
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
    assert type(mcts.options["max_seconds"]) is float and mcts.params()["children"] == MctsConfig().children
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_strategies("mcts:=3")


def test_a_spec_sets_its_own_lexicon_and_note_count(tmp_path, monkeypatch) -> None:
    (plain, one, off, cot) = parse_strategies("direct,direct:max_hints=1,direct:lexicon=off,cot:max_hints=0")
    assert (one.max_hints, one.options, off.lexicon, cot.max_hints) == (1, {}, False, 0)
    assert plain.max_hints is None and plain.lexicon is None
    for bad, message in (("direct:max_hints=-1", "whole number"), ("direct:max_hints=x", "whole number"),
                         ("direct:max_hints=1,max_hints=2", "given twice")):
        with pytest.raises(InputError, match=message):
            parse_strategies(bad)

    seen: list[list[int]] = []  # notes per request, one list per strategy made (one per spec, in order)

    class Recording(_FakeStrategy):
        def translate(self, requests, hooks=None):
            seen[-1].extend(len(r.hints) for r in requests)
            return super().translate(requests, hooks)

    def make():
        seen.append([])
        return Recording(None)

    fake_translator(monkeypatch, make)
    assert main(["bench", "--data", DATA, "--limit", "10", "--strategies", "direct,direct:max_hints=1,direct:lexicon=off",
                 "--lexicon", "on", "--max-hints", "4", "--model", "fake", "--out", str(tmp_path)]) == 0
    four, one, none = seen
    assert max(four) > 1 and all(n <= 4 for n in four)  # the bench's --max-hints
    assert one == [min(n, 1) for n in four] and none == [0] * len(four)
    settings = [journal(tmp_path / "slang_zh-en" / f"{name}.jsonl")[0] for name in ("direct", "direct_max_hints=1")]
    assert [json.dumps(h, sort_keys=True).count('"max_hints": 4') for h in settings] == [1, 0]


class _FakeStrategy:
    """Instant results; "Ctrl-C'd" during call number ``interrupt_on``; a model error on any call that
    includes the source ``broken``."""

    batches_segments = False

    def __init__(self, interrupt_on: int | None, broken: str | None = None) -> None:
        self.interrupt_on = interrupt_on
        self.broken = broken
        self.calls: list[list[str]] = []

    def translate(self, requests, hooks=None):
        self.calls.append([r.text for r in requests])
        if len(self.calls) == self.interrupt_on:
            raise KeyboardInterrupt
        if any(r.text == self.broken for r in requests):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return [TranslationResult(source=r.text, src_lang="zh", tgt_lang="en", translation="It is fine.",
                                  thought="", raw_output="It is fine.", strategy="mcts", model="fake", params={},
                                  tokens_generated=5, wall_time_s=0.1, format_ok=True, confidence=None)
                for r in requests]


def fake_translator(monkeypatch, make_strategy) -> None:
    """The bench's translator, loading nothing; every strategy it is asked for is ``make_strategy()``."""

    class FakeTranslator:
        def __init__(self, model, **_):
            pass

        def strategy(self, name, **options):
            return make_strategy()

    monkeypatch.setattr(bench, "build_translator", lambda args, **_: FakeTranslator(args.model))


def test_ctrl_c_keeps_finished_segments_and_a_rerun_finishes(tmp_path, monkeypatch, capsys) -> None:
    interrupt_on: list[int | None] = [2]
    fake_translator(monkeypatch, lambda: _FakeStrategy(interrupt_on[0]))
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


def test_a_model_error_fails_one_segment_the_bench_goes_on_and_a_rerun_retries_it(tmp_path, monkeypatch,
                                                                                  capsys) -> None:
    """The benchmark runs through the batch runner: a batch that raises is retried one segment at a time,
    the one that still raises is marked (report, stderr, exit code 1) and not journaled, so a rerun of the
    same command decodes it and nothing else."""
    broken = load_testset(DATA, limit=3).items[1].src
    strategies: list[_FakeStrategy] = []

    def make() -> _FakeStrategy:
        strategies.append(_FakeStrategy(None, broken if not strategies else None))  # the first breaks
        return strategies[-1]

    fake_translator(monkeypatch, make)
    args = ["bench", "--data", DATA, "--limit", "3", "--strategies", "direct,cot", "--batch-size", "3",
            "--model", "fake", "--out", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "direct: 3 segments (3 new, 1 failed); cot: 3 segments (3 new)" in err
    assert "direct on slang:zh-en, segment 2 failed: model error: RuntimeError: CUDA error" in err
    calls = strategies[0].calls
    assert len(calls) == 4 and len(calls[0]) == 3 and [len(c) for c in calls[1:]] == [1, 1, 1]  # batch, then 1 by 1
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    direct, cot = report["datasets"][0]["strategies"]
    assert direct["failed"] == [{"segment": 2, "error": "model error: RuntimeError: CUDA error: device-side assert "
                                                        "triggered"}]
    assert cot["failed"] == [] and direct["models"] == ["fake"]
    assert "`direct`: 1 segment(s) failed" in (tmp_path / "report.md").read_text(encoding="utf-8")
    _, entries = journal(tmp_path / "slang_zh-en" / "direct.jsonl")
    assert sorted(e["index"] for e in entries) == [0, 2]

    assert main(args) == 0  # the model works again: only the first strategy made breaks
    assert "direct: 3 segments (1 new); cot: 3 segments (0 new)" in capsys.readouterr().err
    assert strategies[-1].calls == [[broken]]
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [row["failed"] for row in report["datasets"][0]["strategies"]] == [[], []]


def test_the_journals_of_the_first_format_in_eval_results_are_reported_again(tmp_path, monkeypatch,
                                                                              capsys) -> None:
    """``eval/results/`` keeps journals from before the code version was recorded: complete, they report
    again without a model (nothing is resumed under other code); cut short, they are refused."""
    saved = REPO / "eval" / "results" / "bench-qwen2.5-coder-1.5b-slang-zh-en"
    before = json.loads((saved / "report.json").read_text(encoding="utf-8"))
    out = tmp_path / "bench"
    shutil.copytree(saved, out)

    class NoModel:
        def __init__(self, *args, **kwargs):
            raise AssertionError("nothing should be decoded")

    monkeypatch.setattr(bench, "build_translator", NoModel)
    command = before["command"].split()
    # Those runs used what were then the only engine, no lexicon and the confidence reward (the mcts default
    # then): today all three must be asked for, and the mcts journal goes under its new label.
    labels = {}
    for row in before["datasets"][0]["strategies"]:
        labels[row["label"]] = row["label"] + (",reward=confidence" if row["strategy"] == "mcts" else "")
        (out / "slang_zh-en" / f"{bench.slug(row['label'])}.jsonl").rename(
            out / "slang_zh-en" / f"{bench.slug(labels[row['label']])}.jsonl")
    command = [*command[1:command.index("--out")], "--backend", "transformers", "--lexicon", "off"]
    command[command.index("--strategies") + 1] = ",".join(labels.values())
    assert main([*command, "--out", str(out)]) == 0
    after = json.loads((out / "report.json").read_text(encoding="utf-8"))
    for old, new in zip(before["datasets"][0]["strategies"], after["datasets"][0]["strategies"], strict=True):
        assert (new["label"], new["params"], new["n_segments"], new["new_segments"]) == (
            labels[old["label"]], old["params"], old["n_segments"], 0)
        for name in ("bleu", "chrf"):
            assert new["metrics"][name]["score"] == old["metrics"][name]["score"]

    cut = out / "slang_zh-en" / "direct.jsonl"
    cut.write_text("\n".join(cut.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main([*command, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "direct on slang:zh-en: journal" in err and "holds only 29 of the 30 segments" in err
