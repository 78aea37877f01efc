"""The warehouse on DuckDB: typed round trips, atomic partition replacement, validation before any
write, schema evolution, and the Dagster IO manager over it.

``WarehouseContract`` holds the behaviours every backend must show; ``TestDuckDBWarehouse`` runs
them on a DuckDB file and ``tests/integration/test_warehouse_postgres.py`` on PostgreSQL.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetIn,
    AssetKey,
    BackfillPolicy,
    TimeWindowPartitionMapping,
    asset,
    materialize,
)

from prometheus_dagster.core.errors import DataSchemaError, WarehouseError
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import Column, TableSchema, empty_frame, validate_frame
from prometheus_dagster.resources import warehouse as wm
from prometheus_dagster.resources.io_manager import WarehouseIOManager, WarehouseResource
from prometheus_dagster.resources.warehouse import Warehouse, between

# --- test tables (not registered: passed to the warehouse as TableSchema objects) ---------------
TYPES = TableSchema("wh_types", (
    Column("m", "str", False), Column("k", "str", False), Column("d", "date", False),
    Column("ts", "timestamp"), Column("x", "float"), Column("n", "int"), Column("flag", "bool"),
    Column("doc", "json"), Column("vec", "vector"), Column("note", "str"),
), primary_key=("m", "k", "d"), partition_column="d", market_column="m")

EVENTS = TableSchema("wh_events", (
    Column("event_id", "str", False), Column("d", "date", False), Column("v", "float"),
), primary_key=("event_id",), partition_column="d")

EVOLVE_V1 = TableSchema("wh_evolve", (
    Column("id", "str", False), Column("d", "date", False), Column("a", "float"),
), primary_key=("id", "d"), partition_column="d")
EVOLVE_V2 = TableSchema("wh_evolve", (*EVOLVE_V1.columns, Column("b", "str")),
                        primary_key=("id", "d"), partition_column="d")

TRUTH = TableSchema("wh_regimes", (
    Column("market_id", "str", False), Column("date", "date", False), Column("regime", "str"),
), primary_key=("market_id", "date"), partition_column="date", market_column="market_id",
    namespace="truth")



def embeddings_table(fmt: str) -> TableSchema:
    """The same table with its vectors stored as ``fmt`` (a column made compact later)."""
    return TableSchema("wh_embeddings", (
        Column("id", "str", False), Column("d", "date", False),
        Column("vec", "vector", vector_format=fmt, vector_dim=32),
    ), primary_key=("id",), partition_column="d")


def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def types_frame(day: str, market: str = "US", n: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(zlib.crc32(f"{day}{market}".encode()))
    rows = []
    for i in range(n):
        rows.append({
            "m": market, "k": f"k{i}", "d": day,
            "ts": pd.Timestamp(f"{day} 14:30:00.123456") + pd.Timedelta(minutes=i),
            "x": float(rng.normal()) if i != 1 else -np.inf, "n": 2**62 + i, "flag": bool(i % 2),
            "doc": '{"a": [1, 2], "é": "ü"}', "vec": rng.normal(size=4 + i).astype(np.float32),
            "note": f"naïve – 日本 {i}\ttab \\N back\\slash\r\nline" if i else "",
        })
    rows.append({"m": market, "k": "nulls", "d": day, "ts": None, "x": float("nan"), "n": None,
                 "flag": None, "doc": None, "vec": None, "note": None})
    return pd.DataFrame(rows)


def events(ids: list[str], day: str, v: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"event_id": ids, "d": day, "v": v})


def snapshot(wh: Warehouse, table: TableSchema) -> pd.DataFrame:
    return wh.read(table)


class WarehouseContract:
    """Behaviours of every backend. Subclasses provide the fixture ``wh``: an empty warehouse."""

    def test_round_trip_of_every_logical_type(self, wh: Warehouse) -> None:
        df = pd.concat([types_frame("2024-01-02"), types_frame("2024-01-03", "EU")])
        assert wh.replace_all(TYPES, df) == len(df)
        got = wh.read(TYPES)
        want = validate_frame(TYPES, df).sort_values(["m", "k", "d"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
        vec = got.loc[(got["k"] == "k2") & (got["m"] == "US"), "vec"].iloc[0]
        assert isinstance(vec, bytes) and np.frombuffer(vec, "<f4").shape == (6,)

    def test_compact_vectors_read_back_as_float32_whatever_they_were_stored_as(
            self, wh: Warehouse) -> None:
        vectors = unit_vectors(3)
        frame = pd.DataFrame({"id": ["a", "b", "c"], "d": "2024-01-02", "vec": list(vectors)})
        wh.replace_all(embeddings_table("float32"), frame)  # written before it became compact
        wh.write_partitions(embeddings_table("float16"), frame.assign(
            id=["e", "f", "g"], d="2024-01-03"))
        wh.write_partitions(embeddings_table("int8"), pd.DataFrame(
            {"id": ["h", "i"], "d": "2024-01-04", "vec": [vectors[0], None]}))
        lengths = dict(wh.query(
            "SELECT id, octet_length(vec) FROM " + wh.sql_name(embeddings_table("int8"))
            + " WHERE vec IS NOT NULL").itertuples(index=False, name=None))
        assert lengths == {"a": 128, "b": 128, "c": 128, "e": 64, "f": 64, "g": 64, "h": 36}
        got = wh.read(embeddings_table("int8"))
        assert got["vec"].iloc[-1] is None
        back = {i: np.frombuffer(v, "<f4") for i, v in zip(got["id"], got["vec"], strict=True)
                if v is not None}
        assert all(v.dtype == np.float32 and v.shape == (32,) for v in back.values())
        for i, k in (("a", 0), ("b", 1), ("c", 2)):
            np.testing.assert_array_equal(back[i], vectors[k])
        for i, k in (("e", 0), ("f", 1), ("g", 2)):
            np.testing.assert_allclose(back[i], vectors[k], atol=1e-3)
            assert not np.array_equal(back[i], vectors[k])
        np.testing.assert_allclose(back["h"], vectors[0], atol=np.abs(vectors[0]).max() / 254)
        # a stored vector written again is stored unchanged
        again = wh.read(embeddings_table("float16"), where={"d": "2024-01-03"})
        wh.write_partitions(embeddings_table("float16"), again)
        assert wh.read(embeddings_table("float16"), where={"d": "2024-01-03"}).equals(again)

    def test_qualified_table_in_its_own_namespace(self, wh: Warehouse) -> None:
        assert not wh.table_exists(TRUTH)
        df = pd.DataFrame({"market_id": "US_EQ", "date": ["2024-01-02", "2024-01-03"],
                           "regime": ["BULL", "BEAR"]})
        wh.replace_all(TRUTH, df)
        assert wh.table_exists(TRUTH)
        assert wh.read(TRUTH)["regime"].tolist() == ["BULL", "BEAR"]
        assert wh.sql_name(TRUTH).endswith('truth"."wh_regimes"')

    def test_replace_partition_replaces_only_its_partition(self, wh: Warehouse) -> None:
        for day in ("2024-01-02", "2024-01-03", "2024-01-04"):
            wh.write_partitions(TYPES, types_frame(day), market_id="US", dates=[day])
        wh.write_partitions(TYPES, types_frame("2024-01-03", "EU"), market_id="EU")
        new = types_frame("2024-01-03", n=1).assign(note="new")
        assert wh.replace_partition(TYPES, new, where={"d": "2024-01-03", "m": "US"}) == 2
        got = wh.read(TYPES)
        us_mid = got[(got["m"] == "US") & (got["d"] == "2024-01-03")]
        assert sorted(us_mid["k"]) == ["k0", "nulls"] and set(us_mid["note"]) == {"new"}
        assert len(got[got["d"] != "2024-01-03"]) == 8
        assert len(got[got["m"] == "EU"]) == 4  # the other market's same date is untouched

    def test_where_forms(self, wh: Warehouse) -> None:
        wh.append(EVENTS, pd.concat([events([f"e{i}"], f"2024-01-0{i}") for i in range(1, 8)]))
        days = wh.read(EVENTS, where={"d": between("2024-01-03", "2024-01-05")})["d"]
        assert days.dt.day.tolist() == [3, 4, 5]
        assert len(wh.read(EVENTS, where={"event_id": ["e1", "e7", "nope"]})) == 2
        assert len(wh.read(EVENTS, where={"event_id": {"e2"}})) == 1
        assert len(wh.read(EVENTS, where={"event_id": []})) == 0
        assert len(wh.read_partitions(EVENTS, start="2024-01-06")) == 2
        assert len(wh.read_partitions(EVENTS, end="2024-01-02")) == 2
        assert len(wh.read_partitions(EVENTS, dates=["2024-01-01", "2024-01-07"])) == 2
        part = wh.read_partitions(EVENTS, dates=pd.date_range("2023-01-01", "2024-01-04"))
        assert part["event_id"].tolist() == ["e1", "e2", "e3", "e4"]  # long lists: range+filter
        out = wh.read(EVENTS, columns=["v", "event_id"], order_by=["d"])
        assert list(out.columns) == ["v", "event_id"]
        # replace a whole range at once
        wh.replace_partition(EVENTS, events(["r"], "2024-01-04"),
                             where={"d": between("2024-01-02", "2024-01-06")})
        assert wh.read(EVENTS)["event_id"].tolist() == ["e1", "e7", "r"]

    def test_failure_midway_rolls_back(self, wh: Warehouse, monkeypatch) -> None:
        wh.write_partitions(TYPES, types_frame("2024-01-02"), market_id="US")
        wh.write_partitions(TYPES, types_frame("2024-01-03"), market_id="US")
        before = snapshot(wh, TYPES)
        originals = {cls: cls.insert_frame for cls in (wm._DuckDBSession, wm._PostgresSession)}

        def broken(self, table, schema, frame, **kw):
            originals[type(self)](self, table, schema, frame.iloc[:1], **kw)  # partly written
            raise RuntimeError("disk full")

        for cls in originals:
            monkeypatch.setattr(cls, "insert_frame", broken)
        new = types_frame("2024-01-03", n=5).assign(note="new")
        with pytest.raises(WarehouseError, match="rolled back.*disk full"):
            wh.write_partitions(TYPES, new, market_id="US", dates=["2024-01-03"])
        with pytest.raises(WarehouseError):
            wh.replace_all(TYPES, new)
        monkeypatch.undo()
        pd.testing.assert_frame_equal(snapshot(wh, TYPES), before)

    def test_constraint_violation_rolls_back(self, wh: Warehouse) -> None:
        wh.write_partitions(EVENTS, events(["a", "b"], "2024-01-02"))
        wh.write_partitions(EVENTS, events(["c", "d"], "2024-01-03"))
        before = snapshot(wh, EVENTS)
        # "a" already lives in another partition: the key constraint fails after the delete
        with pytest.raises(WarehouseError, match="previous rows are unchanged"):
            wh.write_partitions(EVENTS, events(["a", "x"], "2024-01-03", 9.0))
        pd.testing.assert_frame_equal(snapshot(wh, EVENTS), before)
        with pytest.raises(WarehouseError):
            wh.append(EVENTS, events(["z", "c"], "2024-01-05"))
        pd.testing.assert_frame_equal(snapshot(wh, EVENTS), before)

    @pytest.mark.parametrize("broken", ["missing", "wrong_type", "duplicate", "unknown", "null"])
    def test_schema_errors_raise_before_touching_data(self, wh: Warehouse, broken: str) -> None:
        wh.write_partitions(TYPES, types_frame("2024-01-02"), market_id="US")
        before = snapshot(wh, TYPES)
        bad = types_frame("2024-01-02", n=2)
        if broken == "missing":
            bad = bad.drop(columns=["k"])
        elif broken == "wrong_type":
            bad["x"] = bad["x"].astype(object)
            bad.loc[1, "x"] = "abc"
        elif broken == "duplicate":
            bad.loc[1, "k"] = "k0"
        elif broken == "unknown":
            bad["surprise"] = 1
        else:
            bad.loc[0, "m"] = None
        with pytest.raises(DataSchemaError):
            wh.write_partitions(TYPES, bad, market_id="US", dates=["2024-01-02"])
        pd.testing.assert_frame_equal(snapshot(wh, TYPES), before)

    def test_rows_outside_the_slice_are_rejected(self, wh: Warehouse) -> None:
        wh.write_partitions(TYPES, types_frame("2024-01-02"), market_id="US")
        before = snapshot(wh, TYPES)
        stray = pd.concat([types_frame("2024-01-02"), types_frame("2024-01-05", n=1)])
        with pytest.raises(DataSchemaError, match=r"d='2024-01-05'.*d IN \[2024-01-02\]"):
            wh.write_partitions(TYPES, stray, market_id="US", dates=["2024-01-02"])
        with pytest.raises(DataSchemaError, match="m='EU'"):
            wh.replace_partition(TYPES, types_frame("2024-01-02", "EU"),
                                 where={"d": "2024-01-02", "m": "US"})
        with pytest.raises(DataSchemaError, match="not a column"):
            wh.replace_partition(TYPES, types_frame("2024-01-02"), where={"nope": 1})
        with pytest.raises(DataSchemaError, match="non-empty"):
            wh.replace_partition(TYPES, types_frame("2024-01-02"), where={})
        pd.testing.assert_frame_equal(snapshot(wh, TYPES), before)

    def test_rewrite_is_idempotent(self, wh: Warehouse) -> None:
        df = types_frame("2024-01-02")
        wh.write_partitions(TYPES, df, market_id="US", dates=["2024-01-02"])
        first = snapshot(wh, TYPES)
        assert wh.write_partitions(TYPES, df, market_id="US", dates=["2024-01-02"]) == len(df)
        pd.testing.assert_frame_equal(snapshot(wh, TYPES), first)
        # an empty frame for a date clears that partition
        assert wh.write_partitions(TYPES, df.iloc[:0], market_id="US", dates=["2024-01-02"]) == 0
        assert snapshot(wh, TYPES).empty

    def test_missing_table_reads_as_empty_typed_frame(self, wh: Warehouse) -> None:
        got = wh.read(TYPES)
        pd.testing.assert_frame_equal(got, empty_frame(TYPES))
        assert wh.read_partitions(TYPES, market_id="US", start="2024-01-01").empty
        assert list(wh.read(TYPES, columns=["d", "x"]).dtypes.astype(str)) == [
            "datetime64[ns]", "float64"]

    def test_schema_evolution_adds_columns(self, wh: Warehouse) -> None:
        wh.write_partitions(EVOLVE_V1, pd.DataFrame({"id": ["a", "b"], "d": "2024-01-02",
                                                     "a": [1.0, 2.0]}))
        old = wh.read(EVOLVE_V2)  # the table lacks "b": reads as empty
        assert old["b"].isna().all() and old["a"].tolist() == [1.0, 2.0]
        wh.write_partitions(EVOLVE_V2, pd.DataFrame({"id": ["c"], "d": "2024-01-03",
                                                     "a": [3.0], "b": ["new"]}))
        got = wh.read(EVOLVE_V2)
        assert got["id"].tolist() == ["a", "b", "c"]
        assert got["b"].tolist() == [None, None, "new"]
        assert got["a"].tolist() == [1.0, 2.0, 3.0]

    def test_append_and_insert_missing(self, wh: Warehouse) -> None:
        assert wh.append(EVENTS, events(["a", "b"], "2024-01-02")) == 2
        assert wh.append(EVENTS, events([], "2024-01-02")) == 0
        assert wh.insert_missing(EVENTS, events(["b", "c"], "2024-01-09", 5.0)) == 1
        assert wh.insert_missing(EVENTS, events(["b", "c"], "2024-01-09", 5.0)) == 0
        got = wh.read(EVENTS).set_index("event_id")
        assert got.loc["b", "v"] == 1.0 and got.loc["c", "v"] == 5.0

    def test_replace_all_of_one_market(self, wh: Warehouse) -> None:
        wh.replace_all(TYPES, pd.concat([types_frame("2024-01-02"),
                                         types_frame("2024-01-02", "EU")]))
        wh.replace_all(TYPES, types_frame("2024-01-05", n=1), where={"m": "US"})
        got = wh.read(TYPES)
        assert len(got[got["m"] == "EU"]) == 4
        assert got.loc[got["m"] == "US", "d"].dt.day.unique().tolist() == [5]
        wh.replace_all(TYPES, types_frame("2024-01-06", n=0))
        assert len(wh.read(TYPES)) == 1

    def test_query_is_read_only_sql(self, wh: Warehouse) -> None:
        wh.append(EVENTS, events(["a", "b"], "2024-01-02"))
        ph = "?" if wh.backend == "duckdb" else "%s"
        out = wh.query(f"SELECT count(*) AS n FROM wh_events WHERE event_id = {ph}", ["a"])
        assert int(out["n"].iloc[0]) == 1
        with pytest.raises(WarehouseError):
            wh.query("DELETE FROM wh_events")
        assert len(wh.read(EVENTS)) == 2


class TestDuckDBWarehouse(WarehouseContract):
    @pytest.fixture
    def wh(self, tmp_path) -> Warehouse:
        return Warehouse.from_url(f"duckdb:///{tmp_path / 'wh.duckdb'}")


# --- DuckDB specifics ---------------------------------------------------------------------------
def test_urls_and_default(tmp_path, monkeypatch) -> None:
    wh = Warehouse.from_url(f"duckdb:///{tmp_path}/a.duckdb?lock_timeout=5&schema=iso")
    assert wh.backend == "duckdb" and wh.path == tmp_path / "a.duckdb"
    assert Warehouse.from_url(f"duckdb://{tmp_path}/a.duckdb").path == wh.path
    assert Warehouse.from_url("duckdb://rel/x.duckdb").path == Path.cwd() / "rel" / "x.duckdb"
    assert Warehouse.from_url(f"{tmp_path}/a.duckdb").path == wh.path
    assert wh.lock_timeout == 5.0
    assert wh.sql_name("truth.regime_path") == '"iso_truth"."regime_path"'
    assert wh.sql_name("prices_daily") == '"iso"."prices_daily"'
    pg = Warehouse.from_url("postgresql://me:secret@db:5432/prom?schema=t1")
    assert pg.backend == "postgres" and "secret" not in repr(pg)
    assert pg.sql_name("prices_daily") == '"t1"."prices_daily"'
    assert Warehouse.from_url("postgresql://db/prom").sql_name("markets") == '"public"."markets"'
    with pytest.raises(WarehouseError, match="unsupported"):
        Warehouse.from_url("mysql://x/y")
    monkeypatch.delenv("PROMETHEUS_WAREHOUSE_URL", raising=False)
    assert Warehouse.default().path.name == "warehouse.duckdb"
    monkeypatch.setenv("PROMETHEUS_WAREHOUSE_URL", f"duckdb:///{tmp_path}/b.duckdb")
    assert Warehouse.default().path == tmp_path / "b.duckdb"
    assert WarehouseResource(url=f"duckdb:///{tmp_path}/c.duckdb").get().path.name == "c.duckdb"


def test_reads_of_a_missing_file_create_nothing(tmp_path) -> None:
    wh = Warehouse.from_url(f"duckdb:///{tmp_path}/none.duckdb")
    assert wh.read("prices_daily").empty and not wh.table_exists("prices_daily")
    assert not (tmp_path / "none.duckdb").exists()


def test_lock_timeout_is_a_clear_error(tmp_path) -> None:
    from filelock import FileLock

    wh = Warehouse.from_url(f"duckdb:///{tmp_path}/w.duckdb", lock_timeout=0.2)
    with FileLock(str(tmp_path / "w.duckdb.lock")), \
            pytest.raises(WarehouseError, match="timed out after 0.2s waiting for the warehouse"):
        wh.append(EVENTS, events(["a"], "2024-01-02"))
    assert wh.append(EVENTS, events(["a"], "2024-01-02")) == 1


def test_real_tables_round_trip(tmp_path) -> None:
    wh = Warehouse.from_url(f"duckdb:///{tmp_path}/w.duckdb")
    prices = pd.DataFrame({"market_id": "US_EQ", "instrument_id": ["A", "B"],
                           "date": "2024-01-02", "close": [10.0, 20.0], "currency": "USD"})
    assert wh.write_partitions("prices_daily", prices, market_id="US_EQ") == 2
    got = wh.read_partitions("prices_daily", market_id="US_EQ", start="2024-01-02",
                             end="2024-01-02")
    assert got["close"].tolist() == [10.0, 20.0] and got["open"].isna().all()
    news = pd.DataFrame({"article_id": ["n1"], "market_id": "US_EQ", "date": "2024-01-02",
                         "issuer_id": [None], "instrument_id": ["A"]})
    wh.write_partitions("news_links", news, market_id="US_EQ")  # nullable key column
    assert wh.read("news_links")["issuer_id"].tolist() == [None]


# --- IO manager -----------------------------------------------------------------------------------
US = market_partitions_def("US_EQ")
LOADED: dict[str, pd.DataFrame] = {}


def prices_for(keys: list[str]) -> pd.DataFrame:
    return pd.DataFrame([
        {"instrument_id": inst, "date": k, "close": 100.0 + i, "currency": "USD"}
        for i, k in enumerate(keys) for inst in ("AAA", "BBB")
    ])


@asset(key=["US_EQ", "prices_daily"], partitions_def=US,
       backfill_policy=BackfillPolicy.single_run())
def us_prices(context) -> pd.DataFrame:
    return prices_for(context.partition_keys)  # no market_id column: the IO manager adds it


@asset(key=["US_EQ", "px_window"], partitions_def=US,
       ins={"px": AssetIn(key=AssetKey(["US_EQ", "prices_daily"]),
                          partition_mapping=TimeWindowPartitionMapping(start_offset=-1))})
def px_window(px: pd.DataFrame) -> None:
    LOADED["px_window"] = px


@asset(key=["US_EQ", "instruments"])
def us_instruments() -> pd.DataFrame:
    return pd.DataFrame({"instrument_id": ["AAA", "BBB"], "market_id": "US_EQ",
                         "asset_class": "EQUITY", "symbol": ["A", "B"], "currency": "USD",
                         "multiplier": 1.0, "status": "ACTIVE"})


@asset(key=["US_EQ", "instrument_count"])
def instrument_count(instruments: pd.DataFrame) -> None:
    LOADED["instruments"] = instruments


@asset(key=["GLOBAL", "markets"])
def all_markets() -> pd.DataFrame:
    return pd.DataFrame({"market_id": ["US_EQ", "EU_EQ"], "name": ["US", "EU"],
                         "region": ["US", "EU"], "timezone": "UTC", "calendar_code": "X",
                         "currency": ["USD", "EUR"]})


@asset(key=["US_EQ", "hidden_regimes"], partitions_def=US,
       metadata={"table": "truth.regime_path"})
def hidden_regimes(context) -> pd.DataFrame:
    return pd.DataFrame({"date": context.partition_keys, "regime": "BULL"})


def decisions_asset(engine: str):
    @asset(key=["US_EQ", f"{engine}_decisions"], partitions_def=US,
           metadata={"table": "engine_decisions", "partition_extra": {"engine_name": engine}})
    def _decisions(context) -> pd.DataFrame:
        return pd.DataFrame({"decision_id": [f"{engine}-{context.partition_key}"],
                             "config_id": "c1", "context_id": "x",
                             "as_of_date": context.partition_key})

    return _decisions


@pytest.fixture
def io_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'io.duckdb'}"


def _run(assets, url, **kw):
    return materialize(assets, resources={"io_manager": WarehouseIOManager(url=url)}, **kw)


def test_io_manager_partitioned_single_and_backfill_range(io_url) -> None:
    wh = Warehouse.from_url(io_url)
    _run([us_prices], io_url, partition_key="2024-01-03")
    assert wh.read("prices_daily")["date"].dt.strftime("%Y-%m-%d").unique().tolist() == [
        "2024-01-03"]
    result = _run([us_prices], io_url, tags={"dagster/asset_partition_range_start": "2024-01-02",
                                             "dagster/asset_partition_range_end": "2024-01-05"})
    meta = result.asset_materializations_for_node("US_EQ__prices_daily")[0].metadata
    assert meta["rows_written"].value == 8 and meta["partitions"].value == 4
    assert meta["first_partition"].value == "2024-01-02"
    assert meta["table"].value == "prices_daily"
    got = wh.read("prices_daily")
    assert len(got) == 8 and set(got["market_id"]) == {"US_EQ"}
    # a downstream partition reads its own and the previous trading day
    _run([us_prices, px_window], io_url, partition_key="2024-01-05",
         selection=[AssetKey(["US_EQ", "px_window"])])
    window = LOADED["px_window"]
    assert window["date"].dt.strftime("%Y-%m-%d").unique().tolist() == ["2024-01-04", "2024-01-05"]
    assert len(window) == 4


def test_io_manager_unpartitioned_market_and_global(io_url) -> None:
    wh = Warehouse.from_url(io_url)
    eu = pd.DataFrame({"instrument_id": ["EU1"], "market_id": "EU_EQ", "asset_class": "EQUITY",
                       "symbol": ["E"], "currency": "EUR", "multiplier": 1.0, "status": "ACTIVE"})
    wh.replace_all("instruments", eu, where={"market_id": "EU_EQ"})
    _run([us_instruments, instrument_count, all_markets], io_url)
    _run([us_instruments, instrument_count, all_markets], io_url)
    got = wh.read("instruments")
    assert sorted(got["instrument_id"]) == ["AAA", "BBB", "EU1"]  # EU rows kept
    assert LOADED["instruments"]["instrument_id"].tolist() == ["AAA", "BBB"]  # market filter
    assert wh.read("markets")["market_id"].tolist() == ["EU_EQ", "US_EQ"]


def test_io_manager_table_override_and_partition_extra(io_url) -> None:
    wh = Warehouse.from_url(io_url)
    _run([hidden_regimes], io_url, partition_key="2024-01-02")
    assert wh.read("truth.regime_path")["market_id"].tolist() == ["US_EQ"]
    alpha, beta = decisions_asset("alpha"), decisions_asset("beta")
    _run([alpha, beta], io_url, partition_key="2024-01-02")
    _run([alpha], io_url, partition_key="2024-01-02")  # rewrites only alpha's slice
    got = wh.read("engine_decisions")
    assert sorted(got["decision_id"]) == ["alpha-2024-01-02", "beta-2024-01-02"]
    assert sorted(got["engine_name"]) == ["alpha", "beta"]


def test_io_manager_none_output_writes_nothing(io_url) -> None:
    @asset(key=["US_EQ", "prices_daily"])
    def nothing() -> None:
        return None

    _run([nothing], io_url)
    assert not Warehouse.from_url(io_url).table_exists("prices_daily")


# --- footprint: tables without a key index, cleared values, compaction ---------------------------
BULKY = TableSchema("wh_bulky", (
    Column("m", "str", False), Column("d", "date", False), Column("k", "int", False),
    Column("x", "float", False), Column("detail", "vector"),
), primary_key=("d", "k"), partition_column="d", market_column="m", key_index=False)


def bulky_frame(days: pd.DatetimeIndex, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "m": "US", "d": np.repeat(days, n), "k": np.tile(np.arange(n), len(days)),
        "x": rng.normal(size=n * len(days)),
        "detail": list(rng.normal(size=(n * len(days), 21)).astype(np.float32))})


def test_a_table_without_key_index_still_checks_its_key(tmp_path) -> None:
    wh = Warehouse.from_url(f"duckdb:///{tmp_path / 'w.duckdb'}")
    days = pd.date_range("2024-01-01", periods=2)
    frame = bulky_frame(days, 5)
    wh.write_partitions(BULKY, frame, market_id="US", dates=days)
    indexes = wh.query("SELECT constraint_type FROM duckdb_constraints() "
                       "WHERE table_name = 'wh_bulky'")
    assert not set(indexes["constraint_type"]) & {"PRIMARY KEY", "UNIQUE"}
    with pytest.raises(DataSchemaError, match="duplicate key"):
        wh.write_partitions(BULKY, pd.concat([frame, frame]), market_id="US", dates=days)
    with pytest.raises(DataSchemaError, match="indexed primary key"):
        wh.insert_missing(BULKY, frame)


def test_clear_values_keeps_rows_and_names_bad_columns(tmp_path) -> None:
    wh = Warehouse.from_url(f"duckdb:///{tmp_path / 'w.duckdb'}")
    days = pd.date_range("2024-01-01", periods=3)
    wh.write_partitions(BULKY, bulky_frame(days, 4), market_id="US", dates=days)
    assert wh.clear_values(BULKY, ["detail"], where={"m": "US", "d": between(None, days[1])}) == 8
    assert wh.clear_values(BULKY, ["detail"], where={"m": "US", "d": between(None, days[1])}) == 0
    out = wh.read_partitions(BULKY, market_id="US")
    assert len(out) == 12 and out["x"].notna().all()
    assert out["detail"].isna().tolist() == [True] * 8 + [False] * 4
    with pytest.raises(DataSchemaError, match="not a nullable column"):
        wh.clear_values(BULKY, ["x"], where={"m": "US"})


def test_rerunning_a_range_does_not_grow_the_file(tmp_path, monkeypatch) -> None:
    from prometheus_dagster.resources import warehouse_duckdb

    monkeypatch.setattr(warehouse_duckdb, "COMPACT_AFTER_ROWS", 1_000)
    path = tmp_path / "w.duckdb"
    wh = Warehouse.from_url(f"duckdb:///{path}")
    days = pd.date_range("2024-01-01", periods=10)
    wh.write_partitions(BULKY, bulky_frame(days, 3_000), market_id="US", dates=days)
    first = path.stat().st_size
    for seed in (1, 2, 3):   # the same range written again (new values), one transaction each
        wh.write_partitions(BULKY, bulky_frame(days, 3_000, seed), market_id="US", dates=days)
        assert path.stat().st_size <= first * 1.1
    assert len(wh.read_partitions(BULKY, market_id="US")) == 30_000
    # compaction keeps everything, the key index of an indexed table included
    wh.write_partitions(TYPES, types_frame("2024-01-02"), market_id="US")
    assert wh.compact()
    assert len(wh.read_partitions(BULKY, market_id="US")) == 30_000
    with pytest.raises(WarehouseError):
        wh.append(TYPES, types_frame("2024-01-02"))
