"""Run every benchmark: ``make bench``."""

from benchmarks import ingestion

if __name__ == "__main__":
    ingestion.main([])
