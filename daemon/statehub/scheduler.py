"""The daemon: the ``[schedule]`` definition run by APScheduler, its modes, systemd, signals.

APScheduler runs one job, the fire (:meth:`statehub.fire.Runner.fire`, also the path of
``statehub schedule run-now``), and a heartbeat job that pings the systemd watchdog, so a
hung scheduler loop stops the pings; sweeps run in worker threads, never in that loop.
The trigger is :func:`statehub.cron.cron_trigger` (cron's own meaning of the fields).
One daemon per database (:func:`statehub.lock.hold_role`: a second one exits 78 naming the
first's pid); the daemon records its effective schedule and its life in ``hub_state``
(:mod:`statehub.daemonstate`), ``stopped`` at once at a clean stop.

Decisions where the contract is silent (docs/runbook.md repeats them for operators):

- **Misfires.** APScheduler's default grace is 1 s: a fire whose thread starts a moment late
  (a loaded host, a slow NTP step) is silently dropped. ``skip`` uses
  ``misfire_grace_seconds`` (default 30) so only a real gap (suspend, clock jump) drops a
  fire; ``run_once`` has no limit: after a gap the newest missed slot runs once (coalesced).
  A dropped fire is not an outcome of the contract: it is logged as a WARNING and listed
  under ``missed_slots`` in the context of the next recorded run. Slots that passed while
  the daemon was not running are never run afterwards.
- **Overlap.** ``max_instances = 1``; APScheduler only logs a warning for a fire that finds
  the last one running, so the daemon listens for ``EVENT_JOB_MAX_INSTANCES`` and records
  the decision ``overlap_skipped`` (``schedule_decisions``, not a run).
- **Hard timeout.** The sweep runs in a worker thread; the fire gives up waiting after
  ``max_seconds`` + 60 s and records ``error``. The abandoned sweep keeps the sweep lock
  until it ends, so the next fires record ``lock_skipped`` rather than wedging.
- **Stopping.** SIGTERM or SIGINT stops a running sweep at once: it records itself
  cancelled, and the run ``cancelled`` with ``cancelled_by`` the signal (statehub.runs).
  A run whose process died without a word (kill -9, power loss) is recorded as an
  ``error`` with ``{"interrupted": true}`` at the next daemon start or ``run-now``.
- **run-now --force** is the canary: it sweeps where the schedule would not (standby with a
  healthy primary, ``enabled = false``) as source ``canary``, which never doubles a slot.
- **Cron.** The trigger has crontab(5) meaning: day-of-week 0 and 7 are Sunday (APScheduler
  3 alone reads 0 as Monday), and with both day fields restricted a day matching either runs.
- Sweeps started by the daemon fetch only with ``[schedule] remote = true`` (off by default:
  the shipped unit mounts the repos read-only).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from statehub.cancel import Cancel, raise_on_sigterm
from statehub.contract import SWEEP_RESULT_KEY, RunOutcome
from statehub.cron import cron_trigger, next_fire_times
from statehub.daemonstate import (
    HEARTBEAT_KEY,
    HEARTBEAT_SECONDS,
    DaemonRecord,
    DaemonState,
    daemon_schedule,
)
from statehub.errors import ConfigError
from statehub.fire import DAEMON_ORIGINS, Backend, Clock, Runner, Running, make_backend
from statehub.live import config_changes
from statehub.lock import hold_role
from statehub.logs import setup_logging
from statehub.runs import record_interrupted, run_failed
from statehub.settings import (
    ScheduleSettings,
    Settings,
    load_settings,
    public_dict,
    read_token,
)
from statehub.store import ActivityRun, Store
from statehub.sweepsummary import sweep_words
from statehub.systemd_notify import Notifier, watchdog_interval
from statehub.timefmt import iso, parse_iso, utc_now

log = logging.getLogger("statehub.scheduler")

FIRE_JOB_ID = "consistency-sweep"
WATCHDOG_JOB_ID = "watchdog"
HEARTBEAT_JOB_ID = "heartbeat"
STOP_GRACE_SECONDS = 7.0  # after SIGTERM, how long the cancelled run gets to record itself

__all__ = ["HEARTBEAT_KEY", "Daemon", "run_daemon"]


# -- the trigger ----------------------------------------------------------------------


def misfire_grace(settings: Settings) -> int | None:
    """APScheduler's ``misfire_grace_time`` for the policy (None: run however late)."""
    schedule = settings.schedule
    return schedule.misfire_grace_seconds if schedule.misfire_policy == "skip" else None


