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


def _clean(text: str) -> str:
    text = _ANY_TAG.sub("", text).strip()
    text = _LABEL.sub("", text, count=1).strip()
    return text


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
    return ParsedAnswer(_clean(_last_paragraph(text)), "", False)


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
