"""Durable file writes: batch outputs, journals, caches, reports and the model cache.

A run may be killed at any instant (Ctrl-C, kill -9, power loss). Every file it leaves must then be
either the old version or the complete new one, never a prefix: results are written to a temporary name
in the same folder, fsynced, renamed into place, and the rename itself is made durable by syncing the
folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STALE_TEMP_SECONDS = 600  # a temp older than this belongs to a killed run, not a live one


def sync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` survive power loss (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_mode() -> int:
    """What open() would give a new file (mkstemp's 0600 would surprise whoever reads the output next)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(dest: Path, data: bytes) -> None:
    """Replace ``dest`` with ``data`` in one step; on any failure ``dest`` is untouched and no temp file is left."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _default_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    sync_dir(dest.parent)


def remove_stale_temps(dest: Path) -> None:
    """Delete temp files/dirs of ``dest`` left by killed runs (up to GBs); a recent one may belong to a live run."""
    for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        except OSError:
            pass


def publish_dir(dest: Path, fill: Callable[[Path], None], *, replace: bool = False) -> OSError | None:
    """Make the folder ``dest`` with ``fill(tmp)`` in a temp folder beside it, then rename it into place, so
    that ``dest`` exists only once complete (the caches of models and tokenizers). ``replace``: an existing
    ``dest`` (a damaged copy) is removed first; otherwise one that a concurrent run published first is as
    good. Returns the error when ``dest`` could not be made (failing to cache is never fatal)."""
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(dest)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
        fill(tmp)
        if replace and dest.is_dir():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
        sync_dir(dest.parent)
    except OSError as exc:
        if not dest.is_dir():
            return exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return None
