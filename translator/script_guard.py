"""The target-script guard: an answer in English (or French, ...) never writes Chinese characters.

A small model translating Chinese often copies the term it does not know into its English answer ("a
lemon精", "cutting韭菜"). The translator cannot use such an answer, and no search finds a better one while
every candidate may copy. So inside the answer of a translation into a language not written with Han
characters, the tokens that would write them are never chosen: the model must say it in the target language.
The log-probs the rewards read stay the raw ones (the ban only changes which token is picked), and the
thought may still quote the source.

A token is banned when its bytes hold a UTF-8 lead byte of U+3000..U+9FFF (CJK punctuation, kana, Han):
without one no such character can be formed, whether a tokenizer writes it as one token or several byte
pieces. Korean (Hangul) and Japanese targets are left alone.

The notes guard, beside it: given dictionary notes, a small model sometimes copies a note's list of senses
into its answer, separator and all ("Bad luck, go away! | Begone! | Shoo, shoo"), or strings its own
alternatives together the same way. The separator between senses is one no translation needs
(``translator.prompt.SENSE_SEPARATOR``), so when a request carries notes and its text holds no such
character, the tokens that would write it are never chosen inside the answer either. The check after
decoding (``translator.lexicon.markup``) still repairs the copies this cannot prevent.
"""

from __future__ import annotations

import io
import logging
import re
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from translator.durable_files import write_atomic
from translator.languages import Language
from translator.prompt import SENSE_SEPARATOR, TranslationRequest

logger = logging.getLogger(__name__)

_CJK_TARGETS = frozenset({"zh", "ja", "ko"})  # written with Han characters, or with jamo in U+3130..U+318F
_LEAD_BYTES = frozenset(range(0xE3, 0xEA))  # UTF-8 lead bytes of U+3000..U+9FFF
_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # a sentencepiece byte-fallback token
_CACHE: "weakref.WeakKeyDictionary[Any, np.ndarray]" = weakref.WeakKeyDictionary()
# The scans' results saved beside a cached tokenizer (``_scanned``). Bump a version when its scan's rule changes.
_SAVED_IDS = "script-guard-v1.npy"
_SAVED_SEPARATOR_IDS = "notes-guard-v1.npy"
_CJK_TEXT = re.compile("[\u3000-\u9fff]")  # what the banned lead bytes would begin
_SEPARATOR = SENSE_SEPARATOR.strip()
_SEPARATOR_CACHE: "weakref.WeakKeyDictionary[Any, np.ndarray]" = weakref.WeakKeyDictionary()


def holds_chinese(text: str) -> bool:
    """Does a text hold a character the guard keeps out of an answer (CJK punctuation, kana, Han)?"""
    return _CJK_TEXT.search(text) is not None


def applies(target: Language) -> bool:
    """Is the target language written without Han characters (so the guard is worth applying)?"""
    return target.code not in _CJK_TARGETS


def _byte_level_alphabet() -> dict[str, int]:
    """Byte-level BPE (GPT-2, Qwen, SmolLM) writes each byte as one printable character: printable Latin-1
    bytes stand for themselves, the others are shifted past U+0100 in byte order. The inverse map."""
    kept = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in kept}
    shift = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + shift)
            shift += 1
    return {c: b for b, c in chars.items()}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None) if backend is not None else None
    return decoder is not None and "ByteLevel" in repr(decoder)


def banned_token_ids(tokenizer: Any) -> np.ndarray:
    """Sorted ids of every token that writes (part of) a character in U+3000..U+9FFF; computed once per
    tokenizer (a pass over the vocabulary, well under a second for Qwen's 151k tokens), and read back from
    beside a cached tokenizer on later starts."""
    return _scanned(tokenizer, _CACHE, _SAVED_IDS, lambda t: _scan(t))


