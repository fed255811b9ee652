"""Read a translation out of what a model wrote, however loosely it followed the format.

Models drop closing tags, change case, add chatter around the answer or ignore the format entirely. The
rule that matters most: when an Output exists, the thought is never returned as the translation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OUTPUT_OPEN = re.compile(r"<\s*output\s*>", re.IGNORECASE)
_OUTPUT_CLOSE = re.compile(r"<\s*/\s*output\s*>", re.IGNORECASE)
_THOUGHT_OPEN = re.compile(r"<\s*thought\s*>", re.IGNORECASE)
_THOUGHT_CLOSE = re.compile(r"<\s*/\s*thought\s*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<\s*/?\s*(?:thought|output)\s*>", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:final\s+)?(?:translation|output|answer|译文|翻译)(?:\*\*)?\s*[:：]\s*", re.IGNORECASE)
_CHAT_END = re.compile(r"<\|im_end\|>|<\|endoftext\|>|</s>")


@dataclass(frozen=True)
class ParsedAnswer:
    translation: str
    thought: str
    format_ok: bool  # an Output block was opened and closed


# Assistant chatter around an answer, as instruction-tuned models write it. A lead-in is dropped only when
# it ends in a colon and names the translation ("Sure, here is the translation:", "当然，以下是…翻译：",
# "翻译如下："), so an answer that merely starts with "Sure," or "好的" is kept whole.
_POLITE = r"(?:(?:sure|certainly|of course|okay|ok|absolutely|alright)\b[^\n:：]{0,10}?)?"
_LEAD_IN = re.compile("|".join([
    # "Sure, here is the translation:", "Here's the English translation of the text:" (answer may follow)
    rf"^\s*{_POLITE}(?:here(?:'s| is| are)|below is|the following is)\b[^\n:：]{{0,80}}?"
    r"\btranslat(?:ion|ed)\b[^\n:：]{0,60}[:：]",
    # "The translation is:", "Translated into English:" on a line of their own
    r"^\s*(?:the|this is the|my)\b[^\n:：]{0,40}?\btranslation\b[^\n:：]{0,30}[:：][ \t]*\n",
    r"^\s*translated(?: in| into| to)?\b[^\n:：]{0,40}[:：][ \t]*\n",
    # "当然，以下是将给定的英文文本翻译成中文的版本：", "以下是翻译：", "这是译文：", "翻译如下："
    r"^\s*(?:(?:当然|好的|没问题|可以)[^\n:：]{0,4}?)?(?:以下|下面|这)是?[^\n:：]{0,60}?(?:翻译|译文|译成|版本)"
    r"[^\n:：]{0,20}[:：]",
    r"^\s*(?:翻译|译文)如下\s*[:：]",
]), re.IGNORECASE)
# A closing paragraph that talks about the answer instead of being part of it.
_TRAILER = re.compile(
    r"^\s*[(（]?\s*(?:i hope|hope this|let me know|feel free|if you (?:have|need)|note\b|notes\b|explanation\b"
    r"|this translation\b|in this translation\b|the translation (?:above|captures|keeps|conveys)"
    r"|希望|注[:：]|注意|说明|解释|备注|如果您|如有|如需)",
    re.IGNORECASE)
# Quotes around the whole answer: (open, close) pairs.
_QUOTES = (('"', '"'), ("“", "”"), ("「", "」"), ("『", "』"), ("'", "'"), ("‘", "’"))


def strip_chatter(text: str) -> str:
    """The answer without a lead-in line, closing notes or quotes around all of it (see the patterns)."""
    text = _LEAD_IN.sub("", text.strip(), count=1).strip()
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    while len(paragraphs) > 1 and _TRAILER.match(paragraphs[-1]):
        paragraphs.pop()
    text = "\n\n".join(paragraphs)
    for open_q, close_q in _QUOTES:
        inner = text[len(open_q) : -len(close_q)]
        if (len(text) > 2 and text.startswith(open_q) and text.endswith(close_q)
                and open_q not in inner and close_q not in inner and inner.strip()):
            return inner.strip()
    return text


def _clean(text: str) -> str:
    text = _ANY_TAG.sub("", text).strip()
    text = _LABEL.sub("", text, count=1).strip()
    return strip_chatter(text)


def _last_paragraph(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return paragraphs[-1].strip() if paragraphs else ""


def parse_answer(text: str) -> ParsedAnswer:
    """Split a reasoning answer into (translation, thought).

    Order of evidence: the last ``<Output>`` block (closed or not); else the text after a closed thought;
    else the last non-empty paragraph of an answer that used no tags at all.
    """
    text = _CHAT_END.split(text, maxsplit=1)[0]
    opens = list(_OUTPUT_OPEN.finditer(text))
    if opens:
        start = opens[-1].end()
        close = _OUTPUT_CLOSE.search(text, start)
        body = text[start : close.start() if close else len(text)]
        thought = _thought_before(text[: opens[-1].start()])
        translation = _clean(body)
        if translation:
            return ParsedAnswer(translation, thought, format_ok=close is not None)
        return ParsedAnswer("", thought, format_ok=False)
    closes = list(_THOUGHT_CLOSE.finditer(text))
    if closes:
        after = _clean(text[closes[-1].end() :])
        return ParsedAnswer(_last_paragraph(after) if after else "", _thought_before(text[: closes[-1].start()]), False)
    if _THOUGHT_OPEN.search(text):
        # Unclosed thought and no output: the model never got to answer; do not pass its notes off as one.
        return ParsedAnswer("", _thought_before(text), False)
    return ParsedAnswer(_clean(_last_paragraph(strip_chatter(text))), "", False)


def _thought_before(text: str) -> str:
    opens = list(_THOUGHT_OPEN.finditer(text))
    body = text[opens[0].end() :] if opens else text
    return _ANY_TAG.sub("", body).strip()


def parse_direct(text: str) -> str:
    """A direct (no-reasoning) reply: the whole reply, minus labels, or the Output if the model used tags."""
    text = _CHAT_END.split(text, maxsplit=1)[0]
    if _ANY_TAG.search(text):
        return parse_answer(text).translation
    return _clean(text)
