"""[notify]: pings and webhook posts, received by a real HTTP server on loopback.

The sweeps are real (the command line as a subprocess, the daemon's fire in process) over
real repos; :class:`Receiver` records every request it gets, in order.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clirun import statehub
from gitfleet import git, make_repo, write_config
from statehub import alerts
from statehub.fire import InProcessBackend, Runner
from statehub.settings import load_settings
from statehub.store import Store
from statehub.timefmt import utc_now
from waiting import wait_for

WAIT = 15.0


@dataclass
class Received:
    method: str
    path: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 that records each request; answers ``status`` after
    ``delay`` seconds."""

    def __init__(self, *, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Received("POST", self.path, body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]

    def hooks(self) -> list[Any]:
        with self._lock:
            return [r.json() for r in self.requests if r.path == "/hook"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def notify_config(tmp_path: Path, fleet: Path, receiver: Receiver, extra: str = "") -> Path:
    lines = f'ping_url = "{receiver.url}/ping/abc"\nwebhook_url = "{receiver.url}/hook"\n'
    return write_config(tmp_path, roots=[fleet], notify=lines + extra)


def sweep(config: Path, source: str = "local-timer") -> subprocess.CompletedProcess[str]:
    return statehub("sweep", "--all", "--source", source, "--json", config=config)


def broken_repo(fleet: Path, name: str = "broken") -> Path:
    """A folder whose .git points nowhere: a C-00."""
    root = fleet / name
    root.mkdir()
    (root / ".git").write_text("gitdir: /nonexistent/statehub-test\n", encoding="utf-8")
    return root


def test_scheduled_sweep_pings_start_then_success(
    tmp_path: Path, fleet: Path, receiver: Receiver
) -> None:
    """A timer's sweep pings <url>/start, then <url> with the sweep in the terminal's words."""
    make_repo(fleet, "alpha")
    done = sweep(notify_config(tmp_path, fleet, receiver))
    assert done.returncode == 0, done.stderr
    pings = [r for r in receiver.requests if r.path.startswith("/ping/")]
    assert [r.path for r in pings] == ["/ping/abc/start", "/ping/abc"]
    event_id = json.loads(done.stdout)["id"]
    words = f"event {event_id} local-timer: 1 re-read, 0 reused, 0 missing, 0 over budget in "
    assert pings[1].body.decode().startswith(words)


def test_automation_error_pings_fail_with_the_reason(
    tmp_path: Path, fleet: Path, receiver: Receiver
) -> None:
    """A sweep with a C-00 pings /start then /fail, naming the repo; the sweep exits 1."""
    make_repo(fleet, "alpha")
    broken_repo(fleet)
    done = sweep(notify_config(tmp_path, fleet, receiver))
    assert done.returncode == 1
    pings = [r for r in receiver.requests if r.path.startswith("/ping/")]
    assert [r.path for r in pings] == ["/ping/abc/start", "/ping/abc/fail"]
    assert "\nbroken: " in pings[1].body.decode()


def test_manual_sweep_sends_no_ping(tmp_path: Path, fleet: Path, receiver: Receiver) -> None:
    """A sweep by hand (source manual) is not a scheduled one: no ping."""
    make_repo(fleet, "alpha")
    done = sweep(notify_config(tmp_path, fleet, receiver), source="manual")
    assert done.returncode == 0
    assert [path for path in receiver.paths() if path.startswith("/ping/")] == []


def test_webhook_posts_once_per_change(tmp_path: Path, fleet: Path, receiver: Receiver) -> None:
    """New C-13 and C-00 are posted once, not again while they stand, and when they go."""
    make_repo(fleet, "alpha")
    beta = make_repo(fleet, "beta")
    git(beta, "config", "core.fsmonitor", "true")  # C-13: read, never run
    broken = broken_repo(fleet)
    config = notify_config(tmp_path, fleet, receiver)

    assert sweep(config).returncode == 1
    first = receiver.hooks()
    assert sorted(hook["kind"] for hook in first) == ["automation_error", "new_findings"]
    error = next(hook for hook in first if hook["kind"] == "automation_error")
    assert error["text"].startswith("statehub: automation error (C-00): broken: ")
    new = next(hook for hook in first if hook["kind"] == "new_findings")
    assert [(f["repo"], f["check"]) for f in new["details"]["findings"]] == [("beta", "C-13")]
    assert new["text"].startswith("statehub: 1 new finding(s): C-13 in beta")

    assert sweep(config).returncode == 1
    assert len(receiver.hooks()) == 2  # nothing changed: nothing posted

    other = broken_repo(fleet, "broken-too")
    assert sweep(config).returncode == 1
    [more] = receiver.hooks()[2:]
    assert more["kind"] == "automation_error"
    assert [e["repo"] for e in more["details"]["automation_errors"]] == ["broken-too"]
    assert more["details"]["total"] == 2

    git(beta, "config", "--unset", "core.fsmonitor")
    for folder in (broken, other):
        (folder / ".git").unlink()
        folder.rmdir()
    assert sweep(config).returncode == 0
    later = [hook["kind"] for hook in receiver.hooks()[3:]]
    assert sorted(later) == ["automation_recovered", "findings_resolved"]


def test_unchecked_finding_is_not_posted(tmp_path: Path, fleet: Path, receiver: Receiver) -> None:
    """A finding of a check outside alert_checks (C-15, untracked files) posts nothing."""
    alpha = make_repo(fleet, "alpha")
    (alpha / "scratch.txt").write_text("x\n", encoding="utf-8")
    assert sweep(notify_config(tmp_path, fleet, receiver)).returncode == 0
    assert receiver.hooks() == []


def test_slow_receiver_never_holds_or_fails_the_sweep(tmp_path: Path, fleet: Path) -> None:
    """A receiver slower than timeout_seconds: the sweep still exits 0, in bounded time."""
    make_repo(fleet, "alpha")
    git(fleet / "alpha", "config", "core.fsmonitor", "true")
    slow = Receiver(delay=3.0)
    try:
        config = notify_config(
            tmp_path, fleet, slow, extra="timeout_seconds = 0.3\nwebhook_attempts = 2\n"
        )
        began = time.monotonic()
        done = sweep(config)
        elapsed = time.monotonic() - began
    finally:
        slow.close()
    assert done.returncode == 0, done.stderr
    assert elapsed < 12
    assert "not delivered" in done.stderr
    with Store.open(tmp_path / "statehub.db") as store:
        assert len(store.events(limit=10)) == 1


@pytest.mark.parametrize(("status", "posts"), [(500, 3), (404, 1)])
def test_webhook_retries_are_bounded(tmp_path: Path, fleet: Path, status: int, posts: int) -> None:
    """A 5xx is tried webhook_attempts times in all; a 4xx refusal once."""
    make_repo(fleet, "alpha")
    git(fleet / "alpha", "config", "core.fsmonitor", "true")
    failing = Receiver(status=status)
    try:
        done = sweep(notify_config(tmp_path, fleet, failing, extra="webhook_attempts = 3\n"))
        hooks = [r for r in failing.requests if r.path == "/hook"]
    finally:
        failing.close()
    assert done.returncode == 0
    assert len(hooks) == posts
    assert len({r.body for r in hooks}) == 1  # the same post each time


def test_daemon_fallback_and_handback_are_posted_once_each(
    tmp_path: Path, fleet: Path, receiver: Receiver
) -> None:
    """Standby fires: taking over is posted once, handing back once; its sweeps ping."""
    make_repo(fleet, "alpha")
    settings = load_settings(notify_config(tmp_path, fleet, receiver).parent / "statehub.toml")
    assert settings.schedule.mode == "standby"
    runner = Runner(settings, backend=InProcessBackend(settings))
    now = utc_now()
    assert runner.fire(scheduled_for=now).outcome == "swept"
    assert runner.fire(scheduled_for=now + timedelta(minutes=15)).outcome == "swept"
    with Store.open(settings.database_path) as store:
        store.append_event(
            "consistency_sweep_remote_all",
            {"source": "activity-core", "lock_skipped": False, "automation_error": False},
        )
    assert runner.fire(scheduled_for=now + timedelta(minutes=30)).outcome == "primary_healthy"
    assert alerts.flush(WAIT)
    kinds = [hook["kind"] for hook in receiver.hooks()]
    assert kinds == ["fallback_started", "fallback_ended"]
    assert receiver.hooks()[0]["details"]["source"] == "local-fallback"
    pings = [path for path in receiver.paths() if path.startswith("/ping/")]
    assert pings == ["/ping/abc/start", "/ping/abc"] * 2


def test_notify_test_sends_one_of_each(tmp_path: Path, fleet: Path, receiver: Receiver) -> None:
    """statehub notify test: start, success and fail pings, one webhook post; exit 0."""
    done = statehub("notify", "test", config=notify_config(tmp_path, fleet, receiver))
    assert done.returncode == 0, done.stderr
    assert receiver.paths() == ["/ping/abc/start", "/ping/abc", "/ping/abc/fail", "/hook"]
    assert receiver.hooks()[0]["kind"] == "test"
    assert done.stdout.count("delivered to http://127.0.0.1:") == 4


def test_notify_test_reports_a_failed_delivery(tmp_path: Path, fleet: Path) -> None:
    """A receiver answering 500: notify test says so and exits 1."""
    failing = Receiver(status=500)
    try:
        done = statehub("notify", "test", config=notify_config(tmp_path, fleet, failing))
    finally:
        failing.close()
    assert done.returncode == 1
    assert "webhook test: NOT delivered" in done.stdout


def test_notify_test_without_urls_says_there_is_nothing_to_test(
    tmp_path: Path, fleet: Path
) -> None:
    """With neither URL configured there is nothing to test: one line, exit 2 (not 78: the
    configuration is valid)."""
    done = statehub("notify", "test", config=write_config(tmp_path, roots=[fleet]))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "nothing to test: [notify] in " in done.stderr
    assert "sets neither ping_url nor webhook_url" in done.stderr


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('ping_url = "ftp://example.org/x"', "notify.ping_url"),
        ('alert_checks = ["C-99"]', "notify.alert_checks"),
        ("timeout_seconds = 0", "notify.timeout_seconds"),
    ],
)
def test_bad_notify_settings_are_refused(tmp_path: Path, fleet: Path, line: str, key: str) -> None:
    """A bad [notify] value is a configuration error naming the key (exit 78)."""
    config = write_config(tmp_path, roots=[fleet], notify=line)
    done = statehub("config", "check", config=config)
    assert done.returncode == 78
    assert key in done.stderr


