"""Output tables of the feature engine, declared in the one schema registry (``core.schemas``).

Windows that appear in column names are fixed here (``ret_21d`` is always a 21-session return);
everything else about the computation is configurable (``FeaturesConfig``). All windows count
**sessions of the market's calendar as present in the price data**, not calendar days.
"""

from __future__ import annotations

from prometheus_dagster.core.schemas import Column, TableSchema, register_table

# Windows named by the columns (sessions).
RETURN_HORIZONS = (1, 5, 21)
VOL_WINDOWS = (21, 63)
DRAWDOWN_WINDOW = 252
LIQUIDITY_WINDOW = 21
CORRELATION_WINDOW = 63

FACTOR_IDS = ("MARKET", "SIZE", "VALUE", "MOMENTUM", "LOW_VOL", "QUALITY")


def _req(name: str, dtype: str, description: str = "") -> Column:
    return Column(name, dtype, False, description)


def _opt(name: str, dtype: str, description: str = "") -> Column:
    return Column(name, dtype, True, description)


_CONFIG_ID = _req("config_id", "str", "features config that produced the row")

RETURNS_DAILY = register_table(TableSchema("returns_daily", (
    _req("market_id", "str"), _req("instrument_id", "str"), _req("date", "date"),
    _opt("ret_1d", "float", "total return since the previous price row, split/dividend adjusted"),
    _opt("ret_5d", "float", "compounded total return over the last 5 sessions"),
    _opt("ret_21d", "float", "compounded total return over the last 21 sessions"),
    _opt("logret_1d", "float", "log(1 + ret_1d)"),
    _opt("logret_5d", "float", "log(1 + ret_5d)"),
    _opt("logret_21d", "float", "log(1 + ret_21d)"),
    _CONFIG_ID,
), primary_key=("instrument_id", "date"), partition_column="date", market_column="market_id",
    description="Daily total returns (splits and dividends adjusted), one row per price row"))

VOLATILITY_DAILY = register_table(TableSchema("volatility_daily", (
    _req("market_id", "str"), _req("instrument_id", "str"), _req("date", "date"),
    _opt("vol_21d", "float", "annualised std (ddof=1) of daily returns, last 21 sessions"),
    _opt("vol_63d", "float", "annualised std (ddof=1) of daily returns, last 63 sessions"),
    _opt("drawdown", "float", "total-return level / its max over the last 252 sessions - 1"),
    _opt("max_drawdown_252d", "float", "worst peak-to-trough loss within the last 252 sessions"),
    _CONFIG_ID,
), primary_key=("instrument_id", "date"), partition_column="date", market_column="market_id",
    description="Realised volatility and drawdowns"))

LIQUIDITY_DAILY = register_table(TableSchema("liquidity_daily", (
    _req("market_id", "str"), _req("instrument_id", "str"), _req("date", "date"),
    _opt("adv_21d", "float", "mean daily traded value (close * volume, in currency), 21 sessions"),
    _opt("turnover_21d", "float", "mean of volume / shares outstanding; null if shares unknown"),
    _opt("amihud_21d", "float", "mean of |ret_1d| / traded value (per currency unit)"),
    _CONFIG_ID,
), primary_key=("instrument_id", "date"), partition_column="date", market_column="market_id",
    description="Liquidity: ADV, turnover and Amihud illiquidity"))

FACTORS_DAILY = register_table(TableSchema("factors_daily", (
    _req("market_id", "str"), _req("factor_id", "str", ", ".join(FACTOR_IDS)),
    _req("date", "date"), _req("value", "float", "factor return of the day"),
    _req("n_long", "int", "names in the long leg (names in the index for MARKET)"),
    _req("n_short", "int", "names in the short leg (0 for MARKET)"),
    _CONFIG_ID,
), primary_key=("market_id", "factor_id", "date"), partition_column="date",
    market_column="market_id",
    description="Daily factor returns per market: MARKET index return and long-short quantile "
                "portfolios sorted on characteristics known at the previous close"))

INSTRUMENT_FACTORS_DAILY = register_table(TableSchema("instrument_factors_daily", (
    _req("market_id", "str"), _req("instrument_id", "str"), _req("date", "date"),
    _req("factor_id", "str"), _req("exposure", "float", "rolling OLS beta on the factor"),
    _CONFIG_ID,
), primary_key=("instrument_id", "date", "factor_id"), partition_column="date",
    # measured: its key index took 7x the rows' bytes (17.5 MB beside 2.5 MB at 120 names) and
    # no read looks rows up by key; written only by replacing date partitions
    market_column="market_id", key_index=False,
    description="Rolling multivariate OLS betas of instrument returns on the market's factor "
                "returns, using data up to and including the date"))

MARKET_CORRELATION_DAILY = register_table(TableSchema("market_correlation_daily", (
    _req("market_id", "str"), _req("date", "date"),
    _opt("avg_pairwise_corr_63d", "float", "mean pairwise correlation of daily returns, names "
                                           "with a complete 63-session window"),
    _opt("dispersion_1d", "float", "cross-sectional std (ddof=1) of ret_1d"),
    _opt("breadth_1d", "float", "fraction of names with ret_1d > 0"),
    _opt("advance_decline", "float", "(advancers - decliners) / names with a return"),
    _opt("index_ret_1d", "float", "the MARKET factor return of the day"),
    _req("n_names", "int", "names with a one-day return on the date"),
    _CONFIG_ID,
), primary_key=("market_id", "date"), partition_column="date", market_column="market_id",
    description="Market internals: correlation, dispersion, breadth"))

FEATURE_TABLES: dict[str, TableSchema] = {
    s.name: s
    for s in (RETURNS_DAILY, VOLATILITY_DAILY, LIQUIDITY_DAILY, FACTORS_DAILY,
              INSTRUMENT_FACTORS_DAILY, MARKET_CORRELATION_DAILY)
}
