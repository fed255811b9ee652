"""Speed of the tree search against plain greedy decoding, measured side by side in one process.

    python -m eval.speed [--model SPEC] [--rollouts 8] [--out eval/results/speed]
    python -m eval.speed --versus-llama-server [--sentences 1 --rollouts 4 ...]
    python -m eval.speed --engines [--threads 1 --rollouts 16 --children 4 --parallel 4 ...]
    python -m eval.speed --prompt-head [--strategy direct|cot --rounds 2 --threads 1]

Figures (all from this one run, same model, same sentences):
- ``greedy_tokens_per_s``: transformers' own ``generate`` (greedy, one sequence) on the cot prompt;
- ``mcts_tree_tokens_per_s``: unique tokens in the final trees / search wall time;
- ``prefill_tokens_recomputed``: prompt or path tokens run through the model more than once (target 0);
- ``naive_over_fast_time``: the same searches with KV-cache reuse and batching off, time ratio;
- ``peak_rss_mb``: the process's peak resident memory, and the peak KV bytes the search kept.

``--versus-llama-server`` instead runs the same search (same options, seeds and sentences) in process and
through llama-cpp-python's server on the same GGUF file with the same thread count, one after the other,
and reports generated tokens/s of both (``ServerSpeedReport``). It needs a registry model or a GGUF path.

``--prompt-head`` decodes one batch of 8 segment prompts (16 greedy tokens each) with and without the
shared prompt head (``Backend.start``), in alternating rounds on one backend (``HeadReport``): time,
tokens run through the model, and whether the decoded tokens are the same.

``--engines`` compares the two in-process backends on the same GGUF and thread count (``EngineReport``):
single-stream greedy tokens/s of the llama.cpp backend, of ``llama_cpp.Llama.create_completion`` (no
log-probs) and of the transformers backend, taken in alternating rounds, from a cold prompt and from a
prompt whose shared head was computed before (as in a batch run or a warm start); the same mcts search on both
(tree tokens/s, prefix tokens recomputed, peak RSS: the llama.cpp search runs first, so its peak is read
before transformers is loaded); and, in fresh processes, the llama.cpp path's first run with an empty
cache (assemble + verify the GGUF, build the tokenizer: time and peak memory) and the warm time to first
token of ``marco-translate --backend llama-cpp``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

CPU_FLAGS_OF_NOTE = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}
WARM_STARTS = 3  # timed warm starts per thread setting; the report keeps the median

SENTENCES = (
    ("这双鞋给人一种踩屎感，穿一整天都不累。", "zh", "en"),
    ("打工人的日常：上班摸鱼，下班躺平。", "zh", "en"),
    ("That movie was mid, no cap.", "en", "zh"),
)


@dataclass
class SpeedReport:
    model: str
    device: str
    torch_threads: int
    sentences: int
    search: dict
    greedy_tokens: int
    greedy_seconds: float
    greedy_tokens_per_s: float
    mcts_tree_tokens: int
    mcts_seconds: float
    mcts_tree_tokens_per_s: float
    mcts_generated_tokens: int
    prefill_tokens_recomputed: int
    naive_seconds: float
    naive_prefill_tokens_recomputed: int
    naive_over_fast_time: float
    same_translations_naive_vs_fast: int
    tree_over_greedy_tokens_per_s: float
    peak_kv_cache_mb: float
    peak_rss_mb: float


def _greedy(loaded, prompts: list[str], max_new_tokens: int) -> tuple[int, float]:
    tok, model = loaded.tokenizer, loaded.model
    total, start = 0, time.perf_counter()
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(model.device)
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=loaded.stop_token_ids, pad_token_id=loaded.stop_token_ids[0])
        total += out.shape[1] - ids.shape[1]
    return total, time.perf_counter() - start


def _search(backend, requests, options) -> tuple[list, float]:
    from translator.strategies import STRATEGIES, make_config

    strategy = STRATEGIES["mcts"](backend, make_config("mcts", options))
    start = time.perf_counter()
    results = strategy.translate(requests)
    return results, time.perf_counter() - start


def run(model: str | None, options: dict, greedy_tokens: int, dtype: str | None,
        sentences: tuple = SENTENCES) -> SpeedReport:
    from translator.api import make_request
    from translator.backends.transformers_backend import TransformersBackend
    from translator.models import DEFAULT_MODEL, load_model
    from translator.prompt import build_prompt

    loaded = load_model(model or DEFAULT_MODEL, dtype=dtype)
    requests = [make_request(text, src, tgt) for text, src, tgt in sentences]
    prompts = [build_prompt(loaded.tokenizer, r, reasoning=True) for r in requests]
    g_tokens, g_seconds = _greedy(loaded, prompts, greedy_tokens)

    fast = TransformersBackend(loaded)
    fast_results, fast_seconds = _search(fast, requests, options)
    naive = TransformersBackend(loaded, reuse_cache=False, batch=False)
    naive_results, naive_seconds = _search(naive, requests, options)

    tree_tokens = sum(r.tree.unique_tokens for r in fast_results)
    tree_rate = tree_tokens / fast_seconds
    greedy_rate = g_tokens / g_seconds
    return SpeedReport(
        model=loaded.name, device=str(loaded.device), torch_threads=torch.get_num_threads(), sentences=len(requests),
        search=options, greedy_tokens=g_tokens, greedy_seconds=round(g_seconds, 2),
        greedy_tokens_per_s=round(greedy_rate, 2), mcts_tree_tokens=tree_tokens, mcts_seconds=round(fast_seconds, 2),
        mcts_tree_tokens_per_s=round(tree_rate, 2),
        mcts_generated_tokens=sum(r.tokens_generated for r in fast_results),
        prefill_tokens_recomputed=sum(r.stats["recomputed_tokens"] for r in fast_results),
        naive_seconds=round(naive_seconds, 2),
        naive_prefill_tokens_recomputed=sum(r.stats["recomputed_tokens"] for r in naive_results),
        naive_over_fast_time=round(naive_seconds / fast_seconds, 2),
        same_translations_naive_vs_fast=sum(a.translation == b.translation for a, b in zip(fast_results, naive_results)),
        tree_over_greedy_tokens_per_s=round(tree_rate / greedy_rate, 2),
        peak_kv_cache_mb=round(fast.stats.peak_cache_bytes / 2**20, 1),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )


@dataclass
class ServerSpeedReport:
    model: str
    gguf: str
    threads: int
    sentences: int
    search: dict
    inprocess_seconds: float
    inprocess_generated_tokens: int
    inprocess_tokens_per_s: float
    inprocess_tree_tokens_per_s: float
    server_seconds: float
    server_generated_tokens: int
    server_tokens_per_s: float
    server_tree_tokens_per_s: float
    server_logprobs_source: str
    server_over_inprocess_tokens_per_s: float
    same_translations: int


def run_versus_server(model: str | None, options: dict, sentences: tuple = SENTENCES) -> ServerSpeedReport:
    from translator.api import make_request
    from eval.llama_server import start_llama_server
    from translator.backends.openai_backend import OpenAIBackend
    from translator.backends.transformers_backend import TransformersBackend
    from translator.models import DEFAULT_MODEL, gguf_of, load_model

    spec = model or DEFAULT_MODEL
    gguf = gguf_of(spec)
    loaded = load_model(spec)
    requests = [make_request(text, src, tgt) for text, src, tgt in sentences]
    local_results, local_seconds = _search(TransformersBackend(loaded), requests, options)
    threads = torch.get_num_threads()
    with start_llama_server(gguf, loaded.name, n_ctx=4096, threads=threads) as server:
        backend = OpenAIBackend(server.url, server.alias, loaded.tokenizer, stop_token_ids=loaded.stop_token_ids,
                                timeout=600)
        server_results, server_seconds = _search(backend, requests, options)
        backend.close()

    def rates(results, seconds) -> tuple[int, float, float]:
        generated = sum(r.tokens_generated for r in results)
        return generated, generated / seconds, sum(r.tree.unique_tokens for r in results) / seconds

    local_tokens, local_rate, local_tree = rates(local_results, local_seconds)
    server_tokens, server_rate, server_tree = rates(server_results, server_seconds)
    return ServerSpeedReport(
        model=loaded.name, gguf=str(gguf), threads=threads, sentences=len(requests), search=options,
        inprocess_seconds=round(local_seconds, 2), inprocess_generated_tokens=local_tokens,
        inprocess_tokens_per_s=round(local_rate, 2), inprocess_tree_tokens_per_s=round(local_tree, 2),
        server_seconds=round(server_seconds, 2), server_generated_tokens=server_tokens,
        server_tokens_per_s=round(server_rate, 2), server_tree_tokens_per_s=round(server_tree, 2),
        server_logprobs_source=server_results[0].logprobs_source,
        server_over_inprocess_tokens_per_s=round(server_rate / local_rate, 2),
        same_translations=sum(a.translation == b.translation for a, b in zip(local_results, server_results)),
    )


@dataclass
class EngineReport:
    model: str
    gguf: str
    threads: int
    machine_note: str
    load_average_before: list[float]
    load_average_after: list[float]
    greedy_new_tokens: int
    greedy_rounds: int
    llama_backend_greedy_tokens_per_s: float
    create_completion_greedy_tokens_per_s: float
    transformers_backend_greedy_tokens_per_s: float
    greedy_llama_over_create_completion: float
    greedy_llama_over_transformers: float
    # the same runs without their prefill: tokens after the first / time after the first token
    llama_backend_decode_tokens_per_s: float
    create_completion_decode_tokens_per_s: float
    transformers_backend_decode_tokens_per_s: float
    decode_llama_over_create_completion: float
    decode_llama_over_transformers: float
    # mean time to the first token of the greedy prompt, model loaded (prefill and one step)
    llama_backend_prompt_first_token_s: float
    create_completion_prompt_first_token_s: float
    transformers_backend_prompt_first_token_s: float
    # the same prompt with its shared head computed before (``_greedy_backend``): how a batch run's segments
    # and a warm start run; create_completion reuses the matching prefix of its previous call
    prompt_tokens: int
    head_tokens: int
    llama_backend_warm_head_greedy_tokens_per_s: float
    create_completion_warm_head_greedy_tokens_per_s: float
    transformers_backend_warm_head_greedy_tokens_per_s: float
    warm_head_llama_over_create_completion: float
    warm_head_llama_over_transformers: float
    llama_backend_warm_head_first_token_s: float
    create_completion_warm_head_first_token_s: float
    transformers_backend_warm_head_first_token_s: float
    search: dict
    llama_mcts_tree_tokens: int
    llama_mcts_seconds: float
    llama_mcts_tree_tokens_per_s: float
    llama_prefill_tokens_recomputed: int
    llama_peak_rss_mb: float
    transformers_mcts_tree_tokens: int
    transformers_mcts_seconds: float
    transformers_mcts_tree_tokens_per_s: float
    transformers_prefill_tokens_recomputed: int
    transformers_peak_rss_mb: float
    mcts_llama_over_transformers: float
    llama_load_seconds: float
    first_run_seconds: float
    first_run_peak_rss_mb: float
    warm_time_to_first_token_s: float  # with --threads as given to this run (median of WARM_STARTS)
    warm_time_to_first_token_default_threads_s: float  # with no --threads (default_threads; median)
    default_threads: int


@dataclass
class GreedyRun:
    """One single-stream greedy decode: a cold run prefills the whole prompt, a warm-head run the prompt
    after its shared head, alike for every engine (a cache only one engine kept would flatter it)."""

    tokens: int
    seconds: float  # end to end: prefill and every token
    first_token_seconds: float  # prefill and the first token

    @property
    def decode_seconds(self) -> float:
        return self.seconds - self.first_token_seconds


def _greedy_backend(backend, prompt: str, max_new_tokens: int, head_from: str | None = None) -> GreedyRun:
    """Cold (``head_from`` None): the whole prompt is prefilled. Warm head: ``head_from``, another segment's
    prompt of the same kind, is decoded for one token first, untimed, which computes the shared prompt head
    (``prompt_head``); the timed prompt then prefills only its own tokens, as every segment of a batch run
    and every warm start (head store) does."""
    from translator.backends.base import GenRequest
    from translator.prompt import prompt_head

    first: list[float] = []

    def on_tokens(_tokens) -> None:
        if not first:
            first.append(time.perf_counter())

    if head_from is None:
        state = backend.start(prompt)
    else:
        backend.generate([GenRequest(backend.start(head_from, head=prompt_head(head_from)), 1)])
        state = backend.start(prompt, head=prompt_head(prompt))
    start = time.perf_counter()
    cont = backend.generate([GenRequest(state, max_new_tokens, on_tokens=on_tokens)])[0]
    end = time.perf_counter()
    return GreedyRun(len(cont.tokens), end - start, (first[0] if first else end) - start)


def _fresh_process(code: str, env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``python -c code`` in a new process. The peak is the child's own
    VmHWM: ``RUSAGE_CHILDREN`` would count the parent's memory, which the child holds until its exec."""
    import subprocess
    import sys

    report = "\nprint(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code + report], check=True, env={**os.environ, **(env or {})},
                         stdout=subprocess.PIPE, text=True).stdout
    seconds = time.perf_counter() - start
    return seconds, int(out.split()[-1]) / 1024


