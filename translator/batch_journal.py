"""The resume journal: an append-only JSONL file of finished segments, fsynced after every batch.

Its first line records the run's settings and chunk size; a journal from other settings, or decoded in
chunks of another size, is refused rather than mixed in, since its translations would not be the ones this
run produces. Each later line is one finished segment, keyed by index and by the request key (a hash of the
source and the settings), so an entry whose input line has changed is simply redone. A batch's entries go out
in one write, so a kill leaves whole batches; a torn last line (power loss mid-write) is dropped and its
segment redone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from translator.durable_files import sync_dir, write_atomic
from translator.batch_formats import json_line
from translator.errors import InputError

_MAGIC = "marco-translate batch journal"
_VERSION = 1
_HEADER_START = json.dumps({"journal": _MAGIC}).encode()[:-1]


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(_differences(a, b, f"{prefix}{name}."))
        elif a != b:
            diffs.append(f"{prefix}{name} {a!r} -> {b!r}")
    return diffs


class Journal:
    def __init__(self, path: Path, settings: dict[str, Any], chunk_size: int):
        """``chunk_size``: segments decoded together (``strategies.chunk_size``). Journals written before it
        was recorded resume at any size."""
        self.path = path
        self.settings = settings
        self.chunk_size = chunk_size
        self._valid_end = 0  # bytes of the existing file holding a header and whole entries
        self._file: IO[bytes] | None = None

    def load(self) -> dict[int, dict[str, Any]]:
        """Finished entries by segment index (empty for a new journal)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InputError(f"cannot read journal {self.path}: {exc.strerror or exc}") from None
        entries: dict[int, dict[str, Any]] = {}
        pos = 0
        while (end := data.find(b"\n", pos)) >= 0:
            try:
                item = json.loads(data[pos:end])
            except ValueError:
                item = None
            if pos == 0:
                self._check_header(item)
            elif not isinstance(item, dict) or "index" not in item:
                break  # damaged from here on: keep what precedes, redo the rest
            else:
                entries[item["index"]] = item
            pos = end + 1
        if pos == 0 and data and not (_HEADER_START.startswith(data) or data.startswith(_HEADER_START)):
            self._check_header(None)  # one unterminated line that is not a torn header of ours
        self._valid_end = pos
        return entries

    def _check_header(self, header: Any) -> None:
        if not isinstance(header, dict) or header.get("journal") != _MAGIC:
            raise InputError(f"{self.path} exists and is not a batch journal; remove it or pass another --journal")
        if header.get("version") != _VERSION or header.get("settings") != self.settings:
            diffs = _differences(header.get("settings") or {}, self.settings) or [f"version {header.get('version')}"]
            raise InputError(f"journal {self.path} is from a run with other settings ({'; '.join(diffs)}): "
                             "rerun with those settings to resume it, or delete it to start over")
        recorded = header.get("chunk_size")
        if recorded is not None and recorded != self.chunk_size:
            raise InputError(f"journal {self.path} was decoded in batches of {recorded}, and batched decoding can "
                             f"pick other tokens at another size: rerun with --batch-size {recorded} to resume it "
                             "exactly, or delete it to start over")

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
            header = {"journal": _MAGIC, "version": _VERSION, "settings": self.settings, "chunk_size": self.chunk_size}
            write_atomic(self.path, (json_line(header) + "\n").encode("utf-8"))
        self._file = open(self.path, "ab")
        if self._valid_end:
            self._file.truncate(self._valid_end)  # drop a torn last line before appending after it

    def remove(self) -> None:
        """The run is complete and its output written: the journal has done its job."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)
        sync_dir(self.path.parent)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
