"""``marco-eval rewards``: do the search's rewards agree with people?

Every reward scores given (source, hypothesis) pairs, and its scores are correlated with human MQM
judgements from ``../shared/data/mqm`` (its README):

- ``wmt21``: WMT21 newstest zh-en, 8 systems x 650 segments (the human translation ``ref-A`` is left out
  as a system: it is the reference chrF and BLEU are computed against). Segments in ``seg_id`` order.
- ``ted``: TED talks zh-en, 13 system outputs x 529 segments, reference ``refB`` (the better one).

Figures, as in the WMT metrics tasks:

- **segment level**: Kendall's tau-b between a reward and MQM across the systems of one segment, averaged
  over segments ("grouped by item"). tau-b corrects for ties on both sides, which matters here: many MQM
  scores are 0 and tie. A segment whose MQM scores all tie says nothing and is left out, for every reward
  alike; where a reward's own scores all tie its tau counts as 0 (it told the systems apart no better than
  chance). The number of segments used is reported.
- **system level**: pairwise accuracy: over every pair of systems whose mean MQM differs, the share the
  reward orders the same way by its mean score (a tie in the reward counts half). Means over the
  sample's segments, for rewards and MQM alike.

Reference points: sentence chrF and BLEU against the reference (sacrebleu, ``effective_order`` BLEU).
Rewards are computed with the model named by ``--model`` (the default model: the one the search uses);
combinations (``a+b``) are the equal-weight mean of journaled parts, the same formula ``CombinedReward``
uses in the search. Every finished (segment, reward) goes to a JSONL journal, so a killed run continues
where it stopped; the journal quotes nothing (ids and numbers only), yet stays out of the repository. The
cheap rewards are scored first, the sets in turn segment by segment, and back-translation (a generation per
hypothesis) last, on the first ``--backtranslation-segments`` of each set: a run stopped early reports
back-translation on the prefix it reached, and says how many segments that is.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.data import shared_data_dir
from translator.errors import InputError
from translator.languages import resolve_language
from translator.options import add_model_options, build_translator, model_settings
from translator.prompt import TranslationRequest
from translator.registry import DEFAULT_MODEL
from translator.rewards import REGISTRY, RewardContext, RewardValue, RolloutPath, combine, make_reward
from translator.utility import sentence_chrf

DATASETS = ("wmt21", "ted")
TEACHER_FORCED = ("forced-confidence", "logprob", "boostedprob", "channel")
DEFAULT_REWARDS = (*TEACHER_FORCED, "consensus", "backtranslation")
DEFAULT_COMBINATIONS = ("forced-confidence+consensus", "logprob+consensus", "boostedprob+consensus",
                        "channel+consensus", "logprob+channel", "forced-confidence+backtranslation",
                        "logprob+backtranslation")
REFERENCE_METRICS = ("chrf", "bleu")
SCHEMA = 1


@dataclass
class Segment:
    dataset: str
    seg_id: int
    source: str
    reference: str
    hypotheses: dict[str, str]  # system -> hypothesis
    mqm: dict[str, float]  # system -> MQM score, higher is better


# ----- data ---------------------------------------------------------------------------------------------


def _tsv(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise InputError(f"MQM data not found: {path} (shared data folder: {path.parent.parent}; set MARCO_SHARED_DATA)")
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def load_wmt21(root: Path, limit: int | None) -> list[Segment]:
    """The first ``limit`` segments by seg_id, every system except the reference translation ``ref-A``."""
    rows = _tsv(root / "mqm" / "wmt21-zh-en.mqm.tsv")[1:]
    segments: dict[int, Segment] = {}
    for system, seg_id, score, source, hyp, ref in rows:
        if system == "ref-A":
            continue
        seg = segments.setdefault(int(seg_id), Segment("wmt21", int(seg_id), source, ref, {}, {}))
        seg.hypotheses[system] = hyp
        seg.mqm[system] = float(score)
    return [segments[k] for k in sorted(segments)][:limit]


def load_ted(root: Path, limit: int | None) -> list[Segment]:
    """The first ``limit`` segments by seg_id, the 13 system outputs, reference ``refB``."""
    texts = _tsv(root / "mqm" / "ted-zh-en.texts.tsv")
    header = texts[0]
    systems = [h for h in header[2:] if h not in ("ref", "refB")]
    scores: dict[tuple[int, str], float] = {}
    with (root / "mqm" / "ted-zh-en.avg_seg_scores.tsv").open(encoding="utf-8") as f:
        for line in f.read().splitlines()[1:]:
            system, value, seg_id = line.split()
            if value != "None":
                scores[(int(seg_id), system)] = float(value)
    segments = []
    for row in sorted(texts[1:], key=lambda r: int(r[0])):
        cols = dict(zip(header, row))
        seg_id = int(cols["seg_id"])
        if not all((seg_id, s) in scores for s in systems):
            continue
        segments.append(Segment("ted", seg_id, cols["source_zh"], cols["refB"], {s: cols[s] for s in systems},
                                {s: scores[(seg_id, s)] for s in systems}))
    return segments[:limit]


def load(dataset: str, limit: int | None, root: Path | None = None) -> list[Segment]:
    root = root or shared_data_dir()
    if dataset == "wmt21":
        return load_wmt21(root, limit)
    if dataset == "ted":
        return load_ted(root, limit)
    raise InputError(f"unknown MQM set {dataset!r}; choose one of {', '.join(DATASETS)}")


# ----- statistics ---------------------------------------------------------------------------------------


def kendall_tau_b(x: list[float], y: list[float]) -> float | None:
    """tau-b = (C - D) / sqrt((C + D + Tx) (C + D + Ty)), Tx / Ty the pairs tied only in x / only in y;
    None when either side is constant (undefined)."""
    concordant = discordant = tied_x = tied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tied_x += 1
            elif dy == 0:
                tied_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + tied_x) * (concordant + discordant + tied_y))
    return (concordant - discordant) / denom if denom else None


def segment_taus(metric: list[list[float]], human: list[list[float]]) -> list[float]:
    """Per-segment tau-b, for segments whose human scores are not all tied (see the module doc)."""
    taus = []
    for m, h in zip(metric, human):
        if len(set(h)) < 2:
            continue
        tau = kendall_tau_b(m, h)
        taus.append(0.0 if tau is None else tau)
    return taus


def grouped_tau(metric: list[list[float]], human: list[list[float]]) -> tuple[float | None, int]:
    """Mean per-segment tau-b, and how many segments it averages."""
    taus = segment_taus(metric, human)
    return (sum(taus) / len(taus) if taus else None), len(taus)


def bootstrap_interval(values: list[float], samples: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of the mean, resampling segments (fixed seed: the same figures every run)."""
    if len(values) < 2:
        return None
    import numpy as np

    data = np.asarray(values)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def pairwise_accuracy(metric: dict[str, float], human: dict[str, float]) -> tuple[float | None, int]:
    """Share of system pairs (human means differ) ordered alike by the metric; metric ties count half."""
    systems = sorted(human)
    agree, pairs = 0.0, 0
    for i, a in enumerate(systems):
        for b in systems[i + 1 :]:
            dh = human[a] - human[b]
            if dh == 0:
                continue
            dm = metric[a] - metric[b]
            pairs += 1
            agree += 0.5 if dm == 0 else float((dm > 0) == (dh > 0))
    return (agree / pairs if pairs else None), pairs


