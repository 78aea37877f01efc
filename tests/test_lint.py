"""The code base stays ruff-clean (rules in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]


def test_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run([str(ruff), "check", "prometheus_dagster", "tests", "benchmarks"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_types_check():
    """mypy over the package (settings in pyproject.toml): typed configs at the call site, no
    stale ``type: ignore``."""
    mypy = Path(sys.executable).parent / "mypy"
    # no incremental cache: a stale one can crash mypy ("Cannot find module for ...").
    # The limit only guards against a hang: a full check took 14 min on a 2-core machine
    # beside other heavy jobs.
    proc = subprocess.run([str(mypy), "--cache-dir", "/dev/null", "prometheus_dagster"],
                          cwd=REPO, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