def schedule_trigger(settings: Settings) -> Any:
    """The APScheduler trigger of ``[schedule]``; ConfigError naming file, key and reason."""
    schedule = settings.schedule
    try:
        return cron_trigger(schedule.trigger, schedule.zone)
    except ValueError as exc:
        shown = str(settings.config_file or "(built-in defaults)")
        raise ConfigError(shown, "schedule.trigger", f"{schedule.trigger!r}: {exc}") from None


# A hook of the test suite, not a setting (issue 24): set to N (a divisor of 60), the daemon
# fires at every N-th second of the minute instead of at [schedule] trigger, so that a test
# of real fires takes seconds, not minutes. Read from this process's environment only, never
# from the configuration file; a daemon that runs with it says so at WARNING.
TEST_TRIGGER_SECONDS_ENV = "_STATEHUB_TEST_TRIGGER_SECONDS"


def _test_trigger(settings: Settings) -> Any:
    """The seconds-level trigger of :data:`TEST_TRIGGER_SECONDS_ENV`, or None when unset."""
    seconds = os.environ.get(TEST_TRIGGER_SECONDS_ENV, "")
    if not seconds:
        return None
    log.warning("test trigger: firing every %s s, not at %r", seconds, settings.schedule.trigger)
    return CronTrigger(second=f"*/{int(seconds)}", timezone=settings.schedule.zone)


def validate_for_daemon(settings: Settings) -> Any:
    """Check what only the daemon needs (trigger, API token); returns the trigger.

    Raises ConfigError naming file, key and reason.
    """
    trigger = schedule_trigger(settings)
    if settings.schedule.trigger_via == "http":
        read_token(settings)
    test_trigger = _test_trigger(settings)
    return trigger if test_trigger is None else test_trigger


# -- the daemon -----------------------------------------------------------------------


class _SlotJob:
    """An APScheduler job as seen by one submission: its function also gets the slot.

    APScheduler 3 never tells a job which scheduled time it runs for; the fire records it
    as ``scheduled_for``. The job is coalesced, so a submission has one run time.
    """

    def __init__(self, job: Any, slot: datetime) -> None:
        self._job = job
        self.kwargs = {**job.kwargs, "scheduled_for": slot}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)


class _SlotExecutor(ThreadPoolExecutor):  # type: ignore[misc] # APScheduler is untyped
    """APScheduler's thread pool, handing the fire its slot.

    ``_do_submit_job`` is private: no public API tells a job which run time it runs for
    (``EVENT_JOB_SUBMITTED`` is dispatched after the job may have started). The version
    range is capped in pyproject.toml, and tests/test_runs.py fails loudly when it moves.
    """

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        if job.id == FIRE_JOB_ID:
            job = _SlotJob(job, run_times[-1])
        super()._do_submit_job(job, run_times)


