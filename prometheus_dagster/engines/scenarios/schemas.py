"""Output tables of the scenario engine, declared in the one schema registry."""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

SCENARIO_SETS = register_table(TableSchema("scenario_sets", (
    _req("market_id", "str"),
    _req("as_of_date", "date", "paths use only data dated on or before this date"),
    _req("set_id", "str", "market:date:name:hash8 of the generator spec"),
    _req("name", "str"),
    _req("family", "str", "HISTORICAL, BOOTSTRAP, FACTOR_BOOTSTRAP, SHOCK_OVERLAY, "
                          "FRAGILITY_ADVERSARIAL or NAMED"),
    _req("category", "str", "BASELINE, STRESS, REGULATORY or ADVERSARIAL"),
    _req("horizon", "int", "steps per path"),
    _req("num_paths", "int", "paths generated (HISTORICAL: at most the windows available)"),
    _req("seed", "int", "the spec's seed; the stream also depends on market, date and name"),
    _req("generator_spec", "json", "the full set spec: regenerates the paths with the inputs"),
    _req("base_start", "date", "first session of the base window"),
    _req("base_end", "date", "last session of the base window"),
    _opt("regime_filter", "json", "regime labels the sample was restricted to"),
    _req("regime_filter_applied", "bool", "false when no filter or when it fell back"),
    _opt("tags", "json"),
    _req("n_instruments", "int"),
    _opt("excluded_instruments", "json", "instruments with too little history in the window"),
    _req("clipped_moves", "int", "step returns clipped into the configured bounds"),
    _opt("calibration", "json", "mean, vol, avg_corr of the base sessions actually used"),
    _opt("path_statistics", "json", "mean, vol, avg_corr of the generated step returns"),
    _opt("details", "json", "family specifics (windows, betas, targets), generation "
                            "settings, warnings"),
    _req("config_id", "str"),
), primary_key=("market_id", "as_of_date", "set_id"), partition_column="as_of_date",
    market_column="market_id",
    description="Scenario sets per market and date: generator, calibration and statistics"))

SCENARIO_PATHS = register_table(TableSchema("scenario_paths", (
    _req("market_id", "str"),
    _req("as_of_date", "date"),
    _req("set_id", "str"),
    _req("path_id", "int"),
    _req("instrument_id", "str"),
    _opt("step_returns", "vector", "simple return of each horizon step; kept for the last "
                                   "store_paths_sessions dates only (empty before: "
                                   "regenerate with steps.scenarios.full_scenario_paths)"),
    _req("cumulative_return", "float", "the path's loss of the instrument: its step returns "
                                       "compounded over the horizon (kept for every date)"),
    _req("config_id", "str"),
), primary_key=("set_id", "path_id", "instrument_id"), partition_column="as_of_date",
    market_column="market_id", key_index=False,
    description="Per-instrument cumulative return of each scenario path (what the fragility "
                "and risk-report readers use), with its step returns for recent dates"))
