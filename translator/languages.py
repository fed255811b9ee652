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


# Languages written in the Latin alphabet: a source in one of them that is mostly Chinese characters, or a
# Chinese source without any, is the commonest slip in a two-way tool (From and To left as they were).
_LATIN_SCRIPT = {"en", "fr", "de", "es", "pt", "it", "vi"}


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def direction_warning(text: str, src: Language) -> str | None:
    """A one-line warning when the text's script does not fit its source language (Chinese text from
    English, Latin-only text from Chinese), or None. A warning, not a refusal: names, code and mixed text
    are legitimate, and the model can still be asked."""
    letters = [c for c in text if c.isalpha()]
    han = sum(1 for c in letters if _is_han(c))
    latin = sum(1 for c in letters if c.isascii())
    if src.code == "zh" and han == 0 and latin >= 3:
        return "the source has no Chinese characters, but the source language is Chinese: check the direction"
    if src.code in _LATIN_SCRIPT and han >= 2 and han > latin:
        return f"the source looks like Chinese, but the source language is {src.name}: check the direction"
    return None
