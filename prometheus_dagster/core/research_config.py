"""Configuration of the research command (configs/research.yaml)."""

from __future__ import annotations

from pydantic import Field

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

RESEARCH_CONFIG_FILE = "research.yaml"


class RunCost(StrictModel):
    """Seconds of one run: ``fixed`` + ``per_partition`` x partitions."""

    fixed: float = Field(ge=0)
    per_partition: float = Field(ge=0)

    def seconds(self, partitions: int) -> float:
        return self.fixed + self.per_partition * partitions


@register_config_model("research")
class ResearchConfig(VersionedConfig):
    history_days: int = Field(600, ge=0)
    max_sessions_per_run: int = Field(66, ge=1)
    fragility_refits_after_years: int | None = Field(2, ge=0)
    default_costs: dict[str, RunCost]

    def default_cost(self, kind: str) -> RunCost:
        if kind in self.default_costs:
            return self.default_costs[kind]
        if "other" not in self.default_costs:
            raise ValueError(f"configs/{RESEARCH_CONFIG_FILE}: default_costs has no entry for "
                             f"{kind!r} and no 'other' entry")
        return self.default_costs["other"]


def research_config() -> ResearchConfig:
    from prometheus_dagster.core import config as core_config

    path = core_config.CONFIG_DIR / RESEARCH_CONFIG_FILE
    return core_config.load_config(path, ResearchConfig).typed(ResearchConfig)
