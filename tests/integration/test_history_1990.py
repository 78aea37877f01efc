"""History before the shipped start: with the history start set to 1990 (environment, no edit
of configs/markets.yaml), 1990 files ingest from the first partition on, the look-back before
it finding nothing; with the shipped start, the same files are reported as predating it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from dagster import AssetKey, DagsterInstance, materialize

from prometheus_dagster.assets.ingestion import ingestion_assets
from prometheus_dagster.engines.ingestion.file_source import FileSource
from prometheus_dagster.resources.warehouse import Warehouse
from prometheus_dagster.steps.ingestion import predating_rows
from tests.history_start import history_start_env
from tests.integration.test_ingestion_files import file_resources

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source_1990"


def test_1990_files_ingest_when_the_history_starts_in_1990(tmp_path, monkeypatch):
    with history_start_env(monkeypatch, "US_EQ=1990-01-02"):
        url, resources = file_resources(FIXTURE, tmp_path)
        assets = [a for a in ingestion_assets(["US_EQ"]) if a.key.path[0] == "US_EQ"]
        instance = DagsterInstance.ephemeral()
        assert materialize(assets, resources=resources, instance=instance, selection=[
            AssetKey(["US_EQ", "instruments"]), AssetKey(["US_EQ", "issuers"])]).success
        result = materialize(assets, resources=resources, instance=instance,
                             selection=[AssetKey(["US_EQ", "prices_daily"])], tags={
                                 "dagster/asset_partition_range_start": "1990-01-02",
                                 "dagster/asset_partition_range_end": "1990-02-28"})
        assert result.success
        wh = Warehouse.from_url(url)
        prices = wh.read_partitions("prices_daily", market_id="US_EQ")
        assert len(prices) == 3 * 41  # 41 XNYS sessions in Jan-Feb 1990, 3 instruments
        assert pd.Timestamp(prices["date"].min()) == pd.Timestamp("1990-01-02")
        runs = wh.read("ingestion_runs", where={"table_name": "prices_daily"})
        assert set(runs["status"]) == {"SUCCESS"}
        assert set(runs["warnings"]) == {"[]"}


def test_rows_before_the_history_start_are_reported_with_file_line_and_setting():
    source = FileSource(FIXTURE)
    message = predating_rows(source, "prices_daily", "US_EQ", pd.Timestamp("2005-01-03"))
    assert message is not None
    assert f"{FIXTURE / 'prices_daily.csv'} line 2: US_EQ prices_daily has rows from " \
           "1990-01-02, before its history start 2005-01-03" in message
    assert "history_start in configs/markets.yaml" in message
    assert "PROMETHEUS_HISTORY_START" in message
    # only the first partition's run says so
    assert predating_rows(source, "prices_daily", "US_EQ", pd.Timestamp("2005-01-04")) is None
