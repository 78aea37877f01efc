"""Every shipped config loads in a fresh interpreter with nothing else imported: the registry of
engine config models is filled from ``CONFIG_MODEL_MODULES`` on first use, never by whichever
module happened to be imported before."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

from prometheus_dagster.core.config import CONFIG_MODEL_MODULES
from prometheus_dagster.core.paths import CONFIG_DIR, REPO_ROOT

PACKAGE = REPO_ROOT / "prometheus_dagster"


def run_fresh(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=120)


def test_every_shipped_config_loads_in_a_fresh_interpreter():
    files = sorted(str(p) for p in CONFIG_DIR.rglob("*.yaml"))
    assert any(f.endswith("markets.yaml") for f in files)
    code = (
        "import json, sys\n"
        "from prometheus_dagster.core.config import load_config\n"
        f"print(json.dumps({{f: load_config(f).config_id for f in {files!r}}}))\n"
    )
    proc = run_fresh(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(ids) == set(files)
    assert ids[str(CONFIG_DIR / "markets.yaml")].startswith("markets@")


def test_each_engine_config_loads_alone_in_a_fresh_interpreter():
    engines = sorted(p.stem for p in (CONFIG_DIR / "engines").glob("*.yaml"))
    assert "ingestion" in engines
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = {
        engine: subprocess.Popen(
            [sys.executable, "-c", "from prometheus_dagster.core.config import "
             f"load_engine_config\nprint(load_engine_config({engine!r}).config_id)"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
        for engine in engines
    }
    for engine, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{engine}: {err[-2000:]}"
        assert out.strip().startswith(f"{engine}@")


def registrations() -> dict[str, str]:
    """engine -> module, for every ``@register_config_model("...")`` in the package source."""
    found: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None)
                    == "register_config_model" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
                found[node.args[0].value] = module
    return found


def test_the_model_map_names_every_registered_engine_and_its_module():
    assert registrations() == CONFIG_MODEL_MODULES