def _scanned(tokenizer: Any, cache: "weakref.WeakKeyDictionary[Any, np.ndarray]", saved_name: str,
             scan: Any) -> np.ndarray:
    """``scan(tokenizer)``'s ids, once per tokenizer: kept in ``cache``, and saved as ``saved_name`` beside a
    cached tokenizer (``CachedTokenizer.directory``), so a warm start reads them (the pass over the
    vocabulary takes 0.2-0.3 s of a 3 s start for Qwen)."""
    try:
        return cache[tokenizer]
    except (KeyError, TypeError):
        pass
    saved = Path(tokenizer.directory) / saved_name if getattr(tokenizer, "directory", None) else None
    ids = _read_ids(saved, len(tokenizer)) if saved is not None else None
    if ids is None:
        ids = scan(tokenizer)
        if saved is not None:
            _write_ids(saved, ids)
    try:
        cache[tokenizer] = ids
    except TypeError:  # a tokenizer that cannot be weakly referenced is scanned each time
        pass
    return ids


def _read_ids(path: Path, size: int) -> np.ndarray | None:
    """Saved ids, or None when there are none or they cannot be right for this vocabulary."""
    try:
        ids = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if ids.ndim != 1 or ids.dtype != np.int64 or (ids.size and not (0 <= ids[0] and ids[-1] < size)):
        return None
    return ids


def _write_ids(path: Path, ids: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, ids, allow_pickle=False)
    try:
        write_atomic(path, buffer.getvalue())
    except OSError as exc:  # a read-only cache: the next start scans again
        logger.debug("could not save the script guard's ids to %s: %s", path, exc)


def _scan(tokenizer: Any) -> np.ndarray:
    """The pass over the vocabulary behind ``banned_token_ids``."""
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    banned = []
    if _is_byte_level(tokenizer):  # one regex over each piece: the characters that stand for a lead byte
        leads = re.compile("[" + "".join(re.escape(c) for c, b in _byte_level_alphabet().items()
                                         if b in _LEAD_BYTES) + "]")
        banned = [i for i, piece in enumerate(pieces) if piece and leads.search(piece)]
    else:  # sentencepiece and others: the decoded text, or the byte a byte-fallback piece stands for
        for i, piece in enumerate(pieces):
            byte = _SP_BYTE.fullmatch(piece or "")
            if byte is not None:
                if int(byte.group(1), 16) in _LEAD_BYTES:
                    banned.append(i)
            elif any(b in _LEAD_BYTES for b in tokenizer.decode([i]).encode("utf-8")):
                banned.append(i)
    return np.asarray(banned, dtype=np.int64)


def separator_token_ids(tokenizer: Any) -> np.ndarray:
    """Sorted ids of every token whose piece holds the notes' sense separator (chat markers such as
    ``<|im_end|>`` included: ``answer_ban`` spares the stop tokens), once per tokenizer as
    ``banned_token_ids``. The character is ASCII, so it stands for itself in byte-level and sentencepiece
    pieces alike."""
    return _scanned(tokenizer, _SEPARATOR_CACHE, _SAVED_SEPARATOR_IDS,
                    lambda t: np.asarray(sorted(i for piece, i in t.get_vocab().items() if _SEPARATOR in piece),
                                         dtype=np.int64))


def keeps_notes_out(request: TranslationRequest) -> bool:
    """Does the notes guard apply: the request carries notes, and its text needs no separator character?"""
    return bool(request.hints) and _SEPARATOR not in request.text


def answer_ban(backend: Any, request: TranslationRequest, script_guard: bool,
               notes_guard: bool) -> np.ndarray | None:
    """The ids a strategy's answer to ``request`` must not use (sorted), or None when no guard applies: the
    script guard is off or the target is written with Han characters, the notes guard is off or has
    nothing to keep out, or the backend cannot mask logits (an HTTP server picks its own tokens). The
    backend's stop tokens are never banned, so an answer can always end."""
    if not getattr(backend, "masks_tokens", False):
        return None
    parts = []
    if script_guard and applies(request.tgt):
        parts.append(banned_token_ids(backend.tokenizer))
    if notes_guard and keeps_notes_out(request):
        separator = separator_token_ids(backend.tokenizer)
        parts.append(separator[~np.isin(separator, list(getattr(backend, "stop_ids", ())))])
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else np.union1d(*parts)


def without(logprobs: Any, banned: np.ndarray | None) -> Any:
    """The distribution a backend picks the next token from: the raw log-probs (a numpy array or a torch
    tensor), with the banned ids impossible. The raw ones are what is reported."""
    if banned is None or not len(banned):
        return logprobs
    out = logprobs.clone() if hasattr(logprobs, "clone") else logprobs.copy()
    out[banned] = float("-inf")
    return out