def run_engines(model: str | None, options: dict, greedy_tokens: int, threads: int, rounds: int = 2,
                sentences: tuple = SENTENCES) -> EngineReport:
    import tempfile

    from llama_cpp import Llama

    from eval.llama_server import use_backend_model_params
    from translator.api import make_request
    from translator.backends.llama_cpp_backend import open_llama_cpp
    from translator.backends.transformers_backend import TransformersBackend
    from translator.cpu_cores import physical_cores
    from translator.models import load_model
    from translator.prompt import build_prompt, prompt_head
    from translator.registry import DEFAULT_MODEL, gguf_of

    spec = model or DEFAULT_MODEL
    gguf = gguf_of(spec)
    load_before = list(os.getloadavg())
    requests = [make_request(text, src, tgt) for text, src, tgt in sentences]

    started = time.perf_counter()
    llama = open_llama_cpp(spec, threads=threads)
    llama_load = time.perf_counter() - started
    llama_results, llama_seconds = _search(llama, requests, options)
    llama_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    prompt = build_prompt(llama.tokenizer, requests[0], reasoning=True)
    prompt_ids = llama.tokenizer.encode(prompt, add_special_tokens=False)
    # the warm-head rounds' untimed first prompt: the same kind and length, a segment that shares no token
    # with this one (its text reversed), so only the head is common to both
    head_from = build_prompt(llama.tokenizer, make_request(requests[0].text[::-1], requests[0].src,
                                                           requests[0].tgt), reasoning=True)
    assert prompt[:prompt_head(prompt)] == head_from[:prompt_head(head_from)], "the two prompts share no head"
    head_from_ids = llama.tokenizer.encode(head_from, add_special_tokens=False)
    head_tokens = llama.start(prompt, head=prompt_head(prompt)).parent.end
    use_backend_model_params()
    own = Llama(str(gguf), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False)
    rates: dict[str, list[GreedyRun]] = {f"{engine}{kind}": [] for engine in ("llama", "completion", "transformers")
                                         for kind in ("", "-warm-head")}

    def completion(warm_head: bool = False) -> GreedyRun:
        # Llama keeps the KV of its last call and skips the matching prompt prefix: reset, so that every
        # round prefills the prompt as the backends do (before, a second round skipped it); for a warm
        # head, an untimed one-token call on the other segment's prompt leaves its head to be reused
        own.reset()
        if warm_head:
            for _ in own.create_completion(head_from_ids, max_tokens=1, temperature=0.0, top_k=1, stream=True):
                pass
        start = time.perf_counter()
        first, tokens = None, 0
        for chunk in own.create_completion(prompt_ids, max_tokens=greedy_tokens, temperature=0.0, top_k=1,
                                           stream=True):
            if chunk["choices"][0]["finish_reason"] is None:  # one chunk per token, then an empty last one
                tokens += 1
                first = first or time.perf_counter()
        end = time.perf_counter()
        return GreedyRun(tokens, end - start, (first or end) - start)

    for _ in range(rounds):
        rates["llama"].append(_greedy_backend(llama, prompt, greedy_tokens))
        rates["completion"].append(completion())
        rates["llama-warm-head"].append(_greedy_backend(llama, prompt, greedy_tokens, head_from))
        rates["completion-warm-head"].append(completion(warm_head=True))
    own.close()  # frees its model before transformers loads

    import torch

    torch.set_num_threads(threads)
    loaded = load_model(spec)
    hf = TransformersBackend(loaded)
    hf_results, hf_seconds = _search(hf, requests, options)
    hf_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(rounds):
        rates["transformers"].append(_greedy_backend(hf, prompt, greedy_tokens))
        rates["llama"].append(_greedy_backend(llama, prompt, greedy_tokens))
        rates["transformers-warm-head"].append(_greedy_backend(hf, prompt, greedy_tokens, head_from))
        rates["llama-warm-head"].append(_greedy_backend(llama, prompt, greedy_tokens, head_from))
    load_after = list(os.getloadavg())

    def rate(name: str) -> float:
        return sum(r.tokens for r in rates[name]) / sum(r.seconds for r in rates[name])

    def decode_rate(name: str) -> float:
        return sum(r.tokens - 1 for r in rates[name]) / sum(r.decode_seconds for r in rates[name])

    def first_token(name: str) -> float:
        return sum(r.first_token_seconds for r in rates[name]) / len(rates[name])

    def tree(results) -> int:
        return sum(r.tree.unique_tokens for r in results)

    with tempfile.TemporaryDirectory(prefix="marco-first-run-") as empty:
        first = ("from translator.backends import open_backend\n"
                 "from translator.backends.base import GenRequest\n"
                 f"b = open_backend({spec!r}, backend='llama-cpp', threads={threads})\n"
                 "b.generate([GenRequest(b.start('Hello'), 1)])\n")
        first_seconds, first_rss = _fresh_process(first, {"MARCO_TRANSLATE_CACHE": empty})
    warm = ("from translator.cli import main\n"
            f"assert main(['--backend', 'llama-cpp', '--model', {spec!r}{{}}, '--quiet', "
            "'--strategy', 'direct', '--max-new-tokens', '1', '这双鞋给人一种踩屎感。']) in (0, 1)")
    _fresh_process(warm.format(""))  # warm: every cache filled, the prompt head's KV in the head store too
    starts: dict[str, list[float]] = {f", '--threads', '{threads}'": [], "": []}  # "": the default threads
    for _ in range(WARM_STARTS):  # alternating: a 3 s process varies by +-0.3 s from one start to the next
        for flag, seconds in starts.items():
            seconds.append(_fresh_process(warm.format(flag))[0])
    warm_seconds, warm_default_seconds = (statistics.median(v) for v in starts.values())
    llama_rate, hf_rate = tree(llama_results) / llama_seconds, tree(hf_results) / hf_seconds
    return EngineReport(
        model=llama.name, gguf=str(gguf), threads=threads,
        machine_note=f"{os.cpu_count()} CPUs; one process, one run; the load averages say what else ran",
        load_average_before=[round(x, 2) for x in load_before], load_average_after=[round(x, 2) for x in load_after],
        greedy_new_tokens=greedy_tokens, greedy_rounds=rounds,
        llama_backend_greedy_tokens_per_s=round(rate("llama"), 2),
        create_completion_greedy_tokens_per_s=round(rate("completion"), 2),
        transformers_backend_greedy_tokens_per_s=round(rate("transformers"), 2),
        greedy_llama_over_create_completion=round(rate("llama") / rate("completion"), 2),
        greedy_llama_over_transformers=round(rate("llama") / rate("transformers"), 2),
        llama_backend_decode_tokens_per_s=round(decode_rate("llama"), 2),
        create_completion_decode_tokens_per_s=round(decode_rate("completion"), 2),
        transformers_backend_decode_tokens_per_s=round(decode_rate("transformers"), 2),
        decode_llama_over_create_completion=round(decode_rate("llama") / decode_rate("completion"), 2),
        decode_llama_over_transformers=round(decode_rate("llama") / decode_rate("transformers"), 2),
        llama_backend_prompt_first_token_s=round(first_token("llama"), 2),
        create_completion_prompt_first_token_s=round(first_token("completion"), 2),
        transformers_backend_prompt_first_token_s=round(first_token("transformers"), 2),
        prompt_tokens=len(prompt_ids), head_tokens=head_tokens,
        llama_backend_warm_head_greedy_tokens_per_s=round(rate("llama-warm-head"), 2),
        create_completion_warm_head_greedy_tokens_per_s=round(rate("completion-warm-head"), 2),
        transformers_backend_warm_head_greedy_tokens_per_s=round(rate("transformers-warm-head"), 2),
        warm_head_llama_over_create_completion=round(rate("llama-warm-head") / rate("completion-warm-head"), 2),
        warm_head_llama_over_transformers=round(rate("llama-warm-head") / rate("transformers-warm-head"), 2),
        llama_backend_warm_head_first_token_s=round(first_token("llama-warm-head"), 2),
        create_completion_warm_head_first_token_s=round(first_token("completion-warm-head"), 2),
        transformers_backend_warm_head_first_token_s=round(first_token("transformers-warm-head"), 2),
        search=options, llama_mcts_tree_tokens=tree(llama_results), llama_mcts_seconds=round(llama_seconds, 2),
        llama_mcts_tree_tokens_per_s=round(llama_rate, 2),
        llama_prefill_tokens_recomputed=sum(r.stats["recomputed_tokens"] for r in llama_results),
        llama_peak_rss_mb=round(llama_rss, 1),
        transformers_mcts_tree_tokens=tree(hf_results), transformers_mcts_seconds=round(hf_seconds, 2),
        transformers_mcts_tree_tokens_per_s=round(hf_rate, 2),
        transformers_prefill_tokens_recomputed=sum(r.stats["recomputed_tokens"] for r in hf_results),
        transformers_peak_rss_mb=round(hf_rss, 1), mcts_llama_over_transformers=round(llama_rate / hf_rate, 2),
        llama_load_seconds=round(llama_load, 2), first_run_seconds=round(first_seconds, 1),
        first_run_peak_rss_mb=round(first_rss, 1), warm_time_to_first_token_s=round(warm_seconds, 2),
        warm_time_to_first_token_default_threads_s=round(warm_default_seconds, 2), default_threads=physical_cores(),
    )


