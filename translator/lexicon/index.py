"""The compact lexicon index: CC-CEDICT reduced to what hints need, built once and cached on disk.

Parsing 125k dictionary lines takes about a second; the index (every word for segmentation, the
hint-worthy entries with cleaned senses, and an English-to-Chinese reverse index of the colloquial ones)
loads from its cache in a fraction of that. The cache file is written atomically and named after the
dictionary file's size, mtime and the index format, so a new dictionary or new rules rebuild it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from translator.cache_paths import cache_dir
from translator.durable_files import write_atomic
from translator.lexicon.cedict import KIND_RANK, CedictEntry, clean_sense, read_entries, sense_kind, variant_target

logger = logging.getLogger("translator.lexicon")

INDEX_FORMAT = 10  # bump when the rules below change: old caches are then rebuilt
MAX_SENSES = 4
# Kinds whose English glosses may point an English source term at its Chinese slang equivalent. Idioms and
# colloquialisms are left out: their glosses are everyday English ("stand out", "close friend").
_REVERSE_KINDS = {"slang", "Internet slang", "neologism"}
_RARE_GLOSS_WORD = 3  # a one-word gloss is a reverse key only if it appears in at most this many entries
_GLOSS_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class ZhEntry:
    headword: str  # simplified form
    senses: tuple[str, ...]
    kind: str  # "slang", "idiom"... or "" for a name/word homograph such as 安利 (Amway / to recommend)


@dataclass(frozen=True)
class CedictIndex:
    words: frozenset[str]  # every headword of two or more characters, simplified and traditional
    entries: dict[str, ZhEntry]  # hint-worthy entries by simplified and traditional form
    reverse: dict[str, tuple[ZhEntry, ...]]  # normalised English gloss -> colloquial Chinese entries
    path: str


# Colloquial and figurative senses of everyday words (反映, 材料, 提升 all have one) are no reason for a
# note: as in SLoW (2025), only rarer words get one. Frequencies: jieba's word list (MIT, from PyPI); a
# word missing from it is more often a segmentation accident (中的 in 在…中的) than a rare word.
COMMON_WORD_FREQ = 300
_DISPENSABLE_KINDS = {"colloquial", "figurative", ""}


def find_frequencies() -> Path | None:
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "dict.txt"
    return path if path.is_file() else None


def read_frequencies(path: Path | None) -> dict[str, int]:
    """word -> count in jieba's list; empty when it is not installed (then no word counts as common)."""
    if path is None:
        return {}
    counts = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split(" ")
            if len(parts) >= 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts


def _stamp(path: Path, frequencies: Path | None) -> str:
    parts = [INDEX_FORMAT]
    for source in (path, frequencies):
        if source is not None:
            st = source.stat()
            parts += [source.resolve(), st.st_size, st.st_mtime_ns]
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16]


def load_index(path: Path) -> CedictIndex:
    """The index of a CC-CEDICT file, from the cache when it is there, else built and cached."""
    frequencies = find_frequencies()
    cache = cache_dir() / "lexicon" / f"cedict-{_stamp(path, frequencies)}.json"
    try:
        return _from_json(json.loads(cache.read_text(encoding="utf-8")), path)
    except (OSError, ValueError, KeyError):
        pass
    index = build_index(read_entries(path), str(path), read_frequencies(frequencies))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps(_to_json(index), ensure_ascii=False).encode("utf-8"))
    except OSError as exc:  # a read-only cache costs a rebuild next time, nothing else
        logger.warning("could not cache the lexicon index at %s: %s", cache, exc)
    return index


def build_index(entries: list[CedictEntry], path: str = "", frequencies: dict[str, int] | None = None) -> CedictIndex:
    groups: dict[str, list[CedictEntry]] = defaultdict(list)
    for entry in entries:
        groups[entry.simplified].append(entry)
    words = {form for e in entries for form in (e.simplified, e.traditional) if len(form) >= 2}
    hinted: dict[str, ZhEntry] = {}
    for simplified, group in groups.items():
        if len(simplified) < 2:
            continue  # single characters: too many senses, too little signal
        zh = _hint_entry(simplified, group, groups, words)
        if zh is not None and zh.kind in _DISPENSABLE_KINDS and frequencies and \
                not 0 < frequencies.get(simplified, 0) < COMMON_WORD_FREQ:
            zh = ZhEntry(zh.headword, zh.senses, "")  # kept to enrich the project's entries, never hinted alone
        if zh is not None:
            for form in {simplified, *(e.traditional for e in group)}:
                hinted[form] = zh
    return CedictIndex(frozenset(words), hinted, _reverse_index(groups, hinted), path)


def is_chengyu_like(simplified: str, group: list[CedictEntry], words: set[str] | frozenset[str]) -> bool:
    """Four characters that are not a name and not two words side by side: most such entries are chengyu
    that the dictionary does not tag (一贫如洗 "penniless"), while 智能手机 (智能 + 手机) is a compound."""
    return (len(simplified) == 4 and all("\u4e00" <= c <= "\u9fff" for c in simplified)
            and all(e.pinyin[:1].islower() for e in group)
            and not (simplified[:2] in words and simplified[2:] in words))


