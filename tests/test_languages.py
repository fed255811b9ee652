import pytest

from translator.languages import UnknownLanguageError, direction_warning, resolve_language


@pytest.mark.parametrize("text", ["zh", "ZH", "Chinese", "chinese", "中文", "zh-CN", " zh "])
def test_chinese_aliases(text):
    assert resolve_language(text).code == "zh"


@pytest.mark.parametrize("text", ["en", "English", "英语", "en-US"])
def test_english_aliases(text):
    assert resolve_language(text).code == "en"


def test_unknown_language_lists_accepted():
    with pytest.raises(UnknownLanguageError) as info:
        resolve_language("klingon")
    assert "klingon" in str(info.value)
    assert "zh (Chinese)" in str(info.value) and "en (English)" in str(info.value)


@pytest.mark.parametrize("text,src,warned", [
    ("我今天太累了，只想躺平。", "en", True),  # the pickers left at en->zh
    ("I just want to lie flat.", "zh", True),
    ("我今天太累了，只想躺平。", "zh", False),
    ("This is the best pizza in the city, no cap.", "en", False),
    ("他说 yyds", "zh", False),  # Chinese with a Latin slang term
    ("The word 躺平 is everywhere.", "en", False),  # English about a Chinese term
    ("OK", "zh", False),  # too short to judge
])
def test_a_source_in_the_wrong_script_is_flagged(text, src, warned):
    warning = direction_warning(text, resolve_language(src))
    assert (warning is not None) == warned
    if warned:
        assert "check the direction" in warning
