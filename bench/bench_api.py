"""HTTP API benchmark: latency of ``GET /progress/`` over a large store, and of lock-skips.

    python bench/bench_api.py --events 1000000          # build a store in a temp folder
    python bench/bench_api.py --events 1000000 --keep DIR   # build (or reuse) it in DIR

The store holds ``--events`` progress events created over the last 90 days, inserted with
one ``executemany`` in one transaction: details of a few hundred bytes as run_sweep writes
them, 80 % sweeps of all repos and 20 % of chosen repos, sources mixed, 5 % lock-skipped,
2 % with an automation error. The real server (``python -m statehub serve``) is started
as a subprocess and measured with httpx:

- ``GET /progress/?event_type=consistency_sweep_remote_all&limit=5``: ``--requests``
  requests from ``--clients`` concurrent clients (targets: median <= 5 ms, p99 <= 20 ms),
  and the same one client at a time (the service time, without queueing);
- ``GET /metrics`` and ``GET /healthz``, sequential;
- ``POST /consistency/sweep/remote-all`` while a long sweep runs (a repo whose remote never
  answers keeps it going): ``--skips`` sequential requests, each answered with a
  lock-skipped event (target: median <= 20 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from api_support import ApiServer, HangingRemote, make_slow_repo
from gitfleet import make_repo, write_config
from statehub.store import Store
from waiting import wait_for

PROGRESS = "/progress/?event_type=consistency_sweep_remote_all&limit=5"
SWEEP = "/consistency/sweep/remote-all"
SPAN_SECONDS = 90 * 86400
SOURCES = ["activity-core"] * 6 + ["local-daemon"] * 2 + ["manual", "local-fallback"]
REPOS = [f"{word}-{n:02d}" for n, word in enumerate(["svc", "lib", "infra", "docs"] * 10)]

DETAIL = (
    '{{"source":"{source}","run_id":"{run_id:032x}","lock_skipped":{skipped},'
    '"started_at":"{started}","finished_at":"{finished}","duration_seconds":{duration},'
    '"max_seconds":300,"remote":true,"repos_total":40,"repos_processed":[{processed}],'
    '"skipped_clean":["{clean_a}","{clean_b}"],"skipped_missing":[],"skipped_budget":[],'
    '"exit_code":{exit_code},"automation_error":{error},"automation_errors":[{errors}],'
    '"assessment_failures":{failures}}}'
)
PROCESSED = (
    '{{"repo":"{repo}","head":"{head:07x}","findings":[{{"check":"C-09",'
    '"message":"status \'done\' is not allowed","path":"workplans/STATE-WP-0064.md"}}]}}'
)
ERROR = '{{"repo":"{repo}","check":"C-00","message":"git fetch origin timed out after 20 s"}}'


def build_store(database: Path, events: int, seed: int = 7) -> float:
    """Create the schema, then insert ``events`` rows in one transaction; returns seconds."""
    Store.open(database).close()
    rng = random.Random(seed)
    start = time.time() - SPAN_SECONDS
    step = SPAN_SECONDS / events

    def rows() -> object:
        for n in range(events):
            moment = start + n * step
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))
            created = f"{stamp}.{int(moment * 1000) % 1000:03d}Z"
            skipped = rng.random() < 0.05
            error = not skipped and rng.random() < 0.02
            repo = REPOS[n % len(REPOS)]
            detail = DETAIL.format(
                source=SOURCES[n % len(SOURCES)],
                run_id=rng.getrandbits(128),
                skipped="true" if skipped else "false",
                started=created,
                finished=created,
                duration=0.0 if skipped else round(2 + (n % 97) / 10, 3),
                processed="" if skipped else PROCESSED.format(repo=repo, head=n & 0xFFFFFFF),
                clean_a=REPOS[(n + 1) % len(REPOS)],
                clean_b=REPOS[(n + 2) % len(REPOS)],
                exit_code=1 if error else 0,
                error="true" if error else "false",
                errors=ERROR.format(repo=repo) if error else "",
                failures=n % 9,
            )
            kind = "consistency_sweep" if n % 5 == 4 else "consistency_sweep_remote_all"
            yield kind, created, detail

    began = time.perf_counter()
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as connection:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO progress_events (event_type, created_at, detail) VALUES (?, ?, ?)",
            rows(),  # type: ignore[arg-type]
        )
        connection.execute("COMMIT")
    return time.perf_counter() - began


def stored_events(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT count(*) FROM progress_events").fetchone()[0])


Get = Callable[[str], Awaitable[bytes]]


def httpx_getter(http: httpx.AsyncClient) -> Get:
    async def get(path: str) -> bytes:
        answer = await http.get(path)
        answer.raise_for_status()
        return answer.content

    return get


class WireClient:
    """A lean HTTP/1.1 keep-alive client on one connection (asyncio streams).

    httpx costs about a millisecond of client CPU per request; on a small machine that the
    client shares with the server, that cost, not the server's, sets the latency under
    load. This client costs a few tens of microseconds, so it measures the server.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> bytes:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode()
        if self._streams is not None:
            reader, writer = self._streams
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                self._streams = None  # the server closed an idle keep-alive connection
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self._streams
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"GET {path}: status {status}")
        return body

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


