"""Layering: engines and core take data (or a duck-typed reader), never Dagster, the resources
or the assets. Imports are read from the source with ``ast`` (module level and inside
functions), so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

PACKAGE = Path(__file__).parents[2] / "prometheus_dagster"
PURE_LAYERS = ("engines", "core")
FORBIDDEN = ("prometheus_dagster.resources", "prometheus_dagster.assets", "dagster")

DAGSTER_ALLOWED = {
    # builds Dagster PartitionsDefinitions and partition mappings from the trading calendars
    "core/partitions.py",
    # the Dagster instance's PostgreSQL storages (subclasses of dagster_postgres storages)
    "core/instance.py",
}
"""Modules of ``core`` that exist to configure Dagster itself: they may import ``dagster``
(and ``dagster_*``), never the resources or the assets."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, relative imports resolved;
    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def forbidden_imports(source: str, module: str, *, is_package: bool = False,
                      allow_dagster: bool = False) -> list[str]:
    """The imports of ``module`` that reach into the resources, the assets or Dagster
    (``dagster`` and the ``dagster_*`` integration packages)."""
    bad = []
    for name in sorted(imported_modules(source, module, is_package=is_package)):
        top = name.split(".")[0]
        is_dagster = top == "dagster" or top.startswith("dagster_")
        if is_dagster and allow_dagster:
            continue
        if is_dagster or any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            bad.append(name)
    return bad


def _layer_modules() -> list[Path]:
    return sorted(p for layer in PURE_LAYERS for p in (PACKAGE / layer).rglob("*.py"))


def test_engines_and_core_import_no_dagster_resources_or_assets() -> None:
    modules = _layer_modules()
    assert len(modules) > 50  # the walk found the packages
    offenders = {}
    for path in modules:
        rel = path.relative_to(PACKAGE).as_posix()
        bad = forbidden_imports(path.read_text(encoding="utf-8"), _module_name(path),
                                is_package=path.name == "__init__.py",
                                allow_dagster=rel in DAGSTER_ALLOWED)
        if bad:
            offenders[rel] = bad
    assert not offenders, f"engines/ and core/ must not import these: {offenders}"


def test_the_dagster_exemptions_are_still_needed() -> None:
    """An exempt module that no longer imports Dagster leaves the list (it must not grow
    silently into a blanket exemption)."""
    for rel in sorted(DAGSTER_ALLOWED):
        path = PACKAGE / rel
        names = imported_modules(path.read_text(encoding="utf-8"), _module_name(path))
        assert any(n.split(".")[0].startswith("dagster") for n in names), rel


def test_the_time_machine_and_the_brief_load_without_dagster_or_resources() -> None:
    """Transitively too: a fresh interpreter importing them loads none of those modules."""
    code = ("import sys\n"
            "import prometheus_dagster.engines.backtest, prometheus_dagster.engines.brief\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')\n"
            "             or m.startswith(('prometheus_dagster.resources',\n"
            "                              'prometheus_dagster.assets'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("source, module, expected", [
    ("from prometheus_dagster.resources.warehouse import between", "prometheus_dagster.engines.x",
     ["prometheus_dagster.resources.warehouse", "prometheus_dagster.resources.warehouse.between"]),
    ("def f():\n    import dagster as dg\n", "prometheus_dagster.core.x", ["dagster"]),
    ("from dagster_postgres.run_storage import PostgresRunStorage", "prometheus_dagster.core.x",
     ["dagster_postgres.run_storage", "dagster_postgres.run_storage.PostgresRunStorage"]),
    ("from prometheus_dagster import assets", "prometheus_dagster.engines.x",
     ["prometheus_dagster.assets"]),
    ("from ...resources import io_manager", "prometheus_dagster.engines.brief.collect",
     ["prometheus_dagster.resources", "prometheus_dagster.resources.io_manager"]),
    ("import importlib\nimportlib.import_module('prometheus_dagster.assets.brief')",
     "prometheus_dagster.engines.x", ["prometheus_dagster.assets.brief"]),
    ("from prometheus_dagster.core.query import between\nimport dagsterish\n"
     "from prometheus_dagster.resources_extra import x", "prometheus_dagster.engines.x", []),
])
def test_the_import_check_sees_through_import_forms(source, module, expected) -> None:
    assert forbidden_imports(source, module) == expected


def test_a_dagster_exemption_still_refuses_the_resources() -> None:
    source = "from dagster import AssetKey\nfrom prometheus_dagster.resources import sources\n"
    assert forbidden_imports(source, "prometheus_dagster.core.instance", allow_dagster=True) == [
        "prometheus_dagster.resources", "prometheus_dagster.resources.sources"]


def _table_name(table) -> str:
    return table if isinstance(table, str) else table.qualified_name


class _FrameReader:
    """A reader that is not the warehouse: frames in memory, equality and range filters."""

    def __init__(self, tables: dict[str, pd.DataFrame]) -> None:
        self.tables = tables

    def table_exists(self, table) -> bool:
        return _table_name(table) in self.tables

    def sql_name(self, table) -> str:
        return _table_name(table)

    def read(self, table, *, where=None, columns=None, order_by=None) -> pd.DataFrame:
        from prometheus_dagster.core.query import Between

        out = self.tables[_table_name(table)]
        for column, value in (where or {}).items():
            s = pd.to_datetime(out[column]) if isinstance(value, Between) else out[column]
            if isinstance(value, Between):
                keep = (s >= pd.Timestamp(value.lo)) & (s <= pd.Timestamp(value.hi))
            elif isinstance(value, list):
                keep = s.isin(value)
            else:
                keep = s == value
            out = out[keep]
        return out[list(columns)] if columns is not None else out

    def read_partitions(self, table, **kwargs) -> pd.DataFrame:
        raise AssertionError("not read in this test")

    def query(self, sql, params=None) -> pd.DataFrame:
        raise AssertionError("not read in this test")


def test_the_brief_and_the_time_machine_read_through_any_reader() -> None:
    from prometheus_dagster.core.query import WarehouseReader
    from prometheus_dagster.engines.backtest import TimeMachine
    from prometheus_dagster.engines.brief import collect_brief

    days = pd.to_datetime(["2024-03-01", "2024-03-04", "2024-03-05"])
    regimes = pd.DataFrame({"market_id": "US_EQ", "as_of_date": days,
                            "regime_label": ["CALM", "CALM", "STRESS"]})
    reader = _FrameReader({"regimes": regimes})
    assert isinstance(reader, WarehouseReader)

    tm = TimeMachine(reader).advance_to("2024-03-04")
    brief = collect_brief(tm, pd.Timestamp("2024-03-04"), [])
    # the 2024-03-05 row exists in the reader but is after the brief's (and the clock's) date
    assert brief.regimes is not None
    assert list(brief.regimes["as_of_date"]) == list(days[:2])
    assert tm.reads == {"regimes": 1}
