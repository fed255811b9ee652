"""Glossaries for the batch tool: a TSV of ``source term<TAB>target term``, one entry a line.

Only the entries a segment actually contains go into its prompt: a long glossary in every prompt would
cost prefill time on every segment and distract a small model with terms that are not there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from translator.batch_formats import decode, split_lines
from translator.errors import InputError
from translator.prompt import GlossaryEntry


def _term_pattern(term: str) -> re.Pattern[str]:
    """Case-insensitive; a term that starts or ends with a Latin letter or digit must do so at a word edge
    ("cat" is not in "category"), while CJK terms match anywhere, since CJK text has no spaces."""
    before = r"(?<![A-Za-z0-9])" if term[0].isascii() and term[0].isalnum() else ""
    after = r"(?![A-Za-z0-9])" if term[-1].isascii() and term[-1].isalnum() else ""
    return re.compile(before + re.escape(term) + after, re.IGNORECASE)


@dataclass(frozen=True)
class Glossary:
    entries: tuple[GlossaryEntry, ...] = ()
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def of(cls, entries: list[GlossaryEntry]) -> "Glossary":
        return cls(tuple(entries), tuple(_term_pattern(e.source) for e in entries))

    def matching(self, text: str) -> tuple[GlossaryEntry, ...]:
        """The entries whose source term occurs in ``text``, in glossary order."""
        return tuple(e for e, p in zip(self.entries, self._patterns) if p.search(text))


def load_glossary(path: Path) -> Glossary:
    """Read a glossary file (TSV); see :func:`parse_glossary`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read glossary {path}: {exc.strerror or exc}") from None
    return parse_glossary(decode(data, str(path)), str(path))


def parse_glossary(text: str, where: str, separators: tuple[str, ...] = ("\t",)) -> Glossary:
    """Blank lines and lines starting with # are skipped; any other line must be two non-empty cells split
    at the first of ``separators`` it contains (the app also takes "term = translation", since a browser
    text box cannot take a tab)."""
    entries = []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sep = next((s for s in separators if s in line), separators[0])
        cells = [c.strip() for c in line.split(sep, 1)] if sep != "\t" else [c.strip() for c in line.split(sep)]
        if len(cells) != 2 or not all(cells):
            shown = " or ".join("<TAB>" if s == "\t" else f" {s} " for s in separators)
            raise InputError(f"{where}: line {number} is not 'source term{shown}target term'")
        entries.append(GlossaryEntry(*cells))
    return Glossary.of(entries)