def test_sweep_through_the_api_pings(tmp_path: Path, fleet: Path, receiver: Receiver) -> None:
    """A sweep triggered over HTTP (a CronJob's) pings start and success from the server."""
    from api_support import ApiServer, client

    make_repo(fleet, "alpha")
    lines = f'ping_url = "{receiver.url}/ping/abc"\n'
    config = write_config(tmp_path, roots=[fleet], api="port = 0", notify=lines)
    with ApiServer(config) as server, client(server.url) as http:
        answer = http.post("/consistency/sweep/remote-all", json={"source": "activity-core"})
        assert answer.status_code == 200
        wait_for(lambda: len(receiver.paths()) >= 2, WAIT, "the start and success pings")
    assert receiver.paths() == ["/ping/abc/start", "/ping/abc"]
    assert receiver.requests[1].body.decode().startswith(f"event {answer.json()['id']} ")


def test_run_now_delivers_its_pings_before_it_exits(
    tmp_path: Path, fleet: Path, receiver: Receiver
) -> None:
    """schedule run-now (the daemon's fire, once): start and success arrive before exit."""
    make_repo(fleet, "alpha")
    config = notify_config(tmp_path, fleet, receiver)
    done = statehub("schedule", "run-now", "--json", config=config)
    assert done.returncode == 0, done.stderr
    assert [path for path in receiver.paths() if path.startswith("/ping/")] == [
        "/ping/abc/start",
        "/ping/abc",
    ]
    assert [hook["kind"] for hook in receiver.hooks()] == ["fallback_started"]


