"""Objects that are slow to build and a pure function of a key, kept as pickles between
processes (each Dagster run is a new process). A changed input must change the key: a file is
never checked against what it was built from. Writes go through a temporary file and an atomic
rename, so a reader sees a whole file or none; a file that cannot be read or written is
rebuilt or skipped, never an error."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from prometheus_dagster.core.paths import prometheus_home_path

_writes_enabled = True


def disable_writes() -> None:
    """Keep this process from writing cache files (a command that promises to write nothing,
    such as ``check-data``, still reads what is cached)."""
    global _writes_enabled
    _writes_enabled = False


def cache_dir(kind: str) -> Path:
    """``$PROMETHEUS_HOME/cache/<kind>`` (created by the first write, not here)."""
    return prometheus_home_path() / "cache" / kind


def load_pickle(path: Path) -> Any | None:
    """The object stored at ``path``, or None (absent or unreadable)."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None


def store_pickle(path: Path, value: Any) -> None:
    """Write ``value`` at ``path`` atomically (best effort); nothing after ``disable_writes``."""
    if not _writes_enabled:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        return
