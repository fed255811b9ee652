"""Results by request, so that each distinct segment is decoded once per run, and once ever with ``--cache``.

The key covers everything that decides a result: the exact source, the languages, the glossary entries in
the prompt, the model, its dtype, and the strategy with every parameter (defaults included), so a cached
translation is only reused where decoding again would give the same one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from translator.durable_files import write_atomic
from translator.errors import InputError
from translator.prompt import TranslationRequest

logger = logging.getLogger("translator.batch")


def request_key(request: TranslationRequest, settings: Mapping[str, Any]) -> str:
    payload = {
        "text": request.text, "src": request.src.code, "tgt": request.tgt.code, "context": request.context,
        "glossary": [[e.source, e.target] for e in request.glossary], "settings": settings,
        **({"hints": [[h.term, list(h.senses), h.source, h.note] for h in request.hints]} if request.hints else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class DiskCache:
    """One JSON file per key, written atomically: a file that exists is complete, whatever killed a run."""

    def __init__(self, directory: Path):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create cache folder {directory}: {exc.strerror or exc}") from None
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # edited or damaged by hand: decode again, and overwrite it
            logger.warning("ignoring unreadable cache file %s (%s)", self._path(key), exc)
            return None

    def put(self, key: str, result: dict[str, Any]) -> None:
        write_atomic(self._path(key), json.dumps(result, ensure_ascii=False).encode())