def test_unknown_repo_is_a_usage_error_not_an_alert(
    tmp_path: Path, fleet: Path, receiver: Receiver
) -> None:
    """`sweep --repo nope` exits 2 and posts nothing: a typo is not an automation error."""
    make_repo(fleet, "alpha")
    done = statehub("sweep", "--repo", "nope", config=notify_config(tmp_path, fleet, receiver))
    assert done.returncode == 2
    assert receiver.requests == []


def test_sweep_that_cannot_use_its_database_pings_fail_and_posts(
    tmp_path: Path, fleet: Path, receiver: Receiver
) -> None:
    """A database that cannot be opened: /start then /fail, one automation_error post."""
    make_repo(fleet, "alpha")
    (tmp_path / "not-a-folder").write_text("", encoding="utf-8")
    lines = f'ping_url = "{receiver.url}/ping/abc"\nwebhook_url = "{receiver.url}/hook"\n'
    config = write_config(tmp_path, roots=[fleet], notify=lines)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace('database = "statehub.db"', 'database = "not-a-folder/hub.db"'),
        encoding="utf-8",
    )
    done = sweep(config)
    assert done.returncode == 1
    assert done.stderr.startswith("statehub: database error (C-00): ")
    assert done.stderr.count("\n") == 1
    assert receiver.paths() == ["/ping/abc/start", "/ping/abc/fail", "/hook"]
    assert "could not run" in receiver.hooks()[0]["text"]


