"""The HTTP backend against a real OpenAI-compatible server (llama-cpp-python's, on 127.0.0.1), plus
fault cases against tiny local servers. No mocks: every request goes over a loopback socket.

The real-server tests skip when ``llama_cpp`` is not installed; CI installs it with
``pip install 'llama-cpp-python[server]==0.3.36'`` (builds from source, ~4-5 min on 2 cores).
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from translator.actions import Chunking
from translator.api import Translator, make_request
from translator.backends import open_backend
from translator.backends.base import GenRequest, Sampling
from translator.backends.openai_backend import OpenAIBackend
from translator.backends.transformers_backend import TransformersBackend
from translator.errors import TranslatorError
from translator.prompt import build_prompt
from translator.strategies import Hooks

TEXT = "我今天太累了，只想躺平。"
HOST = "127.0.0.1"
# Confidence agreement between llama.cpp (Q4_1 weights, its own kernels) and transformers (the same weights
# dequantized to fp32): the greedy tokens must agree on the first AGREE_TOKENS, and over the common prefix of
# identical tokens the chosen-token confidence c_i = exp(lp_i) / sum_top5 exp(lp) must differ by less than
# MEAN_TOL on average, and by less than NEAR_TOL on at least NEAR_SHARE of the tokens. One token can differ
# a lot where two candidates are nearly tied (measured: mean 0.037, max 0.41 over 24 identical tokens).
AGREE_TOKENS = 8
MEAN_TOL = 0.05
NEAR_TOL = 0.1
NEAR_SHARE = 0.75

needs_llama = pytest.mark.skipif(
    __import__("importlib").util.find_spec("llama_cpp") is None,
    reason="llama_cpp not installed: pip install 'llama-cpp-python[server]==0.3.36' to run the real-server tests")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start_llama_server(timeout: float = 180.0):
    from translator.models import REGISTRY, registry_gguf

    gguf = registry_gguf(REGISTRY["smollm2-135m"])
    port = _free_port()
    log = tempfile.TemporaryFile()  # not a pipe: a server writing more than the pipe holds would block
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", HOST, "--port", str(port),
         "--model_alias", "smollm2-135m", "--n_ctx", "1024", "--n_threads", "1", "--n_threads_batch", "1",
         "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://{HOST}:{port}/v1"
    deadline = time.monotonic() + timeout
    import httpx

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")[-2000:]
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {err}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    _stop(proc)
    pytest.fail(f"llama_cpp.server not ready on {url} within {timeout:.0f}s")


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def llama_server():
    proc, url = _start_llama_server()
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture()
def http_backend(llama_server, small_model):
    backend = OpenAIBackend(llama_server, "smollm2-135m", small_model.tokenizer,
                            stop_token_ids=small_model.stop_token_ids, timeout=120, retries=2)
    yield backend
    backend.close()


# ----- the search through a real server ----------------------------------------------------------------


@needs_llama
def test_cot_greedy_through_server(http_backend):
    result = Translator(backend=http_backend).translate(TEXT, "zh", "en", strategy="cot", max_new_tokens=48)
    assert result.tokens and len(result.tokens) <= 48
    assert result.logprobs_source == "server:raw"  # llama-cpp-python: log-softmax of the raw logits
    assert http_backend.decode([t.token_id for t in result.tokens]) == result.raw_output
    for t in result.tokens:
        assert 0 < t.confidence <= 1 + 1e-9
        assert len(t.top_logprobs) <= 5 and t.top_logprobs == sorted(t.top_logprobs, reverse=True)
        assert t.logprob <= t.top_logprobs[0] + 1e-6  # greedy: the chosen token is the most likely
    # Greedy is deterministic: the same request again gives the same tokens.
    again = Translator(backend=http_backend).translate(TEXT, "zh", "en", strategy="cot", max_new_tokens=48)
    assert [t.token_id for t in again.tokens] == [t.token_id for t in result.tokens]


@needs_llama
def test_small_mcts_through_server(http_backend):
    rollouts = 3
    result = Translator(backend=http_backend).translate(
        TEXT, "zh", "en", strategy="mcts", granularity="mini-32", rollouts=rollouts, children=2,
        max_new_tokens=48, seed=3)
    tree = result.tree
    root = tree.node(0)
    assert root.visits == rollouts == result.stats["rollouts"]
    for node in tree.nodes:
        if node.children and not node.terminal:
            assert node.visits == sum(tree.node(c).visits for c in node.children)
        assert len(node.rewards) == node.visits
        assert node.total_value == pytest.approx(sum(node.rewards))
        if node.id:
            assert node.kind == "mini-32"
            assert node.n_tokens == 32 if not node.terminal else 0 <= node.n_tokens <= 32
    assert tree.node(tree.chosen_path[-1]).terminal
    # The reward is the mean confidence of the chosen path's tokens, recomputed from the log-probs.
    toks = result.tokens
    expected = sum(math.exp(t.logprob) / sum(math.exp(lp) for lp in t.top_logprobs) for t in toks) / len(toks)
    # (a path with no translation is rewarded 0; the confidence itself is kept as raw_value)
    assert result.reward["details"].get("raw_value", result.reward["value"]) == pytest.approx(expected, rel=1e-9)
    assert http_backend.stats.forward_calls >= rollouts


@needs_llama
def test_chunks_follow_the_in_process_rules(http_backend, small_model):
    """Step chunking and the Output close are decided client side, exactly as in-process."""
    prompt = build_prompt(small_model.tokenizer, make_request(TEXT, "zh", "en"), reasoning=True)
    state = http_backend.start(prompt)
    req = GenRequest(state, 60, Sampling(), chunking=Chunking.parse("step"))
    cont = http_backend.generate([req])[0]
    assert cont.finish in ("eos", "output_closed", "length")
    for chunk in cont.chunks[:-1]:
        ends = Chunking.parse("step")
        text = ""
        for i, t in enumerate(chunk.tokens):
            text += t.text
            assert ends.ends_after(text, i + 1, t.text) == (i == len(chunk.tokens) - 1)
    # States chain: each chunk's state is its parent's prefix plus its own tokens.
    prefix = state.all_tokens()
    for chunk in cont.chunks:
        prefix = prefix + [t.token_id for t in chunk.tokens]
        assert chunk.state.all_tokens() == prefix


@needs_llama
def test_confidence_agrees_with_transformers(http_backend, small_model, record_property):
    n = 24
    prompt = build_prompt(small_model.tokenizer, make_request(TEXT, "zh", "en"), reasoning=True)
    local = TransformersBackend(small_model)
    ref = local.generate([GenRequest(local.start(prompt), n, Sampling())])[0].tokens
    got = http_backend.generate([GenRequest(http_backend.start(prompt), n, Sampling())])[0].tokens
    common = 0
    while common < min(len(ref), len(got)) and ref[common].token_id == got[common].token_id:
        common += 1
    deltas = [abs(a.confidence - b.confidence) for a, b in zip(ref[:common], got[:common])]
    mean = sum(deltas) / len(deltas)
    record_property("identical_prefix_tokens", common)
    record_property("mean_abs_delta_confidence", mean)
    record_property("max_abs_delta_confidence", max(deltas))
    print(f"\nagreement: {common}/{min(len(ref), len(got))} identical greedy tokens, "
          f"mean |dc|={mean:.4f}, max |dc|={max(deltas):.4f}")
    assert common >= min(AGREE_TOKENS, len(ref))
    assert mean < MEAN_TOL
    assert sum(d < NEAR_TOL for d in deltas) >= NEAR_SHARE * len(deltas)


@needs_llama
def test_open_backend_dispatch_loads_only_the_tokenizer(llama_server, small_model):
    backend = open_backend(f"openai:{llama_server}", served_model="smollm2-135m")
    assert isinstance(backend, OpenAIBackend)
    text = "<|im_start|>user\nhello<|im_end|>"
    assert backend.tokenizer.encode(text, add_special_tokens=False) == \
        small_model.tokenizer.encode(text, add_special_tokens=False)
    assert backend.stop_ids == set(small_model.stop_token_ids)
    backend.close()


@needs_llama
def test_server_killed_mid_search(small_model):
    proc, url = _start_llama_server()
    try:
        backend = OpenAIBackend(url, "smollm2-135m", small_model.tokenizer, stop_token_ids=small_model.stop_token_ids,
                                timeout=30, retries=2, backoff=0.1)
        killed = []

        def kill(progress) -> None:
            if not killed:
                proc.kill()
                proc.wait(10)
                killed.append(time.monotonic())

        with pytest.raises(TranslatorError, match=url.replace(".", r"\.")) as info:
            Translator(backend=backend).translate(
                TEXT, "zh", "en", strategy="mcts", granularity="mini-32", rollouts=6, children=2,
                max_new_tokens=48, parallel=1, hooks=Hooks(on_progress=kill))
        assert killed, "the search ended before the server was killed"
        assert time.monotonic() - killed[0] < 30  # retries with backoff, no hang
        assert "unreachable" in str(info.value)
    finally:
        _stop(proc)


# ----- fault cases against tiny local servers -----------------------------------------------------------


class _Server:
    def __init__(self, handler):
        self.httpd = ThreadingHTTPServer((HOST, 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{HOST}:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(respond):
    class Handler(BaseHTTPRequestHandler):
        calls = []

        def log_message(self, *args):
            pass

        def do_GET(self):
            self._send(200, {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "test"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            Handler.calls.append(body)
            status, payload = respond(body, len(Handler.calls))
            self._send(status, payload)

        def _send(self, status, payload):
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def _completion(text="Hello", logprobs=True):
    lp = None
    if logprobs:
        lp = {"tokens": [text], "text_offset": [0], "token_logprobs": [-0.1],
              "top_logprobs": [{text: -0.1, " Hi": -2.5}]}
    return {"id": "x", "object": "text_completion", "model": "m",
            "choices": [{"text": text, "index": 0, "logprobs": lp, "finish_reason": "length"}]}


def _request(backend, n=1):
    return GenRequest(backend.start("Say hello:"), n, Sampling())


def test_slow_server_times_out(small_model):
    def respond(body, n):
        time.sleep(3)
        return 200, _completion()

    with _Server(_handler(respond)) as server:
        backend = OpenAIBackend(server.url, "m", small_model.tokenizer, timeout=0.5, retries=2)
        start = time.monotonic()
        with pytest.raises(TranslatorError, match="did not answer within 0.5s") as info:
            backend.generate([_request(backend)])
        assert time.monotonic() - start < 2.5
        assert server.url in str(info.value)


def test_server_without_logprobs_is_a_clear_error(small_model):
    with _Server(_handler(lambda body, n: (200, _completion(logprobs=False)))) as server:
        backend = OpenAIBackend(server.url, "m", small_model.tokenizer, timeout=5)
        with pytest.raises(TranslatorError, match="no log-probs") as info:
            backend.generate([_request(backend)])
        assert server.url in str(info.value)


def test_5xx_is_retried_and_request_is_well_formed(small_model):
    handler = _handler(lambda body, n: (503, {"error": "busy"}) if n == 1 else (200, _completion()))
    with _Server(handler) as server:
        backend = OpenAIBackend(server.url, "m", small_model.tokenizer, timeout=5, retries=2, backoff=0.05)
        cont = backend.generate([_request(backend, n=1)])[0]
    assert len(handler.calls) == 2
    body = handler.calls[-1]
    assert body["prompt"] == small_model.tokenizer.encode("Say hello:", add_special_tokens=False)
    assert body["logprobs"] == 5 and body["temperature"] == 0.0 and body["stop"] == ["</Output>"]
    assert body["model"] == "m" and body["max_tokens"] == 1
    [tok] = cont.tokens
    assert tok.token_id == small_model.tokenizer.encode("Hello", add_special_tokens=False)[0]
    assert tok.confidence == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.5)))
    assert cont.finish == "length"


def test_unreachable_server_names_the_url(small_model):
    url = f"http://{HOST}:{_free_port()}/v1"
    backend = OpenAIBackend(url, "m", small_model.tokenizer, timeout=2, retries=1, backoff=0.05)
    with pytest.raises(TranslatorError, match="unreachable") as info:
        backend.generate([_request(backend)])
    assert url in str(info.value)


def test_token_strings_of_split_characters_are_retokenized(small_model):
    """A server that reports token text only (llama-cpp-python) gives "" for the bytes of a character split
    over several tokens; the ids are recovered from the text, with the scores position by position."""
    tok = small_model.tokenizer
    text = "I 爱 you"
    ids = tok.encode(text, add_special_tokens=False)
    pieces = [tok.decode(ids[: k + 1]).replace("\ufffd", "") for k in range(len(ids))]
    texts = [p[len(q):] for p, q in zip(pieces, [""] + pieces[:-1])]
    offsets = [len(q) for q in [""] + pieces[:-1]]
    assert "" in texts  # the character is split over several tokens
    lps = [-0.1 * (k + 1) for k in range(len(ids))]
    payload = {"choices": [{"text": text, "index": 0, "finish_reason": "length", "logprobs": {
        "tokens": texts, "text_offset": offsets, "token_logprobs": lps,
        "top_logprobs": [{t or "?": lp, "zzz": -9.0} for t, lp in zip(texts, lps)]}}]}
    with _Server(_handler(lambda body, n: (200, payload))) as server:
        backend = OpenAIBackend(server.url, "m", tok, timeout=5)
        cont = backend.generate([_request(backend, n=len(ids))])[0]
    assert [t.token_id for t in cont.tokens] == ids
    assert [t.logprob for t in cont.tokens] == lps
    assert backend.decode([t.token_id for t in cont.tokens]) == text
