"""Run every benchmark: ``make bench``."""

from benchmarks import (
    assessment,
    backtest,
    dagster_overhead,
    encoders,
    execution,
    fragility,
    ingestion,
    portfolio,
    regime,
    regime_real,
    soak,
)

if __name__ == "__main__":
    ingestion.main([])
    dagster_overhead.main([])
    encoders.main([])
    regime.main([])
    regime_real.main([])
    fragility.main([])
    portfolio.main([])
    assessment.main([])
    execution.main([])
    backtest.main([])
    soak.main([])
