"""Finding lexicon terms in a source text: longest match over Chinese, word-boundary match over English.

Chinese has no spaces, so a hint found inside a longer ordinary word would be wrong ("吃瓜" inside
"吃瓜子", eating melon seeds): the source is segmented by forward longest match over every dictionary word,
and only segments that are hint-worthy terms are hinted. English terms match on word boundaries, with
regular inflections folded (ghosted / ghosting -> ghost; spilled the tea -> spill the tea).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_ZH_WORD = 8  # characters: longer CC-CEDICT headwords exist but are proverbs nobody abbreviates
_ASCII_RUN = re.compile(r"[A-Za-z0-9]+")
_ASCII_RUN_END = re.compile(r"[A-Za-z0-9]+$")
_EN_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


@dataclass(frozen=True)
class Match(Generic[T]):
    start: int  # character offsets in the source
    end: int
    surface: str  # the text as written in the source
    value: T


def _cuts_run(text: str, a: int, b: int) -> bool:
    """Would the span [a, b) cut a run of Latin letters or digits in two?"""
    def inside(i: int) -> bool:
        return 0 < i < len(text) and text[i - 1].isascii() and text[i].isascii() and \
            text[i - 1].isalnum() and text[i].isalnum()
    return inside(a) or inside(b)


def _segments(text: str, vocab, *, forward: bool) -> list[tuple[int, int]]:
    """Spans of a maximum-matching segmentation, left to right or right to left. A run of Latin letters or
    digits is one span (yyds, emo, 666), unless a longer dictionary word holds it whole (打call, 芭比Q了,
    AA制): a word never cuts such a run."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    i = 0 if forward else n
    while (i < n) if forward else (i > 0):
        run = _ASCII_RUN.match(text, i) if forward else _ASCII_RUN_END.search(text, 0, i)
        run_span = (run.start(), run.end()) if run and (run.start() == i if forward else run.end() == i) else None
        span = run_span or ((i, i + 1) if forward else (i - 1, i))
        shortest = span[1] - span[0] + 1  # a word must be longer than the run or character it replaces
        for length in range(min(MAX_ZH_WORD, n - i if forward else i), max(shortest, 2) - 1, -1):
            candidate = (i, i + length) if forward else (i - length, i)
            if not _cuts_run(text, *candidate) and text[candidate[0] : candidate[1]] in vocab:
                span = candidate
                break
        spans.append(span)
        i = span[1] if forward else span[0]
    return spans


def match_chinese(text: str, words: frozenset[str] | set[str], terms: Mapping[str, T]) -> Iterator[Match[T]]:
    """The terms of ``text`` that both forward and backward longest-match segmentation (over ``words`` and
    ``terms``) cut out whole: where the two disagree, the term may straddle a word boundary (吃瓜|子 vs
    吃|瓜子), and a wrong hint costs more than a missing one. Terms are keyed in lower case (栓q matches 栓Q)."""

    class _Vocab:
        def __contains__(self, piece: str) -> bool:
            return piece in words or piece.lower() in terms

    vocab = _Vocab()
    backward = set(_segments(text, vocab, forward=False))
    for start, end in _segments(text, vocab, forward=True):
        key = text[start:end].lower()
        if key in terms and (start, end) in backward:
            yield Match(start, end, text[start:end], terms[key])


def english_tokens(text: str) -> list[tuple[str, int, int]]:
    """(token, start, end) in lower case: words (with an apostrophe part) and single punctuation marks."""
    folded = text.lower().replace("\u2019", "'")  # a typographic apostrophe is an apostrophe
    return [(m.group(), m.start(), m.end()) for m in _EN_TOKEN.finditer(folded)]


def lemma_candidates(token: str) -> set[str]:
    """The forms a token may be an inflection of: ghosted -> ghost, vibing -> vibe, stanned -> stan."""
    forms = {token}
    if token.endswith("'s"):
        forms.add(token[:-2])
    for suffix in ("ing", "ed", "es", "s", "d"):
        if token.endswith(suffix) and len(token) - len(suffix) >= 2:
            stem = token[: -len(suffix)]
            forms.add(stem)
            if suffix in ("ing", "ed"):
                forms.add(stem + "e")  # vibing -> vibe
                if len(stem) >= 3 and stem[-1] == stem[-2]:
                    forms.add(stem[:-1])  # stanned -> stan
            if suffix in ("ed", "es") and stem.endswith("i"):
                forms.add(stem[:-1] + "y")  # cried -> cry
    return forms


class EnglishMatcher(Generic[T]):
    """Multi-word terms on token boundaries; every token of the source may be an inflected form."""

    def __init__(self, terms: Mapping[str, T]):
        self.by_first: dict[str, list[tuple[tuple[str, ...], T]]] = {}
        for term, value in terms.items():
            toks = tuple(t for t, _, _ in english_tokens(term))
            if toks:
                self.by_first.setdefault(toks[0], []).append((toks, value))
        for options in self.by_first.values():
            options.sort(key=lambda o: -len(o[0]))  # longest first

    def matches(self, text: str) -> Iterator[Match[T]]:
        tokens = english_tokens(text)
        candidates = [lemma_candidates(t) for t, _, _ in tokens]
        i = 0
        while i < len(tokens):
            found = None
            for first in candidates[i]:
                for toks, value in self.by_first.get(first, ()):
                    end = i + len(toks)
                    if end <= len(tokens) and all(toks[k] in candidates[i + k] for k in range(1, len(toks))):
                        if found is None or len(toks) > len(found[0]):
                            found = (toks, value)
                        break
            if found is None:
                i += 1
                continue
            end = i + len(found[0])
            start_char, end_char = tokens[i][1], tokens[end - 1][2]
            yield Match(start_char, end_char, text[start_char:end_char], found[1])
            i = end
