"""The check after decoding: a translation must read as a translation, not as a dictionary entry.

Given dictionary notes, a small model sometimes copies them: "lit. tiger's head, snake's tail (idiom); fig.
a strong start but weak finish", a label such as "(slang)", pinyin, a measure-word note, or several senses
of one note joined by a separator. The prompt asks it not to; this removes what slips through and says
what it removed, so the result shows the repair instead of hiding it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from translator.prompt import Hint

_LIT_FIG = re.compile(r"\blit\.\s[^;]*;\s*fig\.\s*", re.IGNORECASE)
_MARKERS = re.compile(r"(?<![A-Za-z])(?:lit|fig)\.\s*", re.IGNORECASE)
_LABEL = re.compile(r"\s*[(\[（](?:idiom|chengyu|slang|internet slang|coll\.|colloquial|fig\.|figurative|lit\.|"
                    r"literally|neologism[^)\]）]*|abbr\.?|name or word|chinese equivalent)[)\]）]", re.IGNORECASE)
_MEASURE_WORD = re.compile(r"[\s,;]*\bCL:\S*")
_PINYIN = re.compile(r"\s*\[(?:[A-Za-zü:]+[1-5]\s*)+\]|\s*\b(?:[a-zü]+[1-5]\b\s*){2,}")


_HAN = re.compile(r"[\u4e00-\u9fff]")


def strip_markup(translation: str, hints: Sequence[Hint] = (), *, chinese_target: bool = True) -> tuple[str, list[str]]:
    """The translation without dictionary markup, and a list naming each kind of markup removed.

    Into a language other than Chinese, a noted Chinese term left untranslated in the output (a small model
    copies 踩屎感 through) is replaced by the note's first rendering."""
    removed: list[str] = []
    text = translation
    if not chinese_target:
        for hint in hints:
            if _HAN.search(hint.term) and hint.term in text and hint.senses:
                text = text.replace(hint.term, f" {hint.senses[0]} ")
                removed.append(f"untranslated '{hint.term}' (replaced by its note's first rendering)")

    def cut(pattern: re.Pattern[str], what: str, repl: str = "") -> None:
        nonlocal text
        new = pattern.sub(repl, text)
        if new != text:
            removed.append(what)
            text = new

    cut(_LIT_FIG, "literal reading (lit. ...; fig.)")
    cut(_MARKERS, "lit./fig. marker")
    cut(_LABEL, "dictionary label")
    cut(_MEASURE_WORD, "measure-word note (CL:)", " ")
    cut(_PINYIN, "pinyin", " ")
    for hint in hints:
        senses = [re.escape(s) for s in hint.senses if s]
        if len(senses) < 2:
            continue
        # Two or more senses of one note strung together: keep the first one the model wrote.
        alternation = "|".join(sorted(senses, key=len, reverse=True))
        joined = re.compile(rf"({alternation})(?:\s*(?:\||;|/)\s*(?:{alternation}))+")
        cut(joined, f"several senses of '{hint.term}' joined", r"\1")
    cleaned = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s{2,}", " ", text)).strip(" ;,")
    return (cleaned, removed) if cleaned else (translation, [])
