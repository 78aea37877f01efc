"""Run every benchmark: ``make bench``."""

from benchmarks import encoders, ingestion

if __name__ == "__main__":
    ingestion.main([])
    encoders.main([])
