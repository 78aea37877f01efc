"""Lineage tells the truth: the demo's whole plan (history, refits, every market's daily chain,
GLOBAL, pre-open checks, a backtest, the brief) runs on a tiny embedded market through a
recording reader, and each asset step read exactly the warehouse tables it declares
(``core.inputs``): none it does not declare, none it declares and never reads."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from prometheus_dagster.core import config as core_config
from prometheus_dagster.core.inputs import BOOKKEEPING_TABLES
from prometheus_dagster.core.paths import CONFIG_DIR
from prometheus_dagster.core.reader import recording

# about 210 sessions of history before the 2023 refits (encoders need 120), then the demo's
# quick window at the end of January 2023
SYNTHETIC = {"engine": "synthetic_market", "version": "lineage", "seed": 7,
             "start_date": "2022-03-01", "end_date": "2023-01-31",
             "markets": {"US_EQ": {"n_instruments": 14}, "EU_EQ": {"n_instruments": 8}},
             "distress": {"annual_rate": 0.5}}


def tiny_config_dir(tmp: Path) -> Path:
    """The repository's configs with a tiny embedded market and models that fit on it."""
    from tests.integration.test_fragility_assets import small_config_dir

    dst = small_config_dir(tmp)
    base = yaml.safe_load((CONFIG_DIR / "engines" / "synthetic_market.yaml").read_text())
    body = {**base, **{k: v for k, v in SYNTHETIC.items() if k != "markets"}}
    body["markets"] = {m: {**base["markets"][m], **v} for m, v in SYNTHETIC["markets"].items()}
    (dst / "engines" / "synthetic_market.yaml").write_text(yaml.safe_dump(body))
    enc = yaml.safe_load((dst / "engines" / "encoders.yaml").read_text())
    enc["numeric"]["training"]["epochs"] = 2  # lineage needs trained models, not good ones
    enc["joint"]["training"]["epochs"] = 2
    (dst / "engines" / "encoders.yaml").write_text(yaml.safe_dump(enc))
    return dst


def _normal(market: str, table: str) -> tuple[str, str]:
    """A table without a market column (macro series) is the same table from any market."""
    from prometheus_dagster.core.schemas import get_schema

    return (market if get_schema(table).market_column else "", table)


@functools.cache
def _outputs() -> dict[str, frozenset[tuple[str, str]]]:
    """Step name -> the (market, table) pairs it writes."""
    from prometheus_dagster.core.errors import DataSchemaError
    from prometheus_dagster.definitions import build_definitions
    from prometheus_dagster.resources.io_manager import table_target

    out: dict[str, set[tuple[str, str]]] = {}
    for a in build_definitions().assets:
        if not hasattr(a, "op"):
            continue
        out.setdefault(a.op.name, set())
        for key in a.keys:
            try:
                table = table_target(key, a.specs_by_key[key].metadata)[0].name
            except DataSchemaError:  # writes a table of its own naming (the truth assets)
                continue
            out[a.op.name].add(_normal(key.path[0], table))
    return {k: frozenset(v) for k, v in out.items()}


def _step_names() -> tuple[str, ...]:
    return tuple(sorted(_outputs()))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from prometheus_dagster import demo
    from prometheus_dagster.definitions import build_definitions

    tmp: Path = tmp_path_factory.mktemp("lineage")
    patch = pytest.MonkeyPatch()
    patch.setattr(core_config, "CONFIG_DIR", tiny_config_dir(tmp))
    patch.setenv("PROMETHEUS_HOME", str(tmp / "home"))
    patch.delenv("PROMETHEUS_WAREHOUSE_URL", raising=False)
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        defs = build_definitions()
        history, start, end = demo._windows(quick=True)
        executed: set[str] = set()
        failures: list[str] = []
        with recording() as rec:
            for _, tasks in demo.demo_stages(defs, history, start, end):
                for task in tasks:
                    for t in (task, *task.then):
                        job = defs.resolve_job_def(t.job)
                        selection = None if t.selection is None else \
                            [AssetKey.from_user_string(s) for s in t.selection]
                        result = job.execute_in_process(
                            instance=DagsterInstance.ephemeral(), tags=t.tags,
                            partition_key=t.partition_key, asset_selection=selection,
                            run_config=t.run_config, raise_on_error=False)
                        for e in result.all_events:
                            if e.event_type_value == "STEP_SUCCESS":
                                executed.add(e.step_key)
                            elif e.event_type_value == "STEP_FAILURE":
                                failures.append(f"{t.label}: {e.step_key}")
        yield rec, executed, failures
    finally:
        patch.undo()


def test_the_plan_ran(recorded):
    _, executed, failures = recorded
    assert not failures, failures
    assert {"US_EQ_features", "US_EQ__regimes", "GLOBAL__regimes", "US_EQ__target_portfolios",
            "US_EQ__paper_execution"} <= executed


@pytest.mark.parametrize("step", _step_names())
def test_step_reads_exactly_what_it_declares(recorded, step):
    from prometheus_dagster.assets.lineage import DECLARED

    rec, executed, _ = recorded
    if step not in executed:
        pytest.skip(f"{step} is not part of the demo plan")
    assert step in DECLARED, f"{step} declares no inputs (assets.lineage.declare)"
    inputs, market, members = DECLARED[step]
    # a step reading its own table (the state it carries from the previous session, a cache)
    # is not lineage: its upstream is what the declaration is about
    own = _outputs()[step]
    declared = {_normal(m, t) for m, t in inputs.pairs(market, members)} - own
    read = set()
    for m, t in rec.tables(step):
        if t in BOOKKEEPING_TABLES:
            continue
        if m:
            read.add(_normal(m, t))
        else:  # not narrowed to a market: the rows of every market it declares for the table
            read |= {p for p in declared if p[1] == t} or {_normal(market, t)}
    read -= own
    undeclared = sorted(read - declared)
    unread = sorted(declared - read)
    assert not undeclared, f"{step} reads tables it does not declare: {undeclared}"
    assert not unread, f"{step} declares tables it never reads: {unread}"


def test_a_declared_step_cannot_read_around_its_declaration(tmp_path):
    import pandas as pd

    from prometheus_dagster.core.inputs import Inputs, InputWindow, Read, UndeclaredReadError
    from prometheus_dagster.resources.warehouse import Warehouse

    wh = Warehouse.from_url(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    window = InputWindow(wh, Inputs(Read("returns_daily", sessions=5)), "US_EQ",
                         [pd.Timestamp("2024-03-05")])
    assert window.start("returns_daily") == pd.Timestamp("2024-02-27")
    with pytest.raises(UndeclaredReadError, match="prices_daily is not a declared input"):
        window.frame("prices_daily")
