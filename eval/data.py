"""Test sets for the scorer, the benchmark and the app, named by one SPEC string.

SPEC is ``SOURCE[:SRC-TGT]``, where SOURCE is one of

* a shortcut: ``slang`` (the project's own colloquial set, ``eval/data/slang.jsonl``, zh-en and en-zh),
  or a shared set under ``../shared/data`` (repo-relative; override with ``MARCO_SHARED_DATA``):
  ``wmt22-dev`` (zh-en, en-zh; references A and B), ``petci`` (zh-en chengyu, several refs),
  ``wmt24-social`` (en-zh) and ``slangdit`` (en-zh);
* ``FILE.jsonl``: one JSON object a line with ``src`` and ``refs`` (a list) or ``ref`` (a string), and
  optionally ``id``, ``note``, ``category``, ``src_lang``, ``tgt_lang``;
* ``SRC_FILE,REF_FILE[,REF_FILE...]``: aligned plain-text files, one segment a line, paths separated by
  commas (a path may not itself contain a comma);
* a sacrebleu test set name such as ``wmt22``, downloaded by sacrebleu to ``~/.sacrebleu`` the first time
  (which needs a network).

``:SRC-TGT`` (language codes, e.g. ``:zh-en``) picks the direction. It is required for sacrebleu sets and
for shortcuts with more than one direction. For JSONL it keeps the items of that direction (items that
name no languages are taken to be in it). For plain files it defaults to the files' last suffixes, as in
``dev.zh-en.zh,dev.zh-en.ref.A.en``.

Examples: ``slang:zh-en``, ``wmt22-dev:en-zh``, ``petci``, ``my.jsonl:en-zh``, ``src.zh,ref1.en,ref2.en``,
``wmt22:zh-en``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from translator.errors import InputError
from translator.languages import UnknownLanguageError, resolve_language

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
SLANG_SET = PACKAGE_DATA / "slang.jsonl"

# Shortcut -> direction -> SOURCE relative to the shared data folder (or absolute, for the project's own).
SHORTCUTS: dict[str, dict[str, str]] = {
    "slang": {"zh-en": str(SLANG_SET), "en-zh": str(SLANG_SET)},
    "wmt22-dev": {
        "zh-en": "wmt22/dev.zh-en.zh,wmt22/dev.zh-en.ref.A.en,wmt22/dev.zh-en.ref.B.en",
        "en-zh": "wmt22/dev.en-zh.en,wmt22/dev.en-zh.ref.A.zh,wmt22/dev.en-zh.ref.B.zh",
    },
    "petci": {"zh-en": "petci/dev.zh-en.jsonl"},
    "wmt24-social": {"en-zh": "wmt24/dev.social.en-zh.en,wmt24/dev.social.en-zh.zh"},
    "slangdit": {"en-zh": "slangdit/dev.en-zh.en,slangdit/dev.en-zh.zh"},
}

_LANGPAIR = re.compile(r"(?P<source>.+):(?P<src>[A-Za-z]{2,3})-(?P<tgt>[A-Za-z]{2,3})")


@dataclass
class Item:
    id: str
    src: str
    refs: list[str]
    note: str | None = None  # what the source means and the literal trap, for people reading results
    category: str | None = None


@dataclass
class TestSet:
    __test__ = False  # not a pytest test class, despite the name

    name: str
    src_lang: str
    tgt_lang: str
    items: list[Item] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def sources(self) -> list[str]:
        return [item.src for item in self.items]

    def references(self) -> list[list[str | None]]:
        """sacrebleu's layout, ``refs[j][i]``: streams padded with None where an item has fewer refs."""
        width = max((len(item.refs) for item in self.items), default=0)
        return [[item.refs[j] if j < len(item.refs) else None for item in self.items] for j in range(width)]


def shared_data_dir() -> Path:
    """``../shared/data`` next to the repository, unless MARCO_SHARED_DATA says otherwise."""
    override = os.environ.get("MARCO_SHARED_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file exactly as the sacrebleu CLI reads them (split on \\n, right-stripped),
    with a user-facing error for a missing or undecodable file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]


def _code(text: str) -> str:
    try:
        return resolve_language(text).code
    except UnknownLanguageError as exc:
        raise InputError(str(exc)) from None


def load_testset(spec: str, *, limit: int | None = None) -> TestSet:
    """The test set a SPEC names (see the module docstring), cut to its first ``limit`` items."""
    match = _LANGPAIR.fullmatch(spec.strip())
    source, pair = (match["source"], (_code(match["src"]), _code(match["tgt"]))) if match else (spec.strip(), None)
    testset = _load(source, pair)
    testset.name = spec.strip()
    if limit is not None:
        testset.items = testset.items[:limit]
    if not testset.items:
        raise InputError(f"test set {spec!r} has no items" + (f" for {pair[0]}-{pair[1]}" if pair else ""))
    return testset


