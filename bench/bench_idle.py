"""Idle-connection flood: does the API keep answering while connections never finish?

    python bench/bench_idle.py                                  # 2,000 connections, 60 s
    python bench/bench_idle.py --connections 1100 --seconds 30 --header-timeout 10

The real server (``python -m statehub serve``) runs as a subprocess with ``[api]
header_timeout_seconds``. The attacker opens ``--connections`` connections that each send
part of a request's headers and stop, and reopens each one the server closes, for
``--seconds``; meanwhile ``GET /healthz`` is probed every 0.2 s (5 s timeout). Printed:
the probes' latency (median, p99, max, failures), how many connections the server closed
and how long each had been open, and the size of the server's log.
"""

from __future__ import annotations

import argparse
import resource
import select
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from api_support import ApiServer
from gitfleet import make_repo, write_config

PARTIAL_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def open_idle(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(PARTIAL_REQUEST)
    conn.setblocking(False)
    return conn


def closed_by_server(held: dict[socket.socket, float]) -> list[socket.socket]:
    poller = select.poll()
    by_fd = {conn.fileno(): conn for conn in held}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    closed = []
    for fd, _ in poller.poll(0):
        try:
            if by_fd[fd].recv(4096) == b"":
                closed.append(by_fd[fd])
        except ConnectionResetError:
            closed.append(by_fd[fd])
        except BlockingIOError:
            pass
    return closed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--header-timeout", type=int, default=10)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections * 2 + 256), hard))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fleet = folder / "fleet"
        fleet.mkdir()
        make_repo(fleet, "alpha")
        config = write_config(
            folder,
            roots=[fleet],
            api=f"port = 0\nheader_timeout_seconds = {args.header_timeout}",
        )
        server = ApiServer(config)
        held: dict[socket.socket, float] = {}
        open_for: list[float] = []
        probes: list[float] = []
        failures = 0
        with server, httpx.Client(base_url=server.url, timeout=5.0, trust_env=False) as http:
            started = time.monotonic()
            for _ in range(args.connections):
                held[open_idle(server.port)] = time.monotonic()
            opened = time.monotonic() - started
            while time.monotonic() - started < args.seconds:
                probe = time.monotonic()
                try:
                    ok = http.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                probes.append(time.monotonic() - probe)
                failures += 0 if ok else 1
                for conn in closed_by_server(held):
                    open_for.append(time.monotonic() - held.pop(conn))
                    conn.close()
                    held[open_idle(server.port)] = time.monotonic()
                time.sleep(0.2)
            for conn in held:
                conn.close()
        log = server.log_text().splitlines()

    probes.sort()
    print(
        f"{args.connections} unfinished connections held {args.seconds:g} s "
        f"(opened in {opened:.1f} s), header timeout {args.header_timeout} s"
    )
    print("| what | figure |")
    print("| --- | --- |")
    print(f"| /healthz probes | {len(probes)}, {failures} failed |")
    print(
        f"| /healthz latency median / p99 / max | {statistics.median(probes) * 1000:.1f} / "
        f"{probes[int(len(probes) * 0.99) - 1] * 1000:.1f} / {probes[-1] * 1000:.1f} ms |"
    )
    if open_for:
        print(f"| connections closed by the server | {len(open_for)} |")
        print(
            f"| how long each was open: min / median / max | {min(open_for):.1f} / "
            f"{statistics.median(open_for):.1f} / {max(open_for):.1f} s |"
        )
    summaries = [line for line in log if "sent no whole request" in line]
    print(f"| server log | {len(log)} lines, {len(summaries)} of them summaries |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
