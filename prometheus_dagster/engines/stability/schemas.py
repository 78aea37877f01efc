"""The ``stability_vectors`` table: one row per entity and as-of date
(``docs/engines/stability.md``)."""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

ENTITY_TYPES: tuple[str, ...] = ("ISSUER", "SECTOR", "MARKET", "FX", "PORTFOLIO")

STABILITY_VECTORS = register_table(TableSchema("stability_vectors", (
    _req("market_id", "str"),
    _req("entity_type", "str", "ISSUER, SECTOR, MARKET or FX (PORTFOLIO later)"),
    _req("entity_id", "str", "issuer_id, '<market_id>:<sector>', market_id or instrument_id"),
    _req("as_of_date", "date"),
    _opt("liquidity", "float", "[0, 1], 1 = most liquid: low Amihud in the cross-section and "
                               "ADV at or above its own trailing median; null for FX"),
    _opt("volatility", "float", "[0, 1], 1 = calmest: vol_21d against the regime-scaled "
                                "median of its own vol_63d and against the date's median vol"),
    _opt("contagion", "float", "[0, 1], 1 = least hit by stress elsewhere: decreasing in the "
                               "stress-day betas to the market and to the sector"),
    _opt("fundamental", "float", "1 - profile_weakness of the latest profile (members' mean "
                                 "for SECTOR and MARKET); null for FX"),
    _opt("stability_score", "float", "weighted mean of the present components"),
    _opt("regime_label", "str", "regime of the market's region on the date"),
    _opt("vol_ratio", "float", "vol_21d / (reference vol x regime multiplier)"),
    _opt("market_stress_beta", "float",
         "slope through the origin of the entity's return on the index return over the "
         "index's stress days in the contagion window"),
    _opt("sector_stress_beta", "float",
         "ISSUER: slope through the origin on its sector's equal-weighted return without it, "
         "over that series' stress days"),
    _opt("members", "int", "SECTOR: priced issuers; MARKET: priced equities (1: the index)"),
    _opt("diagnostics", "json", "what was missing or estimated, and the numbers behind it"),
    _req("config_id", "str"),
), primary_key=("entity_type", "entity_id", "as_of_date"), partition_column="as_of_date",
    market_column="market_id",
    description="Stability components and score per entity (issuer, sector, market, FX) and "
                "date"))
