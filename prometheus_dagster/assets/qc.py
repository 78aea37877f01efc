"""Pre-open quality checks: ``<M>/preopen_qc`` checks session D of a market when the market
enters PRE_OPEN for D+1 (sensor ``pre_open_qc``): ingestion, engine outputs, decision logs,
portfolio exposures and the freshness of its inputs (``steps/qc.py``). The report is written
to ``qc_reports``; a blocking check fails the run (and raises the failure alert) when any check
fails."""

from collections.abc import Mapping, Sequence

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    Output,
    asset,
)

from prometheus_dagster.assets.common import run_dates
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.qc import FAIL
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.steps.qc import (  # noqa: F401  (strategy_limits: re-exported)
    DECISION_ENGINES,
    REQUIRED_OUTPUTS,
    preopen_checks,
    qc_deps,
    qc_inputs,
    strategy_limits,
)

GROUP = "qc"
CHECK = "all_checks_passed"


def preopen_qc_asset(market_id: str, ingested: list[str], engine_tables: list[str],
                     macro_roles: Mapping[str, Sequence[str]] | None = None
                     ) -> AssetsDefinition:
    """``macro_roles``: the macro roles (role -> candidate series) the market's regimes read."""
    key = AssetKey([market_id, "preopen_qc"])
    macro_roles = dict(macro_roles or {})
    inputs = qc_inputs(engine_tables, bool(macro_roles))

    @asset(
        key=key,
        group_name=GROUP,
        deps=asset_deps(qc_deps(inputs), market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "qc_reports",
                  **declare(step_name(market_id, "preopen_qc"), inputs, market_id)},
        tags={"prometheus/tier": "1"},
        check_specs=[AssetCheckSpec(CHECK, asset=key, blocking=True,
                                    description="no pre-open check failed")],
        description=f"Pre-open checks of {market_id}'s previous session: ingestion, engine "
                    "outputs, decision logs, exposures, input freshness.",
    )
    def _preopen_qc(context: AssetExecutionContext, warehouse: WarehouseResource):
        wh = warehouse.get()
        report = preopen_checks(wh, market_id, run_dates(context), ingested, engine_tables,
                                strategy_limits(market_id), macro_roles)
        failed = report[report["status"] == FAIL]
        for r in failed.itertuples():
            context.log.error(
                f"{market_id} {r.date.date()} {r.check_name}/{r.subject}: {r.detail}")
        counts = report["status"].value_counts().to_dict()
        yield Output(report, metadata={"checks": len(report), **counts})
        first = failed.iloc[0] if len(failed) else None
        yield AssetCheckResult(
            check_name=CHECK, passed=failed.empty, severity=AssetCheckSeverity.ERROR,
            metadata={"failed": len(failed),
                      "first_failure": "" if first is None else
                      f"{first['check_name']}/{first['subject']}: {first['detail']}"})

    return _preopen_qc
