"""The simulated equity markets kept on disk between processes.

Simulating an equity market (prices, corporate actions, statements, news) from the config's
start date takes seconds per process, and every run of the daily chain is a new process that
asks the embedded vendor for a few days of it. The frames are a pure function of the config and
of this package's code, so they are kept in one file per market under a key hashing both: a
changed config or generator gives a new key (a new simulation), never stale data. Writes go
through a temporary file and an atomic rename, so a reader sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import exchange_calendars as xcals

_PACKAGE = Path(__file__).parent


def simulation_key(config: Any, calendars: str = "") -> str:
    """A hash of the config, of the markets' calendars (``calendars``: their specs) with the
    calendar library's version, and of the generator's source files."""
    digest = hashlib.sha256(config.model_dump_json().encode())
    digest.update(f"{calendars}|exchange_calendars {xcals.__version__}".encode())
    for path in sorted(_PACKAGE.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


class SimulationCache:
    """Load and store one simulated equity market per file in ``folder``."""

    def __init__(self, folder: Path, config: Any, calendars: str = ""):
        self.folder = Path(folder)
        self.key = simulation_key(config, calendars)

    def path(self, market_id: str) -> Path:
        return self.folder / f"{self.key}-{market_id}.pkl"

    def load(self, market_id: str) -> Any | None:
        """The stored market, or None (absent or unreadable: it is simulated again)."""
        path = self.path(market_id)
        if not path.exists():
            return None
        try:
            with path.open("rb") as f:
                return pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
            return None

    def store(self, market_id: str, market: Any) -> None:
        """Write ``market`` (best effort: a folder that cannot be written is skipped)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                pickle.dump(market, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path(market_id))
        except OSError:
            return
