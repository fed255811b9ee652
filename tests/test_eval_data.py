"""Test-set loading from SPEC strings, and the project's own slang set, which is what the product is
tuned for and so is checked item by item."""

from __future__ import annotations

import json
import re
import urllib.error
from collections import Counter
from pathlib import Path

import pytest

from eval.data import SLANG_SET, load_testset
from eval.scoring import score
from translator.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "wmt22").is_dir() or not (SHARED / "petci").is_dir(),
                                  reason=f"shared data not found at {SHARED}")
CJK = re.compile(r"[\u4e00-\u9fff]")
CATEGORIES = {"slang", "meme", "idiom", "xiehouyu", "colloquial", "pun"}
FIELDS = {"id", "src_lang", "tgt_lang", "category", "src", "refs", "note"}


# --- eval/data/slang.jsonl ---

def slang_records() -> list[dict]:
    return [json.loads(line) for line in SLANG_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_slang_set_schema_and_size() -> None:
    records = slang_records()
    directions = Counter((r["src_lang"], r["tgt_lang"]) for r in records)
    assert directions[("zh", "en")] >= 65 and directions[("en", "zh")] >= 32
    assert set(directions) == {("zh", "en"), ("en", "zh")}
    for r in records:
        assert set(r) == FIELDS, r["id"]
        assert r["category"] in CATEGORIES, r["id"]
        assert all(isinstance(r[k], str) and r[k].strip() == r[k] and r[k] for k in FIELDS - {"refs"}), r["id"]
        assert len(r["refs"]) >= 2 and len(set(r["refs"])) == len(r["refs"]), r["id"]
        assert all(ref.strip() and ref != r["src"] for ref in r["refs"]), r["id"]
        assert "Trap" in r["note"], r["id"]
        chinese_side, english_side = (r["src"], r["refs"]) if r["src_lang"] == "zh" else (r["refs"][0], [r["src"]])
        assert CJK.search(chinese_side), r["id"]
        assert not any(CJK.search(text) for text in english_side), r["id"]


def test_slang_set_has_no_duplicates_and_covers_the_terms() -> None:
    records = slang_records()
    for key in ("id", "src"):
        counts = Counter(r[key] for r in records)
        assert not [k for k, n in counts.items() if n > 1], key
    sources = " ".join(r["src"] for r in records)
    for term in ("躺平", "内卷", "摆烂", "破防", "绝绝子", "yyds", "凡尔赛", "打工人", "社死", "种草", "拔草", "吃瓜",
                 "柠檬精", "佛系", "真香", "凉凉", "666", "芭比Q", "栓Q", "拿捏", "嘴替", "显眼包", "电子榨菜", "踩屎感",
                 "no cap", "giving", "lowkey", "rizz", "touch grass", "spill the tea", "ghosted", "main character energy",
                 "Break a leg", "piece of cake", "bite the bullet", "salty", "slayed", "mid", "sus"):
        assert term in sources, term
    assert {r["category"] for r in records} == CATEGORIES


def test_slang_shortcut_loads_each_direction() -> None:
    zh_en = load_testset("slang:zh-en")
    en_zh = load_testset("slang:en-zh")
    assert (zh_en.src_lang, zh_en.tgt_lang, en_zh.src_lang, en_zh.tgt_lang) == ("zh", "en", "en", "zh")
    assert len(zh_en) + len(en_zh) == len(slang_records())
    item = next(i for i in zh_en.items if "踩屎感" in i.src)
    assert item.note and item.category == "slang" and len(item.refs) >= 2
    assert len(load_testset("slang:zh-en", limit=5)) == 5
    with pytest.raises(InputError, match="slang:zh-en, slang:en-zh"):
        load_testset("slang")


# --- shared sets by shortcut ---

@needs_shared
def test_wmt22_dev_has_two_references() -> None:
    ts = load_testset("wmt22-dev:zh-en")
    assert (ts.name, ts.src_lang, ts.tgt_lang, len(ts)) == ("wmt22-dev:zh-en", "zh", "en", 1407)
    refs = ts.references()
    assert len(refs) == 2 and all(len(stream) == 1407 for stream in refs)
    assert ts.items[0].id == "1"
    assert len(load_testset("wmt22-dev:en-zh", limit=10)) == 10


@needs_shared
def test_petci_variable_references_score_through_sacrebleu() -> None:
    ts = load_testset("petci", limit=40)
    assert (ts.src_lang, ts.tgt_lang) == ("zh", "en")
    refs = ts.references()
    assert any(stream[i] is None for stream in refs for i in range(len(ts)))  # padded, sacrebleu style
    report = score([item.refs[0] for item in ts.items], refs, ts.sources, ts.tgt_lang, ["bleu"])
    assert report["bleu"].score == pytest.approx(100.0) and "nrefs:var" in report["bleu"].signature


def test_missing_shared_data_names_the_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MARCO_SHARED_DATA", str(tmp_path))
    with pytest.raises(InputError, match="MARCO_SHARED_DATA"):
        load_testset("wmt22-dev:zh-en")


# --- files ---

def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_plain_files_with_languages_from_suffixes(tmp_path: Path) -> None:
    src = write(tmp_path / "dev.zh-en.zh", ["你好", "谢谢"])
    ref1 = write(tmp_path / "dev.zh-en.ref1.en", ["Hello", "Thanks"])
    ref2 = write(tmp_path / "dev.zh-en.ref2.en", ["Hi", "Thank you"])
    ts = load_testset(f"{src},{ref1},{ref2}")
    assert (ts.src_lang, ts.tgt_lang, ts.sources) == ("zh", "en", ["你好", "谢谢"])
    assert ts.references() == [["Hello", "Thanks"], ["Hi", "Thank you"]]


def test_plain_files_need_languages_or_a_pair(tmp_path: Path) -> None:
    src = write(tmp_path / "src.txt", ["你好"])
    ref = write(tmp_path / "ref.txt", ["Hello"])
    with pytest.raises(InputError, match="append :SRC-TGT"):
        load_testset(f"{src},{ref}")
    assert load_testset(f"{src},{ref}:zh-en").tgt_lang == "en"
    long = write(tmp_path / "long.txt", ["Hello", "Extra"])
    with pytest.raises(InputError, match="long.txt has 2 lines but .*src.txt has 1"):
        load_testset(f"{src},{long}:zh-en")


def test_jsonl_accepts_ref_or_refs_and_filters_direction(tmp_path: Path) -> None:
    path = write(tmp_path / "set.jsonl", [
        json.dumps({"id": "a", "src": "躺平", "refs": ["lie flat", "check out"], "src_lang": "zh", "tgt_lang": "en"}),
        json.dumps({"src": "no cap", "ref": "不骗你", "src_lang": "en", "tgt_lang": "zh", "note": "for real"}),
        "",
    ])
    en_zh = load_testset(f"{path}:en-zh")
    assert [(i.id, i.src, i.refs, i.note) for i in en_zh.items] == [("2", "no cap", ["不骗你"], "for real")]
    assert load_testset(f"{path}:zh-en").items[0].refs == ["lie flat", "check out"]
    with pytest.raises(InputError, match="say which direction"):
        load_testset(str(path))


@pytest.mark.parametrize(
    ("line", "message"),
    [("{not json", "not valid JSON"), ('{"refs": ["x"]}', '"src" string'), ('{"src": "x", "refs": "y"}', "list of strings")],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "bad.jsonl", ['{"src": "ok", "refs": ["fine"]}', line])
    with pytest.raises(InputError, match=f"bad.jsonl:2: .*{re.escape(message)}"):
        load_testset(f"{path}:zh-en")


# --- sacrebleu test sets ---

def test_sacrebleu_set_offline_is_a_clear_error(tmp_path, monkeypatch) -> None:
    from sacrebleu.dataset import DATASETS

    dataset = DATASETS["wmt22"]
    monkeypatch.setattr(dataset, "_outdir", str(tmp_path))  # an empty cache, whatever ~/.sacrebleu holds
    monkeypatch.setattr(dataset, "_rawdir", str(tmp_path / "raw"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("simulated: no network")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(InputError, match="could not be fetched .*network is needed"):
        load_testset("wmt22:zh-en")
    with pytest.raises(InputError, match="needs a direction, one of: .*zh-en"):
        load_testset("wmt22")
    with pytest.raises(InputError, match="unknown test set 'no-such-set'"):
        load_testset("no-such-set")
