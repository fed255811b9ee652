import pytest

from translator.languages import UnknownLanguageError, resolve_language


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
