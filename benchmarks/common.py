"""Shared by the benchmarks: the embedded-market config they generate, where results go."""

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_market_config(tmp: Path, names: int, start_date: str, end_date: str) -> Path:
    """A synthetic-market config with ``names`` US_EQ names (EU_EQ kept small) over the dates."""
    body = {
        "engine": "synthetic_market", "version": "bench", "seed": 42,
        "start_date": start_date, "end_date": end_date,
        "markets": {"US_EQ": {"n_instruments": names}, "EU_EQ": {"n_instruments": 10}},
    }
    path = tmp / "synthetic_market.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def write_results(out: str | Path, result: Any, table: str) -> None:
    """``result`` as JSON at ``out`` and ``table`` (markdown) beside it as ``.md``."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    path.with_suffix(".md").write_text(table + "\n")
