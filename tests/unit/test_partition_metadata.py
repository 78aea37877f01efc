"""Per-partition materialization metadata of a single-run backfill: each partition's event
carries its own row count (a partition with no rows says 0), the run's figures stay shared."""

import pandas as pd
from dagster import AssetKey, BackfillPolicy, DagsterInstance, asset, materialize

from prometheus_dagster.resources.io_manager import WarehouseIOManager, partition_row_counts
from tests.unit.test_warehouse import US, prices_for


@asset(key=["US_EQ", "prices_daily"], partitions_def=US,
       backfill_policy=BackfillPolicy.single_run())
def uneven_prices(context) -> pd.DataFrame:
    frame = prices_for(context.partition_keys).assign(
        date=lambda f: pd.to_datetime(f["date"]))
    # the second day of the range has one name, the third none
    second, third = context.partition_keys[1], context.partition_keys[2]
    frame = frame[(frame["date"] != pd.Timestamp(third))]
    return frame[~((frame["date"] == pd.Timestamp(second)) & (frame.index % 2 == 1))]


def test_partition_row_counts_count_each_key_once() -> None:
    frame = pd.DataFrame({"date": pd.to_datetime(["2024-01-02", "2024-01-02", "2024-01-04"])})
    assert partition_row_counts(["2024-01-02", "2024-01-03", "2024-01-04"], frame, "date") == {
        "2024-01-02": 2, "2024-01-03": 0, "2024-01-04": 1}
    assert partition_row_counts(["2024-01-02"], None, "date") == {"2024-01-02": 0}


def test_each_partition_of_a_range_reports_its_own_rows(tmp_path) -> None:
    instance = DagsterInstance.ephemeral()
    url = f"duckdb:///{tmp_path / 'meta.duckdb'}"
    result = materialize([uneven_prices], instance=instance,
                         resources={"io_manager": WarehouseIOManager(url=url)},
                         tags={"dagster/asset_partition_range_start": "2024-01-02",
                               "dagster/asset_partition_range_end": "2024-01-05"})
    assert result.success
    events = result.asset_materializations_for_node("US_EQ__prices_daily")
    rows = {e.partition: e.metadata["rows"].value for e in events}
    assert rows == {"2024-01-02": 2, "2024-01-03": 1, "2024-01-04": 0, "2024-01-05": 2}
    assert {e.metadata["rows_written"].value for e in events} == {5}
    assert AssetKey(["US_EQ", "prices_daily"]) in {e.asset_key for e in events}
