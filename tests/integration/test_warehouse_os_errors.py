"""Warehouse errors name their real cause: a permission, a read-only filesystem or a full disk is
said as such (never "another program may hold it open"), and a write that fails on a full disk is
rolled back whole without leaving an empty ``.wal`` file behind.

The causes are real: a tmpfs mounted for the test (full, or remounted read-only), and a process
without the capability that lets root ignore file modes. Both need root (tests run as root in
CI); elsewhere permissions are tested with plain ``chmod`` and the mounts are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.errors import WarehouseError
from prometheus_dagster.core.paths import REPO_ROOT
from prometheus_dagster.resources.warehouse import Warehouse

WRONG_HINTS = ("another program", "hold it open", "holds it open")


def prices(day: str, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "market_id": "US_EQ",
        "instrument_id": [f"INSTRUMENT-{i:07d}-{rng.random():.12f}" for i in range(n)],
        "date": pd.Timestamp(day), "close": rng.random(n), "volume": 1.0, "currency": "USD",
    })


def assert_right_hint(message: str, *expected: str) -> None:
    for words in expected:
        assert words.lower() in message.lower(), message
    for wrong in WRONG_HINTS:
        assert wrong not in message.lower(), message


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount(size)`` mounts a fresh tmpfs of that size and returns its folder."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs (a real full or read-only disk) needs root")
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the container "
                        "needs CAP_SYS_ADMIN")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def remount_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


@pytest.mark.parametrize(("size", "rows"), [("1200k", 20_000), ("3m", 200_000)],
                         ids=["full at commit into the .wal", "full while inserting into the file"])
def test_full_disk_is_named_and_leaves_nothing_behind(tmpfs, size: str, rows: int) -> None:
    folder = tmpfs(size)
    wh = Warehouse.from_url(f"duckdb://{folder / 'warehouse.duckdb'}")
    wh.write_partitions("prices_daily", prices("2024-01-02", 100), market_id="US_EQ")
    before = wh.read("prices_daily")
    with pytest.raises(WarehouseError) as caught:
        wh.write_partitions("prices_daily", prices("2024-01-03", rows, seed=1), market_id="US_EQ")
    message = str(caught.value)
    assert_right_hint(message, "rolled back", "no space left on device", "is full",
                      "free space there")
    assert "transaction is aborted" not in message.lower(), message  # the cause, not its echo
    assert sorted(p.name for p in folder.iterdir()) == ["warehouse.duckdb", "warehouse.duckdb.lock"]
    pd.testing.assert_frame_equal(wh.read("prices_daily"), before)


def test_read_only_filesystem_is_named(tmpfs) -> None:
    folder = tmpfs("4m")
    wh = Warehouse.from_url(f"duckdb://{folder / 'warehouse.duckdb'}")
    wh.write_partitions("prices_daily", prices("2024-01-02", 10), market_id="US_EQ")
    remount_read_only(folder)
    for action in (lambda: wh.write_partitions("prices_daily", prices("2024-01-03", 10),
                                               market_id="US_EQ"),
                   lambda: wh.read("prices_daily")):
        with pytest.raises(WarehouseError) as caught:
            action()
        assert_right_hint(str(caught.value), "read-only file", f"{folder} is on a read-only")


_CHILD = textwrap.dedent("""
    import json, sys
    import pandas as pd
    from prometheus_dagster.resources.warehouse import Warehouse
    wh = Warehouse.from_url("duckdb://" + sys.argv[1], lock_timeout=5)
    frame = pd.DataFrame({"market_id": "US_EQ", "instrument_id": ["A"], "close": [1.0],
                          "date": pd.Timestamp("2024-01-03"), "volume": 1.0, "currency": "USD"})
    out = {}
    for name, action in (("write", lambda: wh.write_partitions("prices_daily", frame,
                                                                market_id="US_EQ")),
                         ("read", lambda: wh.read("prices_daily"))):
        try:
            action()
            out[name] = "ok"
        except Exception as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
""")


def run_without_root_file_access(path: Path) -> dict[str, str]:
    """Write and read ``path`` in a process bound by file modes (root drops the capabilities
    that let it ignore them)."""
    argv = [sys.executable, "-c", _CHILD, str(path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("as root, a permission error needs setpriv (util-linux) to drop "
                        "CAP_DAC_OVERRIDE")
        drop = "-dac_override,-dac_read_search"
        argv = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("denied", ["warehouse file", "folder"])
def test_permission_error_is_named(tmp_path: Path, denied: str) -> None:
    folder = tmp_path / "home"
    path = folder / "warehouse.duckdb"
    Warehouse.from_url(f"duckdb://{path}").write_partitions(
        "prices_daily", prices("2024-01-02", 10), market_id="US_EQ")
    if denied == "warehouse file":
        path.chmod(0o444)
    else:  # a folder the user may not write, with no lock file in it yet
        (folder / "warehouse.duckdb.lock").unlink()
        folder.chmod(0o555)
    try:
        got = run_without_root_file_access(path)
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    for action in ("write", "read"):
        assert got[action].startswith("WarehouseError"), got
        assert_right_hint(got[action], "permission denied", "may not write", "write access")
    assert len(Warehouse.from_url(f"duckdb://{path}").read("prices_daily")) == 10
