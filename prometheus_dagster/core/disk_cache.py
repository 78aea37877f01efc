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

from prometheus_dagster.core.paths import prometheus_home


def cache_dir(kind: str) -> Path:
    """``$PROMETHEUS_HOME/cache/<kind>``."""
    return prometheus_home() / "cache" / kind


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
    """Write ``value`` at ``path`` atomically (best effort)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        return
