"""The database made unavailable: locked, read-only, its folder removed, its disk full.

For each fault the command line fails with exit status 1 and exactly one line on stderr,
``statehub: database error (C-00): <database>: <reason>``, no traceback and nothing on
stdout; no partial event is left; and once the fault is cleared the next sweep succeeds.
Through the API the sweep answers 503 with a JSON reason and ``/healthz`` reports it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from faultkit import IN_PROGRESS, hub_state, integrity

from api_support import ApiServer, client, event_rows
from clirun import STATEHUB, statehub
from gitfleet import HangingServer, make_repo, write_config
from holding import held_by_another_process
from waiting import wait_for

SWEEP = "/consistency/sweep/remote-all"
BUSY_SECONDS = 5  # statehub.store.BUSY_TIMEOUT_MS: how long a writer waits for the lock
HOLD_SECONDS = 3 * BUSY_SECONDS  # longer than any wait below; the holder is killed sooner

_HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
connection.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@dataclass(frozen=True, kw_only=True)
class Scene:
    config: Path
    database: Path


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    with HangingServer() as server:
        yield server


def make_scene(tmp_path: Path, fleet: Path, hanging: HangingServer, database: Path) -> Scene:
    """Two good repos and one whose fetch hangs for 2 s (its C-00 disabled): one sweep done."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    make_repo(fleet, "zz-slow", origin_url=hanging.url)
    config = write_config(
        tmp_path,
        roots=[fleet],
        sweep="fetch_timeout_seconds = 2",
        api="port = 0",
        extra='[repos.overrides."zz-slow"]\ndisable = ["C-00"]\n',
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('"statehub.db"', f'"{database}"'), encoding="utf-8")
    first = statehub("sweep", "--json", config=config)
    assert first.returncode == 0, first.stderr
    assert len(event_rows(database)) == 1
    return Scene(config=config, database=database)


@pytest.fixture
def scene(tmp_path: Path, fleet: Path, hanging: HangingServer) -> Scene:
    return make_scene(tmp_path, fleet, hanging, tmp_path / "data" / "statehub.db")


def error_line(scene: Scene, reason: str) -> str:
    return f"statehub: database error (C-00): {scene.database}: {reason}"


def assert_one_error_line(result: subprocess.CompletedProcess[str], pattern: str) -> str:
    """Exit status 1, exactly one stderr line matching ``pattern``, and on stdout (these
    runs use --json) the same error as the one JSON document (issue 15)."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert re.fullmatch(pattern, line), line
    assert json.loads(result.stdout) == {
        "error": line.removeprefix("statehub: "),
        "exit_code": 1,
    }
    print(line)
    return line


def assert_next_sweep_succeeds(scene: Scene, before: list[dict[str, Any]]) -> None:
    """The next sweep exits 0; the events are those before plus exactly this one."""
    result = statehub("sweep", "--json", config=scene.config)
    assert result.returncode == 0, result.stderr
    after = event_rows(scene.database)
    assert after[: len(before)] == before
    [new] = after[len(before) :]
    assert new["detail"]["lock_skipped"] is False
    assert "interrupted" not in new["detail"]
    assert integrity(scene.database) == "ok"


# -- the faults -------------------------------------------------------------------------------


@contextmanager
def exclusive_writer(database: Path) -> Iterator[None]:
    """Another process holds ``BEGIN EXCLUSIVE`` (longer than the busy timeout) meanwhile."""
    with held_by_another_process(_HOLDER, str(database), str(HOLD_SECONDS)):
        yield


@contextmanager
def read_only(database: Path, *, open_elsewhere: bool = False) -> Iterator[None]:
    """The database's files cannot be written: immutable for root (chattr +i), else 0444.

    ``open_elsewhere``: a running server already holds the files open, which file modes
    do not stop; only the immutable flag does.
    """
    names = (database.name + suffix for suffix in ("", "-wal", "-shm"))
    files = [str(database.with_name(name)) for name in names if database.with_name(name).exists()]
    if os.geteuid() == 0:
        try:
            done = subprocess.run(
                ["chattr", "+i", *files], capture_output=True, text=True, timeout=10, check=False
            )
        except FileNotFoundError:
            pytest.skip("root ignores file modes and chattr is not installed")
        if done.returncode != 0:
            pytest.skip(f"root ignores file modes and chattr +i fails here: {done.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *files], check=True, timeout=10)
    elif open_elsewhere:
        pytest.skip("file modes do not stop a process that has the files open; chattr needs root")
    else:
        for file in files:
            Path(file).chmod(0o444)
        try:
            yield
        finally:
            for file in files:
                Path(file).chmod(0o644)


@contextmanager
def small_tmpfs(folder: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted at ``folder``; the test is skipped where mounting is refused."""
    folder.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(folder)],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except FileNotFoundError:
        pytest.skip("no mount command to make a small file system")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True, timeout=10)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its file system has no space left."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"\0" * 4096
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