def _hint_entry(simplified: str, group: list[CedictEntry], groups: dict[str, list[CedictEntry]],
                words: set[str] | frozenset[str]) -> ZhEntry | None:
    """A hint for a headword, if a translator would look it up: a tagged sense (slang, idiom, fig. ...), an
    untagged chengyu, or a headword that is both a name and a word (安利: Amway / to recommend)."""
    raw = [s for e in group for s in e.senses]
    targets = {variant_target(s) for s in raw} - {None}
    if targets and all(variant_target(s) for s in raw):
        raw = [s for t in sorted(targets) for e in groups.get(t, []) for s in e.senses]  # borrow the main entry's
    if any(s.startswith("fig. ") for s in raw):  # an idiom's literal reading is not a sense to translate
        raw = [s for s in raw if not s.startswith("lit. ")]
    scored = []
    for order, sense in enumerate(raw):
        kind = sense_kind(sense)
        text = clean_sense(sense)
        if text:
            scored.append((KIND_RANK.get(kind, 9) if kind else 9, order, text, kind))
    if not scored:
        return None
    kinds = [k for *_, k in scored if k]
    if not kinds and is_chengyu_like(simplified, group, words):
        kinds = ["idiom"]
    homograph = any(e.pinyin[:1].isupper() for e in group) and any(e.pinyin[:1].islower() for e in group)
    if not kinds and not homograph:
        return None  # homographs (安利: Amway / to recommend) are kept to enrich the project's entries only
    senses: list[str] = []
    for _, _, text, _ in sorted(scored):  # tagged senses first, each kind in its rank, then the plain ones
        if text not in senses:
            senses.append(text)
    best = min(kinds, key=lambda k: KIND_RANK[k]) if kinds else ""
    return ZhEntry(simplified, tuple(senses[:MAX_SENSES]), best)


def gloss_key(gloss: str) -> str:
    """An English gloss as a lookup key: lower case, no article or infinitive 'to', no parentheses."""
    text = re.sub(r"\([^)]*\)", " ", gloss.lower())
    text = re.sub(r"[\"'.,!?]", "", text)
    text = re.sub(r"^(?:to|a|an|the)\s+", "", text.strip())
    return re.sub(r"\s+", " ", text).strip()


def _reverse_index(groups: dict[str, list[CedictEntry]], hinted: dict[str, ZhEntry]) -> dict[str, tuple[ZhEntry, ...]]:
    counts: Counter[str] = Counter()
    for group in groups.values():
        for entry in group:
            counts.update(set(_GLOSS_WORD.findall(" ".join(entry.senses).lower())))
    reverse: dict[str, list[ZhEntry]] = defaultdict(list)
    for simplified, group in groups.items():
        zh = hinted.get(simplified)
        if zh is None:
            continue
        for sense in (s for e in group for s in e.senses):
            # An untagged sense of a tagged entry (戏精: "drama queen") counts when it is a phrase: a lone
            # word there is too often the literal sense (凡尔赛: "Versailles").
            kind = sense_kind(sense) or (zh.kind if zh.kind else None)
            tagged = sense_kind(sense) is not None
            text = clean_sense(sense)
            if not kind or not text:
                continue
            for gloss in text.split(";"):
                key = gloss_key(gloss)
                n_words = len(key.split())
                if not key or n_words > 4 or re.search(r"\b(?:sb|sth|etc)\b|[^a-z '-]", key):
                    continue
                if n_words == 1 and (not tagged or kind not in _REVERSE_KINDS or counts[key] > _RARE_GLOSS_WORD):
                    continue
                if kind not in _REVERSE_KINDS:
                    continue
                if zh not in reverse[key]:
                    reverse[key].append(zh)
    return {k: tuple(v) for k, v in reverse.items()}


def _to_json(index: CedictIndex) -> dict:
    entries = {zh.headword: [list(zh.senses), zh.kind] for zh in index.entries.values()}
    forms = {form: zh.headword for form, zh in index.entries.items() if form != zh.headword}
    reverse = {key: [zh.headword for zh in values] for key, values in index.reverse.items()}
    return {"format": INDEX_FORMAT, "words": "\n".join(sorted(index.words)), "entries": entries, "forms": forms,
            "reverse": reverse}


def _from_json(data: dict, path: Path) -> CedictIndex:
    if data["format"] != INDEX_FORMAT:
        raise ValueError("old index format")
    by_head = {head: ZhEntry(head, tuple(senses), kind) for head, (senses, kind) in data["entries"].items()}
    entries = {**by_head, **{form: by_head[head] for form, head in data["forms"].items()}}
    reverse = {key: tuple(by_head[h] for h in heads) for key, heads in data["reverse"].items()}
    return CedictIndex(frozenset(data["words"].split("\n")), entries, reverse, str(path))
