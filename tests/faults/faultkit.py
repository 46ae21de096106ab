"""Helpers of the fault-and-load suite: fleets fast to build, the real programs, and plain
SQLite views of what they recorded.

Every wait here is bounded; the database is read with plain ``sqlite3``, never through
statehub, so a test sees exactly what was committed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from daemon_support import runs, store_rows
from gitfleet import good_files, make_repo

HERE = Path(__file__).resolve().parent
LAUNCH = HERE / "launch.py"
IN_PROGRESS = "sweep_in_progress"  # statehub.sweep's hub_state key of a running sweep
FIRE_MARKER = "scheduler_fire:"  # statehub.fire's hub_state prefix of a running fire


def popen_launch(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """``launch.py ARGS`` (a real program with a fault switched in), output to ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, str(LAUNCH), *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def kill9(process: subprocess.Popen[Any]) -> None:
    """SIGKILL, then reap (bounded)."""
    process.kill()
    process.wait(timeout=10)


# -- fleets -------------------------------------------------------------------------------


def copy_fleet(fleet: Path, count: int, *, prefix: str = "r") -> list[Path]:
    """``count`` good repos (no remote) copied from one real template: fast to build.

    Each copy is a real work tree; the template's sample hooks are left out.
    """
    template = make_repo(
        fleet.parent / ".template", "template", good_files("template"), with_origin=False
    )
    copies = []
    for n in range(count):
        target = fleet / f"{prefix}{n:03d}"
        shutil.copytree(template, target, symlinks=True, ignore=shutil.ignore_patterns("*.sample"))
        copies.append(target)
    return copies


def touch_indexes(repos: list[Path]) -> None:
    """Change each repo's fingerprint (the index's mtime) so the next sweep re-reads it."""
    for repo in repos:
        index = repo / ".git" / "index"
        info = index.stat()
        os.utime(index, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (links not followed): ``(mode, size, mtime_ns)``."""
    found: dict[str, tuple[int, int, int]] = {}
    for folder, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            found[os.fsdecode(path)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


# -- the database, read with plain sqlite3 -------------------------------------------------


def _read(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection:
        return connection.execute(sql).fetchall()


def activity_runs(database: Path) -> list[dict[str, Any]]:
    """Every activity run in the order recorded, context parsed."""
    return runs(database, order="rowid")


def hub_state(database: Path) -> dict[str, str]:
    """Every ``hub_state`` key and value; none before the store has the table."""
    rows = store_rows(database, "hub_state", "SELECT key, value FROM hub_state")
    return {str(key): str(value) for key, value in rows}


def integrity(database: Path) -> str:
    """``PRAGMA integrity_check`` of the file: ``ok`` when sound."""
    return str(_read(database, "PRAGMA integrity_check")[0][0])


def child_commands(pid: int) -> list[str]:
    """The command names (``comm``) of the live children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        comm, _, rest = stat.partition("(")[2].rpartition(")")
        if rest.split()[1] == str(pid):
            found.append(comm)
    return sorted(found)


def rss_kib(pid: int) -> int:
    """``VmRSS`` of a live process, in KiB."""
    with Path(f"/proc/{pid}/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise KeyError("VmRSS")


def worker_pids(parent: int) -> list[int]:
    """The live sweep workers (``python -m statehub.worker``) started by ``parent``."""
    return child_pids(parent, b"statehub.worker")


def child_pids(parent: int, word: bytes) -> list[int]:
    """The live children of ``parent`` with ``word`` in their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if word in command and ppid == str(parent) and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
