"""Configuration of the ingestion layer (configs/engines/ingestion.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

# Run tag that accepts, for one run, deliveries that would delete stored rows.
ALLOW_ROW_LOSS_TAG = "prometheus/allow_row_loss"


class QualityGateConfig(StrictModel):
    """Limits of the quality gate that are a matter of judgement (the rules of the data model
    are fixed): implausible prices, deliveries that would erase stored rows, and the thresholds
    of the warnings (return outliers, stale prices, fundamentals continuity)."""

    max_price: float = Field(1.0e9, gt=0)
    max_daily_move: float = Field(50.0, gt=1)
    max_instrument_loss: float = Field(0.5, ge=0, le=1)
    allow_row_loss: bool = False
    outlier_sigma: float = Field(10.0, gt=0)
    min_sigma_returns: int = Field(10, ge=2)
    sigma_floor: float = Field(5e-4, ge=0)
    stale_repeat: int = Field(3, ge=2)
    continuity_ratio: float = Field(5.0, gt=1)


@register_config_model("ingestion")
class IngestionConfig(VersionedConfig):
    source: Literal["embedded", "files"] = "embedded"
    files_root: str | None = None
    history_sessions: int = Field(21, ge=1, le=260)
    quality: QualityGateConfig = Field(default_factory=QualityGateConfig)

    @model_validator(mode="before")
    @classmethod
    def _markets_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "markets" in data:
            raise ValueError("'markets' is no longer set here: the ingested markets are those "
                             "with 'runs: data' or more in configs/markets.yaml")
        return data

    @property
    def markets(self) -> list[str]:
        """The ingested markets: ``runs: data`` or more in configs/markets.yaml."""
        from prometheus_dagster.core.calendars import markets_running

        return markets_running("data")


def ingestion_config() -> IngestionConfig:
    from prometheus_dagster.core.config import load_engine_config

    return load_engine_config("ingestion").typed(IngestionConfig)
