"""Why the DuckDB warehouse file could not be opened or written, said so that the reader knows
what to do: which process holds the file (DuckDB names it by PID; the warehouse's own lock file
is looked up in ``/proc/locks``), or which permission, read-only filesystem or full disk got in
the way."""

from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

QUERY_HINT = (
    "To query the warehouse while the pipeline runs, use `python -m prometheus_dagster.cli sql "
    "\"...\"` or `prometheus_dagster.sql(\"...\")` in a notebook: they take turns with the "
    "pipeline instead of blocking it."
)
"""What a researcher should use instead of holding the DuckDB file open (see README)."""

_DUCKDB_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")
_CAUSES = (  # (errno, text in a DuckDB message) of OS-level failures
    (errno.EACCES, "permission denied"),
    (errno.EPERM, "operation not permitted"),
    (errno.EROFS, "read-only file system"),
    (errno.ENOSPC, "no space left on device"),
    (errno.EDQUOT, "disk quota exceeded"),
)


@dataclass(frozen=True)
class Holder:
    """A process holding a file."""

    pid: int
    program: str

    def __str__(self) -> str:
        own = " (this very process)" if self.pid == os.getpid() else ""
        return f"PID {self.pid}{own}: {self.program}"


def _program(pid: int, fallback: str) -> str:
    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return fallback
    text = " ".join(cmdline) or fallback
    return text if len(text) <= 160 else text[:157] + "..."


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether a DuckDB open failed because another process holds the file."""
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


def duckdb_lock_holder(message: str) -> Holder | None:
    """The process DuckDB names in a "Conflicting lock is held in ... (PID n)" message."""
    match = _DUCKDB_HOLDER.search(message)
    if match is None:
        return None
    pid = int(match["pid"])
    return Holder(pid, _program(pid, match["exe"]))


def lock_file_holders(lock_path: Path) -> list[Holder]:
    """Processes holding a ``flock``/``fcntl`` lock on ``lock_path`` (Linux ``/proc/locks``;
    empty where that is not available)."""
    try:
        inode = lock_path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids: list[int] = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters carry "->")
        if len(fields) < 6 or "->" in fields[1]:
            continue
        pid_field, device_inode = fields[4], fields[5]
        if device_inode.rsplit(":", 1)[-1] == str(inode) and pid_field.isdigit():
            pids.append(int(pid_field))
    return [Holder(pid, _program(pid, "?")) for pid in dict.fromkeys(pids)]


def held_open_message(path: Path, exc: BaseException, waited_s: float) -> str:
    """The error for a warehouse file another program keeps open."""
    holder = duckdb_lock_holder(str(exc))
    who = f"another program ({holder})" if holder else "another program"
    if holder and holder.pid == os.getpid():
        act = ("Close the other DuckDB connection this process opened on the file "
               "(`con.close()`) and retry.")
    elif holder:
        act = (f"Close that program's connection to the file (or stop it: `kill {holder.pid}`) "
               "and retry.")
    else:
        act = "Close the program that has the file open and retry."
    return (f"cannot open the DuckDB warehouse {path}: {who} holds it open (waited "
            f"{waited_s:.0f}s for it to close). {act} {QUERY_HINT} [{exc}]")


def os_cause(exc: BaseException) -> int | None:
    """The errno of an OS-level cause (permission, read-only filesystem, full disk) behind
    ``exc`` or its chain, also when DuckDB reports it only as text."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in {code for code, _ in _CAUSES}:
            return current.errno
        text = str(current).lower()
        for code, words in _CAUSES:
            if words in text:
                return code
        current = current.__cause__ or current.__context__
    return None


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown"
    return f"{free / 2**20:.1f} MiB"


def _describe_file(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path} (missing)"
    try:
        import pwd

        owner = pwd.getpwuid(st.st_uid).pw_name
    except (ImportError, KeyError):
        owner = str(st.st_uid)
    return f"{path} (mode {oct(st.st_mode & 0o777)[2:]}, owner {owner})"


def cause_hint(path: Path, exc: BaseException) -> str | None:
    """What to do about the OS-level cause behind ``exc`` on the warehouse file ``path``, or None
    when the cause is not one of those."""
    code = os_cause(exc)
    folder = path.parent
    elsewhere = ("or point PROMETHEUS_HOME (or PROMETHEUS_WAREHOUSE_URL) at a writable place")
    if code in (errno.EACCES, errno.EPERM):
        try:
            import getpass

            user = getpass.getuser()
        except (ImportError, KeyError, OSError):
            user = str(os.getuid())
        return (f"User {user} may not write the warehouse's files "
                f"({_describe_file(path)}; folder {_describe_file(folder)}). Give that user "
                f"write access to the file, its .lock and .wal files and the folder, {elsewhere}.")
    if code == errno.EROFS:
        return (f"The warehouse folder {folder} is on a read-only filesystem. Remount it "
                f"read-write, {elsewhere}.")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (f"The disk holding {folder} is full ({_free_space(folder)} free). Free space "
                f"there or move PROMETHEUS_HOME to a larger disk, then re-run.")
    return None