def _load(source: str, pair: tuple[str, str] | None) -> TestSet:
    if source in SHORTCUTS:
        return _load_shortcut(source, pair)
    if "," in source:
        return _load_plain(source.split(","), pair)
    if source.endswith(".jsonl"):
        return _load_jsonl(Path(source), pair)
    return _load_sacrebleu(source, pair)


def _load_shortcut(name: str, pair: tuple[str, str] | None) -> TestSet:
    directions = SHORTCUTS[name]
    if pair is None and len(directions) == 1:
        pair = tuple(next(iter(directions)).split("-"))  # type: ignore[assignment]
    key = f"{pair[0]}-{pair[1]}" if pair else None
    if key not in directions:
        raise InputError(f"{name} needs a direction: {', '.join(f'{name}:{d}' for d in directions)}")
    base = shared_data_dir()
    paths = [base / p for p in directions[key].split(",")]  # an absolute path stays as it is
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(
            f"{name} needs {missing[0]}, which is missing (shared data folder: {base}; set MARCO_SHARED_DATA)"
        )
    return _load_plain(paths, pair) if len(paths) > 1 else _load_jsonl(paths[0], pair)


def _pair_from_suffixes(src: Path, ref: Path) -> tuple[str, str]:
    try:
        return resolve_language(src.suffix.lstrip(".")).code, resolve_language(ref.suffix.lstrip(".")).code
    except UnknownLanguageError:
        raise InputError(
            f"cannot tell the languages of {src} and {ref} from their suffixes; append :SRC-TGT to the spec"
        ) from None


def _load_plain(paths: list[str] | list[Path], pair: tuple[str, str] | None) -> TestSet:
    if len(paths) < 2:
        raise InputError("a plain-text test set needs a source and at least one reference: SRC,REF[,REF...]")
    src_path, *ref_paths = (Path(p) for p in paths)
    srcs = read_lines(src_path)
    streams = [read_lines(p) for p in ref_paths]
    for path, stream in zip(ref_paths, streams):
        if len(stream) != len(srcs):
            raise InputError(f"{path} has {len(stream)} lines but {src_path} has {len(srcs)}")
    src_lang, tgt_lang = pair or _pair_from_suffixes(src_path, ref_paths[0])
    items = [Item(id=str(i), src=src, refs=[s[i - 1] for s in streams]) for i, src in enumerate(srcs, 1)]
    return TestSet(name="", src_lang=src_lang, tgt_lang=tgt_lang, items=items)


def _item_from_json(record: object, where: str, default_id: str) -> Item:
    if not isinstance(record, dict) or not isinstance(record.get("src"), str):
        raise InputError(f"{where}: expected an object with a \"src\" string")
    refs = record.get("refs", [record["ref"]] if "ref" in record else [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise InputError(f"{where}: \"refs\" must be a list of strings (or give one \"ref\" string)")
    return Item(
        id=str(record.get("id", default_id)),
        src=record["src"],
        refs=refs,
        note=record.get("note"),
        category=record.get("category"),
    )


def _load_jsonl(path: Path, pair: tuple[str, str] | None) -> TestSet:
    items: dict[tuple[str, str] | None, list[Item]] = {}
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
        item = _item_from_json(record, where, default_id=str(lineno))
        named = "src_lang" in record and "tgt_lang" in record
        langs = (_code(record["src_lang"]), _code(record["tgt_lang"])) if named else None
        items.setdefault(langs, []).append(item)
    directions = [d for d in items if d is not None]
    if pair is None:
        if len(directions) != 1:
            found = ", ".join(f"{s}-{t}" for s, t in directions) or "none named in the file"
            raise InputError(f"{path}: say which direction to use, e.g. {path}:zh-en (directions: {found})")
        pair = directions[0]
    return TestSet(name="", src_lang=pair[0], tgt_lang=pair[1], items=items.get(pair, []) + items.get(None, []))


def _load_sacrebleu(name: str, pair: tuple[str, str] | None) -> TestSet:
    from sacrebleu.dataset import DATASETS

    dataset = DATASETS.get(name)
    if dataset is None:
        raise InputError(
            f"unknown test set {name!r}: not a shortcut ({', '.join(SHORTCUTS)}), a .jsonl file, "
            "a comma-separated SRC,REF file list, or a sacrebleu test set"
        )
    key = f"{pair[0]}-{pair[1]}" if pair else None
    if key not in dataset.langpairs:
        pairs = list(dataset.langpairs)
        raise InputError(f"sacrebleu test set {name} needs a direction, one of: {', '.join(pairs)} (e.g. {name}:{pairs[0]})")
    try:
        src_file = dataset.get_source_file(key)
        ref_files = dataset.get_reference_files(key)
    except (OSError, SystemExit) as exc:  # sacrebleu exits on some download failures
        raise InputError(
            f"sacrebleu test set {name} is not downloaded yet and could not be fetched "
            f"(a network is needed the first time): {exc}"
        ) from None
    return _load_plain([src_file, *ref_files], pair)
