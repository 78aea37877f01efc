"""MLflow tracking: one thin resource over ``MlflowClient`` that every asset uses.

Order of tracking and warehouse commit: an asset writes its MLflow run (metrics, artifacts,
model versions) first and commits its warehouse rows after it (its own ``write_partitions`` or
the IO manager once the asset returns). So a tracking failure fails the step before anything is
committed, and says so (``TrackingStoreError``); every committed row's ``mlflow_run_id`` names a
run that exists; an MLflow run whose rows are missing means the commit failed after it, which
the step reports as a warehouse error. The local SQLite store is created once across processes
(``mlflow_store.prepare_store``).

* ``asset_run(context, group, ...)`` opens one MLflow run per materialization (a partition or a
  single-run partition range), tagged with the Dagster run id, asset key, partition range,
  market, config_id and code version; it yields an :class:`AssetRun` to log to, and
  ``AssetRun.metadata()`` gives Dagster materialization metadata linking back to MLflow.
* ``register_model_version`` / ``resolve_model_version`` keep point-in-time model versions: each
  version is tagged with the last date of its training data (``trained_through``) and inference
  for date D uses the newest version trained strictly before D.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import ConfigurableResource, MetadataValue
from pydantic import PrivateAttr

from prometheus_dagster import __version__
from prometheus_dagster.core.errors import ModelNotFoundError
from prometheus_dagster.core.paths import REPO_ROOT, mlflow_artifact_root, mlflow_tracking_uri
from prometheus_dagster.resources.mlflow_store import TrackingStoreError, prepare_store

log = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "prometheus"
TRAINED_THROUGH_TAG = "trained_through"


@functools.cache
def code_version() -> str:
    """Package version plus the git commit of the checkout when there is one."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"{__version__}+{sha}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def tracking_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the tracking store (not the asset's own code) failed."""
    import sqlite3

    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    return (MlflowException, sqlalchemy.exc.SQLAlchemyError, sqlite3.Error,
            requests.exceptions.RequestException, TrackingStoreError)


def _date_str(d: dt.date | str | pd.Timestamp) -> str:
    return pd.Timestamp(d).strftime("%Y-%m-%d")


class AssetRun:
    """An open MLflow run. Metrics given per date are logged with the date as timestamp and its
    position as step, so MLflow plots them as time series."""

    def __init__(self, tracking: MlflowTracking, run_id: str, experiment_id: str):
        self.tracking = tracking
        self.run_id = run_id
        self.experiment_id = experiment_id
        self._client = tracking.client()

    @property
    def url(self) -> str:
        base = self.tracking.ui_url.rstrip("/")
        return f"{base}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step or 0)
            for k, v in metrics.items()
            if v is not None and pd.notna(v)
        ]
        for i in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def log_metric_series(self, name: str, series: pd.Series) -> None:
        """Log one metric per date (index of dates)."""
        from mlflow.entities import Metric

        items = []
        for step, (d, v) in enumerate(series.items()):
            if v is None or pd.isna(v):
                continue
            ts = int(pd.Timestamp(d).timestamp() * 1000)
            items.append(Metric(name, float(v), ts, step))
        for i in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self._client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: Any, filename: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / filename
            p.write_text(json.dumps(data, indent=2, default=str))
            self.log_artifact(p)

    def log_text(self, text: str, filename: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / filename
            p.write_text(text)
            self.log_artifact(p)

    def log_figure(self, fig: Any, filename: str) -> None:
        """Save a matplotlib figure as an artifact (PNG or HTML by extension) and close it."""
        import matplotlib.pyplot as plt

        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / filename
            fig.savefig(p, dpi=110, bbox_inches="tight")
            plt.close(fig)
            self.log_artifact(p, "plots")

    def artifact_uri(self, artifact_path: str = "") -> str:
        base = self._client.get_run(self.run_id).info.artifact_uri
        return f"{base}/{artifact_path}" if artifact_path else base

    def metadata(self) -> dict[str, Any]:
        """Dagster materialization metadata pointing at this run."""
        return {"mlflow_run_id": self.run_id, "mlflow_url": MetadataValue.url(self.url)}


class MlflowTracking(ConfigurableResource):
    """Where runs and models go. Defaults: ``sqlite:///$PROMETHEUS_HOME/mlflow.db`` and artifacts
    under ``$PROMETHEUS_HOME/mlartifacts``; any MLflow server URI works in production."""

    tracking_uri: str = ""
    artifact_root: str = ""
    ui_url: str = "http://127.0.0.1:5000"

    _client: Any = PrivateAttr(default=None)

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or mlflow_tracking_uri()

    @property
    def resolved_artifact_root(self) -> str:
        return self.artifact_root or str(mlflow_artifact_root())

    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            uri = self.resolved_tracking_uri
            prepare_store(uri)
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return self._client

    def experiment_id(self, group: str) -> str:
        """The experiment ``prometheus/<group>``, created with an explicit artifact location."""
        from mlflow.exceptions import MlflowException

        prefix = f"{EXPERIMENT_PREFIX}/"
        name = group if group.startswith(prefix) else prefix + group
        client = self.client()
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = self.resolved_artifact_root
        if "://" not in location:
            location = Path(location, name.replace("/", "_")).resolve().as_uri()
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created concurrently by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    @contextmanager
    def start_run(
        self, group: str, run_name: str, tags: Mapping[str, Any] | None = None
    ) -> Iterator[AssetRun]:
        """Open a run in experiment ``prometheus/<group>``; it ends FINISHED, or FAILED if the
        body raises. A failure of the tracking store itself is raised as ``TrackingStoreError``
        saying that the warehouse was not written (tracking comes before the commit)."""
        errors = tracking_errors()
        try:
            client = self.client()
            exp_id = self.experiment_id(group)
            all_tags = {"code_version": code_version(),
                        **{k: str(v) for k, v in (tags or {}).items()}}
            run = client.create_run(exp_id, tags=all_tags, run_name=run_name)
        except errors as exc:
            raise self._not_committed(run_name, exc) from exc
        handle = AssetRun(self, run.info.run_id, exp_id)
        try:
            yield handle
        except errors as exc:
            self._end_quietly(run.info.run_id)
            raise self._not_committed(run_name, exc) from exc
        except BaseException:
            self._end_quietly(run.info.run_id)
            raise
        try:
            client.set_terminated(run.info.run_id, status="FINISHED")
        except errors as exc:
            raise self._not_committed(run_name, exc) from exc

    def _end_quietly(self, run_id: str) -> None:
        try:
            self.client().set_terminated(run_id, status="FAILED")
        except tracking_errors() as exc:  # the body's error is the one to report
            log.warning("could not mark MLflow run %s FAILED: %s", run_id, exc)

    def _not_committed(self, run_name: str, exc: BaseException) -> TrackingStoreError:
        return TrackingStoreError(
            f"MLflow tracking of {run_name} failed ({self.resolved_tracking_uri}): {exc}. "
            "Nothing of this materialization was committed to the warehouse: assets write "
            "their MLflow run first and commit their rows after it"
        )

    @contextmanager
    def asset_run(
        self,
        context: Any,
        group: str,
        *,
        market_id: str | None = None,
        config_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        extra_tags: Mapping[str, Any] | None = None,
    ) -> Iterator[AssetRun]:
        """One MLflow run for this asset materialization, tagged for lineage."""
        tags = dagster_lineage_tags(context)
        if market_id:
            tags["market_id"] = market_id
        if config_id:
            tags["config_id"] = config_id
        tags.update({k: str(v) for k, v in (extra_tags or {}).items()})
        run_name = f"{tags.get('asset_key', group)} {tags.get('partition', '')}".strip()
        with self.start_run(group, run_name, tags) as run:
            if params:
                run.log_params(params)
            yield run

    # --- model registry ---------------------------------------------------------------------
    def register_model_version(
        self,
        name: str,
        source: str,
        run_id: str,
        trained_through: dt.date | str | pd.Timestamp,
        tags: Mapping[str, Any] | None = None,
    ) -> int:
        """Register ``source`` (an artifact URI) as a new version of model ``name``, tagged with
        the last date of its training data. Returns the version number."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.create_registered_model(name)
        except MlflowException:
            pass  # already registered
        all_tags = {TRAINED_THROUGH_TAG: _date_str(trained_through)}
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        mv = client.create_model_version(name, source=source, run_id=run_id, tags=all_tags)
        return int(mv.version)

    def model_versions(self, name: str) -> pd.DataFrame:
        """All versions of a model with their ``trained_through`` date, oldest first."""
        client = self.client()
        rows = [
            {
                "name": mv.name,
                "version": int(mv.version),
                "trained_through": pd.Timestamp(mv.tags.get(TRAINED_THROUGH_TAG)),
                "source": mv.source,
                "run_id": mv.run_id,
                "tags": dict(mv.tags),
            }
            for mv in client.search_model_versions(f"name='{name}'")
            if TRAINED_THROUGH_TAG in mv.tags
        ]
        cols = ["name", "version", "trained_through", "source", "run_id", "tags"]
        return pd.DataFrame(rows, columns=cols).sort_values(["trained_through", "version"],
                                                            ignore_index=True)

    def resolve_model_version(self, name: str, as_of_date: dt.date | str | pd.Timestamp) -> dict:
        """The newest version of ``name`` trained only on data strictly before ``as_of_date``
        (ties on the date: the highest version). Raises ModelNotFoundError if there is none."""
        return _resolve(name, self.model_versions(name), as_of_date)

    def resolve_model_versions(self, name: str, dates: Sequence[dt.date | str | pd.Timestamp],
                               ) -> dict[pd.Timestamp, dict | None]:
        """``resolve_model_version`` for many dates with one registry query; None where no
        version was trained strictly before the date."""
        versions = self.model_versions(name)
        out: dict[pd.Timestamp, dict | None] = {}
        for d in dates:
            try:
                out[pd.Timestamp(_date_str(d))] = _resolve(name, versions, d)
            except ModelNotFoundError:
                out[pd.Timestamp(_date_str(d))] = None
        return out

    def download(self, source: str) -> Path:
        import mlflow.artifacts

        prepare_store(self.resolved_tracking_uri)
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, tracking_uri=self.resolved_tracking_uri
            )
        )


def _resolve(name: str, versions: pd.DataFrame, as_of_date: dt.date | str | pd.Timestamp) -> dict:
    d = pd.Timestamp(_date_str(as_of_date))
    valid = versions[versions["trained_through"] < d]
    if valid.empty:
        have = ", ".join(
            f"v{r.version} (trained through {r.trained_through.date()})"
            for r in versions.itertuples()
        ) or "none"
        raise ModelNotFoundError(
            f"model {name!r}: no version trained strictly before {d.date()}; "
            f"registered versions: {have}"
        )
    return valid.iloc[-1].to_dict()


def dagster_lineage_tags(context: Any) -> dict[str, str]:
    """Tags that tie an MLflow run to the Dagster run, asset and partition(s)."""
    tags: dict[str, str] = {}
    run = getattr(context, "run", None)
    run_id = getattr(run, "run_id", None) or getattr(context, "run_id", None)
    if run_id:
        tags["dagster_run_id"] = run_id
    try:
        tags["asset_key"] = context.asset_key.to_user_string()
    except Exception:  # noqa: BLE001 - multi-asset or op context without a single key
        pass
    if getattr(context, "has_partition_key", False) or getattr(
        context, "has_partition_key_range", False
    ):
        keys = context.partition_keys
        tags["partition"] = keys[0] if len(keys) == 1 else f"{keys[0]}...{keys[-1]}"
        tags["partition_start"] = keys[0]
        tags["partition_end"] = keys[-1]
        tags["partition_count"] = str(len(keys))
    return tags
