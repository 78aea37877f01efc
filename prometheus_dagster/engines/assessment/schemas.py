"""Output table of the assessment engine, declared in the one schema registry."""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

INSTRUMENT_SCORES = register_table(TableSchema("instrument_scores", (
    _req("market_id", "str"),
    _req("strategy_id", "str"),
    _req("as_of_date", "date"),
    _req("instrument_id", "str"),
    _opt("issuer_id", "str"),
    _req("horizon_days", "int", "sessions ahead"),
    _req("expected_return", "float", "raw_expected_return less the fragility penalty"),
    _req("raw_expected_return", "float", "model forecast of the forward excess return (vs the "
                                         "date's cross-sectional mean)"),
    _req("fragility_penalty", "float", "amount subtracted for the long side: min(weight x "
                                       "soft_target_score x tail_probability, raw) when raw > 0"),
    _req("score", "float", "cross-sectional percentile of expected_return on the date and "
                           "horizon, in [0, 1]"),
    _req("confidence", "float", "(2 Phi(|z|) - 1) x clip(OOS rank IC / full_ic, 0, 1), in "
                                "[0, 1]"),
    _req("signal_label", "str", "STRONG_SELL, SELL, HOLD, BUY or STRONG_BUY from the score"),
    _opt("alpha_components", "json", "family -> contribution to raw_expected_return (with "
                                     "the model bias)"),
    _req("model_id", "str", "assessment model version used"),
    _req("config_id", "str"),
    _opt("notes", "str", "inputs the row lacked (their features were missing)"),
), primary_key=("strategy_id", "instrument_id", "as_of_date", "horizon_days"),
    partition_column="as_of_date", market_column="market_id",
    description="Assessment per strategy, instrument, date and horizon: expected return, "
                "score, confidence, signal and alpha components"))
