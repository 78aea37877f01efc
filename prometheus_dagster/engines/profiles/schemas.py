"""The ``profiles`` table: one row per issuer and as-of date (docs/engines/profiles.md)."""

from __future__ import annotations

from prometheus_dagster.core.schemas import Column, TableSchema, register_table

STRUCTURED_FIELDS = (
    "total_debt", "debt_to_ebitda", "debt_to_equity", "liabilities_to_assets",
    "interest_coverage", "ebitda_margin", "net_margin", "roe", "roic", "revenue_growth_yoy",
    "cash_to_st_debt", "accruals_ratio",
)
RISK_FLAGS = ("leverage_score", "earnings_quality_score", "liquidity_risk",
              "governance_risk_score")


def _req(name: str, dtype: str, description: str = "") -> Column:
    return Column(name, dtype, False, description)


def _opt(name: str, dtype: str, description: str = "") -> Column:
    return Column(name, dtype, True, description)


_DESCRIPTIONS = {
    "total_debt": "short_term_debt + long_term_debt",
    "debt_to_ebitda": "total debt / annualised EBITDA (4 x quarter); null when EBITDA <= 0",
    "debt_to_equity": "total debt / equity; null when equity <= 0",
    "liabilities_to_assets": "total liabilities / total assets",
    "interest_coverage": "EBITDA / interest expense",
    "ebitda_margin": "EBITDA / revenue",
    "net_margin": "net income / revenue",
    "roe": "annualised net income / equity",
    "roic": "annualised net income / (equity + total debt)",
    "revenue_growth_yoy": "revenue / revenue of the statement a year earlier - 1",
    "cash_to_st_debt": "cash / short-term debt",
    "accruals_ratio": "(net income - operating cash flow) / total assets",
}
_FLAG_DESCRIPTIONS = {
    "leverage_score": "1 = most leveraged; non-decreasing in debt/EBITDA, debt/equity and "
                      "liabilities/assets",
    "earnings_quality_score": "1 = poorest earnings quality (high accruals, cash burn, losses)",
    "liquidity_risk": "1 = cash far short of short-term debt or interest barely covered",
    "governance_risk_score": "1 = recent news closest to governance/distress themes; null "
                             "without recent news",
}

PROFILES = register_table(TableSchema("profiles", (
    _req("market_id", "str"), _req("issuer_id", "str"), _req("as_of_date", "date"),
    _opt("period_end", "date", "period of the latest statement usable on as_of_date"),
    _opt("report_date", "date"), _opt("statement_age_days", "int"),
    *(_opt(f, "float", _DESCRIPTIONS[f]) for f in STRUCTURED_FIELDS),
    _req("recent_articles", "int", "linked articles in the news look-back"),
    *(_opt(f, "float", _FLAG_DESCRIPTIONS[f]) for f in RISK_FLAGS),
    _opt("profile_weakness", "float", "weighted mean of the available risk flags"),
    _opt("profile_embedding", "vector", "384-d unit vector in the joint text/numeric space"),
    _opt("model_id", "str", "encoder version behind profile_embedding"),
    _opt("notes", "str", "what was missing (no statement, no window, no model...)"),
    _req("config_id", "str"),
), primary_key=("issuer_id", "as_of_date"), partition_column="as_of_date",
    market_column="market_id"))
