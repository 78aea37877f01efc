"""Decision outcomes per market: what each logged portfolio decision realised over the outcome
horizons (``steps/outcomes.py``)."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import run_dates
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.steps.outcomes import (
    OUTCOME_HORIZONS,
    OUTCOME_INPUTS,
    compute_decision_outcomes,
)

GROUP = "backtest"


def decision_outcomes_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "decision_outcomes"]),
        group_name=GROUP,
        deps=asset_deps(OUTCOME_INPUTS, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "decision_outcomes",
                  **declare(step_name(market_id, "decision_outcomes"), OUTCOME_INPUTS,
                            market_id)},
        tags={"prometheus/tier": "2"},
        description=f"Realised return, P&L per unit of gross and drawdown of each {market_id} "
                    f"portfolio decision over {', '.join(map(str, OUTCOME_HORIZONS))} sessions, "
                    "dated by the last session included (known from then on).",
    )
    def _outcomes(context: AssetExecutionContext, warehouse: WarehouseResource
                  ) -> pd.DataFrame:
        out, decisions = compute_decision_outcomes(warehouse.get(), market_id,
                                                   run_dates(context))
        if decisions:
            context.add_output_metadata({"rows": len(out), "decisions": decisions})
        return out

    return _outcomes
