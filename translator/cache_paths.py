"""Where the project keeps what it builds once and reuses: the assembled model, its caches, the lexicon index.

Kept apart from ``models`` (which imports torch) so light modules such as the lexicon can find the cache
without loading a deep-learning stack.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$MARCO_TRANSLATE_CACHE``, else ``$XDG_CACHE_HOME/marco-translate``, else ``~/.cache/marco-translate``."""
    if explicit := os.environ.get("MARCO_TRANSLATE_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "marco-translate"
