"""Encoders and profiles through Dagster on a small embedded market: text embeddings (cached,
unit norm), yearly training registered in MLflow with its last data date, window and joint
embeddings and profiles with the version trained before each date; look-ahead invariance and
single-run backfills equal to per-partition runs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import AssetKey, materialize

from prometheus_dagster.assets.embeddings import encoder_assets
from prometheus_dagster.assets.features import features_assets
from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
from prometheus_dagster.assets.profiles import profile_assets
from prometheus_dagster.core.schemas import vector_to_array
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse

M = "US_EQ"
HISTORY = ("2022-01-03", "2023-02-10")
DAYS = ["2023-02-06", "2023-02-07", "2023-02-08", "2023-02-09", "2023-02-10"]
LATER = ("2023-02-13", "2023-03-10")
MODEL_YEAR = "2023-01-01"
INGEST = [AssetKey([M, t]) for t in MARKET_TABLES]
FEATURES = [AssetKey([M, t]) for t in FEATURE_TABLES]
TEXT = AssetKey([M, "text_embeddings"])
MODELS = AssetKey([M, "encoder_models"])
WINDOWS = [AssetKey([M, "numeric_window_embeddings"]), AssetKey([M, "joint_embeddings"])]
PROFILES = AssetKey([M, "profiles"])
DAILY_OUTPUTS = {"text_embeddings": "date", "numeric_window_embeddings": "as_of_date",
                 "joint_embeddings": "as_of_date", "profiles": "as_of_date"}


def span(a: str, b: str) -> dict:
    return {"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": b}


def make_env(tmp: Path):
    cfg = tmp / "market.yaml"
    cfg.write_text(yaml.safe_dump({
        "engine": "synthetic_market", "version": "test", "seed": 5,
        "start_date": "2021-10-01", "end_date": "2023-06-30",
        "markets": {"US_EQ": {"n_instruments": 30}, "EU_EQ": {"n_instruments": 6}}}))
    url = f"duckdb:///{tmp / 'wh.duckdb'}"
    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=str(cfg))
    assets = [*ingestion_assets([M]), *features_assets([M]), *encoder_assets([M], [M]),
              *profile_assets([M])]
    return Warehouse.from_url(url), resources, assets


def run(assets, resources, selection, **kw):
    result = materialize(assets, resources=resources, selection=selection, **kw)
    assert result.success
    return result


# embeddings are stored as float16 (each value within 2**-11 of its size): a unit vector read
# back has a norm within 1e-3 of 1
STORED_NORM_ATOL = 1e-3


def rows(wh: Warehouse, table: str, days: list[str]) -> pd.DataFrame:
    frame = wh.read_partitions(table, market_id=M, dates=days)
    return frame.sort_values(list(frame.columns)[:5]).reset_index(drop=True)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("encoders")
    wh, resources, assets = make_env(tmp)
    run(assets, resources, [AssetKey([M, "instruments"]), AssetKey([M, "issuers"])])
    run(assets, resources, INGEST, tags=span(*HISTORY))
    run(assets, resources, FEATURES, tags=span(*HISTORY))
    text_run = run(assets, resources, [TEXT], tags=span(*HISTORY))
    run(assets, resources, [MODELS], partition_key=MODEL_YEAR)
    run(assets, resources, [*WINDOWS, PROFILES], tags=span(DAYS[0], DAYS[-1]))
    first = {t: rows(wh, t, DAYS) for t in DAILY_OUTPUTS}
    return wh, resources, assets, first, text_run


def _metadata(result, key: AssetKey) -> dict:
    for event in result.get_asset_materialization_events():
        m = event.materialization
        if m.asset_key == key:
            return {k: getattr(v, "value", v) for k, v in m.metadata.items()}
    raise AssertionError(f"no materialization of {key}")


def test_text_embeddings_are_unit_vectors_with_model_id(market):
    wh, _, _, first, text_run = market
    text = first["text_embeddings"]
    assert len(text) > 0
    vecs = np.stack([vector_to_array(b) for b in text["vector"]])
    assert vecs.shape[1] == 384 and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=STORED_NORM_ATOL)
    assert set(text["model_id"]) == {"text-fin-general-v1"}
    assert set(text["source_type"]) == {"NEWS", "MACRO"}
    meta = _metadata(text_run, TEXT)
    assert meta["computed"] > 0


def test_rematerializing_text_embeddings_reuses_the_cache(market):
    wh, resources, assets, first, _ = market
    again = run(assets, resources, [TEXT], tags=span(DAYS[0], DAYS[-1]))
    meta = _metadata(again, TEXT)
    assert meta["texts"] > 0 and meta["computed"] == 0
    pd.testing.assert_frame_equal(first["text_embeddings"], rows(wh, "text_embeddings", DAYS))


def test_training_registers_versions_trained_before_the_year(market):
    wh, resources, _, _, _ = market
    models = wh.read("models")
    assert sorted(models["model_type"]) == ["joint_encoder", "numeric_window_encoder"]
    assert set(pd.to_datetime(models["trained_through"])) == {pd.Timestamp("2022-12-30")}
    tracking = resources["mlflow"]
    version = tracking.resolve_model_version(f"{M}.joint-news-window-v1", "2023-01-03")
    assert version["trained_through"] == pd.Timestamp("2022-12-30")
    run = tracking.client().get_run(version["run_id"])
    ratio = run.data.metrics["recall_at_10_vs_random"]
    assert run.data.metrics["heldout_queries"] >= 50
    assert ratio >= 3.0, f"held-out recall@10 only {ratio:.2f}x random"


def test_window_embeddings_and_profiles_carry_the_model_version(market):
    _, _, _, first, _ = market
    num, joint = first["numeric_window_embeddings"], first["joint_embeddings"]
    assert set(num["entity_type"]) == {"INSTRUMENT", "ISSUER", "SECTOR", "MARKET"}
    assert set(num["model_id"]) == {f"{M}.num-window-core-v1/1"}
    assert set(joint["joint_type"]) == {"NUMERIC_WINDOW", "NEWS_TEXT"}
    assert set(joint["model_id"]) == {f"{M}.joint-news-window-v1/1"}
    for frame in (num, joint):
        vecs = np.stack([vector_to_array(b) for b in frame["vector"]])
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=STORED_NORM_ATOL)
    prof = first["profiles"]
    assert prof["issuer_id"].nunique() == 30
    flags = prof[["leverage_score", "earnings_quality_score", "liquidity_risk"]].to_numpy()
    assert np.nanmin(flags) >= 0 and np.nanmax(flags) <= 1
    assert prof["profile_embedding"].notna().mean() > 0.9
    assert set(prof["model_id"].dropna()) == {f"{M}.joint-news-window-v1/1"}


def test_single_run_backfill_equals_per_partition_runs(market):
    wh, resources, assets, first, _ = market
    for day in DAYS:
        run(assets, resources, [TEXT, *WINDOWS, PROFILES], partition_key=day)
    for table in DAILY_OUTPUTS:
        pd.testing.assert_frame_equal(first[table], rows(wh, table, DAYS), obj=table)


def _step_args(resources):
    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.engines.encoders import EncodersConfig
    from prometheus_dagster.engines.features import FeaturesConfig
    from prometheus_dagster.engines.profiles import ProfilesConfig

    return (resources["mlflow"], load_engine_config("encoders").typed(EncodersConfig),
            load_engine_config("features").typed(FeaturesConfig),
            load_engine_config("profiles").typed(ProfilesConfig))


def _by_key(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


def test_window_embeddings_step_of_a_range_equals_its_dates_one_by_one(market):
    from prometheus_dagster.steps.window_embeddings import embed_windows

    wh, resources, _, _, _ = market
    models, cfg, fcfg, _ = _step_args(resources)
    days = [pd.Timestamp(d) for d in DAYS]
    whole, missing = embed_windows(wh, models, M, days, cfg, fcfg, "c")
    assert missing == []
    singles = [embed_windows(wh, models, M, [d], cfg, fcfg, "c")[0] for d in days]
    for table, keys in (("numeric_window_embeddings", ["entity_type", "entity_id", "as_of_date"]),
                        ("joint_embeddings", ["joint_type", "entity_type", "entity_id",
                                              "as_of_date"])):
        one_by_one = pd.concat([s[table] for s in singles], ignore_index=True)
        assert len(whole[table]) > 0
        pd.testing.assert_frame_equal(_by_key(whole[table], keys), _by_key(one_by_one, keys))


def test_profiles_and_text_steps_of_a_range_equal_their_dates_one_by_one(market):
    from prometheus_dagster.steps.profiles import compute_profiles
    from prometheus_dagster.steps.text_embeddings import compute_text_embeddings

    wh, resources, _, _, _ = market
    models, cfg, fcfg, pcfg = _step_args(resources)
    days = [pd.Timestamp(d) for d in DAYS]
    whole = compute_profiles(wh, models, M, days, pcfg, cfg, fcfg, "c")
    assert whole["profile_embedding"].notna().mean() > 0.9
    one_by_one = pd.concat([compute_profiles(wh, models, M, [d], pcfg, cfg, fcfg, "c")
                            for d in days], ignore_index=True)
    keys = ["issuer_id", "as_of_date"]
    pd.testing.assert_frame_equal(_by_key(whole, keys), _by_key(one_by_one, keys))
    text = compute_text_embeddings(wh, M, days, cfg, "c").frame
    text_days = pd.concat([compute_text_embeddings(wh, M, [d], cfg, "c").frame for d in days],
                          ignore_index=True)
    pd.testing.assert_frame_equal(_by_key(text, ["date", "source_id"]),
                                  _by_key(text_days, ["date", "source_id"]))


def test_each_step_reads_exactly_what_it_declares(market):
    from prometheus_dagster.assets.lineage import DECLARED
    from prometheus_dagster.core.reader import recording

    _, resources, assets, _, _ = market
    with recording() as rec:
        run(assets, resources, [TEXT, *WINDOWS, PROFILES], partition_key=DAYS[-1])
    steps = [f"{M}__text_embeddings", f"{M}_window_embeddings", f"{M}__profiles"]
    assert set(steps) <= set(rec.reads)
    for step in steps:
        inputs, market_id, members = DECLARED[step]
        declared = inputs.pairs(market_id, members)
        read = {(m or market_id, t) for m, t in rec.tables(step)} - {
            (market_id, "ingestion_runs"), (market_id, "engine_configs")}
        if step.endswith("text_embeddings"):
            # the asset's own table read as a cache by text hash (not an input)
            read -= {(market_id, "text_embeddings")}
        assert read == declared, step
        first = {r.table: r.first for r in rec.reads[step] if r.first is not None}
        for r in inputs:
            if r.sessions and r.table in first:
                assert first[r.table] < pd.Timestamp(DAYS[-1]), (step, r.table)


def test_encoder_outputs_do_not_look_ahead(market):
    wh, resources, assets, first, _ = market
    run(assets, resources, INGEST, tags=span(*LATER))
    run(assets, resources, FEATURES, tags=span(*LATER))
    run(assets, resources, [TEXT], tags=span(*LATER))
    run(assets, resources, [TEXT, *WINDOWS, PROFILES], tags=span(DAYS[0], DAYS[-1]))
    for table in DAILY_OUTPUTS:
        pd.testing.assert_frame_equal(first[table], rows(wh, table, DAYS), obj=table)


def test_retraining_after_later_data_arrived_gives_the_same_model(market):
    """The refit for a year reads nothing dated after its cut: run again once later data is in
    the warehouse (the look-ahead test above ingested it), it yields identical weights."""
    from prometheus_dagster.engines.encoders import EncoderBundle

    wh, resources, assets, _, _ = market
    assert wh.read_partitions("prices_daily", market_id=M, start=LATER[0]).shape[0] > 0
    run(assets, resources, [MODELS], partition_key=MODEL_YEAR)
    tracking = resources["mlflow"]
    versions = tracking.model_versions(f"{M}.joint-news-window-v1")
    assert list(versions["version"]) == [1, 2]
    first, second = (EncoderBundle.load(tracking.download(s)) for s in versions["source"])
    for (name, a), (_, b) in zip(first.joint.state_dict().items(),
                                 second.joint.state_dict().items(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name
    assert first.meta["metrics"] == second.meta["metrics"]
