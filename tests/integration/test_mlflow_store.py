"""The local MLflow store on a new home: several processes touching it at once create it once
and all succeed; a store left half-migrated is recreated when it holds nothing, and refused with
a clear error when it holds runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from prometheus_dagster.core.paths import REPO_ROOT
from prometheus_dagster.resources.mlflow_store import head_revision, store_state
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking

PROCESSES = 4
ROUNDS = 2

# One step process of a first run on a new home: track a materialization and register a model.
STEP = """
import sys
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
home, n = sys.argv[1], sys.argv[2]
tracking = MlflowTracking(tracking_uri=f"sqlite:///{home}/mlflow.db", artifact_root=f"{home}/art")
with tracking.start_run("first_run", f"step {n}", {"step": n}) as run:
    run.log_metrics({"rows": float(n)})
tracking.register_model_version(f"model_{n}", "file:///nowhere", run.run_id, "2024-07-01")
print("ok", n)
"""


def run_steps_at_once(home: Path) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PROMETHEUS_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", STEP, str(home), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for n in range(PROCESSES)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def tracking_at(home: Path) -> MlflowTracking:
    return MlflowTracking(tracking_uri=f"sqlite:///{home}/mlflow.db",
                          artifact_root=str(home / "art"))


def test_parallel_first_steps_on_a_new_home_create_one_usable_store(tmp_path):
    for round_ in range(ROUNDS):
        home = tmp_path / f"home{round_}"
        home.mkdir()
        results = run_steps_at_once(home)
        failed = [r.stderr[-1500:] for r in results if r.returncode != 0]
        assert not failed, failed
        state, revision, leftovers, user_rows = store_state(home / "mlflow.db")
        assert (state, revision, leftovers) == ("current", head_revision(), [])
        assert user_rows == 2 * PROCESSES  # one run and one registered model per step
        client = tracking_at(home).client()
        exp = client.get_experiment_by_name("prometheus/first_run")
        runs = client.search_runs([exp.experiment_id])
        assert sorted(r.data.tags["step"] for r in runs) == [str(n) for n in range(PROCESSES)]
        assert all(r.info.status == "FINISHED" for r in runs)
        assert not list(home.glob("mlflow.db.incomplete-*"))


def break_store(path: Path) -> None:
    """What an interrupted migration leaves: the version behind, a batch table left over."""
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")
    con.execute("CREATE TABLE _alembic_tmp_experiments (experiment_id INTEGER)")
    con.commit()
    con.close()


def test_a_half_migrated_store_without_runs_is_moved_aside_and_recreated(tmp_path):
    from prometheus_dagster.resources.mlflow_store import _create

    db = tmp_path / "mlflow.db"
    _create(db)
    break_store(db)
    assert store_state(db)[0] == "incomplete"
    tracking = tracking_at(tmp_path)
    with tracking.start_run("after_repair", "r") as run:
        run.log_metrics({"x": 1.0})
    assert store_state(db)[:3] == ("current", head_revision(), [])
    aside = list(tmp_path.glob("mlflow.db.incomplete-*"))
    assert len(aside) == 1 and store_state(aside[0])[0] == "incomplete"


def test_a_half_migrated_store_with_runs_is_left_alone_with_a_clear_error(tmp_path):
    home = tmp_path / "home"
    with tracking_at(home).start_run("kept", "r") as run:
        run.log_metrics({"x": 1.0})
    db = home / "mlflow.db"
    break_store(db)
    before = db.read_bytes()
    script = ("from prometheus_dagster.resources.mlflow_tracking import MlflowTracking\n"
              f"MlflowTracking(tracking_uri='sqlite:///{db}').client()\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert proc.returncode != 0
    assert "TrackingStoreError" in proc.stderr and "holds 1 runs/models" in proc.stderr
    assert f"mlflow db upgrade sqlite:///{db}" in proc.stderr
    assert db.read_bytes() == before
    assert not list(home.glob("mlflow.db.incomplete-*"))


def test_a_tracking_failure_says_nothing_was_committed(tmp_path):
    home = tmp_path / "home"
    with tracking_at(home).start_run("kept", "r"):
        pass
    break_store(home / "mlflow.db")
    script = ("from prometheus_dagster.resources.mlflow_tracking import MlflowTracking\n"
              f"with MlflowTracking(tracking_uri='sqlite:///{home}/mlflow.db')"
              ".start_run('g', 'US_EQ/prices_daily 2024-07-01'):\n    pass\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert proc.returncode != 0
    assert "MLflow tracking of US_EQ/prices_daily 2024-07-01 failed" in proc.stderr
    assert "Nothing of this materialization was committed to the warehouse" in proc.stderr
