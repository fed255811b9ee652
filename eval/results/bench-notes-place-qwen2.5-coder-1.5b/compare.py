"""The table of README, "Where the notes go": each variant's direct translations against the notes before
the text (and, into Chinese, against no notes), paired bootstrap; short answers counted. Writes
``compare.json``. PETCI and WMT24 journals are not committed (evaluation data): run where they were made.

    python eval/results/bench-notes-place-qwen2.5-coder-1.5b/compare.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eval.data import load_testset
from eval.scoring import compare, score
from translator.batch_journal import read_journal
from translator.result import TranslationResult

HERE = Path(__file__).resolve().parent
SETS = {"slang_en-zh": ("slang:en-zh", 40), "wmt24-social": ("wmt24-social", 40),
        "slang_zh-en": ("slang:zh-en", 97), "petci": ("petci", 100)}
VARIANTS = ("before", "use", "after", "labelled", "none")


def translations(path: Path) -> list[str]:
    entries = read_journal(path)[1]
    return [TranslationResult.from_dict(entries[i]["record"]["result"]).translation for i in sorted(entries)]


def length(text: str, zh: bool) -> int:
    return len(text.replace(" ", "")) if zh else len(text.split())


def main() -> int:
    report: dict = {}
    for folder, (spec, limit) in SETS.items():
        testset = load_testset(spec, limit=limit)
        zh = testset.tgt_lang == "zh"
        metrics = "bleu,chrf" if zh else "bleu,chrf,semsim"
        refs = testset.references()
        outputs = {v: translations(HERE / v / folder / "direct.jsonl") for v in VARIANTS
                   if (HERE / v / folder / "direct.jsonl").exists()}
        rows = report[folder] = {}
        for variant, out in outputs.items():
            row = rows[variant] = {
                "scores": score(out, refs, testset.sources, testset.tgt_lang, metrics).to_dict(),
                "under_half_reference_length": sum(length(h, zh) < 0.5 * length(r, zh) for h, r in zip(out, refs[0]))}
            for against in ("before", "none"):
                if against in outputs and against != variant:
                    tests = compare(out, outputs[against], refs, testset.sources, testset.tgt_lang, metrics)
                    row[f"against_{against}"] = {c.metric: {"delta": c.test.delta, "p": c.test.p_value}
                                                 for c in tests if c.test}
                    print(folder, variant, "against", against, *(c.summary() for c in tests), sep="\n  ")
    (HERE / "compare.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
