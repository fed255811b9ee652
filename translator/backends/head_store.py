"""Prompt heads' KV cells kept on disk, so a new process reads its prompt head instead of prefilling it.

Every prompt of one kind (strategy, language pair) starts with the same head: chat template, system prompt
and instructions, about 80 tokens for a direct translation with the default model. The llama.cpp backend
computes it once per run (``Backend.start``), but a one-line translation from the CLI is a run of its own,
and on this project's 2-core machine that head's prefill was about 0.8 s of a 3-4 s warm start.

llama.cpp can hand out one sequence's cells as bytes (``llama_state_seq_get_data``) and take them back
(``llama_state_seq_set_data``). The backend stores a head only when it computed it alone into an empty
cache, and reads one back only into an empty cache, so the restored cells lie where computed ones would:
what follows is bitwise the same as after a computed head (tested), not merely close.

A file is named by a digest of everything its cells depend on (the GGUF file, llama-cpp-python's version,
the KV cache's types and attention kind, the head's token ids) and holds the token ids again, checked on
reading. A file that is missing, torn, from another head or refused by llama.cpp is computed again and
rewritten; nothing is ever lost but the time. Files are written atomically (``durable_files``).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from pathlib import Path

import numpy as np

from translator.durable_files import write_atomic

logger = logging.getLogger(__name__)

_MAGIC = b"marco-translate kv head 1\n"


class HeadStore:
    """Prompt heads of one model and context configuration, as files in ``folder``."""

    def __init__(self, folder: Path, identity: str):
        self.folder = Path(folder)
        self.identity = identity  # what the cells depend on besides the tokens (``identity_of``)

    def path(self, tokens: list[int]) -> Path:
        digest = hashlib.sha256(self.identity.encode())
        digest.update(np.asarray(tokens, dtype="<i4").tobytes())
        return self.folder / f"{digest.hexdigest()[:40]}.kv"

    def load(self, ctx, seq_id: int, tokens: list[int]) -> bool:
        """Put the stored cells of ``tokens`` into sequence ``seq_id``; False (nothing loaded) when there
        are none that fit."""
        import llama_cpp

        try:
            data = self.path(tokens).read_bytes()
        except OSError:
            return False
        head = len(_MAGIC) + 4
        if not data.startswith(_MAGIC) or len(data) < head:
            return False
        n = int.from_bytes(data[len(_MAGIC):head], "little")
        ids = np.frombuffer(data, dtype="<i4", count=n, offset=head) if len(data) >= head + 4 * n else None
        if ids is None or ids.tolist() != list(tokens):
            return False
        state = data[head + 4 * n:]
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_seq_set_data(ctx, buf, len(state), seq_id) != len(state):
            logger.warning("llama.cpp refused the stored prompt head %s; computing it again", self.path(tokens))
            return False
        return True

    def save(self, ctx, seq_id: int, tokens: list[int]) -> None:
        """Store sequence ``seq_id``'s cells (holding exactly ``tokens``); a failure to write is logged, not
        raised: the cache only saves time."""
        import llama_cpp

        size = llama_cpp.llama_state_seq_get_size(ctx, seq_id)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, seq_id)
        if not written:
            return
        ids = np.asarray(tokens, dtype="<i4")
        dest = self.path(tokens)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(dest, _MAGIC + len(ids).to_bytes(4, "little") + ids.tobytes() + bytes(buf)[:written])
        except OSError as exc:
            logger.warning("could not keep the prompt head in %s: %s", dest, exc)


def identity_of(gguf: Path, cparams) -> str:
    """What a head's cells depend on besides its tokens: the model file (path, size, modification time),
    llama-cpp-python's version, the K and V types and the attention kind of the context."""
    import llama_cpp

    st = gguf.stat()
    return "|".join(str(x) for x in (gguf.resolve(), st.st_size, st.st_mtime_ns, llama_cpp.__version__,
                                     cparams.type_k, cparams.type_v, cparams.flash_attn_type))
