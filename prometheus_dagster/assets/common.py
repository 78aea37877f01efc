"""Helpers shared by asset modules: partition dates of a run, config registration, decision
records. Kept tiny: assets read inputs, call one engine function, log and return."""


import pandas as pd
from dagster import AssetExecutionContext

from prometheus_dagster.resources.warehouse import Warehouse
from prometheus_dagster.steps.common import (  # noqa: F401  (re-exported for asset modules)
    lookback_start,
    register_config,
    require_quality_passed,
)


def run_dates(context: AssetExecutionContext) -> list[pd.Timestamp]:
    """The partition dates this run materializes (one, or a single-run backfill range)."""
    return [pd.Timestamp(k) for k in context.partition_keys]


def write_decisions(warehouse: Warehouse, context: AssetExecutionContext, engine_name: str,
                    market_id: str, dates: list[pd.Timestamp], decisions: pd.DataFrame,
                    mlflow_run_id: str | None = None) -> int:
    """Replace an engine's ``engine_decisions`` rows of ``market_id`` on ``dates`` with
    ``decisions`` (one row per decision context: ``context_id``, ``as_of_date``, ``config_id``,
    ``model_id``, ``input_refs``, ``proposed_action``). Ids are ``<engine>:<context_id>``, so a
    re-run replaces its decisions instead of adding to them."""
    rows = decisions.assign(
        decision_id=[f"{engine_name}:{c}" for c in decisions["context_id"]],
        engine_name=engine_name, market_id=market_id, dagster_run_id=context.run.run_id,
        mlflow_run_id=mlflow_run_id)
    return warehouse.write_partitions("engine_decisions", rows, market_id=market_id,
                                      dates=dates, extra={"engine_name": engine_name})


def train_refit_partitions(context: AssetExecutionContext, market_id: str, what: str,
                           train_one, error_cls: type[Exception], hint: str = "") -> pd.DataFrame:
    """``models`` rows of a refit asset: ``train_one(valid_from)`` per partition of the run; a
    partition whose training raises ``error_cls`` is skipped with a warning, and a run that
    trains nothing fails with the first reason (and ``hint``)."""
    rows, skipped = [], []
    for key in context.partition_keys:
        try:
            rows.append(train_one(pd.Timestamp(key)))
        except error_cls as exc:
            skipped.append(str(exc))
            context.log.warning(f"{market_id} {what} {key} not trained: {exc}")
    if not rows:
        raise error_cls(f"{market_id}: no {what} could be trained for "
                        f"{', '.join(context.partition_keys[:3])}: {skipped[0]}{hint}")
    context.add_output_metadata({"trained": len(rows), "skipped": len(skipped),
                                 "versions": ", ".join(r["model_id"] for r in rows)})
    return pd.DataFrame(rows)
