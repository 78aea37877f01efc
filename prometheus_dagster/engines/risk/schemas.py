"""Output tables of the factor risk model, declared in the one schema registry.

All risk numbers are annualised (daily values times ``annualisation``; vols are square roots
of annualised variances).
"""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

RISK_FACTOR_COVARIANCE = register_table(TableSchema("risk_factor_covariance", (
    _req("market_id", "str"),
    _req("as_of_date", "date"),
    _req("factor_id", "str"),
    _req("covariances", "json", "factor_id -> annualised covariance of this factor with it"),
    _req("factor_vol", "float", "annualised volatility of the factor"),
    _opt("notes", "json", "model-level notes of the date: factor sessions used, dropped "
                          "factors, excluded instruments (same on every row of the date)"),
    _req("config_id", "str"),
), primary_key=("market_id", "as_of_date", "factor_id"), partition_column="as_of_date",
    market_column="market_id",
    description="Factor covariance F of the point-in-time factor risk model, one row per "
                "factor"))

RISK_SPECIFIC = register_table(TableSchema("risk_specific", (
    _req("market_id", "str"),
    _req("as_of_date", "date"),
    _req("instrument_id", "str"),
    _req("exposures", "json", "factor_id -> exposure used by the model (B row)"),
    _req("specific_vol", "float", "annualised specific (residual) volatility"),
    _req("total_vol", "float", "annualised model volatility sqrt(b' F b + d)"),
    _opt("notes", "str", "substitutions made for the instrument (median exposure or specific "
                         "variance), empty when none"),
    _req("config_id", "str"),
), primary_key=("instrument_id", "as_of_date"), partition_column="as_of_date",
    market_column="market_id",
    description="Exposures and specific risk of the point-in-time factor risk model, one row "
                "per instrument"))

RISK_TABLES: dict[str, TableSchema] = {
    s.name: s for s in (RISK_FACTOR_COVARIANCE, RISK_SPECIFIC)
}