FULL = r"(disk I/O error|database or disk is full) \(its file system is full: \d+ bytes free\)"


# -- the command line -----------------------------------------------------------------------


def test_locked_database_is_one_c00_line(scene: Scene) -> None:
    """Another writer holds the database past the 5 s busy timeout: exit 1, one line, no event."""
    before = event_rows(scene.database)
    with exclusive_writer(scene.database):
        result = statehub("sweep", "--json", config=scene.config, timeout=30)
        assert event_rows(scene.database) == before
    assert_one_error_line(result, re.escape(error_line(scene, "database is locked")))
    assert IN_PROGRESS not in hub_state(scene.database)
    assert_next_sweep_succeeds(scene, before)


def test_read_only_database_is_one_c00_line(scene: Scene) -> None:
    """A database file that cannot be written: exit 1, one line, no event; then it works."""
    before = event_rows(scene.database)
    with read_only(scene.database):
        result = statehub("sweep", "--json", config=scene.config)
        assert event_rows(scene.database) == before
    reason = "attempt to write a readonly database"
    assert_one_error_line(result, re.escape(error_line(scene, reason)))
    assert IN_PROGRESS not in hub_state(scene.database)
    assert_next_sweep_succeeds(scene, before)


def test_database_folder_removed_mid_sweep_is_one_c00_line(scene: Scene) -> None:
    """Its folder removed mid-sweep: exit 1, one line, nothing written to the deleted file."""
    folder = scene.database.parent
    log = folder.parent / "sweep.out"
    with log.open("w") as out, (folder.parent / "sweep.err").open("w") as err:
        sweep = subprocess.Popen(
            [*STATEHUB, "sweep", "--remote", "--json", "--config", str(scene.config)],
            stdout=out,
            stderr=err,
            text=True,
        )
    try:
        wait_for(lambda: IN_PROGRESS in hub_state(scene.database), 30, "the sweep's marker")
        shutil.rmtree(folder)
        assert sweep.wait(timeout=30) == 1
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=10)
    result = subprocess.CompletedProcess(
        sweep.args, 1, log.read_text(), (folder.parent / "sweep.err").read_text()
    )
    reason = (
        "the database file was removed or replaced while in use; "
        "nothing more is written to the old one"
    )
    assert_one_error_line(result, re.escape(error_line(scene, reason)))
    # Cleared by itself: the next sweep creates the folder and a new database, as at first
    # start, and records only itself (the marker went with the old file).
    assert not folder.exists()
    assert_next_sweep_succeeds(scene, [])


def test_full_disk_is_one_c00_line(tmp_path: Path, fleet: Path, hanging: HangingServer) -> None:
    """A full file system (a 4 MiB tmpfs): exit 1, one line saying so; then it works."""
    with small_tmpfs(tmp_path / "disk") as disk:
        scene = make_scene(tmp_path, fleet, hanging, disk / "statehub.db")
        before = event_rows(scene.database)
        filler = fill(disk)
        result = statehub("sweep", "--json", config=scene.config)
        assert_one_error_line(result, re.escape(error_line(scene, "")) + FULL)
        filler.unlink()
        assert event_rows(scene.database) == before
        assert IN_PROGRESS not in hub_state(scene.database)
        assert_next_sweep_succeeds(scene, before)


