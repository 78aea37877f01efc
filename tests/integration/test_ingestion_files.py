"""Ingestion through Dagster from the file source: the quality gate blocks bad partitions, keeps
the rows stored earlier, stops downstream, and leaves other partitions alone; an empty delivery
does not wipe stored rows (DuckDB and PostgreSQL) unless the run says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from prometheus_dagster.assets.common import require_quality_passed, run_dates
from prometheus_dagster.assets.ingestion import ingestion_assets
from prometheus_dagster.core.ingestion_config import ALLOW_ROW_LOSS_TAG
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.resources.io_manager import WarehouseIOManager, WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse
from tests.integration.test_warehouse_postgres import _url as postgres_url
from tests.integration.test_warehouse_postgres import pg_prefix  # noqa: F401  (fixture)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source"
DAY_A, DAY_B = "2024-02-05", "2024-02-06"
PRICES = AssetKey(["US_EQ", "prices_daily"])


@asset(key=["US_EQ", "downstream_probe"], deps=[PRICES],
       partitions_def=market_partitions_def("US_EQ"))
def downstream_probe(context, warehouse: WarehouseResource) -> None:
    require_quality_passed(warehouse.get(), "US_EQ", run_dates(context), ["prices_daily"])


def file_resources(root: Path, tmp_path: Path, url: str | None = None) -> tuple[str, dict]:
    """Resources reading ``root`` through the file source into a warehouse (``url``, by default a
    DuckDB file under tmp_path)."""
    url = url or f"duckdb:///{tmp_path / 'wh.duckdb'}"
    return url, {
        "source": SourceResource(kind="files", files_root=str(root)),
        "warehouse": WarehouseResource(url=url),
        "io_manager": WarehouseIOManager(url=url),
        "mlflow": MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                 artifact_root=str(tmp_path / "art")),
    }


@pytest.fixture()
def env(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(FIXTURE, root)
    url, resources = file_resources(root, tmp_path)
    assets = [a for a in ingestion_assets(["US_EQ"]) if a.key.path[0] == "US_EQ"]
    return root, Warehouse.from_url(url), resources, assets


def run(assets, resources, key: str, selection=None, instance=None, tags=None):
    return materialize(
        [*assets, downstream_probe], partition_key=key, resources=resources,
        selection=selection or [PRICES, AssetKey(["US_EQ", "downstream_probe"])],
        raise_on_error=False, instance=instance or DagsterInstance.ephemeral(), tags=tags,
    )


def reference(assets, resources):
    res = materialize(assets, resources=resources, selection=[
        AssetKey(["US_EQ", "instruments"]), AssetKey(["US_EQ", "issuers"])])
    assert res.success


def prices_file(root: Path) -> Path:
    return root / "prices_daily" / "2024-02.csv"


def corrupt(root: Path, day: str, defect: str) -> None:
    path = prices_file(root)
    if defect == "unparsable":
        path.write_bytes(b"instrument_id,date,close\n\"unterminated,2024-02-05,1\n\x00\x01")
        return
    if defect == "empty_file":
        path.write_bytes(b"")
        return
    if defect == "latin1":
        text = path.read_text().replace(f"EQUITY:BETA,{day}", f"EQUITY:BÉTA,{day}")
        path.write_bytes(text.encode("latin-1"))
        return
    df = pd.read_csv(path, dtype=str)
    hit = df.index[df["date"] == day][0]
    if defect == "negative_price":
        df.loc[hit, ["open", "low", "close"]] = "-5.0"
    elif defect == "high_below_low":
        df.loc[hit, "high"] = str(float(df.loc[hit, "low"]) - 1.0)
    elif defect == "duplicate_key":
        df = pd.concat([df, df.loc[[hit]]], ignore_index=True)
    elif defect == "missing_column":
        df = df.drop(columns=["close"])
    elif defect == "wrong_type":
        df.loc[hit, "close"] = "abc"
    elif defect == "timezone_date":
        df.loc[hit, "date"] = f"{day}T23:30:00-05:00"
    elif defect == "absurd_price":
        df.loc[hit, ["open", "high", "low", "close", "adjusted_close"]] = "1e308"
    df.to_csv(path, index=False)


def error_text(error) -> str:
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


RULE_WORDS = {
    "negative_price": ["> 0", "-5"],
    "high_below_low": ["high"],
    "duplicate_key": ["duplicate"],
    "unparsable": ["2024-02.csv"],
    "missing_column": ["missing required column", "close"],
    "wrong_type": ["'abc'", "not a number"],
    "timezone_date": ["line 14", "'2024-02-05T23:30:00-05:00' is a timestamp, not a date"],
    "absurd_price": ["prices <= 1e+09", "close=1e+308"],
    "empty_file": ["rule CSV header line failed", "0 bytes"],
    "latin1": ["line 15 (byte ", "rule UTF-8 text failed", "0xc9"],
}
# defects that block the whole table: the file cannot be read, or a row cannot be placed
FILE_LEVEL = ("unparsable", "missing_column", "timezone_date", "empty_file", "latin1")


@pytest.mark.parametrize("defect", list(RULE_WORDS))
def test_defect_fails_partition_keeps_old_rows_and_stops_downstream(env, defect):
    root, wh, resources, assets = env
    reference(assets, resources)
    for day in (DAY_A, DAY_B):
        assert run(assets, resources, day).success
    before = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_A])
    before_b = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_B])
    assert len(before) > 0

    corrupt(root, DAY_A, defect)
    res = run(assets, resources, DAY_A)
    assert not res.success
    checks = [e for e in res.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks and not checks[0].event_specific_data.passed
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    message = error_text(failure.event_specific_data.error)
    assert "2024-02.csv" in message, message
    if defect not in ("unparsable", "missing_column", "empty_file"):
        assert "line " in message, message
    for word in RULE_WORDS[defect]:
        assert word in message, message
    # downstream did not run
    assert not res.asset_materializations_for_node("US_EQ__downstream_probe")
    # ... nor in a later run that asks only for the downstream asset
    later = run(assets, resources, DAY_A, selection=[AssetKey(["US_EQ", "downstream_probe"])])
    assert not later.success
    assert "failed its quality gate" in error_text(next(
        e for e in later.all_events if e.event_type_value == "STEP_FAILURE"
    ).event_specific_data.error)
    # the rows stored earlier are unchanged
    after = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_A])
    pd.testing.assert_frame_equal(before, after)
    runs = wh.read("ingestion_runs")
    failed = runs[(runs["status"] == "FAILED") & (runs["date"] == pd.Timestamp(DAY_A))]
    assert len(failed) == 1 and failed["error"].iloc[0]
    # other partitions are fine: DAY_B keeps its rows; a row-level defect does not stop other
    # dates from ingesting, while a file that cannot be read at all blocks its table (its dates
    # are unknown) until it is fixed, without touching any stored rows.
    file_level = defect in FILE_LEVEL
    assert run(assets, resources, DAY_B).success is not file_level
    pd.testing.assert_frame_equal(
        before_b, wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_B])
    )


def test_reingesting_a_partition_is_idempotent(env):
    _, wh, resources, assets = env
    reference(assets, resources)
    assert run(assets, resources, DAY_A).success
    first = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_A])
    assert run(assets, resources, DAY_A).success
    pd.testing.assert_frame_equal(first, wh.read_partitions(
        "prices_daily", market_id="US_EQ", dates=[DAY_A]))
    # the ingestion config is registered once and every unit names it
    configs = wh.read("engine_configs")
    assert list(configs["engine_name"]) == ["ingestion"]
    runs = wh.read("ingestion_runs")
    assert set(runs["config_id"]) == {configs["config_id"].iloc[0]}


def test_index_only_market_ingests(tmp_path):
    root = Path(__file__).parents[1] / "fixtures" / "file_source_index_only"
    url, resources = file_resources(root, tmp_path)
    assets = [a for a in ingestion_assets(["US_EQ"])
              if a.key.path[0] == "US_EQ" or a.key.path[-1] == "macro_time_series"]
    reference(assets, resources)
    tables = ["prices_daily", "corporate_actions", "fundamentals", "news_articles",
              "news_links"]
    res = materialize(
        assets, resources=resources,
        selection=[AssetKey(["US_EQ", t]) for t in tables],
        tags={"dagster/asset_partition_range_start": "2023-03-01",
              "dagster/asset_partition_range_end": "2023-03-28"},
    )
    assert res.success
    wh = Warehouse.from_url(url)
    prices = wh.read("prices_daily")
    assert prices["instrument_id"].nunique() == 1 and len(prices) == 20
    assert wh.read("fundamentals").empty


def test_implausible_jump_fails_its_date(env):
    root, wh, resources, assets = env
    reference(assets, resources)
    for day in (DAY_A, DAY_B):
        assert run(assets, resources, day).success
    before = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_B])
    path = prices_file(root)
    df = pd.read_csv(path, dtype=str)
    hit = df.index[(df["date"] == DAY_B) & (df["instrument_id"] == "EQUITY:BETA")][0]
    for c in ("high", "close", "adjusted_close"):
        df.loc[hit, c] = str(float(df.loc[hit, c]) * 1000)
    df.to_csv(path, index=False)
    res = run(assets, resources, DAY_B)
    assert not res.success
    message = error_text(next(e for e in res.all_events
                              if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
    assert f"2024-02.csv line {hit + 2}: rule daily move <= 50x failed: adjusted_close " in \
        message, message
    assert "with no SPLIT of the instrument on this date" in message
    pd.testing.assert_frame_equal(before, wh.read_partitions(
        "prices_daily", market_id="US_EQ", dates=[DAY_B]))


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_empty_delivery_does_not_wipe_stored_rows(tmp_path, request, backend):
    root = tmp_path / "data"
    shutil.copytree(FIXTURE, root)
    url = None
    if backend == "postgres":  # a throwaway schema of its own on the shared server
        url = postgres_url(request.getfixturevalue("pg_prefix"))
    url, resources = file_resources(root, tmp_path, url)
    wh = Warehouse.from_url(url)
    assets = [a for a in ingestion_assets(["US_EQ"]) if a.key.path[0] == "US_EQ"]
    reference(assets, resources)
    assert run(assets, resources, DAY_A).success
    before = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_A])
    assert len(before) == 6

    # the vendor re-delivers the month as a header-only file
    path = prices_file(root)
    path.write_text(path.read_text().splitlines()[0] + "\n")
    res = run(assets, resources, DAY_A)
    assert not res.success
    message = error_text(next(e for e in res.all_events
                              if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
    assert ("prices_daily 2024-02-05: rule stored rows kept failed: the delivery has no rows for "
            "this date; writing it would delete its 6 stored row(s)") in message, message
    assert ALLOW_ROW_LOSS_TAG in message
    assert not res.asset_materializations_for_node("US_EQ__downstream_probe")
    pd.testing.assert_frame_equal(before, wh.read_partitions(
        "prices_daily", market_id="US_EQ", dates=[DAY_A]))
    runs = wh.read("ingestion_runs")
    failed = runs[(runs["status"] == "FAILED") & (runs["date"] == pd.Timestamp(DAY_A))]
    assert len(failed) == 1 and "stored rows kept" in failed["error"].iloc[0]

    # said explicitly, for this run only: the rows go, with a warning on record
    assert run(assets, resources, DAY_A, selection=[PRICES],
               tags={ALLOW_ROW_LOSS_TAG: "true"}).success
    assert wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_A]).empty
    runs = wh.read("ingestion_runs")
    last = runs[runs["date"] == pd.Timestamp(DAY_A)].sort_values("finished_at").iloc[-1]
    assert last["status"] == "SUCCESS" and "stored rows kept flagged" in last["warnings"]


def test_a_tracking_failure_commits_nothing_and_says_so(env, tmp_path):
    """Tracking comes before the commit: with the MLflow store unusable, a re-run of a partition
    leaves its rows and ingestion_runs as they were, and the failure says nothing was
    committed."""
    import sqlite3

    from prometheus_dagster.resources import mlflow_store

    root, wh, resources, assets = env
    reference(assets, resources)
    assert run(assets, resources, DAY_A, selection=[PRICES]).success
    before = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_A])
    runs_before = len(wh.read("ingestion_runs"))
    df = pd.read_csv(prices_file(root), dtype=str)
    df.loc[df["date"] == DAY_A, "volume"] = "123456"  # what a re-run would write
    df.to_csv(prices_file(root), index=False)

    broken = tmp_path / "broken"
    with MlflowTracking(tracking_uri=f"sqlite:///{broken / 'mlflow.db'}").start_run("x", "x"):
        pass  # a store that holds a run, left at an older schema
    con = sqlite3.connect(broken / "mlflow.db")
    con.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")
    con.commit()
    con.close()
    mlflow_store._ready.clear()  # as a new step process finds it
    failing = {**resources, "mlflow": MlflowTracking(
        tracking_uri=f"sqlite:///{broken / 'mlflow.db'}", artifact_root=str(tmp_path / "art"))}
    res = run(assets, failing, DAY_A, selection=[PRICES])
    assert not res.success
    errors = [e.event_specific_data.error.to_string() for e in res.all_events
              if e.event_type_value == "STEP_FAILURE"]
    assert any("Nothing of this materialization was committed to the warehouse" in m
               for m in errors), errors
    pd.testing.assert_frame_equal(
        before, wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_A]))
    assert len(wh.read("ingestion_runs")) == runs_before

    assert run(assets, resources, DAY_A, selection=[PRICES]).success  # tracked again: written
    after = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[DAY_A])
    assert (after["volume"] == 123456).all()
