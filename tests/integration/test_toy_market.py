"""A market is one declaration: a toy market added with one entry in configs/markets.yaml gets
its whole chain (ingestion, features, stability, scenarios, fragility measures, regimes) and
its daily job; a market that lacks a config it needs stops the code location from loading,
naming the gap. Each case runs in a fresh process, as configs are read once per process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from prometheus_dagster.core.paths import CONFIG_DIR

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source"
TOY = "TOY_EQ"
ENTRY = {"name": "Toy equities", "region": "US", "timezone": "America/New_York",
         "calendar_code": "XNYS", "currency": "USD", "runs": "regimes"}

SCRIPT = f"""
from dagster import DagsterInstance
from prometheus_dagster.definitions import build_definitions
from prometheus_dagster.resources.warehouse import Warehouse

defs = build_definitions()
names = {{j.name for j in defs.jobs}}
assert "{TOY}_daily" in names, sorted(names)
instance = DagsterInstance.ephemeral()
ok = defs.resolve_job_def("reference_data").execute_in_process(instance=instance).success
assert ok
job = defs.resolve_job_def("{TOY}_daily")
result = job.execute_in_process(instance=instance, raise_on_error=False, tags={{
    "dagster/asset_partition_range_start": "2024-02-01",
    "dagster/asset_partition_range_end": "2024-02-29"}})
failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
assert result.success, failed
wh = Warehouse.default()
for table in ("prices_daily", "returns_daily", "stability_vectors", "scenario_sets",
              "fragility_measures"):
    print(table, len(wh.read_partitions(table, market_id="{TOY}")))
print("steps", sorted({{e.step_key for e in result.all_events
                        if e.event_type_value == "STEP_SUCCESS"}}))
"""


def _configs(tmp: Path, entry: dict) -> Path:
    dst = tmp / "configs"
    shutil.copytree(CONFIG_DIR, dst)
    markets = yaml.safe_load((dst / "markets.yaml").read_text())
    markets["markets"][TOY] = entry
    (dst / "markets.yaml").write_text(yaml.safe_dump(markets, sort_keys=False))
    return dst


def _toy_files(tmp: Path) -> Path:
    """The file-source fixture with its market renamed to the toy market."""
    dst = tmp / "files"
    shutil.copytree(FIXTURE, dst)
    for path in dst.rglob("*.csv"):
        path.write_text(path.read_text().replace("US_EQ", TOY))
    return dst


def _run(tmp: Path, configs: Path, source: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROMETHEUS_CONFIG_DIR": str(configs),
           "PROMETHEUS_HOME": str(tmp / "home"), **source}
    env.pop("PROMETHEUS_WAREHOUSE_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=900)


def test_one_entry_adds_a_market_with_its_chain(tmp_path):
    out = _run(tmp_path, _configs(tmp_path, ENTRY),
               {"PROMETHEUS_SOURCE": "files", "PROMETHEUS_FILES_ROOT": str(_toy_files(tmp_path))})
    assert out.returncode == 0, out.stderr[-3000:]
    counts = dict(line.split(" ", 1) for line in out.stdout.splitlines()
                  if not line.startswith("steps"))
    # three months of files: rows where no long look-back is needed (scenarios need a year
    # and more of returns, regimes a trained model: their steps run and write nothing yet)
    for table in ("prices_daily", "returns_daily", "stability_vectors"):
        assert int(counts[table]) > 0, (table, out.stdout)
    steps = out.stdout.split("steps", 1)[1]
    for step in (f"{TOY}__prices_daily", f"{TOY}_features", f"{TOY}__regimes",
                 f"{TOY}__stability_vectors", f"{TOY}__scenario_sets",
                 f"{TOY}__fragility_measures", f"{TOY}__soft_target_classes"):
        assert step in steps, step


def test_a_market_without_the_configs_it_needs_fails_loudly(tmp_path):
    # the embedded source generates no data for the toy market
    out = _run(tmp_path, _configs(tmp_path, ENTRY), {"PROMETHEUS_SOURCE": "embedded"})
    assert out.returncode != 0
    assert f"{TOY} runs 'regimes' on the embedded source" in out.stderr
    assert "synthetic_market.yaml" in out.stderr
