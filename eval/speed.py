"""Speed of the tree search against plain greedy decoding, measured side by side in one process.

    python -m eval.speed [--model SPEC] [--rollouts 8] [--out eval/results/speed]
    python -m eval.speed --versus-llama-server [--sentences 1 --rollouts 4 ...]

Figures (all from this one run, same model, same sentences):
- ``greedy_tokens_per_s``: transformers' own ``generate`` (greedy, one sequence) on the cot prompt;
- ``mcts_tree_tokens_per_s``: unique tokens in the final trees / search wall time;
- ``prefill_tokens_recomputed``: prompt or path tokens run through the model more than once (target 0);
- ``naive_over_fast_time``: the same searches with KV-cache reuse and batching off, time ratio;
- ``peak_rss_mb``: the process's peak resident memory, and the peak KV bytes the search kept.

``--versus-llama-server`` instead runs the same search (same options, seeds and sentences) in process and
through llama-cpp-python's server on the same GGUF file with the same thread count, one after the other,
and reports generated tokens/s of both (``ServerSpeedReport``). It needs a registry model or a GGUF path.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

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
    from translator.backends.llama_server import start_llama_server
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


def format_table(report: SpeedReport | ServerSpeedReport) -> str:
    rows = [(k, v) for k, v in asdict(report).items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {json.dumps(v, ensure_ascii=False)} |" for k, v in rows)


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
    parser.add_argument("--out", type=Path, default=Path("eval/results/speed"))
    args = parser.parse_args(argv)
    options = dict(rollouts=args.rollouts, children=args.children, parallel=args.parallel,
                   granularity=args.granularity, max_new_tokens=args.max_new_tokens, seed=0)
    if args.versus_llama_server:
        report, name = run_versus_server(args.model, options, SENTENCES[: args.sentences]), "speed-llama-server"
    else:
        report, name = run(args.model, options, args.greedy_tokens, args.dtype, SENTENCES[: args.sentences]), "speed"
    table = format_table(report)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps({**asdict(report), "machine": platform.machine(),
                                                        "cpus": torch.get_num_threads()}, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