@dataclass
class HeadReport:
    """The same batch of segment prompts decoded greedily with and without the shared prompt head."""

    model: str
    backend: str
    threads: int
    strategy: str
    segments: int
    new_tokens: int
    rounds: int
    load_average_before: list[float]
    load_average_after: list[float]
    prompt_tokens_per_segment: float
    head_tokens: int
    forwarded_tokens_without_head: int
    forwarded_tokens_with_head: int
    seconds_without_head: float
    seconds_with_head: float
    without_over_with_time: float
    # segments decoded to the same tokens both ways (llama.cpp's kernels differ a little with the batch's
    # shape, as between batched and single-row decoding, so a close greedy choice can flip)
    same_segments: int


HEAD_TEXTS = (  # colloquial lines written for this measurement (not from any evaluation set)
    "这家店的奶茶真的绝了，排队一小时也值。", "他又在朋友圈凡尔赛了，说自己只考了全班第二。",
    "周一早上的地铁挤得像沙丁鱼罐头。", "老板画的饼我已经吃不下了。",
    "这部剧的结局太离谱了，编剧出来挨打。", "我们几个周末去露营，顺便拍点照片发小红书。",
    "他说话总是阴阳怪气的，听着就累。", "考试前一晚才开始复习，主打一个心态稳。",
)


