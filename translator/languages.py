"""Language names and codes accepted on the command line, the app and the batch tool.

Users type what they know (``zh``, ``Chinese``, ``中文``, ``zh-CN``); everything downstream wants one
canonical code for metrics (sacrebleu picks its tokenizer from it) and one English name for prompts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    aliases: tuple[str, ...] = ()


LANGUAGES: tuple[Language, ...] = (
    Language("zh", "Chinese", ("chinese", "中文", "汉语", "漢語", "简体中文", "zh-cn", "zh-hans", "zho", "chi", "mandarin")),
    Language("en", "English", ("english", "英语", "英文", "eng", "en-us", "en-gb")),
    Language("ja", "Japanese", ("japanese", "日语", "日本語", "jpn")),
    Language("ko", "Korean", ("korean", "韩语", "한국어", "kor")),
    Language("fr", "French", ("french", "法语", "français", "francais", "fra", "fre")),
    Language("de", "German", ("german", "德语", "deutsch", "deu", "ger")),
    Language("es", "Spanish", ("spanish", "西班牙语", "español", "espanol", "spa")),
    Language("ru", "Russian", ("russian", "俄语", "русский", "rus")),
    Language("pt", "Portuguese", ("portuguese", "葡萄牙语", "português", "portugues", "por")),
    Language("it", "Italian", ("italian", "意大利语", "italiano", "ita")),
    Language("ar", "Arabic", ("arabic", "阿拉伯语", "العربية", "ara")),
    Language("vi", "Vietnamese", ("vietnamese", "越南语", "tiếng việt", "vie")),
)

_BY_KEY = {key: lang for lang in LANGUAGES for key in (lang.code, lang.name.lower(), *lang.aliases)}


class UnknownLanguageError(ValueError):
    pass


def accepted_languages() -> str:
    return ", ".join(f"{lang.code} ({lang.name})" for lang in LANGUAGES)


def resolve_language(text: str) -> Language:
    """Map a code, English name or native name (any case) to a Language, or explain what is accepted."""
    lang = _BY_KEY.get(text.strip().lower())
    if lang is None:
        raise UnknownLanguageError(f"unknown language {text!r}; accepted: {accepted_languages()}")
    return lang
