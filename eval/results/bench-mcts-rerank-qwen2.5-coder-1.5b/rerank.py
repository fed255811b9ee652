"""Choose again among the candidates a benchmark's search already produced, with other rewards.

Reads an ``mcts`` bench journal (every tree with every finished draft) and the ``direct`` journal of the
same run, rebuilds each segment's candidates (the tree's terminal translations and the direct translation,
as ``--select-with-direct`` offers them), scores them with each reward named, picks each reward's best
(ties go to the direct translation, listed first) and compares the picks with direct by paired bootstrap;
``consensus@bleu`` is consensus with another utility (``translator.utility``).
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
from translator.batch_journal import read_journal
from translator.languages import resolve_language
from translator.options import add_model_options, build_translator
from translator.prompt import Hint, TranslationRequest
from translator.result import TranslationResult
from translator.errors import InputError
from translator.rewards import RewardContext, RolloutPath, make_reward, reward_configs
from translator.strategies.mcts import parse_path

METRICS = "bleu,chrf,semsim"


def results(path: Path) -> dict[int, TranslationResult]:
    """A journal's results by segment index."""
    return {i: TranslationResult.from_dict(e["record"]["result"]) for i, e in read_journal(path)[1].items()}


def terminal_translations(result: TranslationResult, hints: list[Hint]) -> list[str]:
    """Each finished path's translation, parsed from the saved tree as the search parsed it."""
    out = []
    for node in result.tree.nodes:
        if not node.terminal:
            continue
        translation = parse_path(result.tree.path(node.id), lambda part: "".join(n.text for n in part), hints,
                                 chinese_target=result.tgt_lang == "zh")[1].translation
        if translation.strip():
            out.append(translation)
    return out


def mean_length(texts: list[str], tgt: str) -> float:
    """Words a segment (characters for Chinese, written without spaces)."""
    return sum(len(t.replace(" ", "")) if tgt == "zh" else len(t.split()) for t in texts) / len(texts)


def deltas(tests) -> dict:
    """``compare``'s paired tests as JSON figures."""
    return {c.metric: ({"system": c.test.system.score, "baseline": c.test.baseline.score, "delta": c.test.delta,
                        "p": c.test.p_value} if c.test else {"skipped": c.skipped}) for c in tests}


def reward_options(rule: str) -> tuple[str, dict | None]:
    """``name`` or ``name@utility``: the reward's name and the options giving its consensus part that utility."""
    name, _, mbr_utility = rule.partition("@")
    return name, {"mbr_utility": mbr_utility} if mbr_utility else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--mcts", type=Path, required=True)
    p.add_argument("--direct", type=Path, required=True)
    p.add_argument("--rewards", default="consensus,logprob,channel,channel+consensus,logprob+channel",
                   help="reward names; name@bleu gives a consensus part the BLEU utility (translator.utility)")
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    p.add_argument("--against", default=None, help="also pair every other rule with this one's picks")
    add_model_options(p)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    names = args.rewards.split(",")
    if args.against and args.against not in names:
        p.error(f"--against {args.against} is not one of --rewards")
    for name in names:  # checked before the model loads (cheap: configs only)
        try:
            reward_configs(*reward_options(name))
        except InputError as e:
            p.error(f"--rewards {name}: {e}")
    testset = load_testset(args.data, limit=args.limit)
    mcts, direct = results(args.mcts), results(args.direct)
    n = len(testset)
    src, tgt = resolve_language(testset.src_lang), resolve_language(testset.tgt_lang)
    backend = build_translator(args, lexicon=False).backend
    context = RewardContext(backend)
    rewards = {}
    for rule in names:
        name, options = reward_options(rule)
        rewards[rule] = make_reward(name, context, options)
    picks: dict[str, list[str]] = {name: [] for name in names}
    pools: list[list[str]] = []  # each segment's candidates, direct first
    start = time.perf_counter()
    for i in range(n):
        hints = [Hint.from_dict(h) for h in mcts[i].hints]
        request = TranslationRequest(testset.items[i].src, src, tgt, hints=tuple(hints))
        pool = [direct[i].translation] + terminal_translations(mcts[i], hints)
        pools.append(pool)
        for name, reward in rewards.items():
            paths = [RolloutPath(request, [], t, t) for t in pool]
            values = [v.value for v in reward.score(paths)]
            for part in getattr(reward, "parts", [reward]):
                if hasattr(part, "forget"):
                    part.forget(request)
            picks[name].append(pool[max(range(len(pool)), key=lambda k: (values[k], -k))])
        print(f"{i + 1}/{n} {time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)

    refs = testset.references()
    baseline = [direct[i].translation for i in range(n)]
    report = {"data": args.data, "segments": n, "mcts_journal": str(args.mcts), "direct_journal": str(args.direct),
              "candidates_per_segment": sum(map(len, pools)) / n,
              "direct": score(baseline, refs, testset.sources, testset.tgt_lang, METRICS).to_dict(),
              "length_unit": "characters" if testset.tgt_lang == "zh" else "words",
              "length": {"direct": mean_length(baseline, testset.tgt_lang),
                         "references": mean_length(refs[0], testset.tgt_lang)}, "rules": {}}
    if "consensus" in picks:  # a check of the rebuilt candidates: the search's own mbr choice, where it ran
        searched = [mcts[i].stats.get("selections", {}).get("mbr") for i in range(n)]
        report["consensus_same_as_search_mbr"] = sum(a == b for a, b in zip(picks["consensus"], searched))
    for name in names:
        tests = compare(picks[name], baseline, refs, testset.sources, testset.tgt_lang, METRICS)
        report["rules"][name] = {
            "picked_direct": sum(a == b for a, b in zip(picks[name], baseline)),
            "length": mean_length(picks[name], testset.tgt_lang), "metrics": deltas(tests)}
        print(name, *(c.summary() for c in tests), sep="\n  ")
    if args.against:  # each other rule paired with that one's picks, not with direct
        report["against"] = {"rule": args.against, "rules": {}}
        for name in names:
            if name != args.against:
                tests = compare(picks[name], picks[args.against], refs, testset.sources, testset.tgt_lang, METRICS)
                report["against"]["rules"][name] = {
                    "same_pick": sum(a == b for a, b in zip(picks[name], picks[args.against])),
                    "metrics": deltas(tests)}
                print(f"{name} against {args.against}", *(c.summary() for c in tests), sep="\n  ")
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