async def load(getters: Sequence[Get], path: str, requests: int) -> tuple[list[float], float]:
    """``requests`` GETs of ``path``, one loop per getter (a concurrent client each).

    Returns the latencies in ms and the seconds the whole load took.
    """
    remaining = requests
    latencies: list[float] = []

    async def one_client(get: Get) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            began = time.perf_counter()
            await get(path)
            latencies.append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(one_client(get) for get in getters))
    return latencies, time.perf_counter() - began


async def lock_skip_latencies(
    http: httpx.AsyncClient, remote: HangingRemote, skips: int
) -> tuple[list[float], bool]:
    """Start a long sweep, then time ``skips`` sequential POSTs that are lock-skipped.

    Returns the latencies in ms and whether the long sweep still ran after the last one.
    """
    long_sweep = asyncio.create_task(http.post(SWEEP, json={"remote": True, "source": "bench"}))
    deadline = time.monotonic() + 30
    while (await http.get("/healthz")).json()["lock"] != "held":
        if time.monotonic() > deadline:
            raise RuntimeError("the long sweep did not start")
        await asyncio.sleep(0.02)
    latencies = []
    for _ in range(skips):
        began = time.perf_counter()
        answer = await http.post(SWEEP, json={"source": "bench-skip"})
        latencies.append((time.perf_counter() - began) * 1000)
        if not answer.json()["detail"]["lock_skipped"]:
            raise RuntimeError("a POST during the long sweep was not lock-skipped")
    still_running = not long_sweep.done()
    remote.close()  # the hanging fetch now fails at once and the sweep ends
    event = (await long_sweep).json()
    if event["detail"]["lock_skipped"]:
        raise RuntimeError("the long sweep was lock-skipped")
    return latencies, still_running


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def row(name: str, samples: list[float], target: str = "") -> str:
    median = statistics.median(samples)
    p99 = percentile(samples, 0.99)
    return f"{name:<40} {len(samples):>6} {median:>9.2f} {p99:>9.2f}  {target}"


def wrk_latency(url: str, connections: int, seconds: int = 10) -> tuple[float, float, float] | None:
    """(median ms, p99 ms, requests/s) measured by wrk, a C load generator; None without it."""
    import re
    import subprocess

    if shutil.which("wrk") is None:
        return None
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )

    def millis(label: str) -> float:
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", result.stdout, re.M)
        assert found, result.stdout
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        return float(found.group(1)) * scale

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", result.stdout, re.M)
    assert rate, result.stdout
    return millis("50%"), millis("99%"), float(rate.group(1))


