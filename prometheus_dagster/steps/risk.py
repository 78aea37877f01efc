"""Risk model step: the point-in-time factor risk model (factor covariance F, exposures B,
specific risk D) of each date, from factor returns, returns and exposures dated on or before it.
Shared by the daily chain (``assets/risk.py``) and the backtest."""

from __future__ import annotations

from typing import Any

import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.risk import (
    FactorRiskModel,
    RiskModelConfig,
    RiskModelInputs,
    estimate_risk_models,
    risk_model_from_frames,
)


def risk_inputs(cfg: RiskModelConfig) -> Inputs:
    """What a risk model of date D reads: the estimation window of returns and factor returns
    before D (with a margin of 5 sessions), and D's exposures."""
    window = max(cfg.factor_window, cfg.specific_window) + 5
    return Inputs(Read("returns_daily", sessions=window),
                  Read("factors_daily", sessions=window),
                  Read("instrument_factors_daily"))


def read_risk_inputs(reader: Any, market_id: str, dates: list[pd.Timestamp],
                     cfg: RiskModelConfig) -> RiskModelInputs:
    """Factor returns, returns and exposures the models of ``dates`` read (nothing after the
    last date)."""
    window = InputWindow(reader, risk_inputs(cfg), market_id, dates)
    return RiskModelInputs(
        returns=window.frame("returns_daily", columns=["instrument_id", "date", "ret_1d"]),
        factor_returns=window.frame("factors_daily", columns=["factor_id", "date", "value"]),
        exposures=window.frame("instrument_factors_daily",
                               columns=["instrument_id", "date", "factor_id", "exposure"]))


def compute_risk_models(reader: Any, market_id: str, dates: list[pd.Timestamp],
                        cfg: RiskModelConfig) -> list[FactorRiskModel]:
    return estimate_risk_models(market_id, dates, read_risk_inputs(reader, market_id, dates, cfg),
                                cfg)


# what a consumer of stored risk models (portfolios, risk reports) reads
STORED_RISK_INPUTS = Inputs(Read("risk_factor_covariance"), Read("risk_specific"))


def load_risk_models(reader: Any, market_id: str, dates: list[pd.Timestamp]
                     ) -> dict[pd.Timestamp, FactorRiskModel]:
    """The stored risk model of each date that has one."""
    window = InputWindow(reader, STORED_RISK_INPUTS, market_id, dates)
    factors = window.frame("risk_factor_covariance")
    specific = window.frame("risk_specific")
    out: dict[pd.Timestamp, FactorRiskModel] = {}
    for d, f in factors.groupby("as_of_date", sort=True):
        s = specific[specific["as_of_date"] == d]
        if len(s):
            out[pd.Timestamp(d)] = risk_model_from_frames(f, s)
    return out