# ----- scoring ------------------------------------------------------------------------------------------


def reference_scores(seg: Segment, metric: str) -> dict[str, float]:
    if metric == "chrf":
        return {s: sentence_chrf(h, seg.reference) for s, h in seg.hypotheses.items()}
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    return {s: bleu.sentence_score(h, [seg.reference]).score for s, h in seg.hypotheses.items()}


class Journal:
    """Finished (dataset, segment, reward) scores, one JSON line each, appended and fsynced; a journal
    written under other settings is refused rather than mixed in."""

    def __init__(self, path: Path, settings: dict[str, Any]):
        self.path = path
        self.done: dict[tuple[str, int, str], dict[str, float]] = {}
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            for n, line in enumerate(lines):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    if n == len(lines) - 1:
                        break  # a torn last line: redone
                    raise InputError(f"{path}:{n + 1} is not JSON; delete the journal to start over") from None
                if n == 0:
                    if entry.get("settings") != settings:
                        raise InputError(f"{path} was written with other settings ({entry.get('settings')}); "
                                         "delete it or pass another --journal")
                    continue
                self.done[(entry["dataset"], entry["seg_id"], entry["reward"])] = entry["values"]
            self._rewrite(settings, lines if lines and _is_json(lines[-1]) else lines[:-1])
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._rewrite(settings, [])

    def _rewrite(self, settings: dict[str, Any], lines: list[str]) -> None:
        body = [json.dumps({"settings": settings})] + lines[1:]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in body), encoding="utf-8")
        os.replace(tmp, self.path)

    def add(self, dataset: str, seg_id: int, reward: str, values: dict[str, float]) -> None:
        self.done[(dataset, seg_id, reward)] = values
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"dataset": dataset, "seg_id": seg_id, "reward": reward, "values": values}) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


