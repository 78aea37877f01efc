"""check-data: a folder is checked against the file-source layout, the quality gate and the
history start without writing anything; every problem names its file, line and rule, and the
coverage of each table is listed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from prometheus_dagster.engines.ingestion.check_data import check_folder

FIXTURES = Path(__file__).parents[1] / "fixtures"
GOOD = FIXTURES / "file_source"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture()
def broken(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(GOOD, root)
    path = root / "prices_daily" / "2024-02.csv"
    lines = path.read_text().splitlines()
    # line 3: high below close; line 5: a close that is not a number; line 7: a Saturday;
    # line 9: an instrument instruments does not list
    cells = lines[2].split(",")
    cells[3] = str(float(cells[5]) - 1.0)  # high
    lines[2] = ",".join(cells)
    cells = lines[4].split(",")
    cells[5] = "n/a?"
    lines[4] = ",".join(cells)
    cells = lines[6].split(",")
    cells[1] = "2024-02-03"
    lines[6] = ",".join(cells)
    cells = lines[8].split(",")
    cells[0] = "EQUITY:NOPE"
    lines[8] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return root


def test_a_good_folder_passes_with_its_coverage():
    check = check_folder(GOOD)
    assert check.errors == []
    cov = {(c.table, c.market): c for c in check.coverage}
    prices = cov[("prices_daily", "US_EQ")]
    assert (prices.first, prices.last) == (pd.Timestamp("2024-01-02"), pd.Timestamp("2024-03-28"))
    assert (prices.rows, prices.keys, prices.key_name) == (366, 6, "instruments")
    assert cov[("macro_time_series", "GLOBAL")].keys == 3
    assert cov[("fundamentals", "US_EQ")].key_name == "issuers"
    assert "prices_daily       US_EQ    2024-01-02  2024-03-28       366  6 instruments" \
        in check.report()


def test_every_bad_row_is_listed_with_file_line_and_rule(broken):
    before = snapshot(broken)
    report = check_folder(broken).report()
    f = broken / "prices_daily" / "2024-02.csv"
    assert f"ERROR {f}:3: high >= max(open, close): high=" in report
    assert f"ERROR {f}:5: type: column 'close' value 'n/a?'" in report
    assert f"ERROR {f}:7: date is a session: date 2024-02-03 is not a US_EQ trading session" \
        in report
    assert f"ERROR {f}:9: reference: instrument_id 'EQUITY:NOPE' is not in instruments" in report
    assert f"ERROR {f}:3: high >= low: " in report
    assert "5 problem(s)" in report.splitlines()[0]
    assert snapshot(broken) == before


def test_an_unreadable_file_and_an_unknown_market_are_problems(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(GOOD, root)
    (root / "fundamentals.csv").write_bytes(b"issuer_id,period_end\n\"open,2024-01-01\n\x00")
    inst = root / "instruments.csv"
    inst.write_text(inst.read_text().replace("INDEX:USX500,,US_EQ", "INDEX:USX500,,MOON_EQ"))
    check = check_folder(root)
    rules = {p.rule for p in check.errors}
    assert {"file readable", "market configured"} <= rules
    moon = next(p for p in check.errors if p.rule == "market configured")
    assert moon.location == f"{inst}:7" and "'MOON_EQ'" in moon.detail
    assert any(str(root / "fundamentals.csv") in p.detail for p in check.errors)


def test_cli_exit_codes_and_nothing_written(broken, tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PROMETHEUS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    repo = Path(__file__).parents[2]
    env["PYTHONPATH"] = f"{repo}{os.pathsep}{env.get('PYTHONPATH', '')}"

    def run(folder: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "prometheus_dagster.cli", "check-data",
                               str(folder), "--market", "US_EQ"], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)

    bad = run(broken)
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert f"{broken / 'prices_daily' / '2024-02.csv'}:3: high >= max(open, close)" in bad.stdout
    good = run(GOOD)
    assert good.returncode == 0, good.stdout + good.stderr[-2000:]
    assert "0 problem(s)" in good.stdout
    assert not home.exists() and list(cwd.iterdir()) == []
