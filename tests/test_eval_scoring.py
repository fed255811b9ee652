"""score(), the sacrebleu-backed metrics, the similarity metric and the paired bootstrap.

The headline check: our figures and signatures equal what the ``sacrebleu`` CLI prints for the same
files and options, on the real WMT22 dev set (reference A scored as if it were a system, against B).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.significance import PairedTest

from eval.data import read_lines
from eval.metrics import MeanOfSegments, MetricOptions, build_metric
from eval.scoring import score
from eval.significance import paired_bootstrap
from translator.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WMT22 = SHARED / "wmt22"
needs_wmt22 = pytest.mark.skipif(
    not (WMT22 / "dev.zh-en.ref.B.en").is_file(), reason=f"shared WMT22 data not found at {WMT22}"
)
TER_LINES = 150  # TER is slow (tens of seconds for the whole set), so it is checked on a prefix

# What the sacrebleu CLI needs to be told to match our per-target defaults.
CLI_OPTIONS = {"en": [], "zh": ["--tokenize", "zh", "--ter-normalized", "--ter-asian-support"]}


def wmt22_files(direction: str) -> tuple[Path, Path]:
    tgt = direction.split("-")[1]
    return WMT22 / f"dev.{direction}.ref.A.{tgt}", WMT22 / f"dev.{direction}.ref.B.{tgt}"


def sacrebleu_cli(hyp: Path, refs: list[Path], metrics: list[str], tgt: str) -> dict[str, dict]:
    cmd = [sys.executable, "-m", "sacrebleu", *map(str, refs), "-i", str(hyp), "-m", *metrics,
           "-f", "json", "-w", "10", *CLI_OPTIONS[tgt]]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return {entry["name"]: entry for entry in (out if isinstance(out, list) else [out])}


def assert_matches_cli(hyp: Path, refs: list[Path], metrics: list[str], tgt: str) -> None:
    cli = sacrebleu_cli(hyp, refs, metrics, tgt)
    report = score(read_lines(hyp), [read_lines(r) for r in refs], None, tgt, metrics)
    for name in metrics:
        ours = report[name]
        theirs = cli[ours.label]
        assert ours.signature == theirs["signature"]
        assert round(ours.score, 10) == pytest.approx(theirs["score"], abs=1e-9), name


@needs_wmt22
@pytest.mark.parametrize("direction", ["zh-en", "en-zh"])
@pytest.mark.parametrize("nrefs", [1, 2])
def test_bleu_chrf_equal_sacrebleu_cli(direction: str, nrefs: int) -> None:
    hyp, ref_b = wmt22_files(direction)
    refs = [ref_b] if nrefs == 1 else [ref_b, hyp]  # 2 refs: B, and A itself (so BLEU is 100)
    assert_matches_cli(hyp, refs, ["bleu", "chrf"], direction.split("-")[1])


@needs_wmt22
@pytest.mark.parametrize("direction", ["zh-en", "en-zh"])
def test_ter_equals_sacrebleu_cli(direction: str, tmp_path: Path) -> None:
    sliced = []
    for path in wmt22_files(direction):
        out = tmp_path / path.name
        out.write_text("\n".join(read_lines(path)[:TER_LINES]) + "\n", encoding="utf-8")
        sliced.append(out)
    hyp, ref = sliced
    assert_matches_cli(hyp, [ref], ["ter"], direction.split("-")[1])


def test_per_target_tokenisation_shows_in_signatures() -> None:
    zh = score(["我们今天去公园。"], [["我们今天去了公园。"]], None, "Chinese", ["bleu", "ter"])
    assert "tok:zh" in zh["bleu"].signature and "asian:yes" in zh["ter"].signature
    en = score(["We went to the park."], [["We went to the park today."]], None, "english", ["bleu", "ter"])
    assert "tok:13a" in en["bleu"].signature and "asian:no" in en["ter"].signature


def test_segment_scores_are_sentence_level_sacrebleu() -> None:
    hyps = ["The cat sat on the mat.", "He is cushy.", "Totally different words here."]
    refs = [["The cat sat on a mat.", "He is comfortable.", "Nothing in common."],
            ["A cat was sitting on the mat.", "He feels soft.", "Nothing at all."]]
    report = score(hyps, refs, None, "en", ["bleu", "chrf", "ter"], segments=True)
    expected = {
        "bleu": BLEU(effective_order=True),
        "chrf": CHRF(),
        "ter": TER(),
    }
    for name, metric in expected.items():
        seg = report[name].segments
        assert seg == [metric.sentence_score(h, [r[i] for r in refs]).score for i, h in enumerate(hyps)]
    assert score(hyps, refs, None, "en", ["bleu"])["bleu"].segments is None


def test_variable_reference_counts() -> None:
    report = score(["a b c d", "e f g h"], [["a b c d", "e f g h"], ["a b c x", None]], None, "en", ["bleu"], segments=True)
    assert "nrefs:var" in report["bleu"].signature
    assert report["bleu"].score == pytest.approx(100.0)


def test_unusable_metrics_are_skipped_with_a_reason_not_zeroed() -> None:
    report = score(["我很好。"], [["我挺好的。"]], None, "zh", ["chrf", "semsim"])
    assert report["chrf"].score is not None
    semsim = report["semsim"]
    assert semsim.score is None and "English" in semsim.skipped
    assert report.skipped == {"semsim": semsim.skipped}
    assert "skipped: " in report.summary()
    no_refs = score(["hello"], [], ["你好"], "en", ["bleu"])
    assert "needs at least one reference" in no_refs["bleu"].skipped
    assert json.loads(report.to_json())["metrics"]["semsim"]["skipped"] == semsim.skipped


@pytest.mark.parametrize(
    ("hyps", "refs", "srcs", "tgt", "metrics", "message"),
    [
        (["a", "b"], [["a"]], None, "en", ["bleu"], "reference 1 has 1 segments but there are 2"),
        (["a"], [["a"]], ["x", "y"], "en", ["bleu"], "the source has 2 segments"),
        ([], [[]], None, "en", ["bleu"], "no hypotheses"),
        (["a"], [[None]], None, "en", ["bleu"], "segment 1 has no reference"),
        (["a"], [["a"]], None, "klingon", ["bleu"], "unknown language"),
        (["a"], [["a"]], None, "en", ["bleu", "meteor"], "unknown metric(s) meteor"),
    ],
)
def test_bad_input_raises_input_error(hyps, refs, srcs, tgt, metrics, message) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score(hyps, refs, srcs, tgt, metrics)


# --- semantic similarity (offline, not COMET) ---

def test_semsim_credits_paraphrases_bleu_misses() -> None:
    ref = "These shoes are cushy and soft."
    hyps = ["These shoes are soft and comfortable.", "The stock market fell sharply this morning."]
    report = score(hyps, [[ref, ref]], None, "en", ["semsim", "bleu"], segments=True)
    paraphrase, unrelated = report["semsim"].segments
    assert paraphrase > unrelated + 0.3
    assert report["bleu"].segments[0] < 40  # n-gram overlap barely notices the paraphrase
    assert "not COMET" in report["semsim"].label
    assert report["semsim"].score == pytest.approx(np.mean([paraphrase, unrelated]))


def test_semsim_takes_the_best_reference() -> None:
    hyp = ["I'm dying to buy this lipstick."]
    close, far = "I really want to buy this lipstick.", "Gardening takes patience."
    single = [score(hyp, [[r]], None, "en", ["semsim"])["semsim"].score for r in (close, far)]
    both = score(hyp, [[far], [close]], None, "en", ["semsim"])["semsim"]
    assert both.score == pytest.approx(max(single), abs=1e-5)
    assert "refagg:max" in both.signature and "nrefs:2" in both.signature
    assert score(hyp, [hyp], None, "en", ["semsim"])["semsim"].score == pytest.approx(1.0, abs=1e-4)


# --- paired bootstrap ---

def near_tie(lines: list[str]) -> tuple[list[str], list[str]]:
    """Two systems that each drop the last word on alternate lines: a difference chance can explain."""
    drop = lambda s: " ".join(s.split()[:-1])  # noqa: E731
    a = [drop(s) if i % 2 else s for i, s in enumerate(lines)]
    b = [s if i % 2 else drop(s) for i, s in enumerate(lines)]
    return a, b


@needs_wmt22
@pytest.mark.parametrize(("name", "sacre", "n_lines"), [("bleu", BLEU(), 600), ("chrf", CHRF(), 600), ("ter", TER(), 80)])
def test_paired_bootstrap_reproduces_sacrebleu(name: str, sacre, n_lines: int) -> None:
    hyp_path, ref_path = wmt22_files("zh-en")
    refs = [read_lines(ref_path)[:n_lines]]
    baseline, system = near_tie(read_lines(hyp_path)[:n_lines])

    _, table = PairedTest([("A", baseline), ("B", system)], {name: sacre}, refs, test_type="bs", n_samples=1000)()
    theirs_a, theirs_b = next(v for k, v in table.items() if k != "System")

    ours = paired_bootstrap(build_metric(name, "en"), baseline, system, refs)
    assert ours.baseline.score == pytest.approx(theirs_a.score) and ours.system.score == pytest.approx(theirs_b.score)
    assert ours.baseline.mean == pytest.approx(theirs_a.mean) and ours.baseline.ci == pytest.approx(theirs_a.ci)
    assert ours.system.mean == pytest.approx(theirs_b.mean) and ours.system.ci == pytest.approx(theirs_b.ci)
    assert ours.p_value == pytest.approx(theirs_b.p_value)
    assert 0.01 < ours.p_value  # a near tie: not significant
    assert ours.signature.endswith("|bs:1000|seed:12345")


class Length(MeanOfSegments):
    """A stand-in model metric: the segment score is the hypothesis length."""

    name = "length"
    label = "Length"

    @classmethod
    def from_options(cls, tgt_lang: str, options: MetricOptions) -> Length:
        return cls()

    def segment_scores(self, hyps, refs, srcs) -> list[float]:
        self._signature = "length"
        return [float(len(h)) for h in hyps]


def test_paired_bootstrap_over_segment_means() -> None:
    rng = np.random.default_rng(0)
    baseline = ["x" * int(n) for n in rng.integers(5, 15, 200)]
    longer = [h + "yyyy" for h in baseline]
    refs = [["r"] * 200]
    result = paired_bootstrap(Length(), baseline, longer, refs)
    assert result.delta == pytest.approx(4.0)
    assert result.system.ci_low < result.system.mean < result.system.ci_high
    assert result.significant()
    same = paired_bootstrap(Length(), baseline, baseline, refs)
    assert same.p_value == 1.0 and not same.significant()
    again = paired_bootstrap(Length(), baseline, longer, refs)
    assert again == result  # seeded: reproducible
    with pytest.raises(ValueError, match="segments"):
        paired_bootstrap(Length(), baseline, longer[:-1], refs)
