import pandas as pd
import pytest
from dagster import AssetExecutionContext, MaterializeResult, asset, materialize

from prometheus_dagster.core.errors import ModelNotFoundError
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking


@pytest.fixture()
def tracking(tmp_path) -> MlflowTracking:
    return MlflowTracking(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "art")
    )


@asset(key=["US_EQ", "toy_metric"], partitions_def=market_partitions_def("US_EQ"))
def toy_metric(context: AssetExecutionContext, mlflow: MlflowTracking) -> MaterializeResult:
    with mlflow.asset_run(context, "toy", market_id="US_EQ", config_id="toy@1-abc",
                          params={"window": 5}) as run:
        run.log_metrics({"value": 1.5})
        run.log_metric_series("daily", pd.Series([1.0, 2.0], index=pd.to_datetime(
            ["2024-07-02", "2024-07-03"])))
        return MaterializeResult(metadata=run.metadata())


def test_one_tagged_run_per_materialization(tracking):
    results = [
        materialize([toy_metric], partition_key=key, resources={"mlflow": tracking})
        for key in ("2024-07-02", "2024-07-03")
    ]
    client = tracking.client()
    exp = client.get_experiment_by_name("prometheus/toy")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2
    for res, run, key in zip(results, runs, ("2024-07-02", "2024-07-03"), strict=True):
        tags = run.data.tags
        assert tags["dagster_run_id"] == res.run_id
        assert tags["asset_key"] == "US_EQ/toy_metric"
        assert tags["partition"] == key
        assert tags["market_id"] == "US_EQ"
        assert tags["config_id"] == "toy@1-abc"
        assert tags["code_version"]
        assert run.data.params["window"] == "5"
        assert run.data.metrics["value"] == 1.5
        assert run.info.status == "FINISHED"
        mat = res.asset_materializations_for_node("US_EQ__toy_metric")[0]
        assert mat.metadata["mlflow_run_id"].value == run.info.run_id
        assert run.info.run_id in mat.metadata["mlflow_url"].value
    history = client.get_metric_history(runs[0].info.run_id, "daily")
    assert [m.value for m in history] == [1.0, 2.0]


def test_single_run_backfill_is_one_mlflow_run_tagged_with_the_range(tracking):
    from dagster import BackfillPolicy

    @asset(key=["US_EQ", "toy_range"], partitions_def=market_partitions_def("US_EQ"),
           backfill_policy=BackfillPolicy.single_run())
    def toy_range(context: AssetExecutionContext, mlflow: MlflowTracking) -> MaterializeResult:
        with mlflow.asset_run(context, "toy_range") as run:
            return MaterializeResult(metadata=run.metadata())

    res = materialize(
        [toy_range], resources={"mlflow": tracking},
        tags={"dagster/asset_partition_range_start": "2024-07-01",
              "dagster/asset_partition_range_end": "2024-07-08"},
    )
    assert res.success
    client = tracking.client()
    exp = client.get_experiment_by_name("prometheus/toy_range")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["partition"] == "2024-07-01...2024-07-08"
    assert run.data.tags["partition_count"] == "5"  # 4 July and the weekend are not sessions


def test_failed_body_marks_run_failed(tracking):
    with pytest.raises(RuntimeError):
        with tracking.start_run("toy_fail", "boom"):
            raise RuntimeError("boom")
    client = tracking.client()
    exp = client.get_experiment_by_name("prometheus/toy_fail")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FAILED"


def _register(tracking: MlflowTracking, tmp_path, trained_through: str) -> int:
    with tracking.start_run("toy_models", f"fit {trained_through}") as run:
        p = tmp_path / "weights.txt"
        p.write_text(trained_through)
        run.log_artifact(p, "model")
        return tracking.register_model_version(
            "toy-model", run.artifact_uri("model"), run.run_id, trained_through
        )


def test_model_version_resolution_uses_only_earlier_training_data(tracking, tmp_path):
    v1 = _register(tracking, tmp_path, "2023-12-29")
    v2 = _register(tracking, tmp_path, "2024-06-28")
    v3 = _register(tracking, tmp_path, "2024-12-31")
    assert (v1, v2, v3) == (1, 2, 3)
    assert tracking.resolve_model_version("toy-model", "2024-01-02")["version"] == 1
    assert tracking.resolve_model_version("toy-model", "2024-06-28")["version"] == 1
    assert tracking.resolve_model_version("toy-model", "2024-07-01")["version"] == 2
    assert tracking.resolve_model_version("toy-model", "2025-01-02")["version"] == 3
    with pytest.raises(ModelNotFoundError, match="no version trained strictly before 2023-12-29"):
        tracking.resolve_model_version("toy-model", "2023-12-29")
    chosen = tracking.resolve_model_version("toy-model", "2024-07-01")
    assert (tracking.download(chosen["source"]) / "weights.txt").read_text() == "2024-06-28"
