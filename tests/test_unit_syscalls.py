"""Every system call a sweep makes at run time is allowed by each unit's SystemCallFilter=.

A sweep (the CLI's, which the API, the daemon and the Temporal worker run too) is traced
with ``strace -f`` in a unit's emulated sandbox, workers and ``git fetch`` included. The
units' filters are expanded with ``systemd-analyze syscall-filter`` (systemd's own groups
for its version) and applied in order: the first allow-list, then each ``~`` deny-list
taken out of it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from test_infra import ALL_UNITS, SYSTEMD_ANALYZE
from test_unit_exec import exec_lines, fetching_view
from unitfile import unit_settings
from unitsandbox import can_emulate, run_in_unit

STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(
    STRACE is None or SYSTEMD_ANALYZE is None, reason="needs strace and systemd-analyze"
)
SERVICES = [unit for unit in ALL_UNITS if unit.suffix == ".service"]
# Calls the code makes knowing the units refuse them, and carries on without (EPERM).
TOLERATED = {
    "setpriority": "a worker lowers its CPU priority (os.nice) where allowed: best effort",
}
CALL = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]")


@cache
def syscall_groups() -> dict[str, list[str]]:
    """systemd's groups (``@name``) and their members, as this systemd defines them."""
    assert SYSTEMD_ANALYZE is not None
    listing = subprocess.run(
        [SYSTEMD_ANALYZE, "--no-pager", "syscall-filter"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in listing.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw.startswith(" ") and line.startswith("@"):
            current = groups.setdefault(line, [])
        elif raw.startswith(" "):
            current.append(line)
    return groups


def expand(names: list[str]) -> set[str]:
    """System call names of filter entries, groups expanded recursively."""
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            out |= expand(syscall_groups()[name])
        else:
            out.add(name)
    return out


def allowed_calls(unit: Path) -> set[str]:
    """What the unit's SystemCallFilter= lines let through, applied in order."""
    lines = unit_settings(unit)[("Service", "SystemCallFilter")]
    assert not lines[0].startswith("~"), "the first filter line is an allow-list"
    allowed: set[str] = set()
    for line in lines:
        if line.startswith("~"):
            allowed -= expand(line[1:].split())
        else:
            allowed |= expand(line.split())
    return allowed


@pytest.fixture(scope="module")
def traced_calls(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The system calls of a full sweep with --remote (workers, libgit2, git fetch) by name.

    Traced in the emergency unit's emulated sandbox with its "Fetching first" drop-in, as
    that unit's user: SQLite, for one, chowns its journal only when it runs as root.
    """
    assert STRACE is not None
    if not can_emulate():
        pytest.skip("needs root, unshare and setpriv to emulate a unit's sandbox")
    tmp_path = tmp_path_factory.mktemp("traced")
    view = fetching_view(tmp_path)
    (view.fleet / "beta" / "untracked.txt").write_text("x\n", encoding="utf-8")
    (_, argv), *_ = exec_lines(view, "ExecStart")
    assert "--remote" in argv
    trace = "/var/lib/statehub/trace.txt"
    result = run_in_unit(view, [STRACE, "-f", "-qq", "-o", trace, *argv], timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    trace_file = view.state / "trace.txt"
    calls = set()
    for line in trace_file.read_text(encoding="utf-8", errors="replace").splitlines():
        match = CALL.match(line)
        if match:
            calls.add(match.group(1))
    return calls


def test_the_trace_saw_the_workers_and_the_fetch(traced_calls: set[str]) -> None:
    """The traced sweep capped its workers (prlimit64), tied them to it (prctl), forked git."""
    assert {"prlimit64", "prctl", "execve", "openat"} <= traced_calls


@pytest.mark.parametrize("unit", SERVICES, ids=lambda unit: unit.name)
def test_unit_filter_allows_every_call_of_a_sweep(unit: Path, traced_calls: set[str]) -> None:
    """No call of the traced sweep is one the unit's filter would refuse with EPERM."""
    refused = traced_calls - allowed_calls(unit) - TOLERATED.keys()
    assert refused == set(), f"{unit.name} refuses {sorted(refused)}"


def test_filters_refuse_setrlimit_but_not_prlimit64() -> None:
    """The units' ~@resources takes setrlimit away and leaves prlimit64 (glibc's setrlimit)."""
    for unit in SERVICES:
        allowed = allowed_calls(unit)
        assert "prlimit64" in allowed
        assert "setrlimit" not in allowed
