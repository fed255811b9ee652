"""One end-to-end translation with the embedded default model, as the README's first command runs it."""

import re

import pytest


@pytest.mark.slow
def test_default_model_translates_chinese_to_english():
    from translator import Translator
    from translator.models import DEFAULT_MODEL

    translator = Translator()
    assert translator.model_name.startswith(DEFAULT_MODEL)
    result = translator.translate("这双鞋给人一种踩屎感。", "zh", "en", strategy="cot")
    assert result.translation, result.raw_output
    assert re.search(r"[A-Za-z]{3,}", result.translation)
    assert not re.search(r"[\u4e00-\u9fff]{3,}", result.translation)  # English out, not the Chinese back
    assert result.thought and result.tokens_generated == len(result.tokens)
