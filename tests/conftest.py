"""Fixtures shared by the whole suite."""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No STATEHUB_* or GIT_* variable of the caller leaks into a test."""
    for key in list(os.environ):
        if key.startswith(("STATEHUB_", "GIT_", "NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    yield


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """An empty folder to build repos in (a repo root of the config)."""
    root = tmp_path / "fleet"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Temporal dev server per pytest process (started on first use, stopped at the end;
    each xdist worker has its own, on a port it checked is its own: temporal_support)."""
    from temporal_support import TemporalServer

    server = TemporalServer(tmp_path_factory.mktemp("temporal"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``statehub serve`` over a planted store (tests/page_support.py) per module, on a
    port of its own choosing (port 0). Not per session: the planted heartbeat and slots are
    relative to the planting, so a test run many minutes later would see them stale."""
    from page_support import planted_server

    with planted_server(tmp_path_factory.mktemp("page")) as served:
        yield served


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile statehub once, before any worker starts, as an installed package is.

    The suite starts ``statehub`` processes by the hundred (the CLI, servers, daemons, sweep
    workers). Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the development machines) none
    of them would write its bytecode, so each compiled statehub's sources again: about 0.15 s
    of CPU a process (``statehub status --json``: 0.67 s, 0.50 s compiled). Python reads the
    files whatever that variable says; they sit in ``__pycache__`` (ignored by git).
    """
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        import statehub

        compileall.compile_dir(Path(statehub.__file__).parent, quiet=1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On several processes (xdist, the default), the long tests first, spread over the
    processes; on one process, the slow fault tests (tests/faults) last, so that the
    progress of `./dev test` moves from the start (issue 15)."""
    workers = int(config.workerinput["workercount"]) if hasattr(config, "workerinput") else 0
    if workers > 1:
        items[:] = long_first(items, workers)
        return
    faults = Path(__file__).resolve().parent / "faults"
    items.sort(key=lambda item: Path(str(item.path)).is_relative_to(faults))


def long_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """``items`` as ``workers`` runs of tests, each led by its share of the tests marked
    ``long`` (longest first, each to the run with the fewest seconds of them so far).

    xdist's worksteal hands each process one contiguous run of the collection at the start
    (the i-th of W gets what is left // (W - i)) and an idle process steals from the end of
    another's run. Led by the long tests, no run leaves one for the last minute, when the
    other processes would have nothing left to do beside it (issue 24). The other tests
    keep their order, so a module's tests stay together.
    """

    def seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long")
        return float(marker.args[0]) if marker is not None else 0.0

    long = sorted((item for item in items if seconds(item)), key=seconds, reverse=True)
    rest = iter([item for item in items if not seconds(item)])
    sizes, left = [], len(items)
    for index in range(workers):
        sizes.append(left // (workers - index))
        left -= sizes[-1]
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for item in long:
        run = min(
            (run for run in range(workers) if len(heads[run]) < sizes[run]),
            key=lambda run: loads[run],
        )
        heads[run].append(item)
        loads[run] += seconds(item)
    ordered: list[pytest.Item] = []
    for head, size in zip(heads, sizes, strict=True):
        ordered += head
        ordered += [next(rest) for _ in range(size - len(head))]
    return ordered
