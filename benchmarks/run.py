"""Run every benchmark: ``make bench``."""

from benchmarks import encoders, ingestion, regime

if __name__ == "__main__":
    ingestion.main([])
    encoders.main([])
    regime.main([])
