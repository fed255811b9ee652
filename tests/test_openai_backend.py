"""The HTTP backend against a real OpenAI-compatible server (llama-cpp-python's, on 127.0.0.1), plus
fault cases against tiny local servers. No mocks: every request goes over a loopback socket.

The real-server tests skip when ``llama_cpp`` is not installed; CI installs it with
``pip install 'llama-cpp-python[server]==0.3.36'`` (builds from source, ~4-5 min on 2 cores).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from translator.actions import Chunking
from translator.api import Translator, make_request
from translator.backends import open_backend
from translator.backends.base import STOP, GenRequest, Sampling
from eval.llama_server import HOST, LlamaServer, free_port, start_llama_server
from translator.backends.openai_backend import OpenAIBackend
from translator.backends.transformers_backend import TransformersBackend
from translator.errors import ModelLoadError, TranslatorError
from translator.prompt import build_prompt
from translator.result import TranslationResult
from translator.strategies import Hooks

TEXT = "我今天太累了，只想躺平。"
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


def _start_llama_server() -> LlamaServer:
    from translator.models import REGISTRY, registry_gguf

    try:
        return start_llama_server(registry_gguf(REGISTRY["smollm2-135m"]), "smollm2-135m", n_ctx=1024)
    except ModelLoadError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def llama_server():
    with _start_llama_server() as server:
        yield server.url


@pytest.fixture()
def http_backend(llama_server, small_model):
    backend = OpenAIBackend(llama_server, "smollm2-135m", small_model.tokenizer,
                            stop_token_ids=small_model.stop_token_ids, timeout=120, retries=2)
    yield backend
    backend.close()


# ----- the search through a real server ----------------------------------------------------------------


@needs_llama
def test_cot_greedy_through_server(http_backend):
    # thought_budget 0 and no fallback: one plain pass, so the tokens decode to the whole raw output (forcing
    # and the fallback are tested elsewhere)
    result = Translator(backend=http_backend).translate(TEXT, "zh", "en", strategy="cot", max_new_tokens=48,
                                                        thought_budget=0, fallback=False)
    assert result.tokens and len(result.tokens) <= 48
    assert result.logprobs_source == "server:raw"  # llama-cpp-python: log-softmax of the raw logits
    assert http_backend.decode([t.token_id for t in result.tokens]) == result.raw_output
    for t in result.tokens:
        assert 0 < t.confidence <= 1 + 1e-9
        assert len(t.top_logprobs) <= 5 and t.top_logprobs == sorted(t.top_logprobs, reverse=True)
        assert t.logprob <= t.top_logprobs[0] + 1e-6  # greedy: the chosen token is the most likely
    # Greedy is deterministic up to the server's prompt cache: the repeat runs only the last prompt token
    # again, in a batch of its own, and llama.cpp's kernels differ a little with the batch's shape, so a
    # near-tie may flip. The same tokens, or a divergence at a near-tie of the first run's.
    again = Translator(backend=http_backend).translate(TEXT, "zh", "en", strategy="cot", max_new_tokens=48,
                                                       thought_budget=0, fallback=False)
    ids_a, ids_b = [t.token_id for t in result.tokens], [t.token_id for t in again.tokens]
    same = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), None)
    if same is not None:
        first = result.tokens[same]
        alternatives = dict(zip(first.top_ids, first.top_logprobs))
        assert ids_b[same] in alternatives and first.logprob - alternatives[ids_b[same]] < 0.5, (ids_a, ids_b)
    else:
        assert ids_a == ids_b


@needs_llama
def test_small_mcts_through_server(http_backend):
    rollouts = 3
    result = Translator(backend=http_backend).translate(
        TEXT, "zh", "en", strategy="mcts", granularity="mini-32", rollouts=rollouts, children=2,
        max_new_tokens=48, seed=3, thought_budget=0, reward="confidence", fallback=False, select="visits")
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


# ----- every entry point takes a served model -----------------------------------------------------------


@needs_llama
def test_cli_translates_through_the_server(llama_server):
    out = subprocess.run([sys.executable, "-m", "translator", TEXT, "--model", f"openai:{llama_server}",
                          "--served-model", "smollm2-135m", "--strategy", "cot", "--max-new-tokens", "24", "--json",
                          "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stderr  # 1: the 135M model may not close its answer in 24 tokens
    result = TranslationResult.from_json(out.stdout)
    assert result.model == f"smollm2-135m @ {llama_server}" and len(result.tokens) <= 24


@needs_llama
def test_batch_translates_a_file_through_the_server(llama_server, tmp_path):
    from translator.batch import main as batch_main

    source = tmp_path / "in.txt"
    source.write_text(f"{TEXT}\n\n{TEXT}\n打工人\n", encoding="utf-8")
    output, trace = tmp_path / "out.txt", tmp_path / "trace.jsonl"
    argv = [str(source), "-o", str(output), "--trace", str(trace), "--model", f"openai:{llama_server}",
            "--served-model", "smollm2-135m", "--strategy", "cot", "--max-new-tokens", "16", "--quiet"]
    assert batch_main(argv) in (0, 1)
    assert len(output.read_text(encoding="utf-8").split("\n")) == 5  # four lines and the final newline
    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    served = [r for r in records if r.get("result")]
    assert served and all(r["result"]["model"] == f"smollm2-135m @ {llama_server}" for r in served)


@needs_llama
def test_bench_records_the_served_model(llama_server, tmp_path):
    from eval.cli import main as eval_main

    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps({"src": s, "refs": [r]}, ensure_ascii=False) + "\n"
                            for s, r in ((TEXT, "I'm so tired today, I just want to lie flat."),
                                         ("打工人", "wage slave"))), encoding="utf-8")
    out = tmp_path / "bench"
    argv = ["bench", "--data", f"{data}:zh-en", "--strategies", "direct:max_new_tokens=8", "--model",
            f"openai:{llama_server}", "--served-model", "smollm2-135m", "--out", str(out)]
    assert eval_main(argv) == 0
    [journal] = out.glob("*/direct*.jsonl")
    header = json.loads(journal.read_text(encoding="utf-8").splitlines()[0])
    assert header["settings"]["model"] == f"openai:{llama_server}"
    assert header["settings"]["served_model"] == "smollm2-135m"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert "--served-model smollm2-135m" in report["command"]
    assert report["model_names"] == [f"smollm2-135m @ {llama_server}"]


@needs_llama
def test_app_serves_translations_from_the_server(llama_server):
    from gradio_client import Client

    from app import main as app_main
    from app.ui import Limits, build_app

    args = app_main.build_parser().parse_args(["--model", f"openai:{llama_server}", "--served-model", "smollm2-135m"])
    models = app_main.load_models(args.model, args)
    demo = build_app(models, Limits(max_rollouts=4, max_new_tokens=32))
    try:
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        translation, trace = Client(url, verbose=False).predict(
            text=TEXT, src="zh", tgt="en", strategy="mcts", granularity="mini-32", rollouts=2, children=2,
            max_new_tokens=32, api_name="/translate")
    finally:
        demo.close()
    result = TranslationResult.from_json(trace)
    assert result.model == f"smollm2-135m @ {llama_server}" and result.translation == translation
    assert result.strategy == "mcts" and result.tree is not None and result.stats["rollouts"] == 2


@needs_llama
def test_a_model_the_server_does_not_serve_is_refused_at_start(llama_server):
    with pytest.raises(ModelLoadError, match="serves smollm2-135m, not 'qwen'"):
        open_backend(f"openai:{llama_server}", served_model="qwen", tokenizer="smollm2-135m")


def test_an_unreachable_server_fails_the_cli_at_start():
    url = f"http://{HOST}:{free_port()}/v1"
    out = subprocess.run([sys.executable, "-m", "translator", TEXT, "--model", f"openai:{url}",
                          "--served-model", "smollm2-135m", "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert f"cannot reach an OpenAI-compatible server at {url}/models" in out.stderr and "Traceback" not in out.stderr


@needs_llama
def test_server_killed_mid_search(small_model):
    with _start_llama_server() as server:
        url = server.url
        backend = OpenAIBackend(url, "smollm2-135m", small_model.tokenizer, stop_token_ids=small_model.stop_token_ids,
                                timeout=30, retries=2, backoff=0.1)
        killed = []

        def kill(progress) -> None:
            if not killed:
                server.process.kill()
                server.process.wait(10)
                killed.append(True)

        with pytest.raises(TranslatorError, match=url.replace(".", r"\.")) as info:
            Translator(backend=backend).translate(
                TEXT, "zh", "en", strategy="mcts", granularity="mini-32", rollouts=6, children=2,
                max_new_tokens=48, parallel=1, hooks=Hooks(on_progress=kill))
        assert killed, "the search ended before the server was killed"
        assert "unreachable or failing after 3 attempts" in str(info.value)  # retries=2 spent, then it gives up


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

    handler = _handler(respond)
    with _Server(handler) as server:
        backend = OpenAIBackend(server.url, "m", small_model.tokenizer, timeout=0.5, retries=2)
        with pytest.raises(TranslatorError, match="did not answer within 0.5s") as info:
            backend.generate([_request(backend)])
        assert server.url in str(info.value)
    # the token-id probe (no retries), then the request once: a timed-out generation is not retried, which
    # retries=2 would otherwise allow (it would only time out again)
    assert len(handler.calls) == 2 and handler.calls[0] == handler.calls[1]


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


def test_sampling_settings_reach_the_server(small_model):
    """A sampled request sends its temperature, top-p, top-k and min-p; a greedy one turns them all off."""
    handler = _handler(lambda body, n: (200, _completion()))
    with _Server(handler) as server:
        backend = OpenAIBackend(server.url, "m", small_model.tokenizer, timeout=5)
        root = backend.start("Say hello:")
        backend.generate([GenRequest(root, 1, Sampling(0.7, 0.9, 40, 0.1), seed=3)])
        backend.generate([GenRequest(root, 1, Sampling(0.0, 0.9, 40, 0.1))])
    sampled, greedy = handler.calls[-2:]
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"], sampled["min_p"]) == (0.7, 0.9, 40, 0.1)
    assert (greedy["temperature"], greedy["top_p"], greedy["top_k"], greedy["min_p"]) == (0.0, 1.0, 0, 0.0)


def test_unreachable_server_names_the_url(small_model):
    url = f"http://{HOST}:{free_port()}/v1"
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


@needs_llama
def test_speed_script_compares_the_server_with_the_in_process_search(tmp_path):
    from eval import speed

    assert speed.main(["--versus-llama-server", "--model", "smollm2-135m", "--sentences", "1", "--rollouts", "2",
                       "--children", "2", "--max-new-tokens", "16", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "speed-llama-server.json").read_text())
    assert report["search"]["rollouts"] == 2 and report["sentences"] == 1
    for side in ("inprocess", "server"):  # both ran the whole search: two rollouts of at most 16 tokens
        tokens, seconds, rate = (report[f"{side}_{k}"] for k in ("generated_tokens", "seconds", "tokens_per_s"))
        assert 2 <= tokens <= 32
        # seconds and rate are both rounded to 0.01: the rate must lie within what the rounding allows
        low, high = tokens / (seconds + 0.005) - 0.005, tokens / max(seconds - 0.005, 1e-9) + 0.005
        assert low - 1e-9 <= rate <= high + 1e-9
    assert report["server_logprobs_source"].startswith("server:")
    assert report["server_over_inprocess_tokens_per_s"] == pytest.approx(
        report["server_tokens_per_s"] / report["inprocess_tokens_per_s"], rel=0.02)
    machine_only = speed.machine_description().keys()  # the machine's description is in the JSON only
    assert report.keys() >= machine_only
    assert (tmp_path / "speed-llama-server.md").read_text().count("\n") == len(report) - len(machine_only)


def test_on_tokens_hears_each_reply_whole(small_model):
    handler = _handler(lambda body, n: (200, _completion()))
    with _Server(handler) as server:
        backend = OpenAIBackend(server.url, "m", small_model.tokenizer, timeout=5)
        heard = []
        request = _request(backend, n=1)
        request.on_tokens = lambda tokens: heard.append([t.token_id for t in tokens]) or STOP
        cont = backend.generate([request])[0]
    # One call with the reply's tokens; STOP comes too late to cut anything, so the server's finish stays.
    assert heard == [[t.token_id for t in cont.tokens]] and len(heard[0]) == 1
    assert cont.finish == "length"
