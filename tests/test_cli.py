"""The command line as a user runs it: real processes, real exit codes."""

import json
import subprocess
import sys

import pytest

from translator.api import MAX_INPUT_CHARS

SMALL = ["--model", "smollm2-135m", "--dtype", "fp32", "--quiet"]


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "translator", *args], input=stdin, capture_output=True,
                          timeout=600)


def test_cot_json_has_the_result_fields():
    proc = run_cli(*SMALL, "--strategy", "cot", "--max-new-tokens", "24", "--json", "你好")
    data = json.loads(proc.stdout)
    # An answer that never reached a translation is still printed, but the exit code says so.
    assert proc.returncode == (0 if data["translation"] else 1), proc.stderr.decode()
    for field in ("translation", "thought", "strategy", "tokens_generated", "wall_time_s", "tokens", "model"):
        assert field in data
    assert data["strategy"] == "cot" and data["tokens_generated"] == len(data["tokens"]) > 0
    token = data["tokens"][0]
    assert len(token["top_logprobs"]) == 5 and len(token["top_ids"]) == 5 and "logprob" in token


def test_reads_stdin_and_prints_plain_translation():
    proc = run_cli(*SMALL, "--strategy", "direct", "--max-new-tokens", "12", "--src", "Chinese", "--tgt", "英文",
                   stdin="你好".encode())
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip()  # direct mode always yields the reply itself


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["   "], None, "empty"),
        (["x" * (MAX_INPUT_CHARS + 1)], None, "limit"),
        ([], b"\xff\xfe\xfa bad bytes", "UTF-8"),
        (["--src", "klingon", "你好"], None, "accepted: zh (Chinese)"),
        (["--strategy", "cot", "--rollouts", "4", "你好"], None, "do not apply"),
        (["--strategy", "mcts", "--granularity", "mini-16", "你好"], None, "granularity"),
        (["--src", "zh", "--tgt", "Chinese", "你好"], None, "both Chinese"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(args, stdin, message):
    proc = run_cli(*SMALL, *args, stdin=stdin if stdin is not None else b"")
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert message in err
    assert "Traceback" not in err


def test_unknown_model_names_the_spec():
    proc = run_cli("--model", "/no/such/model.gguf", "--quiet", "你好")
    assert proc.returncode == 1
    assert "/no/such/model.gguf" in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()