def run_prompt_head(model: str | None, threads: int, strategy: str, new_tokens: int, rounds: int) -> HeadReport:
    """Alternating rounds on one backend: the batch's prompts started as whole prompts, then with their
    shared head (kept heads dropped first, so each round computes its head once, as a run does)."""

    from translator.api import make_request
    from translator.backends import open_backend
    from translator.backends.base import GenRequest
    from translator.prompt import build_prompt, prompt_head
    from translator.registry import DEFAULT_MODEL
    from translator.strategies import STRATEGIES

    spec = model or DEFAULT_MODEL
    backend = open_backend(spec, threads=threads)
    if getattr(backend, "head_store", None):
        backend.head_store = None  # measured here: a head computed once per run, not read from disk
    reasoning = STRATEGIES[strategy].reasoning
    prompts = [build_prompt(backend.tokenizer, make_request(t, "zh", "en"), reasoning=reasoning) for t in HEAD_TEXTS]
    load_before = list(os.getloadavg())
    figures: dict[bool, list[tuple[int, float, list]]] = {False: [], True: []}
    for _ in range(rounds):
        for shared in (False, True):
            backend.__dict__.pop("_heads", None)
            states = [backend.start(p, head=prompt_head(p) if shared else 0) for p in prompts]
            before = backend.stats.forwarded_tokens
            start = time.perf_counter()
            out = backend.generate([GenRequest(s, new_tokens) for s in states])
            figures[shared].append((backend.stats.forwarded_tokens - before, time.perf_counter() - start,
                                    [[t.token_id for t in c.tokens] for c in out]))
    head = backend.start(prompts[0], head=prompt_head(prompts[0])).parent
    seconds = {k: sum(t for _, t, _ in v) / rounds for k, v in figures.items()}
    return HeadReport(
        model=backend.name, backend=type(backend).__name__, threads=threads, strategy=strategy,
        segments=len(prompts), new_tokens=new_tokens, rounds=rounds,
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in os.getloadavg()],
        prompt_tokens_per_segment=round(sum(len(backend.tokenizer.encode(p, add_special_tokens=False))
                                            for p in prompts) / len(prompts), 1),
        head_tokens=head.end if head is not None else 0,
        forwarded_tokens_without_head=figures[False][0][0], forwarded_tokens_with_head=figures[True][0][0],
        seconds_without_head=round(seconds[False], 2), seconds_with_head=round(seconds[True], 2),
        without_over_with_time=round(seconds[False] / seconds[True], 2),
        same_segments=min(sum(x == y for x, y in zip(a[2], b[2])) for a, b in zip(figures[False], figures[True])),
    )


