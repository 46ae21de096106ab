"""The HTTP API under hostile input: Host names, cross-site POSTs, NaN, idle connections.

Each case was reproduced against the server before it was hardened (issue 12): a Host
``127.evil.example`` passed the loopback check, a body-less POST without Content-Type
started a sweep, ``{"max_seconds": NaN}`` answered 500, and connections that never
finished their headers were held forever until the server ran out of open files.

The idle-connection test holds :data:`IDLE_CONNECTIONS` connections for
:data:`IDLE_SECONDS` (300 for 4 s in CI); the issue's full figure is
``STATEHUB_IDLE_CONNECTIONS=2000 STATEHUB_IDLE_SECONDS=60 ./dev test tests/test_api_hostile.py``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api_support import ApiServer, client, count_events, serve_fleet
from gitfleet import make_repo

SWEEP = "/consistency/sweep/remote-all"
HEADER_TIMEOUT = 2  # [api] header_timeout_seconds of the servers here
IDLE_CONNECTIONS = int(os.environ.get("STATEHUB_IDLE_CONNECTIONS", "300"))
IDLE_SECONDS = float(os.environ.get("STATEHUB_IDLE_SECONDS", "4"))
PARTIAL_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@dataclass
class Served:
    server: ApiServer
    http: httpx.Client
    database: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server on loopback over a one-repo fleet, with a 2 s header timeout."""
    folder = tmp_path_factory.mktemp("hostile-api")
    fleet = folder / "fleet"
    fleet.mkdir()
    make_repo(fleet, "alpha")
    server = serve_fleet(folder, fleet, api=f"header_timeout_seconds = {HEADER_TIMEOUT}")
    with server, client(server.url) as http:
        yield Served(server=server, http=http, database=folder / "statehub.db")


def raw_request(port: int, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``request`` as it is on a new connection; the whole answer, until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# -- Host ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:8000",
        "127.45.6.7:80",
        "localhost",
        "LocalHost:8000",
        "[::1]",
        "[::1]:8000",
        "::1",
    ],
)
def test_loopback_host_is_accepted(served: Served, host: str) -> None:
    """Any literal loopback address or localhost, with or without a port, is let in."""
    assert served.http.get("/repos", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "127.evil.example",
        "127.0.0.1.nip.io",
        "127.0.0.1.evil.example:8000",
        "localhost.evil.example",
        "localhost:8000@evil.example",
        "evil.example",
        "0.0.0.0",
        "10.0.0.1:8000",
        "[::ffff:10.0.0.1]",
        "[::1]evil",
        "127.0.0.1:80:80",
        "",
    ],
)
def test_foreign_or_malformed_host_is_400(served: Served, host: str) -> None:
    """A Host that is not parsed as a loopback address or localhost gets 400 (DNS rebinding)."""
    answer = served.http.get("/repos", headers={"Host": host})
    assert answer.status_code == 400, host
    assert "not a loopback name" in answer.json()["detail"]


def test_request_without_host_is_400(served: Served) -> None:
    """An HTTP/1.0 request with no Host header at all is refused too."""
    answer = raw_request(served.server.port, b"GET /repos HTTP/1.0\r\n\r\n")
    assert status_of(answer) == 400
    assert b"no Host header" in answer


# -- Content-Type on every POST -----------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-content-type"),
        pytest.param({"Content-Type": "text/plain"}, id="text-plain"),
        pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, id="form"),
        pytest.param({"Content-Type": "multipart/form-data; boundary=x"}, id="multipart"),
    ],
)
def test_cross_site_post_without_json_starts_no_sweep(
    served: Served, headers: dict[str, str]
) -> None:
    """A POST with no body and no JSON Content-Type (what any web page can send) is 415."""
    before = count_events(served.database)
    answer = served.http.post(
        SWEEP, headers={"Origin": "https://evil.example", **headers}, content=b""
    )
    assert answer.status_code == 415
    assert "application/json" in answer.json()["detail"]
    assert count_events(served.database) == before


@pytest.mark.parametrize("body", [b"", b"{}"])
def test_json_post_with_empty_body_or_object_sweeps(served: Served, body: bytes) -> None:
    """With Content-Type application/json, an empty body and {} both mean the defaults."""
    before = count_events(served.database)
    answer = served.http.post(SWEEP, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["detail"]["source"] == "manual"
    assert count_events(served.database) == before + 1


# -- non-finite numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b'{"max_seconds": NaN}', "nan"),
        (b'{"max_seconds": Infinity}', "inf"),
        (b'{"max_seconds": -Infinity}', "-inf"),
        (b'{"max_seconds": 1e400}', "inf"),
    ],
)
def test_non_finite_number_is_422_not_500(served: Served, body: bytes, shown: str) -> None:
    """NaN and Infinity in a body are refused with 422 and the input shown as text."""
    before = count_events(served.database)
    answer = served.http.post(SWEEP, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "max_seconds"]
    assert error.get("input") == shown
    assert count_events(served.database) == before


