"""``marco-eval score``: in-process through ``main([...])`` for output, and as a real subprocess for exit
codes, stderr and start-up cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.cli import main
from eval.scoring import score

REPO = Path(__file__).resolve().parents[1]
HYP = ["The cat sat on the mat.", "These shoes are so comfy.", "He stood me up again."]
REF_A = ["The cat sat on a mat.", "These shoes are soft and cushy.", "He bailed on me again."]
REF_B = ["A cat was sitting on the mat.", "These shoes feel like clouds.", "He flaked on me again."]
SRC = ["猫坐在垫子上。", "这双鞋穿起来有一种踩屎感。", "他又把我鸽了。"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, lines in {"hyp": HYP, "ref_a": REF_A, "ref_b": REF_B, "src": SRC}.items():
        out[name] = tmp_path / f"{name}.txt"
        out[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "eval", *args], capture_output=True, text=True, cwd=REPO, env=env)


def test_json_report_equals_the_api(files, capsys) -> None:
    assert main(["score", "--hyp", str(files["hyp"]), "--ref", str(files["ref_a"]), "--tgt", "English",
                 "--metrics", "bleu,chrf,ter", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = score(HYP, [REF_A], None, "en", ["bleu", "chrf", "ter"])
    assert data["tgt_lang"] == "en" and data["n_segments"] == 3
    for name, result in expected.metrics.items():
        assert data["metrics"][name]["score"] == pytest.approx(result.score)
        assert data["metrics"][name]["signature"] == result.signature


def test_multiple_references_either_spelling(files, capsys) -> None:
    common = ["score", "--hyp", str(files["hyp"]), "--tgt", "en", "--metrics", "bleu", "--json"]
    main([*common, "--ref", str(files["ref_a"]), str(files["ref_b"])])
    listed = json.loads(capsys.readouterr().out)
    main([*common, "--ref", str(files["ref_a"]), "--ref", str(files["ref_b"])])
    repeated = json.loads(capsys.readouterr().out)
    assert listed == repeated and "nrefs:2" in listed["metrics"]["bleu"]["signature"]


def test_text_output_with_segments_and_a_skipped_comet(files, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["score", "--hyp", str(files["hyp"]), "--ref", str(files["ref_a"]), "--src", str(files["src"]),
                 "--tgt", "en", "--metrics", "bleu,comet", "--comet-model", "no-such-org/no-such-model",
                 "--segments"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("BLEU = ") and "tok:13a" in lines[0]
    assert lines[1].startswith("COMET skipped: ") and "no-such-org/no-such-model" in lines[1]
    assert lines[2] == "segment\tBLEU"
    assert [line.split("\t")[0] for line in lines[3:]] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("short_ref", "reference 1 has 2 segments but there are 3 hypotheses"),
        ("bad_bytes", "not UTF-8 text (byte 0xff at offset 4)"),
        ("language", "unknown language 'xx'"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, tmp_path, case, message) -> None:
    ref, tgt = str(files["ref_a"]), "en"
    if case == "missing":
        ref = str(tmp_path / "nope.txt")
    elif case == "short_ref":
        (tmp_path / "short.txt").write_text("a\nb\n", encoding="utf-8")
        ref = str(tmp_path / "short.txt")
    elif case == "bad_bytes":
        (tmp_path / "bad.txt").write_bytes(b"abc\n\xff\xfe\n")
        ref = str(tmp_path / "bad.txt")
    else:
        tgt = "xx"
    result = run_cli("score", "--hyp", str(files["hyp"]), "--ref", ref, "--tgt", tgt)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("marco-eval: error: ") and message in result.stderr


def test_unknown_metric_is_a_usage_error(files) -> None:
    result = run_cli("score", "--hyp", str(files["hyp"]), "--ref", str(files["ref_a"]), "--tgt", "en",
                     "--metrics", "bleu,meteor")
    assert result.returncode == 2 and "unknown metric(s) meteor" in result.stderr and "Traceback" not in result.stderr


def test_sacrebleu_metrics_start_without_torch_or_comet(files) -> None:
    code = (
        "import sys; from eval.cli import main; "
        f"rc = main(['score', '--hyp', {str(files['hyp'])!r}, '--ref', {str(files['ref_a'])!r}, '--tgt', 'en']); "
        "heavy = [m for m in ('torch', 'comet', 'transformers') if m in sys.modules]; "
        "assert rc == 0 and not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr


def test_score_without_references_refuses_unless_only_reference_free_metrics(files, capsys, monkeypatch) -> None:
    assert main(["score", "--hyp", str(files["hyp"]), "--tgt", "en"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("marco-eval: error: no --ref given, and bleu, chrf, ter need references")
    assert len(err.strip().splitlines()) == 1
    # COMET with a QE model needs no reference: asked alone, it runs (here: skipped, no checkpoint offline).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["score", "--hyp", str(files["hyp"]), "--src", str(files["src"]), "--tgt", "en", "--metrics", "comet",
                 "--comet-model", "no-such-org/no-such-kiwi"]) == 0
    assert capsys.readouterr().out.startswith("COMET skipped: ")


def test_bench_refuses_bad_options_before_importing_torch(tmp_path) -> None:
    code = (
        "import sys; from eval.cli import main; "
        f"rc = main(['bench', '--data', 'slang:zh-en', '--strategies', 'cot:max_new_tokens=0', '--out', {str(tmp_path)!r}]); "
        "assert rc == 2 and 'torch' not in sys.modules, (rc, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "max_new_tokens must be at least 1" in result.stderr and not any(tmp_path.iterdir())


def test_a_closed_pipe_ends_quietly(files) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "eval", "score", "--hyp", str(files["hyp"]), "--ref",
                             str(files["ref_a"]), "--tgt", "en", "--segments"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    proc.stdout.close()  # as `| head -0` would
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


BASE = ["A cat on the mat.", "These shoes are comfortable.", "He did not come again."]


def test_baseline_gives_sacrebleus_paired_bootstrap(files, tmp_path, capsys) -> None:
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    base = tmp_path / "base.txt"
    base.write_text("\n".join(BASE) + "\n", encoding="utf-8")
    args = ["score", "--hyp", str(files["hyp"]), "--ref", str(files["ref_a"]), str(files["ref_b"]), "--tgt", "en",
            "--metrics", "bleu,chrf", "--baseline", str(base)]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["paired_bootstrap"]["baseline"] == str(base)
    ours = {c["metric"]: c["test"] for c in data["paired_bootstrap"]["metrics"]}
    # The same test, computed by sacrebleu itself on the same files.
    _, table = PairedTest([("A", BASE), ("B", HYP)], {"bleu": BLEU(), "chrf": CHRF()}, [REF_A, REF_B],
                          test_type="bs", n_samples=1000)()
    theirs = [v for k, v in table.items() if k != "System"]  # keyed by sacrebleu's labels, in the order asked
    for name, (a, b) in zip(["bleu", "chrf"], theirs, strict=True):
        assert ours[name]["baseline"]["score"] == pytest.approx(a.score)
        assert ours[name]["system"]["score"] == pytest.approx(b.score)
        assert ours[name]["system"]["mean"] == pytest.approx(b.mean) and ours[name]["p_value"] == pytest.approx(b.p_value)
    # The text form states each metric's delta and p-value under a header naming the baseline.
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("Paired bootstrap against"))
    assert str(base) in out[header] and "1000 resamples" in out[header]
    delta = ours["bleu"]["system"]["score"] - ours["bleu"]["baseline"]["score"]
    assert out[header + 1].strip().startswith("BLEU: baseline") and f"Δ {delta:+.4g}" in out[header + 1]


def test_baseline_of_another_length_is_refused(files, tmp_path, capsys) -> None:
    base = tmp_path / "base.txt"
    base.write_text("\n".join(BASE[:2]) + "\n", encoding="utf-8")
    assert main(["score", "--hyp", str(files["hyp"]), "--ref", str(files["ref_a"]), "--tgt", "en",
                 "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("marco-eval: error: the baseline has 2 segments but there are 3 hypotheses")
