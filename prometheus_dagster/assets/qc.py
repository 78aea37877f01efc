"""Pre-open quality checks: ``<M>/preopen_qc`` checks session D of a market when the market
enters PRE_OPEN for D+1 (sensor ``pre_open_qc``): ingestion, engine outputs, decision logs and
portfolio exposures. The report is written to ``qc_reports``; a blocking check fails the run
(and raises the failure alert) when any check fails."""

import pandas as pd
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
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import TABLES
from prometheus_dagster.engines.qc import (
    FAIL,
    QcLimits,
    check_decisions,
    check_exposures,
    check_ingestion,
    check_outputs,
    qc_report,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.warehouse import Warehouse

GROUP = "qc"
CHECK = "all_checks_passed"
# engine tables that must have rows on every session with prices
REQUIRED_OUTPUTS = {"returns_daily", "volatility_daily", "liquidity_daily",
                    "market_correlation_daily"}
# engines that log decisions, with the output table that says they ran
DECISION_ENGINES = {"regime": "regimes", "stability": "stability_vectors",
                    "scenarios": "scenario_sets", "soft_targets": "soft_target_classes",
                    "fragility_alpha": "fragility_alpha", "assessment": "instrument_scores",
                    "universe": "universes", "portfolio": "target_portfolios"}


def strategy_limits(market_id: str) -> dict[str, QcLimits]:
    """Exposure limits of each portfolio on the market, from its strategy config."""
    from prometheus_dagster.engines.strategy import load_strategies, portfolio_id

    out = {}
    for sid, loaded in load_strategies().items():
        cfg = loaded.config
        if market_id not in cfg.markets:  # type: ignore[attr-defined]
            continue
        lim = cfg.portfolio  # type: ignore[attr-defined]
        gross = lim.gross_limit if lim.gross_limit is not None else max(abs(lim.budget), 1.0)
        out[portfolio_id(sid, market_id)] = QcLimits(
            max_weight=max(lim.max_weight, -lim.min_weight), max_gross=gross)
    return out


def _counts(wh: Warehouse, table: str, market_id: str, dates: list[pd.Timestamp],
            ) -> dict[pd.Timestamp, int] | None:
    """Rows per date of a table (one query for all dates); None when the table is absent."""
    if table not in TABLES or not wh.table_exists(table):
        return None
    col = TABLES[table].partition_column
    rows = wh.query(f"select {col} as d, count(*) as n from {wh.sql_name(table)} where "
                    f"market_id = '{market_id}' and {col} between '{dates[0].date()}' and "
                    f"'{dates[-1].date()}' group by 1")
    found = {pd.Timestamp(d).normalize(): int(n) for d, n in zip(rows["d"], rows["n"],
                                                                 strict=True)}
    return {d: found.get(d, 0) for d in dates}


def preopen_checks(wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                   ingested: list[str], engine_tables: list[str],
                   limits: QcLimits | dict[str, QcLimits]) -> pd.DataFrame:
    """The pre-open report rows of ``dates`` (sessions) of a market."""
    runs = wh.read("ingestion_runs", where={"market_id": market_id, "date": dates})
    outputs = {t: c for t in engine_tables if (c := _counts(wh, t, market_id, dates)) is not None}
    produced = {t: c for t in DECISION_ENGINES.values()
                if (c := _counts(wh, t, market_id, dates)) is not None}
    decisions = pd.DataFrame(columns=["engine_name", "as_of_date"])
    if wh.table_exists("engine_decisions"):
        decisions = wh.read("engine_decisions", where={"market_id": market_id,
                                                        "as_of_date": dates},
                            columns=["engine_name", "as_of_date"])
    portfolios = None
    if "target_portfolios" in TABLES and wh.table_exists("target_portfolios"):
        portfolios = wh.read("target_portfolios",
                             where={"market_id": market_id, "as_of_date": dates})
    reports = []
    for d in dates:
        logged = decisions[pd.to_datetime(decisions["as_of_date"]) == d][
            "engine_name"].value_counts().to_dict()
        weights = (None if portfolios is None
                   else portfolios[pd.to_datetime(portfolios["as_of_date"]) == d])
        rows = (check_ingestion(runs[pd.to_datetime(runs["date"]) == d], ingested)
                + check_outputs({t: c[d] for t, c in outputs.items()}, REQUIRED_OUTPUTS)
                + check_decisions({t: c[d] for t, c in produced.items()}, logged,
                                  DECISION_ENGINES)
                + check_exposures(weights, limits))
        reports.append(qc_report(market_id, d, rows))
    return pd.concat(reports, ignore_index=True)


def preopen_qc_asset(market_id: str, ingested: list[str],
                     engine_tables: list[str]) -> AssetsDefinition:
    key = AssetKey([market_id, "preopen_qc"])

    @asset(
        key=key,
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in [*ingested, *engine_tables]],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "qc_reports"},
        tags={"prometheus/tier": "1"},
        check_specs=[AssetCheckSpec(CHECK, asset=key, blocking=True,
                                    description="no pre-open check failed")],
        description=f"Pre-open checks of {market_id}'s previous session: ingestion, engine "
                    "outputs, decision logs, exposures.",
    )
    def _preopen_qc(context: AssetExecutionContext, warehouse: WarehouseResource):
        wh = warehouse.get()
        report = preopen_checks(wh, market_id, run_dates(context), ingested, engine_tables,
                                strategy_limits(market_id))
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
