"""Is the slang zh-en gain of the notes more than the entries written after reading the dev outputs?

The 47 Chinese slang entries added in d70b762 were written after the dev run of 9a11e64, several for terms
that run had left without a note. This script drops every segment whose notes (in the lexicon-aided run)
include one of those entries and repeats the paired bootstrap on the rest, for the lexicon (B vs A), the
script guard (C vs B) and both (C vs A). Run from the repository root after the benchmark:

    python eval/results/bench-full-lexicon-guard-qwen2.5-coder-1.5b/subset_analysis.py

It prints the table and writes subset_analysis.json beside itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from eval.data import load_testset
from eval.metrics import MetricOptions, build_metric
from eval.significance import paired_bootstrap

HERE = Path(__file__).resolve().parent
RUN = HERE / "slang-zh-en_petci" / "slang_zh-en"
TSV = "translator/lexicon/data/zh_slang.tsv"
BEFORE = "1ec7ca2"  # the last commit before the entries were added


def forms(tsv_text: str) -> dict[str, str]:
    out = {}
    for line in tsv_text.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) == 5:
            for form in [fields[0], *(v for v in fields[1].split("|") if v)]:
                out[form.lower()] = fields[0]
    return out


def records(name: str) -> dict[int, dict]:
    out = {}
    for line in (RUN / name).read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if "record" in entry:
            out[entry["index"]] = entry["record"]
    return out


def main() -> None:
    old = forms(subprocess.run(["git", "show", f"{BEFORE}:{TSV}"], capture_output=True, text=True, check=True).stdout)
    added = {f for f, term in forms(Path(TSV).read_text(encoding="utf-8")).items() if f not in old}
    a = records("direct_lexicon=off_script_guard=false.jsonl")
    b = records("direct_script_guard=false.jsonl")
    c = records("direct.jsonl")
    testset = load_testset("slang:zh-en", limit=100)
    untouched = [i for i in range(len(testset))
                 if not any(h["term"].lower() in added for h in c[i]["result"]["hints"])]
    report = {}
    print("| segments | comparison | metric | baseline | system | delta | p |")
    print("|---|---|---|---:|---:|---:|---:|")
    for subset, keep in (("all", list(range(len(testset)))), ("without added entries", untouched)):
        refs = [[ref[i] for i in keep] for ref in testset.references()]
        srcs = [testset.sources[i] for i in keep]
        part = report[subset] = {"segments": len(keep), "comparisons": {}}
        for name in ("bleu", "chrf", "semsim"):
            metric = build_metric(name, "en", MetricOptions())
            for label, (x, y) in {"lexicon (B vs A)": (a, b), "guard (C vs B)": (b, c), "both (C vs A)": (a, c)}.items():
                test = paired_bootstrap(metric, [x[i]["translation"] for i in keep],
                                        [y[i]["translation"] for i in keep], refs, srcs)
                part["comparisons"].setdefault(label, {})[name] = {
                    "baseline": test.baseline.score, "system": test.system.score, "delta": test.delta,
                    "p_value": test.p_value, "signature": test.signature}
                print(f"| {subset} ({len(keep)}) | {label} | {name} | {test.baseline.score:.3f} | "
                      f"{test.system.score:.3f} | {test.delta:+.3f} | {test.p_value:.4f}"
                      f"{'*' if test.p_value < 0.05 else ''} |")
    (HERE / "subset_analysis.json").write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
