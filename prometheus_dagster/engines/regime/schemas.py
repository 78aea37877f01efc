"""Output table of the regime engine, declared in the one schema registry."""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

REGIMES = register_table(TableSchema("regimes", (
    _req("market_id", "str", "region: a market id or GLOBAL"),
    _req("as_of_date", "date"),
    _req("regime_label", "str", "smoothed label (min_regime_duration_days)"),
    _req("confidence", "float", "posterior probability of the label under the date's model"),
    _opt("raw_label", "str", "most probable label of the day before smoothing"),
    _opt("label_probabilities", "json", "label -> tempered posterior probability"),
    _opt("next_day_probabilities", "json", "label -> probability of being in it tomorrow"),
    _opt("next_regime_probabilities", "json", "label -> probability it follows when this ends"),
    _opt("expected_remaining_days", "float", "1 / (1 - P[stay])"),
    _req("alert_level", "str", "GREEN, YELLOW, ORANGE or RED"),
    _req("warning_count", "int"),
    _opt("warning_domains", "json", "domain -> warnings"),
    _opt("warnings", "json", "indicator -> its trailing percentile"),
    _opt("regime_embedding", "vector", "unit vector of the standardised window features"),
    _opt("diagnostics", "json", "cluster, distances per label, drivers, missing features, "
                                "feature values"),
    _req("model_id", "str", "registered prototype version used"),
    _req("config_id", "str"),
), primary_key=("market_id", "as_of_date"), partition_column="as_of_date",
    market_column="market_id",
    description="Regime per region and date with confidence, transitions and alert level"))