# -- connections that never finish --------------------------------------------------------


def _enough_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def _open_idle(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(PARTIAL_REQUEST)
    conn.setblocking(False)
    return conn


def _closed_by_server(conns: list[socket.socket]) -> set[socket.socket]:
    """The connections the server has closed (readable, and reading gives end of file)."""
    poller = select.poll()
    by_fd = {conn.fileno(): conn for conn in conns}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    closed: set[socket.socket] = set()
    for fd, _ in poller.poll(0):
        conn = by_fd[fd]
        try:
            if conn.recv(4096) == b"":
                closed.add(conn)
        except ConnectionResetError:
            closed.add(conn)
        except BlockingIOError:
            pass
    return closed


def test_idle_connections_are_closed_and_healthz_answers(tmp_path: Path, fleet: Path) -> None:
    """Unfinished connections held open: /healthz answers throughout, each is closed after
    the header timeout, and the log has a summary line, not a line per connection."""
    _enough_open_files(IDLE_CONNECTIONS + 256)
    make_repo(fleet, "alpha")
    server = serve_fleet(tmp_path, fleet, api=f"header_timeout_seconds = {HEADER_TIMEOUT}")
    held: dict[socket.socket, float] = {}
    closed_after: list[float] = []
    probes: list[float] = []
    with server, client(server.url, timeout=5.0) as http:
        try:
            started = time.monotonic()
            for _ in range(IDLE_CONNECTIONS):
                held[_open_idle(server.port)] = time.monotonic()
            while time.monotonic() - started < max(IDLE_SECONDS, HEADER_TIMEOUT + 2):
                probe = time.monotonic()
                assert http.get("/healthz").status_code == 200
                probes.append(time.monotonic() - probe)
                for conn in _closed_by_server(list(held)):
                    closed_after.append(time.monotonic() - held.pop(conn))
                    conn.close()
                    if time.monotonic() - started < IDLE_SECONDS:  # the attacker reconnects
                        held[_open_idle(server.port)] = time.monotonic()
                time.sleep(0.2)
            deadline = time.monotonic() + HEADER_TIMEOUT + 5
            while held and time.monotonic() < deadline:
                for conn in _closed_by_server(list(held)):
                    closed_after.append(time.monotonic() - held.pop(conn))
                    conn.close()
                time.sleep(0.1)
        finally:
            for conn in held:
                conn.close()
        assert not held, f"{len(held)} connections still open"
    assert len(closed_after) >= IDLE_CONNECTIONS
    assert max(closed_after) < HEADER_TIMEOUT + 5
    assert min(closed_after) >= HEADER_TIMEOUT - 0.5
    assert max(probes) < 2.0
    log = server.log_text().splitlines()
    summaries = [line for line in log if "sent no whole request within 2 s" in line]
    assert summaries
    total = sum(int(line.split("closed ", 1)[1].split(" ", 1)[0]) for line in summaries)
    assert total == len(closed_after)
    assert len(log) < 40 + len(probes), "one log line per connection"
    assert "Traceback" not in server.log_text()


def test_a_late_post_body_is_cut_off_without_a_sweep(served: Served) -> None:
    """A POST whose body never arrives is closed after the header timeout; no sweep, no
    traceback."""
    before = count_events(served.database)
    head = (
        b"POST " + SWEEP.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    started = time.monotonic()
    answer = raw_request(served.server.port, head, timeout=HEADER_TIMEOUT + 10)
    assert answer == b""
    assert HEADER_TIMEOUT - 0.5 <= time.monotonic() - started < HEADER_TIMEOUT + 5
    assert count_events(served.database) == before
    with contextlib.suppress(httpx.TransportError):
        served.http.get("/healthz")
    assert "Traceback" not in served.server.log_text()


# -- clients that never read, and more connections than descriptors (issue 25) -------------

WRITE_TIMEOUT = 2  # [api] write_timeout_seconds of the servers below
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _send_ahead(port: int, request: bytes, copies: int, *, rcvbuf: int = 0) -> socket.socket:
    """A connection that sends ``copies`` of ``request`` at once (as many as fit) and reads
    nothing."""
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    conn.connect(("127.0.0.1", port))
    conn.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        conn.send(request * copies)
    return conn


def _fate(conn: socket.socket) -> tuple[str, int]:
    """('closed' or 'open', bytes read): what the server did, read without waiting."""
    received = 0
    while True:
        try:
            chunk = conn.recv(1 << 20)
        except BlockingIOError:
            return "open", received
        except ConnectionResetError:
            return "closed", received
        if not chunk:
            return "closed", received
        received += len(chunk)


def _wait_closed(conns: list[socket.socket], seconds: float) -> dict[str, int]:
    """Drain ``conns`` until each is closed by the server or ``seconds`` pass: fate counts."""
    deadline = time.monotonic() + seconds
    fates: dict[socket.socket, str] = {}
    while time.monotonic() < deadline and len(fates) < len(conns):
        for conn in conns:
            if conn not in fates and _fate(conn)[0] == "closed":
                fates[conn] = "closed"
        time.sleep(0.1)
    return {"closed": len(fates), "open": len(conns) - len(fates)}


def _server_cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _big_event(database: Path, size: int) -> None:
    """One stored sweep whose detail is about ``size`` bytes (many processed repos)."""
    import json
    import sqlite3
    from datetime import UTC, datetime

    from contract_keys import sweep_detail

    entry = {"repo": "r" * 200, "path": "/p", "findings": []}
    detail = sweep_detail(
        "api", datetime.now(UTC), repos_processed=[entry] * (size // 240), repos_total=1
    )
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.execute(
            "INSERT INTO progress_events (event_type, created_at, detail) VALUES (?, ?, ?)",
            ("consistency_sweep", detail["started_at"], json.dumps(detail)),
        )


def test_pipelined_requests_whose_answers_are_never_read_are_cut_off(
    tmp_path: Path, fleet: Path
) -> None:
    """Clients pipelining /healthz without reading: each connection closed after a capped
    number of answers, /healthz answers meanwhile, one summary line."""
    make_repo(fleet, "alpha")
    server = serve_fleet(tmp_path, fleet, api=f"write_timeout_seconds = {WRITE_TIMEOUT}")
    with server, client(server.url, timeout=5.0) as http:
        conns = [_send_ahead(server.port, HEALTHZ, 5000) for _ in range(20)]
        try:
            fates = _wait_closed(conns, WRITE_TIMEOUT + 10)
            assert http.get("/healthz").status_code == 200
        finally:
            for conn in conns:
                conn.close()
    assert fates == {"closed": 20, "open": 0}
    assert "connection(s) that sent more than 32 requests ahead" in server.log_text()


@pytest.mark.long(12)
def test_an_answer_left_unread_closes_the_connection_at_the_write_deadline(
    tmp_path: Path, fleet: Path
) -> None:
    """A client that asks for a large answer and reads none of it is closed after
    write_timeout_seconds, most of the answer unsent; /healthz answers meanwhile."""
    make_repo(fleet, "alpha")
    server = serve_fleet(tmp_path, fleet, api=f"write_timeout_seconds = {WRITE_TIMEOUT}")
    request = b"GET /progress/?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with server, client(server.url, timeout=30.0) as http:
        _big_event(tmp_path / "statehub.db", 10 << 20)
        answer = len(http.get("/progress/?limit=1").content)
        assert answer > 8 << 20  # more than the kernel buffers between the two ends
        conns = [_send_ahead(server.port, request, 1, rcvbuf=4096) for _ in range(2)]
        received = dict.fromkeys(conns, 0)
        closed: set[socket.socket] = set()
        try:
            deadline = time.monotonic() + WRITE_TIMEOUT + 30
            while len(closed) < len(conns) and time.monotonic() < deadline:
                time.sleep(2 * WRITE_TIMEOUT + 1)  # reading less often than the deadline
                for conn in set(conns) - closed:
                    fate, count = _fate(conn)
                    received[conn] += count
                    if fate == "closed":
                        closed.add(conn)
            assert http.get("/healthz").status_code == 200
        finally:
            for conn in conns:
                conn.close()
    assert len(closed) == 2
    assert max(received.values()) < answer
    assert "connection(s) that read no answer within 2 s" in server.log_text()


@pytest.mark.long(15)
def test_more_connections_than_descriptors_close_the_idlest_without_a_busy_loop(
    tmp_path: Path, fleet: Path
) -> None:
    """Under a 128-file limit, 400 idle keep-alive connections: the idlest are closed,
    /healthz answers, and the server does not spin on failed accepts."""
    make_repo(fleet, "alpha")
    server = serve_fleet(tmp_path, fleet, api="header_timeout_seconds = 60")
    server.prefix = ("prlimit", "--nofile=128:128", "--")
    with server, client(server.url, timeout=5.0) as http:
        assert server.process is not None
        conns: list[socket.socket] = []
        try:
            before = _server_cpu_seconds(server.process.pid)
            for _ in range(400):
                conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                conn.sendall(HEALTHZ)
                conns.append(conn)
            time.sleep(3)
            cpu = _server_cpu_seconds(server.process.pid) - before
            for conn in conns:
                conn.setblocking(False)
            fates = _wait_closed(conns, 20)
            assert http.get("/healthz").status_code == 200
        finally:
            for conn in conns:
                conn.close()
    assert fates["open"] <= 128
    assert cpu < 2.5  # a spinning accept loop burns all of the 3 s and more
    assert "idlest connection(s) beyond" in server.log_text()