@dataclass
class Plan:
    """What to score: the segments of each set, the rewards, and the smaller subset for expensive ones."""

    segments: dict[str, list[Segment]]
    rewards: list[str]
    combinations: list[str]
    expensive_segments: int  # back-translation: the first N segments of each set only
    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)

    def segments_for(self, dataset: str, name: str) -> list[Segment]:
        """The segments a reward, or a combination with an expensive part, is scored on."""
        segs = self.segments[dataset]
        return segs[: self.expensive_segments] if "backtranslation" in name.split("+") else segs


EXPENSIVE = ("backtranslation",)  # a generation per hypothesis: scored last, on a subset


def score_all(plan: Plan, context: RewardContext, journal: Journal) -> None:
    """Score every planned (segment, reward) not yet journaled. The cheap rewards come first, the sets taken
    in turn segment by segment, so a run stopped early still has a prefix of every set; the expensive ones
    follow in a second pass. Within a segment the rewards that force the hypothesis after the translation
    prompt share one forward pass per pair; ``channel`` forces the source after a prompt to translate the
    hypothesis back, so it takes a pass of its own."""
    rewards = {name: make_reward(name, context) for name in plan.rewards}
    src, tgt = resolve_language("zh"), resolve_language("en")
    for names in ([n for n in rewards if n not in EXPENSIVE], [n for n in rewards if n in EXPENSIVE]):
        longest = max(len(segs) for segs in plan.segments.values())
        for n in range(longest):
            for dataset, segments in plan.segments.items():
                if n >= len(segments):
                    continue
                seg = segments[n]
                request = TranslationRequest(seg.source, src, tgt)
                todo = [name for name in names if (dataset, seg.seg_id, name) not in journal.done
                        and n < len(plan.segments_for(dataset, name))]
                for name in todo:
                    start = time.perf_counter()
                    reward = rewards[name]
                    systems = list(seg.hypotheses)
                    paths = [RolloutPath(request, [], seg.hypotheses[s], seg.hypotheses[s]) for s in systems]
                    values = reward.score(paths)
                    if hasattr(reward, "forget"):
                        reward.forget(request)
                    journal.add(dataset, seg.seg_id, name, {s: v.value for s, v in zip(systems, values)})
                    plan.timings[name] = plan.timings.get(name, 0.0) + time.perf_counter() - start
                if todo and plan.progress:
                    print(f"[{dataset}] segment {n + 1}/{len(segments)}: {', '.join(todo)}", file=sys.stderr,
                          flush=True)


