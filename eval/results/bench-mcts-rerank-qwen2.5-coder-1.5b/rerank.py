"""Choose again among the candidates a benchmark's search already produced, with other rewards.

Reads an ``mcts`` bench journal (every tree with every finished draft) and the ``direct`` journal of the
same run, rebuilds each segment's candidates (the tree's terminal translations and the direct translation,
as ``--select-with-direct`` offers them), scores them with each reward named, picks each reward's best
(ties go to the direct translation, listed first) and compares the picks with direct by paired bootstrap.
No decoding: the same drafts for every rule, so the rules differ only in their choice. Writes JSON.

    python eval/results/bench-mcts-rerank-qwen2.5-coder-1.5b/rerank.py --data slang:zh-en \
        --mcts DIR/mcts_...jsonl --direct DIR/direct.jsonl --rewards consensus,logprob,channel --out FILE
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from eval.data import load_testset
from eval.scoring import compare, score
from translator.languages import resolve_language
from translator.lexicon.markup import strip_markup
from translator.options import add_model_options, build_translator
from translator.parse import parse_answer
from translator.prompt import THOUGHT_OPEN, Hint, TranslationRequest
from translator.rewards import RewardContext, RolloutPath, make_reward

METRICS = "bleu,chrf,semsim"


def results(path: Path) -> dict[int, dict]:
    """Journal records by segment index (the first line is the journal's header)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        entry = json.loads(line)
        out[entry["index"]] = entry["record"]["result"]
    return out


def hints_of(result: dict) -> tuple[Hint, ...]:
    return tuple(Hint(h["term"], tuple(h["senses"]), h["source"], h.get("note", "")) for h in result["hints"])


def terminal_translations(result: dict) -> list[str]:
    """Each finished path's translation, rebuilt from the tree as the search parsed it."""
    nodes = {n["id"]: n for n in result["tree"]["nodes"]}
    hints = hints_of(result)
    out = []
    for node in nodes.values():
        if not node["terminal"]:
            continue
        chain = []
        while node["parent"] is not None:
            chain.append(node["text"])
            node = nodes[node["parent"]]
        parsed = parse_answer(THOUGHT_OPEN + "".join(reversed(chain)))
        translation, _ = strip_markup(parsed.translation, hints, chinese_target=result["tgt_lang"] == "zh")
        if translation.strip():
            out.append(translation)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--mcts", type=Path, required=True)
    p.add_argument("--direct", type=Path, required=True)
    p.add_argument("--rewards", default="consensus,logprob,channel,channel+consensus,logprob+channel")
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    add_model_options(p)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    testset = load_testset(args.data, limit=args.limit)
    mcts, direct = results(args.mcts), results(args.direct)
    n = len(testset)
    src, tgt = resolve_language(testset.src_lang), resolve_language(testset.tgt_lang)
    backend = build_translator(args, lexicon=False).backend
    context = RewardContext(backend)
    names = args.rewards.split(",")
    rewards = {name: make_reward(name, context) for name in names}
    picks: dict[str, list[str]] = {name: [] for name in names}
    oracle_pool: list[list[str]] = []
    start = time.perf_counter()
    for i in range(n):
        res = mcts[i]
        request = TranslationRequest(testset.items[i].src, src, tgt, hints=hints_of(res))
        pool = [direct[i]["translation"]] + terminal_translations(res)
        oracle_pool.append(pool)
        for name, reward in rewards.items():
            paths = [RolloutPath(request, [], t, t) for t in pool]
            values = [v.value for v in reward.score(paths)]
            for part in getattr(reward, "parts", [reward]):
                if hasattr(part, "forget"):
                    part.forget(request)
            picks[name].append(pool[max(range(len(pool)), key=lambda k: (values[k], -k))])
        print(f"{i + 1}/{n} {time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)

    refs = testset.references()
    baseline = [direct[i]["translation"] for i in range(n)]
    report = {"data": args.data, "segments": n, "mcts_journal": str(args.mcts), "direct_journal": str(args.direct),
              "candidates_per_segment": sum(map(len, oracle_pool)) / n,
              "direct": score(baseline, refs, testset.sources, testset.tgt_lang, METRICS).to_dict(), "rules": {}}
    if "consensus" in picks:  # a check of the rebuilt candidates: the search's own mbr choice, where it ran
        searched = [mcts[i]["stats"].get("selections", {}).get("mbr") for i in range(n)]
        report["consensus_same_as_search_mbr"] = sum(a == b for a, b in zip(picks["consensus"], searched))
    for name in names:
        tests = compare(picks[name], baseline, refs, testset.sources, testset.tgt_lang, METRICS)
        report["rules"][name] = {
            "picked_direct": sum(a == b for a, b in zip(picks[name], baseline)),
            "metrics": {c.metric: ({"system": c.test.system.score, "baseline": c.test.baseline.score,
                                    "delta": c.test.delta, "p": c.test.p_value} if c.test else {"skipped": c.skipped})
                        for c in tests}}
        print(name, *(c.summary() for c in tests), sep="\n  ")
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
