"""Which utility makes consensus agree with people: chrF or BLEU (``translator.utility``), against MQM.

The consensus reward needs no model, so this scores whole sets, not the model-bound sample of
``marco-eval rewards``: every WMT21 zh-en and TED zh-en segment of ``../shared/data/mqm``, the same
systems and the same statistics (``eval/reward_eval.py``: segment Kendall tau-b grouped by segment with a
bootstrap interval, system pairwise accuracy), plus the paired difference of the two utilities' segment
taus (bootstrap interval over the same segments). Also the first 100 / 50 segments, the sample of the
README's reward table. Writes aggregate figures only (nothing quotes the data).

    MARCO_SHARED_DATA=../shared/data python eval/results/reward-meta-eval-utility/utility.py --out FILE
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.reward_eval import bootstrap_interval, load, pairwise_accuracy, segment_taus
from translator.languages import resolve_language
from translator.prompt import TranslationRequest
from translator.rewards import RolloutPath, make_reward
from translator.utility import UTILITIES

SAMPLES = {"wmt21": (100, None), "ted": (50, None)}  # the README table's sample, then the whole set


def consensus_scores(segments, mbr_utility: str) -> list[dict[str, float]]:
    """Each segment's consensus value per system: its mean utility against the other systems' outputs."""
    reward = make_reward("consensus", options={"mbr_utility": mbr_utility})
    src, tgt = resolve_language("zh"), resolve_language("en")
    out = []
    for seg in segments:
        request = TranslationRequest(seg.source, src, tgt)
        systems = list(seg.hypotheses)
        values = reward.score([RolloutPath(request, [], seg.hypotheses[s], seg.hypotheses[s]) for s in systems])
        reward.forget(request)
        out.append({s: v.value for s, v in zip(systems, values)})
    return out


def figures(segments, values: list[dict[str, float]]) -> tuple[dict, list[float]]:
    systems = sorted(segments[0].hypotheses)
    human = [[seg.mqm[s] for s in systems] for seg in segments]
    taus = segment_taus([[v[s] for s in systems] for v in values], human)
    means = {s: sum(v[s] for v in values) / len(values) for s in systems}
    human_means = {s: sum(seg.mqm[s] for seg in segments) / len(segments) for s in systems}
    accuracy, pairs = pairwise_accuracy(means, human_means)
    return {"seg_kendall_tau_b": sum(taus) / len(taus), "seg_tau_95ci": bootstrap_interval(taus),
            "segments_in_tau": len(taus), "sys_pairwise_accuracy": accuracy, "system_pairs": pairs}, taus


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    report = {}
    for dataset, limits in SAMPLES.items():
        for limit in limits:
            segments = load(dataset, limit)
            rows, taus = {}, {}
            for name in UTILITIES:
                rows[name], taus[name] = figures(segments, consensus_scores(segments, name))
            diff = [b - c for b, c in zip(taus["bleu"], taus["chrf"])]  # the same segments for both
            key = f"{dataset}-{len(segments)}"
            report[key] = {"segments": len(segments), "systems": len(segments[0].hypotheses), "utilities": rows,
                           "bleu_minus_chrf_tau": sum(diff) / len(diff), "bleu_minus_chrf_95ci": bootstrap_interval(diff)}
            print(key, json.dumps(report[key]), file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
