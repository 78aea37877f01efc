"""Output table of the universe engine, declared in the one schema registry."""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

UNIVERSES = register_table(TableSchema("universes", (
    _req("market_id", "str"),
    _req("strategy_id", "str"),
    _req("as_of_date", "date"),
    _req("instrument_id", "str"),
    _opt("issuer_id", "str"),
    _req("tier", "str", "CORE, SATELLITE or EXCLUDED"),
    _opt("universe_score", "float", "the assessment score used for ranking"),
    _opt("rank", "int", "position in the ranking of eligible names (1 = best)"),
    _req("side_allowed", "str", "LONG, SHORT, BOTH or NONE"),
    _req("reasons", "json", "why excluded (never empty for EXCLUDED) or notes"),
    _req("config_id", "str"),
), primary_key=("strategy_id", "instrument_id", "as_of_date"), partition_column="as_of_date",
    market_column="market_id",
    description="Universe tier per strategy, instrument and date, with reasons"))
