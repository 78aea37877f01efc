"""The research command resumes: a run killed (SIGKILL) mid-way and run again finishes, skips the
units it had finished, and leaves the warehouse equal to an uninterrupted run's. On the tiny
embedded market of the lineage test, data stages only, over a few sessions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from prometheus_dagster.core.paths import REPO_ROOT

ARGS = ["research", "--data-only", "--markets", "US_EQ", "--start", "2023-01-26",
        "--end", "2023-01-31"]
# an append-only log of every ingestion run (a killed run and its rerun add rows to it) and the
# configs' registration time: bookkeeping, not results
LOGS = {"ingestion_runs"}
STAMPS = {"created_at"}


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory) -> Path:
    from tests.integration.test_lineage import tiny_config_dir

    return tiny_config_dir(tmp_path_factory.mktemp("research_configs"))


def _env(home: Path, config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROMETHEUS_WAREHOUSE_URL", "MLFLOW_TRACKING_URI")}
    return {**env, "PROMETHEUS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
            "PROMETHEUS_CONFIG_DIR": str(config_dir), "PROMETHEUS_INSTANCE": "sqlite",
            "PROMETHEUS_DEMO_WORKERS": "1", "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1"}


def _command() -> list[str]:
    return [sys.executable, "-m", "prometheus_dagster.cli", *ARGS]


def _start(home: Path, config_dir: Path) -> tuple[subprocess.Popen, Path]:
    """The command running in the background, its output to a file (a pipe nobody reads
    while it runs could fill up and stall it)."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "research.log"
    with log.open("w") as out:
        proc = subprocess.Popen(_command(), env=_env(home, config_dir), cwd=REPO_ROOT,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    return proc, log


def _finish(started: tuple[subprocess.Popen, Path]) -> str:
    proc, log = started
    proc.wait(timeout=900)
    out = log.read_text()
    assert proc.returncode == 0, out[-5000:]
    return out


def _kill_after_first_data_unit(home: Path, config_dir: Path) -> str:
    proc = subprocess.Popen(_command(), env=_env(home, config_dir), cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.strip().startswith("ok     history"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    return "".join(lines)


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        out = {}
        for schema, table in con.execute(
                "select table_schema, table_name from information_schema.tables").fetchall():
            if table in LOGS:
                continue
            frame = con.execute(f'select * from "{schema}"."{table}"').df()
            frame = frame.drop(columns=[c for c in frame.columns if c in STAMPS])
            out[f"{schema}.{table}"] = frame.sort_values(list(frame.columns)) \
                .reset_index(drop=True)
        return out
    finally:
        con.close()


def test_a_killed_run_resumes_to_the_same_warehouse(tmp_path, config_dir):
    # the uninterrupted run goes meanwhile, in its own home (the machine has two cores)
    straight_run = _start(tmp_path / "straight", config_dir)
    killed = _kill_after_first_data_unit(tmp_path / "resumed", config_dir)
    assert "ok     reference_data" in killed and "ok     history US_EQ" in killed
    assert "research done" not in killed
    rerun = _finish(_start(tmp_path / "resumed", config_dir))
    assert "stage 1/2 reference data: 0 unit(s) to run, 1 already done (skipped)" in rerun
    assert ": 2 unit(s) to run, 1 already done (skipped)" in rerun
    assert "==> history US_EQ" not in rerun and "==> history FX_GLOB" in rerun
    assert "every unit succeeded" in rerun

    _finish(straight_run)
    resumed, straight = _tables(tmp_path / "resumed"), _tables(tmp_path / "straight")
    assert set(resumed) == set(straight) and "main.prices_daily" in resumed
    assert len(straight["main.prices_daily"]) and len(straight["main.returns_daily"])
    for name, frame in straight.items():
        pd.testing.assert_frame_equal(resumed[name], frame, check_dtype=False, obj=name)
