"""The warehouse contract on a real PostgreSQL server, plus four concurrent writer processes.

Needs the server at ``postgresql://postgres@127.0.0.1:5432/postgres`` (override with
``PROMETHEUS_TEST_POSTGRES_URL``). Every test works in its own throwaway schema; the schemas of
the session are dropped at the end. An unreachable server skips these tests with the command that
starts it (fails them under CI): see tests/services.py.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest

from prometheus_dagster.core.errors import WarehouseError
from prometheus_dagster.resources.warehouse import Warehouse
from tests.integration.test_warehouse_concurrency import run_concurrent_writers
from tests.integration.test_warehouse_readers import run_readers_during_writers
from tests.services import PG_URL, connect_postgres
from tests.unit.test_warehouse import EVENTS, WarehouseContract, events

pytestmark = pytest.mark.postgres

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_prefix() -> Iterator[str]:
    """A unique schema prefix for this test session; its schemas are dropped afterwards."""
    conn = connect_postgres(PG_URL)
    prefix = f"prom_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                        [prefix])
            for (name,) in cur.fetchall():
                cur.execute(f'DROP SCHEMA "{name}" CASCADE')
        conn.close()


def _url(prefix: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}schema={prefix}_{next(_counter)}"


class TestPostgresWarehouse(WarehouseContract):
    @pytest.fixture
    def wh(self, pg_prefix: str) -> Warehouse:
        return Warehouse.from_url(_url(pg_prefix))


def test_four_processes_write_postgres(pg_prefix: str) -> None:
    elapsed = run_concurrent_writers(_url(pg_prefix))
    assert elapsed < 120


def test_readers_never_break_postgres_writers(pg_prefix: str) -> None:
    """``prometheus_dagster.sql`` and ``cli sql`` on PostgreSQL while four processes write."""
    run_readers_during_writers(_url(pg_prefix))


def test_schemas_are_isolated(pg_prefix: str) -> None:
    a, b = Warehouse.from_url(_url(pg_prefix)), Warehouse.from_url(_url(pg_prefix))
    a.append(EVENTS, events(["x"], "2024-01-02"))
    assert len(a.read(EVENTS)) == 1 and b.read(EVENTS).empty and not b.table_exists(EVENTS)
    nulls = pd.DataFrame({"event_id": ["n"], "d": ["2024-01-02"], "v": [float("nan")]})
    a.append(EVENTS, nulls)
    raw = a.query("SELECT v IS NULL AS is_null FROM wh_events WHERE event_id = 'n'")
    assert bool(raw["is_null"].iloc[0])  # NaN is stored as NULL


def test_unreachable_server_is_a_clear_error() -> None:
    wh = Warehouse.from_url("postgresql://postgres@127.0.0.1:1/postgres")
    with pytest.raises(WarehouseError, match="cannot connect to the PostgreSQL warehouse"):
        wh.read(EVENTS)
