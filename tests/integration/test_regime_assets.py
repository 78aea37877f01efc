"""Regime assets through Dagster on a small embedded market: quarterly prototypes registered
in MLflow with their last data date, daily regimes (markets and GLOBAL) made with the version
trained strictly before each date, decision records, look-ahead invariance and single-run
backfills equal to per-partition runs."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from dagster import AssetKey, materialize

from prometheus_dagster.assets.features import features_assets
from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
from prometheus_dagster.assets.lineage import DECLARED
from prometheus_dagster.assets.regime import regime_assets
from prometheus_dagster.core.inputs import BOOKKEEPING_TABLES
from prometheus_dagster.core.reader import recording
from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.engines.regime import REGIME_LABELS, run_lengths
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse

MARKETS = ["US_EQ", "EU_EQ"]
HISTORY = ("2022-05-02", "2023-01-31")
DAYS = ("2023-01-03", "2023-01-31")
LATER = ("2023-02-01", "2023-02-28")
REFIT = "2023-01-01"
MACRO = AssetKey(["GLOBAL", "macro_time_series"])
PRICE_TABLES = [t for t in MARKET_TABLES if t in ("prices_daily", "corporate_actions")]


def span(a: str, b: str) -> dict:
    return {"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": b}


def run(assets, resources, selection, **kw):
    result = materialize(assets, resources=resources, selection=selection, **kw)
    assert result.success
    return result


def ingest(assets, resources, a: str, b: str) -> None:
    """What regimes read: macro series, prices (and corporate actions) and the features."""
    run(assets, resources, [MACRO], tags=span(a, b))
    for m in MARKETS:
        run(assets, resources, [AssetKey([m, t]) for t in PRICE_TABLES], tags=span(a, b))
        run(assets, resources, [AssetKey([m, t]) for t in FEATURE_TABLES], tags=span(a, b))


def regimes(wh: Warehouse, region: str, a: str, b: str) -> pd.DataFrame:
    out = wh.read_partitions("regimes", market_id=region, start=a, end=b)
    return out.sort_values("as_of_date").reset_index(drop=True)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    tmp: Path = tmp_path_factory.mktemp("regime")
    cfg = tmp / "market.yaml"
    cfg.write_text(yaml.safe_dump({
        "engine": "synthetic_market", "version": "test", "seed": 3,
        "start_date": "2022-04-01", "end_date": "2023-06-30",
        "markets": {"US_EQ": {"n_instruments": 12}, "EU_EQ": {"n_instruments": 6}}}))
    url = f"duckdb:///{tmp / 'wh.duckdb'}"
    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=str(cfg))
    assets = [*ingestion_assets(MARKETS), *features_assets(MARKETS), *regime_assets(MARKETS)]
    for m in MARKETS:
        run(assets, resources, [AssetKey([m, "instruments"]), AssetKey([m, "issuers"])])
    ingest(assets, resources, *HISTORY)
    for region in ("US_EQ", "GLOBAL"):
        run(assets, resources, [AssetKey([region, "regime_models"])], partition_key=REFIT)
    run(assets, resources, [AssetKey(["US_EQ", "regimes"])], tags=span(*DAYS))
    run(assets, resources, [AssetKey(["GLOBAL", "regimes"])], tags=span(*DAYS))
    wh = Warehouse.from_url(url)
    first = {r: regimes(wh, r, *DAYS) for r in ("US_EQ", "GLOBAL")}
    return wh, resources, assets, first


def test_prototypes_registered_point_in_time(market):
    wh, resources, _, _ = market
    models = wh.read("models", where={"model_type": "regime_prototypes"})
    assert sorted(models["market_id"]) == ["GLOBAL", "US_EQ"]
    assert (pd.to_datetime(models["trained_through"]) == pd.Timestamp("2022-12-30")).all()
    mlflow: MlflowTracking = resources["mlflow"]
    versions = mlflow.model_versions("US_EQ.regime-gmm-v1")
    assert len(versions) == 1
    assert versions["trained_through"].iloc[0] == pd.Timestamp("2022-12-30")


def test_regime_rows_and_decisions(market):
    wh, _, _, first = market
    us = first["US_EQ"]
    sessions = pd.bdate_range(*DAYS)
    assert len(us) == 20  # XNYS sessions in January 2023 (16 January is a holiday)
    assert set(us["regime_label"]) <= set(REGIME_LABELS)
    assert us["confidence"].between(0, 1).all()
    assert (us["model_id"] == "US_EQ.regime-gmm-v1/1").all()
    assert set(us["alert_level"]) <= {"GREEN", "YELLOW", "ORANGE", "RED"}
    assert all(len(v) == 4 * 384 for v in us["regime_embedding"])
    glob = first["GLOBAL"]
    assert len(glob) == len(sessions)  # every business day has a European or US session
    decisions = wh.read("engine_decisions", where={"engine_name": "regime"})
    assert set(decisions["market_id"]) == {"US_EQ", "GLOBAL"}
    assert len(decisions) == len(us) + len(glob)
    assert decisions["mlflow_run_id"].notna().all()


def test_lookahead_invariance_and_backfill_equals_partitions(market):
    wh, resources, assets, first = market
    ingest(assets, resources, *LATER)  # data after the dates
    for region in ("US_EQ", "GLOBAL"):
        key = AssetKey([region, "regimes"])
        run(assets, resources, [key], tags=span(*DAYS))
        again = regimes(wh, region, *DAYS)
        pd.testing.assert_frame_equal(again.drop(columns=["config_id"]),
                                      first[region].drop(columns=["config_id"]))
    days = [d.strftime("%Y-%m-%d") for d in first["US_EQ"]["as_of_date"]][-4:]
    for d in days:
        run(assets, resources, [AssetKey(["US_EQ", "regimes"])], partition_key=d)
    single = regimes(wh, "US_EQ", days[0], days[-1])
    expected = first["US_EQ"][first["US_EQ"]["as_of_date"] >= days[0]].reset_index(drop=True)
    pd.testing.assert_frame_equal(single, expected)
    # the whole path (history and later dates): no completed run shorter than the minimum
    run(assets, resources, [AssetKey(["US_EQ", "regimes"])], tags=span(DAYS[0], LATER[1]))
    path = regimes(wh, "US_EQ", DAYS[0], LATER[1])["regime_label"].tolist()
    assert all(n >= 5 for _, n in run_lengths(path)[1:-1])


def _read_and_declared(rec, op: str) -> tuple[set, set]:
    """(what step ``op`` read, what it declares), as (market or '' for a table without a
    market column, table) pairs, bookkeeping left out."""
    inputs, market, members = DECLARED[op]

    def key(m: str, t: str) -> tuple[str, str]:
        return (m if get_schema(t).market_column else "", t)

    read = {key(m, t) for m, t in rec.tables(op) if t not in BOOKKEEPING_TABLES}
    return read, {key(m, t) for m, t in inputs.pairs(market, members)}


def test_reads_equal_the_declaration(market):
    """Each regime step reads what it declares: the refits and the daily regimes of a market
    (whose internals have an index return) and of GLOBAL (each member's internals)."""
    _, resources, assets, _ = market
    with recording() as rec:
        for region in ("US_EQ", "GLOBAL"):
            run(assets, resources, [AssetKey([region, "regime_models"])], partition_key=REFIT)
            run(assets, resources, [AssetKey([region, "regimes"])], tags=span(*DAYS))
    for op in ("US_EQ__regime_models", "US_EQ__regimes"):
        read, declared = _read_and_declared(rec, op)
        assert read == declared, op
    for op in ("GLOBAL__regime_models", "GLOBAL__regimes"):
        read, declared = _read_and_declared(rec, op)
        assert read == declared == {("US_EQ", "market_correlation_daily"),
                                    ("EU_EQ", "market_correlation_daily"),
                                    ("", "macro_time_series")}, op


def test_index_only_file_source(tmp_path):
    """A market with only an index and two macro series (the file-source sample): prototypes
    from what is present (index trend and volatility, VIX), the rest reported missing."""
    root = Path(__file__).parents[1] / "fixtures" / "file_source_index_only"
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    resources = build_resources(warehouse_url=url,
                                mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="files", files_root=str(root))
    assets = [*ingestion_assets(["US_EQ"]), *features_assets(["US_EQ"]),
              *regime_assets(["US_EQ"])]
    year = ("2023-01-03", "2023-12-29")
    run(assets, resources, [AssetKey(["US_EQ", "instruments"])])
    run(assets, resources, [MACRO], tags=span("2023-01-02", "2023-12-29"))
    run(assets, resources, [AssetKey(["US_EQ", "prices_daily"])], tags=span(*year))
    run(assets, resources, [AssetKey(["US_EQ", t]) for t in
                            ("returns_daily", "market_correlation_daily")], tags=span(*year))
    with recording() as rec:
        run(assets, resources, [AssetKey(["US_EQ", "regime_models"])],
            partition_key="2023-10-01")
        result = run(assets, resources, [AssetKey(["US_EQ", "regimes"])],
                     tags=span("2023-10-02", "2023-12-29"))
    for op in ("US_EQ__regime_models", "US_EQ__regimes"):  # the index from instruments
        read, declared = _read_and_declared(rec, op)
        assert read == declared, op
    wh = Warehouse.from_url(url)
    models = wh.read("models", where={"model_type": "regime_prototypes"})
    spec = models["training_spec"].iloc[0]
    assert "implied_vol" in spec and "credit_level" not in spec  # VIX used, no credit series
    out = regimes(wh, "US_EQ", "2023-10-02", "2023-12-29")
    assert len(out) == 63
    assert set(out["regime_label"]) <= set(REGIME_LABELS)
    meta = result.asset_materializations_for_node("US_EQ__regimes")[0].metadata
    assert "credit_spread" in meta["missing_inputs"].value