def test_file_size_limit_is_one_c00_line(scene: Scene) -> None:
    """Writes refused past 36 KiB (RLIMIT_FSIZE): exit 1, one line; the run recorded once."""
    import resource
    import signal

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (36 * 1024, 36 * 1024))

    before = event_rows(scene.database)
    result = subprocess.run(
        [*STATEHUB, "sweep", "--json", "--config", str(scene.config)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limited,  # the test process has no other threads here
        check=False,
    )
    assert_one_error_line(result, re.escape(error_line(scene, "disk I/O error")))
    assert event_rows(scene.database) == before
    # A sweep that failed after its marker was committed is recorded as interrupted by the
    # next one: one complete event for it, never a partial one.
    stuck = IN_PROGRESS in hub_state(scene.database)
    print("the failed sweep left its marker:", stuck)
    result = statehub("sweep", "--json", config=scene.config)
    assert result.returncode == 0, result.stderr
    after = event_rows(scene.database)
    assert after[: len(before)] == before
    added = after[len(before) :]
    assert [bool(event["detail"].get("interrupted")) for event in added] == (
        [True, False] if stuck else [False]
    )
    assert integrity(scene.database) == "ok"


# -- the API --------------------------------------------------------------------------------


def post_and_health(url: str) -> tuple[httpx.Response, httpx.Response]:
    """A sweep request and a health check sent at the same moment."""
    answers: dict[str, httpx.Response] = {}

    def send(name: str, call: Callable[[httpx.Client], httpx.Response]) -> None:
        with client(url, timeout=60) as http:
            answers[name] = call(http)

    threads = [
        threading.Thread(target=send, args=("sweep", lambda http: http.post(SWEEP, json={}))),
        threading.Thread(target=send, args=("health", lambda http: http.get("/healthz"))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers["sweep"], answers["health"]


def assert_unavailable(
    scene: Scene, sweep: httpx.Response, health: httpx.Response, reason: str
) -> None:
    assert sweep.status_code == 503
    assert re.fullmatch(
        re.escape(f"database error (C-00): {scene.database}: ") + f"({reason})",
        sweep.json()["detail"],
    ), sweep.json()
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "error"
    assert re.fullmatch(re.escape(f"error: {scene.database}: ") + f"({reason})", body["database"])


def assert_available(server: ApiServer, before: list[dict[str, Any]], database: Path) -> None:
    with client(server.url, timeout=60) as http:
        health = http.get("/healthz")
        sweep = http.post(SWEEP, json={})
    assert (health.status_code, health.json()["database"]) == (200, "ok")
    assert sweep.status_code == 200
    after = event_rows(database)
    assert after[: len(before)] == before
    assert [event["id"] for event in after[len(before) :]] == [sweep.json()["id"]]
    assert "Traceback" not in server.log_text()


def test_api_locked_database_is_503(scene: Scene) -> None:
    """Locked past the busy timeout: POST 503 and /healthz 503 name it; then both 200."""
    with ApiServer(scene.config) as server:
        before = event_rows(scene.database)
        with exclusive_writer(scene.database):
            sweep, health = post_and_health(server.url)
        assert_unavailable(scene, sweep, health, re.escape("database is locked"))
        assert event_rows(scene.database) == before
        assert_available(server, before, scene.database)


def test_api_read_only_database_is_503(scene: Scene) -> None:
    """A database file that cannot be written: POST 503 and /healthz 503; then both 200."""
    with ApiServer(scene.config) as server:
        before = event_rows(scene.database)
        with read_only(scene.database, open_elsewhere=True):
            sweep, health = post_and_health(server.url)
        # A new connection opens the file read-only; one reusing a descriptor the server
        # already had open fails on writing the -wal file: either reason names the fault.
        reason = "|".join(
            re.escape(text)
            for text in (
                "attempt to write a readonly database",
                "disk I/O error (statehub.db, statehub.db-wal, statehub.db-shm cannot be written)",
            )
        )
        assert_unavailable(scene, sweep, health, reason)
        assert event_rows(scene.database) == before
        assert_available(server, before, scene.database)


def test_api_database_folder_removed_mid_sweep_is_503(scene: Scene) -> None:
    """Its folder removed under a running sweep: that POST is 503; a new database follows."""
    with ApiServer(scene.config) as server:
        answers: list[httpx.Response] = []

        def post() -> None:
            with client(server.url, timeout=60) as http:
                answers.append(http.post(SWEEP, json={"remote": True}))

        poster = threading.Thread(target=post)
        poster.start()
        wait_for(lambda: IN_PROGRESS in hub_state(scene.database), 30, "the sweep's marker")
        shutil.rmtree(scene.database.parent)
        poster.join(timeout=60)
        [sweep] = answers
        assert sweep.status_code == 503
        assert sweep.json()["detail"] == (
            f"database error (C-00): {scene.database}: the database file was removed or "
            "replaced while in use; nothing more is written to the old one"
        )
        # The next request creates the folder and a new database, as at first start.
        assert_available(server, [], scene.database)


def test_api_full_disk_is_503(tmp_path: Path, fleet: Path, hanging: HangingServer) -> None:
    """A full file system: POST 503 and /healthz 503 say so; once space is freed, both 200."""
    with small_tmpfs(tmp_path / "disk") as disk:
        scene = make_scene(tmp_path, fleet, hanging, disk / "statehub.db")
        with ApiServer(scene.config, log=tmp_path / "serve.log") as server:
            before = event_rows(scene.database)
            filler = fill(disk)
            sweep, health = post_and_health(server.url)
            assert sweep.status_code == 503
            assert re.fullmatch(
                re.escape(f"database error (C-00): {scene.database}: ") + FULL,
                sweep.json()["detail"],
            ), sweep.json()
            assert health.status_code == 503
            # The health check's own write fails, or (if it fit) the free space is too low.
            assert re.fullmatch(
                re.escape(f"error: {scene.database}: ")
                + rf"({FULL}|its file system is full \(\d+ bytes free\))",
                health.json()["database"],
            ), health.json()
            filler.unlink()
            assert event_rows(scene.database) == before
            assert IN_PROGRESS not in hub_state(scene.database)
            assert_available(server, before, scene.database)
