"""The command line as a user runs it: real processes, real exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from translator.api import MAX_INPUT_CHARS

SMALL = ["--model", "smollm2-135m", "--dtype", "fp32", "--quiet"]


def run_cli(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "translator", *args], input=stdin, capture_output=True,
                          timeout=600, env={**os.environ, **(env or {})})


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
        (["--strategy", "direct", "--max-new-tokens", "0", "你好"], None, "max_new_tokens must be at least 1"),
        (["--strategy", "cot", "--max-new-tokens", "-5", "你好"], None, "max_new_tokens must be at least 1"),
        (["--strategy", "mcts", "--rollouts", "0", "你好"], None, "rollouts must be at least 1"),
        (["--strategy", "mcts", "--max-seconds", "0", "你好"], None, "max_seconds must be > 0"),
        (["--device", "cuda:7", "你好"], None, "not available"),
        (["--device", "toaster", "你好"], None, "unknown device"),
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


def test_an_unavailable_device_is_refused_before_anything_is_written(tmp_path: Path):
    cache = tmp_path / "cache"
    proc = run_cli("--model", "smollm2-135m", "--device", "cuda", "--quiet", "你好",
                   env={"MARCO_TRANSLATE_CACHE": str(cache), "CUDA_VISIBLE_DEVICES": ""})
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert "device 'cuda' is not available" in err and "Traceback" not in err
    # No dequantized copy, no assembled GGUF (the lexicon's own index may be built: it needs no model).
    written = [p for p in cache.rglob("*") if p.is_file() and "lexicon" not in p.relative_to(cache).parts]
    assert written == []


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("env, reason", [
    ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
    ({"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:{port}"}, "the hub could not be reached"),
])
def test_a_model_nobody_has_fails_with_one_line_and_no_retries(tmp_path: Path, env, reason):
    env = {k: v.format(port=_closed_port()) for k, v in env.items()}
    proc = run_cli("--model", "not-a-model", "--quiet", "你好", env={**env, "HF_HOME": str(tmp_path / "hf")})
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith("marco-translate: error: model 'not-a-model' could not be loaded") and reason in err


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "translator", *SMALL, "--strategy", "direct", "--max-new-tokens",
                             "4", "你好"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head -0` would: the reader is gone before the translation is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


# Importing torch (and transformers) is most of a start-up: help and refusals must not need it.
LIGHT = """
import sys
from {module} import main
try:
    main({argv!r})
except SystemExit:
    pass
print("torch" in sys.modules, file=sys.stderr)
"""


def torch_imported(module: str, argv: list[str]) -> bool:
    proc = subprocess.run([sys.executable, "-c", LIGHT.format(module=module, argv=argv)], capture_output=True,
                          text=True, timeout=300)
    return proc.stderr.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("module, argv", [
    ("translator.cli", ["--help"]),
    ("translator.cli", ["batch", "--help"]),
    ("app.main", ["--help"]),
    ("translator.cli", ["batch", "/no/such/input.txt"]),  # a refusal needs no torch either
    ("translator.cli", ["--src", "klingon", "你好"]),
])
def test_help_and_refusals_do_not_import_torch(module, argv):
    assert not torch_imported(module, argv)
