"""``statehub temporal worker``: this host's Temporal worker, run like the daemon.

It polls ``[temporal] task_queue`` for the sweep workflow and its activity (one sweep at a
time). Under systemd (``Type=notify``) it sends ``READY=1`` once polling, ``STATUS=``
with the last run, ``WATCHDOG=1`` from its event loop (so a hung loop is restarted) and
``STOPPING=1`` on SIGTERM or SIGINT (SIGHUP is logged and ignored: restart it to read
a new configuration); a running sweep then stops at once and is recorded ``cancelled`` by
that signal, the worker records itself ``stopped`` (``heartbeat:worker``, as JSON: every
status surface says so at once) and exits 0. One worker per hub: a second one on the same
database exits 78 naming the first's pid. A worker that cannot connect at start exits 1 (systemd
restarts it); once running, it rides out a Temporal outage (the SDK keeps polling) and
resumes when the server is back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import signal
from datetime import timedelta

from temporalio.worker import Worker

from statehub import alerts
from statehub.contract import HEARTBEAT_PREFIX
from statehub.lock import hold_role
from statehub.logs import setup_logging
from statehub.runs import record_interrupted
from statehub.settings import Settings
from statehub.store import Store
from statehub.systemd_notify import Notifier, watchdog_interval
from statehub.temporal.activity import SweepActivity
from statehub.temporal.schedule import connect
from statehub.temporal.workflow import SweepWorkflow
from statehub.timefmt import iso, utc_now

log = logging.getLogger("statehub.temporal")

STOP_GRACE_SECONDS = 5.0  # SIGTERM gives a running sweep this long, then it is interrupted
STATUS_SECONDS = 30.0  # how often STATUS= (and the heartbeat) is refreshed
HEARTBEAT_KEY = f"{HEARTBEAT_PREFIX}worker"  # hub_state: the status page shows it (statehub.page)


def worker_command(settings: Settings) -> int:
    """Run the worker until SIGTERM/SIGINT; returns the exit status."""
    setup_logging()
    try:
        return asyncio.run(_run(settings))
    finally:
        alerts.flush()  # bounded: the pings and posts of the last sweep, before the exit


async def _run(settings: Settings) -> int:
    temporal = settings.temporal
    # One worker per hub: a second one exits 78 naming the first (held to the end).
    _held = hold_role(settings.database_path, "temporal worker")
    with Store.open(settings.database_path) as store:
        record_interrupted(store)  # a worker (or daemon) killed mid-sweep
    client = await connect(settings)
    notifier = Notifier()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    sweeps = SweepActivity(settings)

    stopped_by: list[str] = []

    def on_stop(signum: signal.Signals) -> None:
        sweeps.stop(signum.name)  # a running sweep stops now, recorded cancelled by it
        stopped_by.append(signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)
    # SIGHUP would end the process by default; the worker has nothing to reload in place.
    loop.add_signal_handler(
        signal.SIGHUP,
        log.warning,
        "SIGHUP: the worker does not reload; restart it for a new config",
    )
    # Not a `with` block: its exit would wait for an abandoned sweep thread.
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    try:
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[SweepWorkflow],
            activities=[sweeps.sweep],
            activity_executor=executor,
            max_concurrent_activities=1,
            graceful_shutdown_timeout=timedelta(seconds=STOP_GRACE_SECONDS),
        )
        running = asyncio.create_task(worker.run(), name="temporal-worker")
        where = f"{temporal.address} ({temporal.namespace}), task queue {worker.task_queue}"
        log.info(
            "hub %s: worker polling %s as source %s", settings.hub_name, where, temporal.source
        )
        notifier.ready(f"polling {where}")
        _heartbeat(settings)
        pings = asyncio.create_task(_pings(notifier, where, settings), name="watchdog")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        pings.cancel()
        if running.done():
            notifier.stopping("the worker failed")
            stopping.cancel()
            exc = running.exception()
            log.error("the worker stopped: %s", exc)
            notifier.close()
            return 1
        log.info("stopping: a running sweep is cancelled (grace %.0f s)", STOP_GRACE_SECONDS)
        notifier.stopping("stopping (signal)")
        try:
            await asyncio.wait_for(worker.shutdown(), STOP_GRACE_SECONDS + 5.0)
        except TimeoutError:
            log.warning("the worker did not stop in time; leaving without it")
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    _record_stopped(settings, stopped_by[0] if stopped_by else None)
    notifier.close()
    return 0


async def _pings(notifier: Notifier, where: str, settings: Settings) -> None:
    """WATCHDOG=1 at half of WATCHDOG_USEC, and STATUS= with the last run, from the loop."""
    interval = watchdog_interval()
    step = min(interval, STATUS_SECONDS) if interval else STATUS_SECONDS
    waited = 0.0
    while True:
        await asyncio.sleep(step)
        if interval:
            notifier.watchdog()
        waited += step
        if waited >= STATUS_SECONDS:
            waited = 0.0
            notifier.status(f"polling {where}; {_last_run(settings)}")
            _heartbeat(settings)


def _heartbeat(settings: Settings) -> None:
    """Record that the worker is alive (``hub_state`` key :data:`HEARTBEAT_KEY`; the status
    page shows it beside the daemon's)."""
    try:
        with Store.open(settings.database_path) as store:
            store.set_state(HEARTBEAT_KEY, iso(utc_now()))
    except Exception as exc:  # the heartbeat must never stop the pings
        log.warning("cannot record the heartbeat: %s", exc)


def _record_stopped(settings: Settings, signal_name: str | None) -> None:
    """Record a clean stop at once (the heartbeat's key, as JSON): every status surface
    says ``stopped`` now, not ``alive`` until the heartbeat ages."""
    record = {"at": iso(utc_now()), "state": "stopped", "pid": os.getpid()}
    if signal_name:
        record["stopped_by"] = signal_name
    try:
        with Store.open(settings.database_path) as store:
            store.set_state(HEARTBEAT_KEY, json.dumps(record))
    except Exception as exc:  # the exit status must not depend on it
        log.warning("cannot record the stop: %s", exc)


def _last_run(settings: Settings) -> str:
    try:
        with Store.open(settings.database_path) as store:
            runs = store.runs(definition_id=settings.schedule.id, origins=("temporal",), limit=1)
    except Exception:  # the status line must never stop the pings
        return "last run unknown"
    if not runs:
        return "no run yet"
    return f"last run {runs[0].scheduled_for}: {runs[0].outcome}"