def _values(plan: Plan, journal: Journal, dataset: str, name: str) -> tuple[list[Segment], list[dict[str, float]]]:
    """A reward's (or reference metric's, or combination's) scores on the segments it covers."""
    parts = name.split("+")
    segs = plan.segments_for(dataset, name)
    if any(p in EXPENSIVE for p in parts):  # a run may stop before its subset is done: the prefix it reached
        done = next((i for i, seg in enumerate(segs) if any((dataset, seg.seg_id, p) not in journal.done
                                                             for p in parts)), len(segs))
        segs = segs[:done]
    out = []
    for seg in segs:
        if name in REFERENCE_METRICS:
            out.append(reference_scores(seg, name))
            continue
        found = [journal.done.get((dataset, seg.seg_id, p)) for p in parts]
        if any(f is None for f in found):
            raise InputError(f"{name} has no journaled score for {dataset} segment {seg.seg_id}: run the scoring first")
        out.append({s: combine([(p, RewardValue(f[s])) for p, f in zip(parts, found)]).value for s in seg.hypotheses})
    return segs, out


def correlate(plan: Plan, journal: Journal) -> dict[str, Any]:
    """Aggregate figures only: nothing here quotes the data."""
    report: dict[str, Any] = {}
    for dataset in plan.segments:
        rows = {}
        for name in (*REFERENCE_METRICS, *plan.rewards, *plan.combinations):
            segs, values = _values(plan, journal, dataset, name)
            if not segs:
                continue
            systems = sorted(segs[0].hypotheses)
            taus = segment_taus([[v[s] for s in systems] for v in values],
                                [[seg.mqm[s] for s in systems] for seg in segs])
            tau, used = (sum(taus) / len(taus) if taus else None), len(taus)
            interval = bootstrap_interval(taus)
            metric_means = {s: sum(v[s] for v in values) / len(values) for s in systems}
            human_means = {s: sum(seg.mqm[s] for seg in segs) / len(segs) for s in systems}
            acc, pairs = pairwise_accuracy(metric_means, human_means)
            rows[name] = {"kind": "reference" if name in REFERENCE_METRICS else "reward", "segments": len(segs),
                          "segments_in_tau": used, "systems": len(systems), "seg_kendall_tau_b": tau,
                          "seg_tau_95ci": interval,
                          "sys_pairwise_accuracy": acc, "system_pairs": pairs}
        report[dataset] = rows
    return report


def table(report: dict[str, Any]) -> str:
    lines = ["| set | scorer | kind | segments (in tau) x systems | segment tau-b | 95% CI | "
             "system pairwise acc. (pairs) |", "|---|---|---|---:|---:|---:|---:|"]
    for dataset, rows in report.items():
        for name, r in rows.items():
            tau = "-" if r["seg_kendall_tau_b"] is None else f"{r['seg_kendall_tau_b']:.3f}"
            ci = "-" if not r.get("seg_tau_95ci") else "[{:.3f}, {:.3f}]".format(*r["seg_tau_95ci"])
            acc = "-" if r["sys_pairwise_accuracy"] is None else f"{r['sys_pairwise_accuracy']:.3f}"
            lines.append(f"| {dataset} | {name} | {r['kind']} | {r['segments']} ({r['segments_in_tau']}) x "
                         f"{r['systems']} | {tau} | {ci} | {acc} ({r['system_pairs']}) |")
    return "\n".join(lines)


def best_reward(report: dict[str, Any], candidates: list[str]) -> str | None:
    """The candidate with the highest segment tau averaged over the sets where it was scored in full."""
    def mean_tau(name: str) -> float:
        taus = [rows[name]["seg_kendall_tau_b"] for rows in report.values() if rows.get(name)]
        taus = [t for t in taus if t is not None]
        return sum(taus) / len(taus) if taus else -2.0

    return max(candidates, key=mean_tau) if candidates else None


