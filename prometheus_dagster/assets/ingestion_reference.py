"""Reference-data ingestion (each market's issuers and instruments, replaced as a whole from
the source) and the embedded market's ground truth (group ``truth``, never read by engines).
None of them reads the warehouse."""

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from prometheus_dagster.assets.lineage import declare, step_name
from prometheus_dagster.core.calendars import GLOBAL
from prometheus_dagster.core.inputs import Inputs
from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.ingestion.file_source import SELF_ISSUER_NOTE
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.sources import SourceResource

GROUP = "ingestion"
REFERENCE_TABLES = ("issuers", "instruments")
NO_INPUTS = Inputs()  # the source only


def reference_table_asset(market_id: str, table: str) -> AssetsDefinition:
    @asset(
        key=[market_id, table],
        group_name=GROUP,
        tags={"prometheus/tier": "1"},
        description=f"{table} of {market_id} (reference data, replaced as a whole).",
        metadata={"table": table, **declare(step_name(market_id, table), NO_INPUTS, market_id)},
    )
    def _reference(context: AssetExecutionContext, source: SourceResource,
                   warehouse: WarehouseResource) -> MaterializeResult:
        frame = source.get().reference(market_id).get(table)
        if frame is None:
            frame = pd.DataFrame(columns=get_schema(table).column_names)
        derived = _self_issuers(frame) if table == "issuers" else 0
        if derived:
            context.log.warning(
                f"{market_id}: the source lists no issuer: {derived} EQUITY instrument(s) are "
                "their own issuers (prices only; their profiles come from prices alone)")
        n = warehouse.get().replace_all(table, frame, where={"market_id": market_id})
        return MaterializeResult(metadata={"rows": n})

    return _reference


def _self_issuers(issuers: pd.DataFrame) -> int:
    """How many issuers the source derived from their instruments (a prices-only market)."""
    if issuers.empty or "metadata" not in issuers:
        return 0
    return int(issuers["metadata"].map(
        lambda m: isinstance(m, dict) and m.get("derived") == SELF_ISSUER_NOTE).sum())


def reference_assets_of(market_id: str) -> list[AssetsDefinition]:
    return [reference_table_asset(market_id, t) for t in REFERENCE_TABLES]


@asset(key=[GLOBAL, "truth_regime_path"], group_name="truth",
       metadata=declare(step_name(GLOBAL, "truth_regime_path"), NO_INPUTS, GLOBAL),
       description="Hidden regime path of the embedded market (evaluation only).")
def truth_regime_path(source: SourceResource, warehouse: WarehouseResource) -> MaterializeResult:
    market = source.synthetic_market()
    if market is None:
        return MaterializeResult(metadata={"rows": 0, "note": "no embedded market configured"})
    n = warehouse.get().replace_all("truth.regime_path", market.truth_regimes())
    return MaterializeResult(metadata={"rows": n})


@asset(key=[GLOBAL, "truth_distress_events"], group_name="truth",
       metadata=declare(step_name(GLOBAL, "truth_distress_events"), NO_INPUTS, GLOBAL),
       description="Distress events of the embedded market's issuers (evaluation only).")
def truth_distress_events(source: SourceResource,
                          warehouse: WarehouseResource) -> MaterializeResult:
    market = source.synthetic_market()
    if market is None:
        return MaterializeResult(metadata={"rows": 0, "note": "no embedded market configured"})
    n = warehouse.get().replace_all("truth.distress_events", market.truth_distress_events())
    return MaterializeResult(metadata={"rows": n})


def truth_assets() -> list[AssetsDefinition]:
    return [truth_regime_path, truth_distress_events]
