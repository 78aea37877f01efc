"""Decision outcomes step: what each logged portfolio decision realised over the outcome
horizons, dated by the last session included (see ``docs/engines/backtest.md``)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import empty_frame, get_schema, validate_frame
from prometheus_dagster.engines.backtest import decision_outcomes
from prometheus_dagster.steps.universe import sessions_in_days

OUTCOME_HORIZONS = (1, 5, 21)
# decisions and returns dated this many calendar days before a run's first date: the longest
# horizon in sessions, as calendar days, with a margin
LOOKBACK_DAYS = int(max(OUTCOME_HORIZONS) * 7 / 5) + 10
OUTCOME_INPUTS = Inputs(
    Read("engine_decisions", sessions=sessions_in_days(LOOKBACK_DAYS), asset="target_portfolios",
         note="the portfolio decisions (target weights) of the look-back"),
    Read("returns_daily", sessions=sessions_in_days(LOOKBACK_DAYS)))


def compute_decision_outcomes(reader: Any, market_id: str, dates: list[pd.Timestamp]
                              ) -> tuple[pd.DataFrame, int]:
    """(``decision_outcomes`` rows ending on ``dates``, portfolio decisions read)."""
    window = InputWindow(reader, OUTCOME_INPUTS, market_id, dates)
    first = window.first - pd.Timedelta(days=LOOKBACK_DAYS)
    decisions = window.frame("engine_decisions", engine_name="portfolio")
    decisions = decisions[pd.to_datetime(decisions["as_of_date"]) >= first]
    returns = window.frame("returns_daily", columns=["instrument_id", "date", "ret_1d"])
    returns = returns[pd.to_datetime(returns["date"]) >= first]
    rows = []
    for r in decisions.itertuples():
        action = (json.loads(r.proposed_action) if isinstance(r.proposed_action, str)
                  else r.proposed_action) or {}
        if action.get("weights"):
            rows.append({"decision_id": r.decision_id, "engine_name": r.engine_name,
                         "market_id": market_id, "as_of_date": r.as_of_date,
                         "weights": action["weights"]})
    if not rows:
        return empty_frame("decision_outcomes"), 0
    out = decision_outcomes(pd.DataFrame(rows), returns, OUTCOME_HORIZONS)
    out = out[pd.to_datetime(out["end_date"]).isin(set(window.dates))]
    return validate_frame(get_schema("decision_outcomes"), out.reset_index(drop=True)), len(rows)
