"""A prices-only market (daily OHLCV of eight stocks and an index; no issuers, fundamentals,
news or macro series) runs its whole daily chain: every step succeeds, prices, features,
profiles (each stock its own issuer, profiled from prices) and universes are written, and
the engines that lack an input say so in a recorded warning instead of failing. Runs in a fresh
process (configs and the source are read once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source_prices_only"
REPO = Path(__file__).parents[2]

SCRIPT = """
import json
from dagster import DagsterInstance
from prometheus_dagster.definitions import build_definitions
from prometheus_dagster.resources.warehouse import Warehouse

defs = build_definitions()
instance = DagsterInstance.ephemeral()
reference = defs.resolve_job_def("reference_data").execute_in_process(instance=instance)
assert reference.success
result = defs.resolve_job_def("US_EQ_daily").execute_in_process(
    instance=instance, raise_on_error=False, tags={
        "dagster/asset_partition_range_start": "2024-02-01",
        "dagster/asset_partition_range_end": "2024-02-29"})
wh = Warehouse.default()
print(json.dumps({
    "success": result.success,
    "failed": [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"],
    "rows": {t: len(wh.read_partitions(t, market_id="US_EQ"))
             for t in ("prices_daily", "returns_daily", "profiles", "universes",
                       "text_embeddings", "stability_vectors")},
    "issuers": wh.read("issuers", where={"market_id": "US_EQ"})["issuer_id"].tolist(),
    "profile_notes": sorted(set(wh.read_partitions("profiles", market_id="US_EQ")["notes"])),
    "warnings": [r.user_message for run in (reference, result)
                 for r in instance.all_logs(run.run_id) if r.level >= 30 and r.step_key],
}))
"""


def test_a_prices_only_market_runs_its_daily_chain(tmp_path):
    env = {**os.environ, "PROMETHEUS_HOME": str(tmp_path / "home"),
           "DAGSTER_HOME": str(tmp_path / "home" / "dagster_home"),
           "PROMETHEUS_SOURCE": "files", "PROMETHEUS_FILES_ROOT": str(FIXTURE),
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("PROMETHEUS_WAREHOUSE_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=1200, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["success"], report["failed"]
    rows = report["rows"]
    assert rows["prices_daily"] == 9 * 20  # 9 instruments, 20 sessions in February 2024
    assert rows["returns_daily"] > 0 and rows["universes"] > 0
    # every stock is its own issuer, profiled from prices alone; the index is no issuer
    assert sorted(report["issuers"]) == [f"EQUITY:PO{i}" for i in range(1, 9)]
    assert rows["profiles"] == 8 * 20 and rows["text_embeddings"] == 0
    assert report["profile_notes"] == [
        "no usable statement; no encoder trained before this date: no embedding"]
    warnings = "\n".join(report["warnings"])
    for said in ("the source lists no issuer: 8 EQUITY instrument(s) are their own issuers",
                 "no encoder trained before 2024-02-01",
                 "no assessment model trained before 2024-02-01"):
        assert said in warnings, warnings[-3000:]
