"""Does ``--refine`` beat the same search without it, on the segments both runs decoded?

The search without refine was decoded by the benchmark grid (``bench-mcts-grid-qwen2.5-coder-1.5b``, slang
zh-en, all 97 segments) with earlier code, so the benchmark would not resume its journal beside this run's;
both runs used the same settings (4 rollouts, the consensus reward, mbr with the direct candidate, notes,
script guard, threads 1, batch 8). This script pairs the first N segments of both (N = what this run
decoded), checks that their `direct` rows translated alike, and tests each selection rule of the refine run
against the same rule of the run without it (``eval.scoring.compare``: paired bootstrap, 1,000 resamples).
Run from the repository root:

    python eval/results/bench-mcts-refine-full-qwen2.5-coder-1.5b/refine_vs_search.py

It prints the table and writes refine_vs_search.json beside itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from eval.data import load_testset
from eval.scoring import compare
from translator.batch_journal import read_journal

HERE = Path(__file__).resolve().parent
GRID = HERE.parent / "bench-mcts-grid-qwen2.5-coder-1.5b" / "slang-zh-en" / "slang_zh-en"
RUN = HERE / "slang-zh-en" / "slang_zh-en"
SEARCH = "mcts_rollouts=4_select=mbr_select_with_direct=true"
RULES = ("mbr", "visits", "reward")
METRICS = ("bleu", "chrf", "semsim")


def records(path: Path) -> dict[int, dict]:
    """The results of a benchmark journal by segment index."""
    return {i: entry["record"]["result"] for i, entry in read_journal(path)[1].items()}


def main() -> None:
    refined = records(RUN / f"{SEARCH}_refine=true.jsonl")
    n = next(i for i in range(len(refined) + 1) if i not in refined)  # the decoded prefix
    plain = records(GRID / f"{SEARCH}.jsonl")
    direct_here, direct_grid = records(RUN / "direct.jsonl"), records(GRID / "direct.jsonl")
    same_direct = sum(direct_here[i]["translation"] == direct_grid[i]["translation"] for i in range(n))
    testset = load_testset("slang:zh-en", limit=n)
    refs, srcs = testset.references(), testset.sources
    report = {"segments": n, "direct_identical": same_direct, "rules": {}}
    print(f"{n} segments; direct translated alike in both runs on {same_direct} of them\n")
    print("| rule | metric | without refine | with refine | delta | p |")
    print("|---|---|---:|---:|---:|---:|")
    for rule in RULES:
        base = [plain[i]["stats"]["selections"][rule] for i in range(n)]
        system = [refined[i]["stats"]["selections"][rule] for i in range(n)]
        same = sum(a == b for a, b in zip(base, system))
        report["rules"][rule] = {"picked_the_same": same, "metrics": {}}
        for c in compare(system, base, refs, srcs, "en", list(METRICS)):
            t = c.test
            report["rules"][rule]["metrics"][c.metric] = {
                "baseline": t.baseline.score, "system": t.system.score, "delta": t.delta, "p": t.p_value,
                "signature": t.signature}
            star = "*" if t.significant() else ""
            print(f"| {rule} (same pick on {same}) | {c.label} | {t.baseline.score:.4g} | {t.system.score:.4g} | {t.delta:+.4g} | "
                  f"{t.p_value:.3f}{star} |")
    (HERE / "refine_vs_search.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