class _ReportedByDaemon(logging.Filter):
    """Drops APScheduler's warnings for the fires the daemon records and logs itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(
            ('Execution of job "%s" skipped', 'Run time of job "%s" was missed')
        )


def _short_time(moment: datetime | None, *, now: datetime) -> str:
    if moment is None:
        return "none"
    utc = moment.astimezone(UTC)
    if utc.date() == now.astimezone(UTC).date():
        return utc.strftime("%H:%M:%SZ")
    return utc.strftime("%Y-%m-%d %H:%M:%SZ")


class Daemon:
    """The schedule under APScheduler, with systemd notifications and reloads.

    ``trigger``, ``backend``, ``hard_timeout`` and ``clock`` exist for tests: a second-level
    trigger, a slow sweep, a short timeout.
    """

    def __init__(
        self,
        settings: Settings,
        config_path: str | None = None,
        *,
        notifier: Notifier | None = None,
        trigger: Any = None,
        backend: Callable[[Settings], Backend] | None = None,
        hard_timeout: float | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config_path = config_path
        self.notifier = notifier if notifier is not None else Notifier()
        self._trigger_override = trigger
        self._make_backend = backend or make_backend
        self._hard_timeout = hard_timeout
        self._clock = clock
        self._cancel = Cancel()
        self._lock = threading.Lock()
        self._running: Running | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._last: ActivityRun | None = None
        self._missed: list[str] = []
        self._scheduler: Any = None
        self._trigger = trigger if trigger is not None else validate_for_daemon(settings)
        self.settings = settings
        self.runner = self._runner_for(settings)
        self.record = DaemonRecord(settings, started=clock())

    def _runner_for(self, settings: Settings) -> Runner:
        return Runner(
            settings,
            backend=self._make_backend(settings),
            clock=self._clock,
            hard_timeout=self._hard_timeout,
            cancel=self._cancel,
        )

    # -- life cycle

    def start(self) -> None:
        """Record interrupted fires, schedule the job, start, then READY=1."""
        with Store.open(self.settings.database_path) as store:
            record_interrupted(store, clock=self._clock)
            # The start line's "last:" is the daemon's last recorded fire, not "none" after
            # a restart, nor a run of the cluster's or the archived timer's.
            # Its last run or decision (an idle standby's last fire is a decision).
            recorded = store.runs(
                definition_id=self.settings.schedule.id, origins=DAEMON_ORIGINS, limit=1
            ) + store.decisions(definition_id=self.settings.schedule.id, limit=1)
        with self._lock:
            if self._last is None and recorded:
                self._last = max(recorded, key=lambda run: run.fired_at)
        scheduler = BackgroundScheduler(
            timezone=UTC, executors={"default": _SlotExecutor(max_workers=4)}
        )
        scheduler.add_listener(
            self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR
        )
        schedule = self.settings.schedule
        scheduler.add_job(
            self._on_fire,
            trigger=self._trigger,
            id=FIRE_JOB_ID,
            name=schedule.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=misfire_grace(self.settings),
        )
        interval = watchdog_interval()
        if interval is not None:
            scheduler.add_job(
                self.notifier.watchdog,
                trigger=IntervalTrigger(seconds=interval, timezone=UTC),
                id=WATCHDOG_JOB_ID,
                name="systemd watchdog",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        scheduler.add_job(
            self._heartbeat,
            trigger=IntervalTrigger(seconds=HEARTBEAT_SECONDS, timezone=UTC),
            id=HEARTBEAT_JOB_ID,
            name="heartbeat",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            logging.getLogger(name).addFilter(_ReportedByDaemon())
        self._heartbeat()
        self._scheduler = scheduler
        scheduler.start()
        self.notifier.ready(self.status_line())
        if interval is not None:
            self.notifier.watchdog()
        log.info(
            "scheduled %r (%s): trigger %r in %s, misfire %s, mode %s%s, via %s; %s",
            schedule.name,
            schedule.id,
            schedule.trigger,
            schedule.timezone,
            schedule.misfire_policy,
            schedule.mode,
            "" if schedule.enabled else " (disabled: fires are recorded, nothing swept)",
            schedule.trigger_via,
            self.status_line(),
        )

    def _heartbeat(self) -> None:
        """Record that the daemon is alive, with the schedule it runs (statehub.daemonstate)."""
        self.record.alive(self.settings, at=self._clock())

    def reload(self) -> bool:
        """Re-read the configuration (SIGHUP); a bad one is logged and the old one kept."""
        self.notifier.reloading()
        try:
            settings = load_settings(self.config_path)
            trigger = validate_for_daemon(settings)
            if self._trigger_override is not None:
                trigger = self._trigger_override
            runner = self._runner_for(settings)
        except ConfigError as exc:
            log.error("configuration reload refused, keeping the previous one: %s", exc)
            self.notifier.ready(self.status_line())
            return False
        old, self.settings = self.settings, settings
        self.runner = runner
        self.record.alive(settings, at=self._clock())
        changes = config_changes(public_dict(old), public_dict(settings))
        old_schedule, new_schedule = old.schedule, settings.schedule
        if self._scheduler is not None:
            if (old_schedule.trigger, old_schedule.timezone) != (
                new_schedule.trigger,
                new_schedule.timezone,
            ):
                self._trigger = trigger
                self._scheduler.reschedule_job(FIRE_JOB_ID, trigger=trigger)
            self._scheduler.modify_job(
                FIRE_JOB_ID, name=new_schedule.name, misfire_grace_time=misfire_grace(settings)
            )
        log.info(
            "configuration reloaded from %s: %s; %s",
            settings.config_file or "(built-in defaults)",
            "; ".join(changes) if changes else "no change",
            self.status_line(),
        )
        self.notifier.ready(self.status_line())
        return True

    def stop(self, reason: str) -> None:
        """STOPPING=1, no more fires, a running sweep stopped (recorded ``cancelled`` by
        ``reason``, the signal), then ``stopped`` recorded."""
        self.notifier.stopping(f"stopping ({reason})")
        log.info("stopping (%s)", reason)
        self._cancel.cancel(reason)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if not self._idle.wait(STOP_GRACE_SECONDS):
            log.warning("a run is still going after %.0f s: leaving it", STOP_GRACE_SECONDS)
        self.record.stopped(reason, at=self._clock())

    # -- fires

    def _on_fire(self, scheduled_for: datetime | None = None) -> None:
        # The default only satisfies APScheduler's signature check: _SlotExecutor passes it.
        scheduled_for = scheduled_for or self._clock()
        run_id = str(uuid.uuid4())
        with self._lock:
            self._running = Running(run_id=run_id, since=self._clock(), scheduled_for=scheduled_for)
            self._idle.clear()
            missed, self._missed = self._missed, []
            runner = self.runner
        self.notifier.status(self.status_line())
        try:
            run = runner.fire(
                scheduled_for=scheduled_for,
                run_id=run_id,
                extra_context={"missed_slots": missed} if missed else None,
            )
        finally:
            with self._lock:
                self._running = None
                self._idle.set()
        with self._lock:
            self._last = run
        self.notifier.status(self.status_line())

    def _on_event(self, event: Any) -> None:
        if event.job_id != FIRE_JOB_ID:
            return
        if event.code == EVENT_JOB_MAX_INSTANCES:
            with self._lock:
                running, runner = self._running, self.runner
            run = runner.record_overlap(event.scheduled_run_times[-1], running)
            if run is not None:
                with self._lock:
                    self._last = run
                self.notifier.status(self.status_line())
        elif event.code == EVENT_JOB_MISSED:
            slot = iso(event.scheduled_run_time)
            log.warning(
                "the fire for %s was missed by more than the %d s misfire grace: skipped",
                slot,
                self.settings.schedule.misfire_grace_seconds,
            )
            with self._lock:
                self._missed.append(slot)
        elif event.code == EVENT_JOB_ERROR:
            log.error("the fire for %s failed: %r", iso(event.scheduled_run_time), event.exception)

    # -- status

    def next_fire_time(self) -> datetime | None:
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job(FIRE_JOB_ID)
        upcoming: datetime | None = None if job is None else job.next_run_time
        return upcoming

    def status_line(self) -> str:
        """``standby; last: primary_healthy at 10:15:00Z; next: 10:30:00Z`` (ASCII)."""
        schedule = self.settings.schedule
        now = self._clock()
        head = schedule.mode if schedule.enabled else f"{schedule.mode}, disabled (enabled = false)"
        with self._lock:
            running, last = self._running, self._last
        if running is not None:
            middle = (
                f"running since {_short_time(running.since, now=now)} "
                f"(slot {_short_time(running.scheduled_for, now=now)})"
            )
        elif last is not None:
            middle = f"last: {last.outcome} at {_short_time(parse_iso(last.fired_at), now=now)}"
        else:
            middle = "last: none"
        return f"{head}; {middle}; next: {_short_time(self.next_fire_time(), now=now)}"


def run_daemon(config_path: str | None) -> int:
    """``statehub daemon``: run until SIGTERM/SIGINT; SIGHUP reloads. Returns the exit status.

    A bad configuration raises ConfigError (exit 78) before anything is scheduled.
    """
    settings = load_settings(config_path)
    setup_logging()
    requests: queue.SimpleQueue[str] = queue.SimpleQueue()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # SimpleQueue.put is reentrant: safe in a signal handler.
        requests.put("reload" if signum == signal.SIGHUP else signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    daemon = Daemon(settings, config_path)
    # One daemon per database: a second one exits 78 naming the first (kept to the end).
    _held = hold_role(settings.database_path, "daemon")
    daemon.start()
    while True:
        request = requests.get()
        if request != "reload":
            break
        daemon.reload()
    daemon.stop(request)
    _exit_if_stuck()
    return 0


def _exit_if_stuck() -> None:
    """Leave now when a non-daemon thread would keep the interpreter from exiting."""
    deadline = time.monotonic() + 1.0
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("thread %s is still running at exit: leaving without it", thread.name)
            logging.shutdown()
            sys.stderr.flush()
            os._exit(0)


# -- commands -------------------------------------------------------------------------


def definition(settings: Settings) -> dict[str, Any]:
    """The schedule definition as a plain dict, with the effective misfire grace."""
    document = settings.schedule.model_dump(mode="json")
    document["effective_misfire_grace_seconds"] = misfire_grace(settings)
    return document


def schedule_show_command(settings: Settings, *, as_json: bool) -> int:
    """``statehub schedule show``: the definition and its next five fire times.

    While a daemon is alive on the database, the schedule shown is the one it runs (its
    effective ``[schedule]``, environment overrides included: statehub.daemonstate), and
    what differs from this configuration is named.
    """
    shown, daemon = daemon_schedule(settings)
    running = daemon is not None and daemon.alive
    effective = settings
    if running:
        keys = {key: shown[key] for key in shown if key in ScheduleSettings.model_fields}
        effective = settings.model_copy(
            update={"schedule": settings.schedule.model_copy(update=keys)}
        )
    schedule = effective.schedule
    differs = [
        key
        for key in ("trigger", "timezone", "mode", "enabled", "source", "primary_sources")
        if getattr(settings.schedule, key) != getattr(schedule, key)
    ]
    times = next_fire_times(schedule_trigger(effective), 5)
    if as_json:
        document = {
            "definition": definition(effective),
            "daemon": None if daemon is None else daemon.as_dict(),
            "differs_from_config": differs,
            "next_fire_times": [iso(moment) for moment in times],
            "next_fire_times_local": [moment.isoformat() for moment in times],
        }
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return 0
    grace = misfire_grace(effective)
    lines = [f"{schedule.name} ({schedule.id})"]
    if daemon is not None:
        lines.append(f"  daemon           {_daemon_line(daemon)}")
    if running and differs:
        lines.append(
            "  (the running daemon's schedule; this configuration differs in "
            + ", ".join(differs)
            + ")"
        )
    lines += [
        f"  trigger          {schedule.trigger}  in {schedule.timezone}",
        f"  misfire          {schedule.misfire_policy}, "
        + (f"grace {grace} s" if grace is not None else "runs once however late"),
        f"  enabled          {'yes' if schedule.enabled else 'no: fires are recorded as disabled'}",
        f"  mode             {schedule.mode}",
    ]
    if schedule.mode == "standby":
        lines.append(
            f"  primary sources  {', '.join(schedule.primary_sources)} "
            f"(idle while one swept within {schedule.primary_grace_minutes} min)"
        )
        lines.append(f"  fallback source  {schedule.fallback_source}")
    else:
        lines.append(f"  source           {schedule.source}")
    via = schedule.trigger_via + (
        f" ({effective.schedule_api_url})" if schedule.trigger_via == "http" else ""
    )
    lines.append(f"  trigger_via      {via}")
    if schedule.timezone in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"):
        # One column: the same time twice says nothing (issue 15).
        lines.append(f"next fire times ({schedule.timezone}):")
        lines.extend(f"  {moment.strftime('%a %Y-%m-%d %H:%M')}Z" for moment in times)
    else:
        lines.append(f"next fire times ({schedule.timezone} | UTC):")
        for moment in times:
            lines.append(
                f"  {moment.strftime('%a %Y-%m-%d %H:%M %Z')}  |  "
                f"{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M')}Z"
            )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _daemon_line(daemon: DaemonState) -> str:
    if daemon.state == "alive":
        return f"alive, pid {daemon.pid} on {daemon.host}, since {daemon.started_at}"
    if daemon.state == "stopped":
        return f"stopped at {daemon.stopped_at} ({daemon.stopped_by}), pid {daemon.pid}"
    return f"gone: no heartbeat since {daemon.heartbeat_at} (pid {daemon.pid} on {daemon.host})"


def run_now_command(settings: Settings, *, force: bool, as_json: bool) -> int:
    """``statehub schedule run-now``: one fire now, recorded like a scheduled one.

    Exit status 1 when the outcome is ``error`` or the sweep had automation errors.
    """
    setup_logging(level=logging.WARNING)
    # SIGTERM unwinds like ^C: the run stops its sweep and records itself cancelled.
    raise_on_sigterm()
    runner = Runner(settings)
    with Store.open(settings.database_path) as store:
        record_interrupted(store)
    now = utc_now()
    run = runner.fire(scheduled_for=now, fired_at=now, force=force, origin="run-now")
    if as_json:
        sys.stdout.write(json.dumps(run.as_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(_describe_run(run))
    stopper = str(run.context_snapshot.get("cancelled_by"))
    if run.outcome == RunOutcome.CANCELLED and stopper in signal.Signals.__members__:
        return 128 + int(signal.Signals[stopper])  # as a shell reports a signal's end
    return 1 if run_failed(run) else 0


def _describe_run(run: ActivityRun) -> str:
    context = run.context_snapshot
    lines = [
        f"run {run.run_id}: {run.outcome}" + (" (forced)" if context.get("forced") else ""),
        f"  definition     {run.definition_id}",
        f"  fired_at       {run.fired_at}",
        f"  scheduled_for  {run.scheduled_for}",
        f"  mode           {context.get('mode')}, source {context.get('source') or '-'}, "
        f"via {context.get('trigger_via')}",
    ]
    if "primary_last_sweep_at" in context:
        lines.append(
            f"  primary        last swept {context['primary_last_sweep_at'] or 'never'}"
            f" ({context.get('primary_last_source') or '-'})"
        )
    if context.get("cancelled_by"):
        lines.append(f"  cancelled by   {context['cancelled_by']}")
    if context.get("error"):
        lines.append(f"  error          {context['error']}")
    sweep = context.get(SWEEP_RESULT_KEY)
    if isinstance(sweep, dict):
        lines.append(f"  sweep          {sweep_words(sweep)}")
    # The whole context is for scripts: --json prints it (issue 15).
    lines.append("the whole record: statehub schedule run-now --json, or statehub runs --json")
    return "\n".join(lines) + "\n"
