"""Pre-open quality checks of a market's previous session (pure functions) and the
``qc_reports`` table they fill."""

from prometheus_dagster.engines.qc import schemas as _schemas  # noqa: F401  (declares qc_reports)
from prometheus_dagster.engines.qc.checks import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Age,
    QcLimits,
    check_decisions,
    check_exposures,
    check_freshness,
    check_ingestion,
    check_missing_prices,
    check_outputs,
    qc_report,
)

__all__ = ["FAIL", "PASS", "SKIP", "WARN", "Age", "QcLimits", "check_decisions",
           "check_exposures", "check_freshness", "check_ingestion", "check_missing_prices",
           "check_outputs", "qc_report"]
