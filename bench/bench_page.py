"""Status page benchmark: server time of ``GET /`` over a large store.

    python bench/bench_page.py                             # 1M events, 1,000 repos, temp folder
    python bench/bench_page.py --keep DIR                  # build (or reuse) the store in DIR

The store is the one of bench_api.py (``build_store``: ``--events`` events over 90 days),
plus ``--repos`` standing assessments, a third of them with findings (and some C-00), and
a few hundred daemon runs. Measured:

- in process: the first ``status_view`` (it reads the whole window), then ``status_view``
  (the queries; the window's events are kept between requests and only new ones read)
  and ``render`` (Jinja2), each ``--requests`` times, so the costs are seen apart;
- over HTTP: the real server (``python -m statehub serve``) answering ``GET /``,
  ``GET /?window=7d``, a filtered ``GET /?check=C-13`` and one repo's page, one request at a
  time on a keep-alive connection (bench_api's lean client, whose own cost is a few tens
  of microseconds): the server time. Target: ``/`` median <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from api_support import ApiServer
from bench_api import WireClient, build_store, percentile, stored_events
from gitfleet import write_config
from statehub.page import WindowRows, render, status_view
from statehub.settings import load_settings
from statehub.store import ActivityRun, Assessment, Store
from statehub.timefmt import iso, utc_now

CHECKS = ["C-09", "C-13", "C-15", "C-18", "C-21"]


def add_repos_and_runs(database: Path, repos: int, runs: int = 500) -> None:
    """``repos`` standing assessments (a third failing) and ``runs`` daemon runs."""
    now = utc_now()
    items = []
    for n in range(repos):
        findings = []
        if n % 3 == 0:
            check = CHECKS[n % len(CHECKS)]
            findings.append({"check": check, "message": f"planted {check}", "path": "README.md"})
        if n % 97 == 0:
            findings.append({"check": "C-00", "message": "cannot read .git", "path": None})
        items.append(
            Assessment(
                repo=f"repo-{n:04d}",
                path=f"/srv/repos/repo-{n:04d}",
                head=f"{n:07x}",
                fingerprint=None,
                assessed_at=iso(now - timedelta(seconds=n)),
                findings=findings,
            )
        )
    with Store.open(database) as store:
        store.save_assessments(items)
        for n in range(runs):
            slot = now - timedelta(minutes=15 * n)
            store.record_run(
                ActivityRun(
                    run_id=str(uuid.uuid4()),
                    definition_id="7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b",
                    fired_at=iso(slot),
                    scheduled_for=iso(slot),
                    outcome="primary_healthy",
                    context_snapshot={"source": "local-fallback", "duration_seconds": 0.1},
                )
            )


def line(name: str, samples: list[float], target: str = "") -> str:
    return (
        f"{name:<34} {statistics.median(samples):8.1f} {percentile(samples, 0.95):8.1f}"
        f" {max(samples):8.1f}  {target}"
    )


async def over_http(port: int, paths: list[tuple[str, str, str]], requests: int) -> list[str]:
    wire = WireClient(port)
    lines = []
    for name, path, target in paths:
        began = time.perf_counter()
        await wire.get(path)  # the first request reads the window and compiles the template
        lines.append(line(f"{name}, first", [(time.perf_counter() - began) * 1000]))
        samples = []
        for _ in range(requests):
            began = time.perf_counter()
            body = await wire.get(path)
            samples.append((time.perf_counter() - began) * 1000)
        if b"<html" not in body:
            raise RuntimeError(f"{path}: not the page: {body[:200]!r}")
        lines.append(line(name, samples, target))
    wire.close()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store in this folder")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-page-"))
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "statehub.db"
    try:
        if not database.exists() or stored_events(database) != args.events:
            database.unlink(missing_ok=True)
            seconds = build_store(database, args.events)
            add_repos_and_runs(database, args.repos)
            print(f"built {args.events} events and {args.repos} repos in {seconds:.1f} s")
        (folder / "fleet").mkdir(exist_ok=True)
        config = write_config(folder, roots=[folder / "fleet"], api="port = 0")
        settings = load_settings(config)

        print(f"{'ms':<34} {'median':>8} {'p95':>8} {'max':>8}")
        with Store.open(database) as store:
            began = time.perf_counter()
            window_rows = WindowRows()
            status_view(settings, store, window_rows=window_rows)
            cold = [(time.perf_counter() - began) * 1000]
            view_ms, render_ms = [], []
            for _ in range(args.requests):
                began = time.perf_counter()
                view = status_view(settings, store, window_rows=window_rows)
                middle = time.perf_counter()
                render("status.html", **view)
                view_ms.append((middle - began) * 1000)
                render_ms.append((time.perf_counter() - middle) * 1000)
        print(line("in process: first status_view (cold)", cold))
        print(line("in process: queries (status_view)", view_ms))
        print(line("in process: render (Jinja2)", render_ms))

        with ApiServer(config) as server:
            paths = [
                ("GET / (24 h)", "/", "target: median <= 50 ms"),
                ("GET /?window=7d", "/?window=7d", ""),
                ("GET /?check=C-13", "/?check=C-13", ""),
                ("GET /status/repos/repo-0000", "/status/repos/repo-0000", ""),
            ]
            for text in asyncio.run(over_http(server.port, paths, args.requests)):
                print(text)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