# -- bounded delivery (issue 25) -------------------------------------------------------


class RawReceiver:
    """A TCP server on 127.0.0.1 that reads a request and answers with ``answer(conn)``;
    counts the bytes it managed to send."""

    def __init__(self, answer: Any) -> None:
        import socket

        self.sent = 0
        self.requests = 0
        self._answer = answer
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: Any) -> None:
        with conn:
            conn.settimeout(WAIT)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                self.requests += 1
                for chunk in self._answer():
                    if self._closed.is_set():
                        return
                    conn.sendall(chunk)
                    self.sent += len(chunk)
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._socket.close()


def _huge_body() -> Iterator[bytes]:
    """200 OK and a 64 MiB body."""
    yield b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n"
    for _ in range(1024):
        yield b"x" * 65536


def _dripped_headers() -> Iterator[bytes]:
    """A header block that never ends, one byte every 0.3 s: every read answers in time."""
    yield b"HTTP/1.1 200 OK\r\n"
    while True:
        time.sleep(0.3)
        yield b"X"


def test_an_answers_body_is_not_read(tmp_path: Path, fleet: Path) -> None:
    """A receiver answering 200 with 64 MiB: delivered, and the body is left unread."""
    huge = RawReceiver(_huge_body)
    try:
        config = write_config(tmp_path, roots=[fleet], notify=f'webhook_url = "{huge.url}/h"')
        done = statehub("notify", "test", config=config, timeout=60)
    finally:
        huge.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "webhook test: delivered" in done.stdout
    assert huge.sent < 16 << 20  # what the kernel buffers hold, no more


def test_a_receiver_that_drips_is_cut_off_at_the_timeout(tmp_path: Path, fleet: Path) -> None:
    """A byte every 0.3 s under timeout_seconds = 1: not delivered, within a few seconds."""
    drip = RawReceiver(_dripped_headers)
    try:
        lines = f'webhook_url = "{drip.url}/h"\ntimeout_seconds = 1\n'
        config = write_config(tmp_path, roots=[fleet], notify=lines)
        began = time.monotonic()
        done = statehub("notify", "test", config=config, timeout=30)
        elapsed = time.monotonic() - began
    finally:
        drip.close()
    assert done.returncode == 1
    assert "webhook test: NOT delivered" in done.stdout
    assert "not delivered (ReadTimeout)" in done.stderr
    assert elapsed < 15


def test_a_change_not_delivered_is_posted_again_after_the_next_sweep(
    tmp_path: Path, fleet: Path
) -> None:
    """A webhook refused (500) leaves the change unreported: the next sweep posts it."""
    make_repo(fleet, "alpha")
    git(fleet / "alpha", "config", "core.fsmonitor", "true")
    flaky = Receiver(status=500)
    try:
        config = notify_config(tmp_path, fleet, flaky, extra="webhook_attempts = 1\n")
        first = sweep(config)
        flaky.status = 200
        sweep(config)
        sweep(config)
        hooks = [hook["kind"] for hook in flaky.hooks()]
    finally:
        flaky.close()
    assert "posted again after the next sweep" in first.stderr
    assert hooks == ["new_findings", "new_findings"]


def test_chat_markup_of_a_repo_is_escaped_in_the_webhooks_text(
    tmp_path: Path, fleet: Path, receiver: Receiver
) -> None:
    """A repo named with <!channel> and a disguised link: the post's text shows them as
    entities, never as chat markup; its details keep the names as they are."""
    name = "x<!channel>y<https:evil.example|ok>"
    broken_repo(fleet, name)
    assert sweep(notify_config(tmp_path, fleet, receiver)).returncode == 1
    [hook] = [hook for hook in receiver.hooks() if hook["kind"] == "automation_error"]
    assert "<" not in hook["text"] and ">" not in hook["text"]
    assert "x&lt;!channel&gt;y&lt;https:evil.example|ok&gt;" in hook["text"]
    assert hook["details"]["automation_errors"][0]["repo"] == name
