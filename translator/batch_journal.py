"""The resume journal: an append-only JSONL file of finished segments, fsynced after every batch.

Its first line records the run's settings (``RunSettings``: what decides the translations, the chunk size,
and the version of the code); a journal from other settings, decoded in chunks of another size, or written
by other code is refused rather than mixed in, since its translations would not be the ones this run
produces. Each later line is one finished segment, keyed by index and by the request key (a hash of the
source and the settings), so an entry whose input line has changed is simply redone. A batch's entries go out
in one write, so a kill leaves whole batches; a torn last line (power loss mid-write) is dropped and its
segment redone. The batch tool and ``marco-eval bench`` share this one schema.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from translator.batch_formats import json_line
from translator.durable_files import sync_dir, write_atomic
from translator.errors import InputError
from translator.strategies import chunk_size as strategy_chunk_size

_MAGIC = "marco-translate batch journal"
_VERSION = 2  # 2: the header records the code version
_HEADER_START = json.dumps({"journal": _MAGIC}).encode()[:-1]


@functools.cache
def code_version() -> str:
    """The package version and a hash of the translator package's source files: what decodes a segment.

    A hash of the sources rather than ``git describe --dirty``, which names no edit (every one reads
    "-dirty"), does not exist outside a checkout, and would flip as soon as a run writes a tracked journal."""
    try:
        package = version("marco-translate")
    except PackageNotFoundError:
        package = "unknown"
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{package}+src.{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class RunSettings:
    """What decides a run's translations, as its journal records them; a journal resumes only under equal ones."""

    decoding: dict[str, Any]  # model, strategy with every option, languages (bench: label, data); keys requests
    chunk_size: int  # segments decoded together (``strategies.chunk_size``): batched decoding depends on it
    code: str = field(default_factory=code_version)


def run_settings(model: dict[str, Any], strategy: str, options: dict[str, Any], src: str, tgt: str,
                 batch_size: int, **extra: Any) -> RunSettings:
    """The one settings record of the batch tool and the benchmark. ``model``: ``options.model_settings``;
    ``options``: the strategy's whole Config (defaults included); ``extra``: what else names the run."""
    decoding = {**model, "strategy": strategy, "options": options, "src": src, "tgt": tgt, **extra}
    return RunSettings(decoding, strategy_chunk_size(strategy, batch_size))


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``name old -> new`` for every setting that differs, nested ones as ``options.name``."""
    diffs = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(differences(a, b, f"{prefix}{name}."))
        elif a != b:
            diffs.append(f"{prefix}{name} {a!r} -> {b!r}")
    return diffs


def read_journal(path: Path) -> tuple[dict[str, Any] | None, dict[int, dict[str, Any]], int]:
    """The header (None: no file yet, or a header torn mid-write), the entries by segment index, and the
    bytes holding the header and whole entries. Any journal format; a file that is not a journal is refused."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, {}, 0
    except OSError as exc:
        raise InputError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    header: Any = None
    entries: dict[int, dict[str, Any]] = {}
    pos = 0
    while (end := data.find(b"\n", pos)) >= 0:
        try:
            item = json.loads(data[pos:end])
        except ValueError:
            item = None
        if pos == 0:
            header = item
            if not isinstance(header, dict) or header.get("journal") != _MAGIC:
                break
        elif not isinstance(item, dict) or "index" not in item:
            break  # damaged from here on: keep what precedes, redo the rest
        else:
            entries[item["index"]] = item
        pos = end + 1
    torn_header = pos == 0 and (not data or _HEADER_START.startswith(data) or data.startswith(_HEADER_START))
    if not torn_header and not (isinstance(header, dict) and header.get("journal") == _MAGIC):
        raise InputError(f"{path} exists and is not a batch journal; remove it or pass another --journal")
    return (None if torn_header else header), entries, pos


class Journal:
    def __init__(self, path: Path, settings: RunSettings):
        self.path = path
        self.settings = settings
        self._valid_end = 0  # bytes of the existing file holding a header and whole entries
        self._file: IO[bytes] | None = None

    @property
    def chunk_size(self) -> int:
        return self.settings.chunk_size

    def load(self) -> dict[int, dict[str, Any]]:
        """Finished entries by segment index (empty for a new journal)."""
        header, entries, self._valid_end = read_journal(self.path)
        if header is not None:
            self._check_header(header)
        return entries

    def _header(self) -> dict[str, Any]:
        s = self.settings
        return {"journal": _MAGIC, "version": _VERSION, "settings": s.decoding, "chunk_size": s.chunk_size,
                "code": s.code}

    def _check_header(self, header: dict[str, Any]) -> None:
        if header.get("version") != _VERSION:
            raise InputError(f"journal {self.path} was written by an older marco-translate (journal format "
                             f"{header.get('version')}, without the code version), so it cannot be resumed "
                             "safely: delete it to start over")
        if header.get("settings") != self.settings.decoding:
            diffs = differences(header.get("settings") or {}, self.settings.decoding)
            raise InputError(f"journal {self.path} is from a run with other settings ({'; '.join(diffs)}): "
                             "rerun with those settings to resume it, or delete it to start over")
        recorded = header.get("chunk_size")
        if recorded != self.chunk_size:
            raise InputError(f"journal {self.path} was decoded in batches of {recorded}, and batched decoding can "
                             f"pick other tokens at another size: rerun with --batch-size {recorded} to resume it "
                             "exactly, or delete it to start over")
        if header.get("code") != self.settings.code:
            raise InputError(f"journal {self.path} was written by other code (code {header.get('code')!r} -> "
                             f"{self.settings.code!r}), which may translate differently: resume it with that "
                             "code, or delete it to start over")

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Record finished segments durably before anything else learns of them."""
        if not entries:
            return
        if self._file is None:
            self._open()
        self._file.write("".join(json_line(e) + "\n" for e in entries).encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())

    def _open(self) -> None:
        """Created on the first finished batch, so a run that finishes nothing leaves no file behind."""
        if self._valid_end == 0:
            write_atomic(self.path, (json_line(self._header()) + "\n").encode("utf-8"))
        self._file = open(self.path, "ab")
        if self._valid_end:
            self._file.truncate(self._valid_end)  # drop a torn last line before appending after it

    def remove(self) -> None:
        """The run is complete and its output written: the journal has done its job."""
        self.close()
        self.path.unlink(missing_ok=True)
        sync_dir(self.path.parent)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
