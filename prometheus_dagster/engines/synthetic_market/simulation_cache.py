"""The simulated equity markets kept on disk between processes.

Simulating an equity market (prices, corporate actions, statements, news) from the config's
start date takes seconds per process, and every run of the daily chain is a new process that
asks the embedded vendor for a few days of it. The frames are a pure function of the config,
of the markets' calendars and of this package's code, so they are kept in one file per market
under a key hashing all three: a changed input gives a new key (a new simulation), never stale
data (``core/disk_cache.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import exchange_calendars as xcals

from prometheus_dagster.core.disk_cache import load_pickle, store_pickle

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
        """The stored market, or None (it is simulated again)."""
        return load_pickle(self.path(market_id))

    def store(self, market_id: str, market: Any) -> None:
        store_pickle(self.path(market_id), market)
