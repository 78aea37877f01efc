"""Output tables of the fragility engine, declared in the one schema registry."""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

_ENTITY = (
    _req("market_id", "str"),
    _req("entity_type", "str", "ISSUER, SECTOR, MARKET or FX"),
    _req("entity_id", "str", "issuer id, <market>:<sector>, market id or FX instrument id"),
    _req("as_of_date", "date"),
)
_KEY = ("entity_type", "entity_id", "as_of_date")

FRAGILITY_MEASURES = register_table(TableSchema("fragility_measures", (
    *_ENTITY,
    _opt("expected_shortfall", "float", "mean loss of the worst paths of the pooled stochastic "
                                        "scenario sets (measures.es_level)"),
    _opt("worst_case_loss", "float", "largest loss over every path of every set"),
    _opt("mean_loss", "float", "mean loss of the pooled stochastic paths"),
    _opt("high_fragility", "float", "HighFragility in [0, 1]: rank of ES within the entity "
                                    "type blended with ES / loss_scale"),
    _req("n_paths", "int", "paths with a loss for the entity"),
    _opt("scenario_losses", "json", "set name -> family, paths, mean, es, worst"),
    _opt("scenario_set_ids", "json", "the scenario sets the losses come from"),
    _req("members", "int", "instruments held (1 for an issuer, members of a sector/market)"),
    _req("config_id", "str"),
), primary_key=_KEY, partition_column="as_of_date", market_column="market_id",
    description="Scenario losses per entity and date: ES, worst case, HighFragility"))

SOFT_TARGET_CLASSES = register_table(TableSchema("soft_target_classes", (
    *_ENTITY,
    _req("soft_target_class", "str", "NONE, WATCHLIST or SOFT_TARGET"),
    _opt("stability_score", "float"), _opt("high_fragility", "float"),
    _opt("profile_weakness", "float", "1 - the stability vector's fundamental component"),
    _opt("reasons", "json", "the lines crossed"),
    _req("config_id", "str"),
), primary_key=_KEY, partition_column="as_of_date", market_column="market_id",
    description="Soft-target class per entity and date with the thresholds crossed"))

FRAGILITY_ALPHA = register_table(TableSchema("fragility_alpha", (
    *_ENTITY,
    _opt("instrument_id", "str", "the issuer's equity instrument"),
    _req("horizon_days", "int", "sessions ahead"),
    _opt("weak_profile", "float"), _opt("instability", "float"),
    _opt("high_fragility", "float"), _opt("complacent_pricing", "float"),
    _req("soft_target_score", "float", "mean of the `aligned` largest components"),
    _req("soft_target_class", "str"),
    _opt("tail_probability", "float", "model probability of a tail outcome within the horizon"),
    _opt("fragility_alpha", "float", "expected downside over the horizon (a return <= 0)"),
    _req("fragility_class", "str", "NONE, WATCHLIST, SHORT_CANDIDATE or CRISIS"),
    _opt("position_templates", "json", "entity, instrument, direction, kind, notional hint, "
                                       "rationale"),
    _opt("features", "json", "the model features of the row"),
    _opt("model_id", "str", "fragility model version used (null: none trained before the "
                            "date)"),
    _req("config_id", "str"),
), primary_key=(*_KEY, "horizon_days"), partition_column="as_of_date",
    market_column="market_id",
    description="Fragility alpha per entity, date and horizon"))
