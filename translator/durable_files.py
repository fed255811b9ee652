"""Durable file writes: batch outputs, journals, caches, reports and the model cache.

A run may be killed at any instant (Ctrl-C, kill -9, power loss). Every file it leaves must then be
either the old version or the complete new one, never a prefix: results are written to a temporary name
in the same folder, fsynced, renamed into place, and the rename itself is made durable by syncing the
folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
