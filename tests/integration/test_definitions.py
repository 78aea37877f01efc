"""The code location loads, validates from the CLI, lists its jobs and materializes."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from dagster import AssetKey, materialize

from prometheus_dagster.definitions import build_definitions
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.warehouse import Warehouse

REPO = Path(__file__).parents[2]


def test_dagster_cli_validates_the_workspace():
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All code locations passed validation" in proc.stdout + proc.stderr


def test_jobs_follow_the_sun_and_cover_markets():
    defs = build_definitions()
    names = [j.name for j in defs.jobs]
    assert names[0] == "reference_data"
    assert names.index("EU_EQ_daily") < names.index("US_EQ_daily") < names.index("GLOBAL_daily")
    us = defs.resolve_job_def("US_EQ_daily")
    assert us.tags["prometheus/tier"] == "1"
    assert us.partitions_def.get_partition_keys()[0] == "2005-01-03"


def test_every_daily_asset_of_a_market_has_a_freshness_check():
    defs = build_definitions()
    checked = {k.asset_key for c in defs.asset_checks for k in c.check_keys}
    daily = {k for k in defs.resolve_job_def("US_EQ_daily").asset_layer.executable_asset_keys}
    assert daily <= checked
    assert "freshness_checks" in [s.name for s in defs.sensors]


def test_reference_assets_materialize_into_the_warehouse(tmp_path):
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    resources = build_resources(warehouse_url=url)
    assets = list(build_definitions().assets)
    res = materialize(assets, selection=[AssetKey(["GLOBAL", "markets"])], resources=resources)
    assert res.success
    res = materialize(
        assets, selection=[AssetKey(["US_EQ", "calendar_sessions"])], resources=resources,
        tags={"dagster/asset_partition_range_start": "2024-11-25",
              "dagster/asset_partition_range_end": "2024-11-29"},
    )
    assert res.success
    wh = Warehouse.from_url(url)
    assert set(wh.read("markets")["market_id"]) >= {"US_EQ", "EU_EQ", "JP_EQ", "FX_GLOB"}
    sessions = wh.read("calendar_sessions")
    assert list(sessions["date"].dt.strftime("%Y-%m-%d")) == [
        "2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]
    assert sessions.set_index("date").loc[pd.Timestamp("2024-11-29"), "early_close"]
