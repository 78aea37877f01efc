"""Configuration of the pre-open checks and data freshness (``configs/engines/qc.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model


class Deadlines(StrictModel):
    """Minutes after a session's close by which its partitions must be materialized."""

    ingestion: int = Field(180, ge=0, description="every ingested table of the market")
    daily_chain: int = Field(240, ge=0, description="every other asset of the daily job")


class Freshness(StrictModel):
    """How old the newest input of session D may be before the pre-open check fails."""

    max_age_sessions: dict[str, int] = Field(
        default_factory=lambda: {"prices_daily": 0, "fundamentals": 130},
        description="ingested table -> sessions from its newest delivered date to D; tables "
                    "absent here (news, corporate actions) are event streams with no cadence")
    active_sessions: int = Field(
        5, ge=1, description="an instrument priced in the sessions before D (this many) and "
                             "not on D, nor delisted by D, has a stale price")
    max_missing_share: float = Field(
        0.05, ge=0, le=1, description="share of those instruments above which the check fails "
                                      "(any: a warning)")
    max_age_days: dict[str, int] = Field(
        default_factory=lambda: {"D": 5, "W": 12, "M": 65, "Q": 190},
        description="macro series a market's regimes read, by frequency: calendar days from "
                    "the newest observation to D")
    deadlines: Deadlines = Field(default_factory=Deadlines)

    def macro_lookback_days(self) -> int:
        return max(self.max_age_days.values(), default=0)


@register_config_model("qc")
class QcConfig(VersionedConfig):
    engine: Literal["qc"] = "qc"
    version: str = "1"
    limit_tolerance: float = Field(
        1e-6, ge=0, description="a target within this of an exposure limit holds it (the "
                                "optimiser meets constraints to its feasibility tolerance)")
    freshness: Freshness = Field(default_factory=Freshness)
