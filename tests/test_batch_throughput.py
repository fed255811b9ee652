"""``python -m eval.batch_throughput``: a failed segment is an outcome to count, not a reason to abort a
long measurement (a cot that thinks past the cap once stopped a 36-minute cell). No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from eval import batch_throughput
from translator import batch


def test_cells_count_failed_segments_and_compare_against_batch_1(tmp_path: Path, capsys, monkeypatch) -> None:
    loads: list[str] = []

    class CountingTranslator(batch.Translator):
        def __init__(self, model, **options):
            loads.append(model)
            super().__init__(model, **options)

    monkeypatch.setattr("translator.api.Translator", CountingTranslator)  # what options.build_translator makes
    monkeypatch.setattr(batch, "_LOADED", {})  # a load by an earlier test would hide a second one here
    source, report = tmp_path / "src.zh", tmp_path / "bench.json"
    source.write_text("你好\n" + "长" * 2100 + "\n今天天气很好\n谢谢\n", encoding="utf-8")  # line 2 is too long
    assert batch_throughput.main(["--source", str(source), "--limit", "3", "--strategies", "direct", "--batch-sizes",
                                   "1,2", "--model", "smollm2-135m", "--dtype", "fp32", "--max-new-tokens", "4",
                                   "--backends", "llama-cpp,transformers", "--threads", "1", "--json", str(report)]) == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    assert loads == ["smollm2-135m", "smollm2-135m"]  # once per backend, before the timed cells, which reuse it
    assert data["lines"] == 3 and data["max_new_tokens"] == 4
    assert [r["engine"] for r in data["runs"]] == ["LlamaCppBackend", "TransformersBackend"]
    for run in data["runs"]:
        cells = run["cells"]
        assert [(c["strategy"], c["batch_size"], c["segments"], c["failed"]) for c in cells] == [
            ("direct", 1, 3, 1), ("direct", 2, 3, 1)]
        assert cells[0]["same_as_batch_1"] == 3 and 1 <= cells[1]["same_as_batch_1"] <= 3  # usually all 3
        assert all(c["tokens"] > 0 and c["segments_per_second"] > 0 for c in cells)
    ratios = data["llama-cpp_over_transformers_segments_per_second"]
    llama, hf = (run["cells"] for run in data["runs"])
    assert ratios == {f"direct/{a['batch_size']}": a["segments_per_second"] / b["segments_per_second"]
                      for a, b in zip(llama, hf)}
    table = capsys.readouterr().out.splitlines()
    assert "failed" in table[1] and len(table) == 6
    assert table[2].split()[:4] == ["llama-cpp", "1", "direct", "1"] and table[2].endswith("1.00x")
