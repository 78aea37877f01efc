"""Output tables of the portfolio engine, declared in the one schema registry.

Weights are fractions of NAV. Volatilities are annualised (the risk model's units); expected
returns are over the strategy's assessment horizon (``horizon_days``).
"""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

_BOOK = (
    _req("portfolio_id", "str", "strategy_id:market_id"),
    _req("strategy_id", "str"),
    _req("market_id", "str"),
    _req("as_of_date", "date"),
)

TARGET_PORTFOLIOS = register_table(TableSchema("target_portfolios", (
    *_BOOK,
    _req("instrument_id", "str"),
    _req("weight", "float", "target weight (|w| <= 1e-6 is written as 0)"),
    _req("prev_weight", "float", "current weight before the rebalance"),
    _req("trade", "float", "weight - prev_weight"),
    _opt("expected_return", "float", "the name's expected return over the horizon (null for a "
                                     "held name no longer in the universe)"),
    _opt("mu", "float", "the optimiser's mu: expected return less the long-side fragility "
                        "penalty, times mu_scale"),
    _opt("sector", "str"),
    _opt("country", "str"),
    _req("side_allowed", "str", "LONG, SHORT, BOTH or NONE (held, no longer in the universe)"),
    _opt("soft_target_class", "str"),
    _req("horizon_days", "int", "assessment horizon of the expected returns"),
    _req("portfolio_expected_return", "float", "sum of weight * expected_return (horizon)"),
    _req("portfolio_volatility", "float", "annualised sqrt(w' Sigma w) of the factor model"),
    _req("objective", "float", "w'mu - lambda w'Sigma w - costs, in the optimiser's units"),
    _req("turnover", "float", "one-way sum |weight - prev_weight|"),
    _req("cost", "float", "cost_bps / 1e4 * turnover, fraction of NAV"),
    _req("status", "str", "solver status"),
    _req("solver", "str"),
    _req("binding_constraints", "json", "constraints active at the optimum"),
    _opt("factor_exposures", "json", "factor id -> B'w of the target"),
    _opt("notes", "json", "names dropped or forced out while building the problem"),
    _opt("model_ids", "json", "model / config ids of the inputs (risk model, assessment)"),
    _req("config_id", "str", "the strategy config"),
), primary_key=("portfolio_id", "instrument_id", "as_of_date"), partition_column="as_of_date",
    market_column="market_id",
    description="Target weights per portfolio, instrument and date, with the portfolio's "
                "expected return, volatility, costs and binding constraints on every row"))

PORTFOLIO_RISK_REPORTS = register_table(TableSchema("portfolio_risk_reports", (
    *_BOOK,
    _req("n_names", "int", "names with a non-zero weight"),
    _req("gross", "float"), _req("net", "float"),
    _req("long", "float", "sum of positive weights"),
    _req("short", "float", "sum of negative weights (<= 0; long + short = net)"),
    _opt("volatility", "float", "annualised factor-model volatility"),
    _opt("factor_variance_share", "float", "factor variance / total variance"),
    _opt("parametric_var", "json", "'95%_1d' -> normal VaR, zero mean, as a positive loss"),
    _opt("parametric_es", "json", "'95%_1d' -> normal expected shortfall"),
    _opt("factor_exposures", "json", "factor id -> B'w"),
    _opt("factor_contributions", "json", "factor id -> Euler contribution to variance"),
    _opt("sector_exposures", "json", "sector -> {net, gross}"),
    _opt("country_exposures", "json", "country -> {net, gross}"),
    _opt("currency_exposures", "json", "currency -> {net, gross}"),
    _opt("fragility_bucket_exposures", "json", "NONE / WATCHLIST / SOFT_TARGET / UNKNOWN -> "
                                               "{net, gross}"),
    _opt("scenario_pnl", "json", "set_id -> name, paths, mean, worst, var, es, names without "
                                 "a path"),
    _opt("scenario_var", "json", "'95%' -> VaR over all scenario paths pooled"),
    _opt("scenario_es", "json", "'95%' -> ES over all scenario paths pooled"),
    _opt("stability", "float", "|weight|-weighted mean stability_score"),
    _opt("binding_constraints", "json"),
    _opt("notes", "json", "names without risk model, attributes or stability score"),
    _req("config_id", "str", "the strategy config"),
), primary_key=("portfolio_id", "as_of_date"), partition_column="as_of_date",
    market_column="market_id",
    description="Risk report per portfolio and date: exposures, parametric and scenario "
                "VaR/ES, scenario P&L per set, stability"))