async def measure(server: ApiServer, remote: HangingRemote, args: argparse.Namespace) -> None:
    n = args.clients
    clients = [
        httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) for _ in range(n)
    ]
    wires = [WireClient(server.port) for _ in range(n)]
    via_httpx: list[Get] = [httpx_getter(http) for http in clients]
    via_wire: list[Get] = [wire.get for wire in wires]
    try:
        await load(via_httpx, PROGRESS, 500)  # warm up connections, threads, caches
        await load(via_wire, PROGRESS, 500)
        httpx_many, httpx_seconds = await load(via_httpx, PROGRESS, args.requests)
        wire_many, wire_seconds = await load(via_wire, PROGRESS, args.requests)
        httpx_one, _ = await load(via_httpx[:1], PROGRESS, min(args.requests, 1000))
        wire_one, _ = await load(via_wire[:1], PROGRESS, min(args.requests, 1000))
        by_wrk = wrk_latency(f"{server.url}{PROGRESS}", n)
        metrics, _ = await load(via_wire[:1], "/metrics", 20)
        health, _ = await load(via_wire[:1], "/healthz", 200)
        skips, still_running = await lock_skip_latencies(clients[0], remote, args.skips)
    finally:
        for http in clients:
            await http.aclose()
        for wire in wires:
            wire.close()

    print(f"\nGET {PROGRESS}, {args.events} events in the store")
    print(
        f"{'request (client x concurrency)':<40} {'count':>6} {'median ms':>9} {'p99 ms':>9}"
        "  target"
    )
    target = "median <= 5, p99 <= 20"
    print(row(f"GET /progress/ (httpx x{n})", httpx_many, target))
    print(row(f"GET /progress/ (wire x{n})", wire_many, target))
    if by_wrk is not None:
        median, p99, rate = by_wrk
        print(
            f"{f'GET /progress/ (wrk x{n}, 10 s)':<40} {'':>6} {median:>9.2f} {p99:>9.2f}"
            f"  {target} ({rate:.0f} requests/s)"
        )
    print(row("GET /progress/ (httpx x1)", httpx_one))
    print(row("GET /progress/ (wire x1)", wire_one))
    print(row("GET /metrics (wire x1)", metrics))
    print(row("GET /healthz (wire x1)", health))
    print(row("POST sweep, lock-skipped (httpx x1)", skips, "median <= 20"))
    print(
        f"\nthroughput with {n} clients: {args.requests / httpx_seconds:.0f} requests/s (httpx),"
        f" {args.requests / wire_seconds:.0f} requests/s (wire)"
    )
    print(f"the long sweep still ran after the last lock-skipped POST: {still_running}")


# A no-op ASGI app on uvicorn, and the same request through an empty FastAPI endpoint: the
# floor any endpoint of this stack stands on, measured the same way as /progress/.
_FLOOR_APP = """
import sys, uvicorn
from fastapi import FastAPI

async def bare(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

fastapi = FastAPI()
fastapi.get("/x")(lambda: [])
app = bare if sys.argv[1] == "bare" else fastapi
uvicorn.run(app, fd=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def floors(connections: int) -> None:
    """Print wrk's figures for a no-op uvicorn app and an empty FastAPI endpoint."""
    import subprocess

    if shutil.which("wrk") is None:
        print("wrk is not installed: no floor measured")
        return
    cases = (("bare", "bare uvicorn ASGI app", "/"), ("fastapi", "empty FastAPI endpoint", "/x"))
    for which, kind, path in cases:
        # The app serves on a socket this process listens on (port 0, passed down).
        listening = socket.create_server(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        fd = listening.fileno()
        process = subprocess.Popen(
            [sys.executable, "-c", _FLOOR_APP, which, str(fd)], pass_fds=(fd,)
        )
        listening.close()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
                wait_for(lambda p=path: http.get(p).is_success, 30, f"the {which} app")
            figures = wrk_latency(f"http://127.0.0.1:{port}{path}", connections)
        finally:
            process.terminate()
            process.wait(timeout=10)
        assert figures is not None
        median, p99, rate = figures
        print(
            f"{f'{kind} (wrk x{connections})':<40} {'':>6} {median:>9.2f} {p99:>9.2f}"
            f"  ({rate:.0f} requests/s)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--skips", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store in this folder")
    parser.add_argument(
        "--floor", action="store_true", help="only measure a no-op uvicorn and FastAPI app"
    )
    args = parser.parse_args()
    if args.floor:
        floors(args.clients)
        return 0

    folder = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-api-"))
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "statehub.db"
    remote = HangingRemote()
    try:
        fleet = folder / "fleet"
        shutil.rmtree(fleet, ignore_errors=True)
        fleet.mkdir()
        for name in ("alpha", "beta", "gamma"):
            make_repo(fleet, name)
        make_slow_repo(fleet, "slow", remote)
        # A store of a kept folder with another count, or a fleet assessed before, is rebuilt.
        if not database.exists() or stored_events(database) != args.events:
            for stale in folder.glob("statehub.db*"):
                stale.unlink()
            seconds = build_store(database, args.events)
            print(f"inserted {args.events} events in {seconds:.1f} s")
        else:
            print(f"reusing the {args.events} events of {database}")
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute("DELETE FROM repo_assessments")
            connection.commit()
        config = write_config(
            folder, roots=[fleet], api="port = 0", sweep="fetch_timeout_seconds = 600"
        )
        server = ApiServer(config)
        with server:
            asyncio.run(measure(server, remote, args))
        if args.keep is not None:
            print(f"server log: {server.log}")
    finally:
        remote.close()
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