# ----- command line -------------------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        for part in name.split("+"):
            if part not in REGISTRY or part in ("confidence", "comet-qe"):
                raise argparse.ArgumentTypeError(
                    f"{part!r} cannot score a bare (source, hypothesis) pair here; choose from "
                    f"{', '.join(r for r in REGISTRY if r not in ('confidence', 'comet-qe'))}")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rewards", help="correlate the search's rewards with human MQM judgements",
        description="Score MQM-judged (source, hypothesis) pairs with each reward; segment-level Kendall tau-b "
        "(grouped by segment) and system-level pairwise accuracy, beside sentence chrF and BLEU.")
    p.add_argument("--model", default=None, help="model spec for the teacher-forced and back-translation rewards "
                   "(default: the default model)")
    add_model_options(p)
    p.add_argument("--wmt21-segments", type=int, default=100, metavar="N", help="first N WMT21 segments (0: skip)")
    p.add_argument("--ted-segments", type=int, default=50, metavar="N", help="first N TED segments (0: skip)")
    p.add_argument("--backtranslation-segments", type=int, default=10, metavar="N",
                   help="back-translation costs a generation per hypothesis: only the first N segments of each set")
    p.add_argument("--rewards", type=_names, default=list(DEFAULT_REWARDS))
    p.add_argument("--combinations", type=_names, default=list(DEFAULT_COMBINATIONS))
    p.add_argument("--out", type=Path, default=Path("eval/results/reward-meta-eval"))
    p.add_argument("--journal", type=Path, default=None, help="default: OUT/journal.jsonl (kept out of git)")
    p.add_argument("--report-only", action="store_true",
                   help="load no model: report what the journal holds (back-translation on the prefix reached)")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    segments = {d: load(d, n) for d, n in (("wmt21", args.wmt21_segments), ("ted", args.ted_segments)) if n > 0}
    if not segments:
        raise InputError("nothing to score: give --wmt21-segments or --ted-segments above 0")
    combinations = [c for c in args.combinations if all(p in args.rewards for p in c.split("+"))]
    plan = Plan(segments, args.rewards, combinations, args.backtranslation_segments)
    # "model" as given (None for the default), as journals written before the shared model options hold it
    settings = {"schema": SCHEMA, **model_settings(args, DEFAULT_MODEL), "model": args.model,
                "backtranslation_max_new_tokens": 160, "forced_prompt": "direct"}
    journal = Journal(args.journal or args.out / "journal.jsonl", settings)
    todo = [(d, s.seg_id, r) for d, segs in segments.items() for r in args.rewards
            for s in plan.segments_for(d, r) if (d, s.seg_id, r) not in journal.done]
    model_name = args.model or DEFAULT_MODEL  # the spec the backend opens; its own name once it is loaded
    if todo and not args.report_only:
        from translator.rewards import direct_back_translator

        backend = build_translator(args, lexicon=False).backend
        model_name = backend.name
        print(f"scoring {len(todo)} (segment, reward) items with {backend.name}", file=sys.stderr, flush=True)
        score_all(plan, RewardContext(backend, direct_back_translator(backend, 160)), journal)
    report = correlate(plan, journal)
    best = best_reward(report, [n for n in (*args.rewards, *combinations) if "backtranslation" not in n])
    out = {"model": model_name, "settings": settings,
           "sample": {d: {"segments": len(s), "first_seg_id": s[0].seg_id, "last_seg_id": s[-1].seg_id,
                          "systems": len(s[0].hypotheses)} for d, s in segments.items()},
           "backtranslation_segments": args.backtranslation_segments, "seconds_scoring": plan.timings,
           "best_full_sample_reward": best, "results": report}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    text = table(report)
    (args.out / "report.md").write_text(
        f"# Rewards against human MQM judgements\n\nModel: {model_name}. Sample: "
        + "; ".join(f"{d} first {v['segments']} segments x {v['systems']} systems" for d, v in out["sample"].items())
        + f"; back-translation on the first {args.backtranslation_segments} segments of each set only.\n\n"
        + text + f"\n\nBest reward on the full samples (mean segment tau-b): {best}\n", encoding="utf-8")
    print(text)
    print(f"best reward on the full samples: {best}")
    return 0