def format_table(report: SpeedReport | ServerSpeedReport | EngineReport | HeadReport) -> str:
    rows = [(k, v) for k, v in asdict(report).items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {json.dumps(v, ensure_ascii=False)} |" for k, v in rows)


def cpu_description() -> dict[str, Any]:
    """The CPU's model name and the vector extensions that decide which kernels run: the engines' ratios
    differ from one CPU to another (torch's bf16 matmuls use AMX where there is one, llama.cpp's Q4_K
    kernels do not), so a speed report names its CPU."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cpu_model": platform.processor() or None, "cpu_flags": []}
    fields = dict(line.split(":", 1) for line in info.split("\n\n", 1)[0].splitlines() if ":" in line)
    model = next((v.strip() for k, v in fields.items() if k.strip() == "model name"), None)
    flags = {f for k, v in fields.items() if k.strip() == "flags" for f in v.split()}
    return {"cpu_model": model, "cpu_flags": sorted(flags & CPU_FLAGS_OF_NOTE)}


def machine_description() -> dict[str, Any]:
    """What a speed report's JSON says of the machine beside its figures (not in its table)."""
    return {"machine": platform.machine(), **cpu_description(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.speed", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--granularity", default="mini-32")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--greedy-tokens", type=int, default=128)
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="how many of the fixed sentences")
    parser.add_argument("--versus-llama-server", action="store_true",
                        help="compare the search in process with the same search through llama-cpp-python's server")
    parser.add_argument("--engines", action="store_true",
                        help="compare the llama.cpp and transformers backends (and create_completion) side by side")
    parser.add_argument("--prompt-head", action="store_true",
                        help="decode one batch of segment prompts with and without the shared prompt head")
    parser.add_argument("--strategy", default="direct", help="with --prompt-head: whose prompt (direct or cot)")
    parser.add_argument("--rounds", type=int, default=2, help="with --prompt-head: alternating rounds")
    parser.add_argument("--threads", type=int, default=1,
                        help="with --engines or --prompt-head: threads for every engine (default 1)")
    parser.add_argument("--out", type=Path, default=Path("eval/results/speed"))
    args = parser.parse_args(argv)
    # fallback off and the paper's selection: the figures are the search's own (a search without an answer,
    # or the default selection's direct candidate, would add a direct decode)
    options = dict(rollouts=args.rollouts, children=args.children, parallel=args.parallel,
                   granularity=args.granularity, max_new_tokens=args.max_new_tokens, seed=0, fallback=False,
                   select="visits")
    if args.prompt_head:
        report = run_prompt_head(args.model, args.threads, args.strategy, 16, args.rounds)
        name = f"speed-prompt-head-{args.strategy}"
    elif args.engines:
        report = run_engines(args.model, options, args.greedy_tokens, args.threads, sentences=SENTENCES[: args.sentences])
        name = "speed-engines"
    elif args.versus_llama_server:
        report, name = run_versus_server(args.model, options, SENTENCES[: args.sentences]), "speed-llama-server"
    else:
        report, name = run(args.model, options, args.greedy_tokens, args.dtype, SENTENCES[: args.sentences]), "speed"
    table = format_table(report)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps({**asdict(report), **machine_description()}, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
