"""Set the history start through the environment for one test (configs and calendars are cached
per process, so the caches are cleared before and after)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from prometheus_dagster.core import calendars, partitions


def clear_caches() -> None:
    for cached in (calendars.load_markets, calendars.trading_calendar,
                   partitions.market_partitions_def, partitions.global_partitions_def):
        cached.cache_clear()


@contextmanager
def history_start_env(monkeypatch: pytest.MonkeyPatch, value: str) -> Iterator[None]:
    monkeypatch.setenv(calendars.HISTORY_START_ENV, value)
    clear_caches()
    try:
        yield
    finally:
        monkeypatch.delenv(calendars.HISTORY_START_ENV)
        clear_caches()
