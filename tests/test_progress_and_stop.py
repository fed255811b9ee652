"""Feedback while a translation runs and a way to stop it, for every strategy: the backend's per-row
``on_tokens`` callback, the strategies' ``Hooks.on_tokens`` / ``should_stop``, and the CLI's progress line.
Runs of smollm2-135m, a few tokens long."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from translator.api import Translator, make_request
from translator.backends.base import STOP, GenRequest, Sampling
from translator.cli import ProgressLine
from translator.strategies import Hooks, Progress, TokenProgress

SENTENCE = "我今天太累了，只想躺平。"


def test_backend_reports_every_token_and_stops_a_row_when_asked(small_backend):
    prompt = small_backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write one sentence about the sea."}], tokenize=False, add_generation_prompt=True)
    state = small_backend.start(prompt)
    heard: list[list[int]] = [[], []]

    def listener(row: int, stop_after: int | None):
        def on_tokens(tokens):
            heard[row].extend(t.token_id for t in tokens)
            return STOP if stop_after is not None and len(heard[row]) >= stop_after else None
        return on_tokens

    conts = small_backend.generate([GenRequest(state, 12, Sampling(), on_tokens=listener(0, None)),
                                    GenRequest(state, 12, Sampling(), on_tokens=listener(1, 3))])
    assert heard[0] == [t.token_id for t in conts[0].tokens] and len(heard[0]) > 3
    assert conts[0].finish != "stopped"
    # The stopped row keeps exactly what it had, and says why it ended; the other row is untouched.
    assert heard[1] == [t.token_id for t in conts[1].tokens] and len(heard[1]) == 3
    assert conts[1].finish == "stopped" and conts[1].terminal
    assert [t.token_id for t in conts[1].tokens] == heard[0][:3]  # same greedy prefix as the free row


@pytest.fixture(scope="module")
def translator(small_model):
    from translator.backends.transformers_backend import TransformersBackend

    return Translator(backend=TransformersBackend(small_model))


@pytest.mark.parametrize("strategy", ["direct", "cot"])
def test_greedy_strategies_report_tokens_and_stop_with_what_is_there(translator, strategy):
    reports: list[TokenProgress] = []
    request = make_request(SENTENCE, "zh", "en")
    result = translator.strategy(strategy, max_new_tokens=10).translate([request], Hooks(on_tokens=reports.append))[0]
    assert [r.tokens for r in reports] == list(range(1, result.tokens_generated + 1))
    assert reports[-1].text == result.raw_output and all(r.segment == 0 for r in reports)

    assert result.tokens_generated > 3
    seen: list[TokenProgress] = []
    stopped = translator.strategy(strategy, max_new_tokens=10).translate(
        [request], Hooks(on_tokens=seen.append, should_stop=lambda: len(seen) >= 3))[0]
    assert stopped.stats["finish"] == "stopped" and stopped.tokens_generated == 3
    assert [t.token_id for t in stopped.tokens] == [t.token_id for t in result.tokens[:3]]


def test_batched_segments_share_one_count(translator):
    reports: list[TokenProgress] = []
    requests = [make_request(SENTENCE, "zh", "en"), make_request("你好", "zh", "en")]
    results = translator.strategy("direct", max_new_tokens=6).translate(requests, Hooks(on_tokens=reports.append))
    assert reports[-1].tokens == sum(r.tokens_generated for r in results)
    assert {r.segment for r in reports} == {0, 1}


def test_mcts_reports_tokens_between_its_iterations(translator):
    tokens: list[TokenProgress] = []
    searches: list[Progress] = []
    result = translator.strategy("mcts", granularity="mini-32", rollouts=2, children=2, max_new_tokens=16).translate(
        [make_request(SENTENCE, "zh", "en")], Hooks(on_progress=searches.append, on_tokens=tokens.append))[0]
    assert searches and tokens and tokens[-1].tokens == result.tokens_generated


def test_progress_line_shows_tokens_rate_and_time():
    out = io.StringIO()
    line = ProgressLine("cot", out)
    line.on_tokens(TokenProgress(12, 4.0, 0))
    assert line.line() == "cot: 12 tokens, 3.0 tok/s, 4 s"
    line.on_progress(Progress(2, 8, "I'm beat.", 0.7, 5.0))
    assert line.line() == "cot: 2/8 rollouts, 12 tokens, 3.0 tok/s, 5 s | best so far: I'm beat."
    line.close()
    assert out.getvalue().startswith("\rcot: 12 tokens") and out.getvalue().endswith("\n")


def _cli(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "translator", "--model", "smollm2-135m", "--dtype", "fp32",
                           "--strategy", "direct", "--max-new-tokens", "4", *args, SENTENCE],
                          capture_output=True, timeout=600)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()  # bytes first: keep the \r as it is


def test_cli_progress_is_quiet_in_a_pipe_unless_asked():
    code, out, err = _cli()
    assert code == 0, err
    assert "tok/s" not in err
    code, shown_out, shown_err = _cli("--progress")
    assert code == 0, shown_err
    last = shown_err.rstrip("\n").split("\r")[-1]  # the line as the terminal shows it at the end
    generated = len(json.loads(_cli("--json")[1])["tokens"])
    assert last.startswith(f"direct: {generated} tokens, ") and "tok/s" in last
    assert shown_out == out  # the translation itself is untouched
