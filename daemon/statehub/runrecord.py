"""The ``activity_runs`` row of a scheduled sweep that another scheduler than the daemon ran.

The daemon records its own fires (:meth:`statehub.fire.Runner.fire`). Every other path that
runs a slot of the ``[schedule]`` definition records its row here, so that the contract's
query (section 8) lists every run of the schedule, whatever ran it: the Temporal worker's
activity, a ``POST /consistency/sweep/remote-all`` with ``"scheduled": true`` (the
cluster's CronJob) and ``statehub sweep --scheduled`` (the archived emergency timer).

:class:`RunRecorder` keeps the daemon's ``scheduler_fire:<run_id>`` marker in ``hub_state``
while the run goes on, so a process killed mid-sweep leaves an interrupted ``error`` row
(:func:`statehub.fire.record_interrupted_fires`), then writes the row. :func:`scheduled_sweep`
wraps one sweep with it: ``definition_id`` is ``[schedule] id``, ``fired_at`` when the run
began and ``scheduled_for`` the newest slot of ``[schedule] trigger`` at or before that
moment, so a CronJob pod that starts 40 s late still records its slot. The outcomes are the
daemon's: ``swept`` (automation errors included: see the detail's ``exit_code``),
``lock_skipped``, ``error`` (the sweep raised; re-raised after recording).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from statehub.cron import cron_trigger, previous_fire_time
from statehub.errors import StatehubError, StoreError
from statehub.fire import MARKER_PREFIX, SWEEP_KEY, record_interrupted_fires
from statehub.settings import Settings
from statehub.store import ActivityRun, ProgressEvent, Store
from statehub.timefmt import iso, utc_now

log = logging.getLogger("statehub.runs")


class RunRecorder:
    """The ``activity_runs`` row of one run, and its marker while it runs.

    The marker is written at construction; :meth:`finish` writes the row and drops it.
    Neither raises: a database that cannot be used is logged (and kept in the row's
    ``record_error``), since the sweep itself reports it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str,
        definition_id: str,
        fired: datetime,
        scheduled_for: datetime,
        context: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.definition_id = definition_id
        self.fired = fired
        self.scheduled_for = scheduled_for
        self.context = context
        self.marker = MARKER_PREFIX + run_id
        marker = {
            "run_id": run_id,
            "definition_id": definition_id,
            "fired_at": iso(fired),
            "scheduled_for": iso(scheduled_for),
            "pid": os.getpid(),
            "origin": context.get("origin"),
            "mode": None,  # the daemon's mode does not apply to another scheduler's run
        }
        try:
            with Store.open(settings.database_path) as store:
                store.set_state(self.marker, json.dumps(marker))
        except StoreError as exc:
            log.error("run %s: the marker could not be written: %s", run_id, exc)

    def finish(self, outcome: str, started: float, **extra: Any) -> ActivityRun:
        """Record the run with ``outcome``; ``started`` is its ``time.monotonic()`` start."""
        self.context.update(extra)
        self.context["duration_seconds"] = round(time.monotonic() - started, 3)
        run = ActivityRun(
            run_id=self.run_id,
            definition_id=self.definition_id,
            fired_at=iso(self.fired),
            scheduled_for=iso(self.scheduled_for),
            outcome=outcome,
            context_snapshot=self.context,
        )
        try:
            with Store.open(self.settings.database_path) as store:
                store.record_run(run)
                store.delete_state(self.marker)
        except StoreError as exc:
            self.context["record_error"] = str(exc)
            log.error("run %s (%s) could not be recorded: %s", self.run_id, outcome, exc)
        else:
            log.info(
                "run %s for %s: %s as %s",
                self.run_id,
                run.scheduled_for,
                outcome,
                self.context.get("source"),
            )
        return run


def sweep_outcome(detail: dict[str, Any]) -> str:
    """The outcome of a run whose sweep recorded ``detail``: ``lock_skipped`` or ``swept``."""
    return "lock_skipped" if detail.get("lock_skipped") else "swept"


def slot_of(settings: Settings, moment: datetime) -> datetime:
    """The newest slot of ``[schedule] trigger`` at or before ``moment`` (itself if none)."""
    schedule = settings.schedule
    slot = previous_fire_time(cron_trigger(schedule.trigger, schedule.zone), moment)
    return moment if slot is None else slot


def scheduled_sweep(
    settings: Settings,
    *,
    origin: str,
    source: str,
    run: Callable[[], ProgressEvent],
    fired: datetime | None = None,
) -> ProgressEvent:
    """``run()`` (a sweep of all repos as ``source``), recorded as a run of the schedule.

    ``origin`` names the path in ``context_snapshot`` (``http``, ``cli``); ``fired`` is
    when the run was asked for (default: now). Returns the event; raises what ``run``
    raises, once the ``error`` row is recorded.
    """
    fired = fired or utc_now()
    schedule = settings.schedule
    recorder = RunRecorder(
        settings,
        run_id=str(uuid.uuid4()),
        definition_id=schedule.id,
        fired=fired,
        scheduled_for=slot_of(settings, fired),
        context={
            "definition_name": schedule.name,
            "origin": origin,
            "source": source,
            "scheduled": True,
            "pid": os.getpid(),
        },
    )
    started = time.monotonic()
    try:
        event = run()
    except Exception as exc:
        reason = str(exc) if isinstance(exc, StatehubError) else f"unexpected failure: {exc!r}"
        recorder.finish("error", started, error=reason)
        raise
    recorder.context[SWEEP_KEY] = event.detail
    recorder.context["progress_event_id"] = event.id
    recorder.finish(sweep_outcome(event.detail), started)
    return event


def record_interrupted(settings: Settings) -> None:
    """Record the runs whose process died mid-sweep (their markers) as ``error`` rows.

    For a process about to run a scheduled sweep, before its own marker exists. Never
    raises: a database that cannot be used is logged, and the sweep reports it.
    """
    try:
        with Store.open(settings.database_path) as store:
            record_interrupted_fires(store)
    except StoreError as exc:
        log.error("the runs of dead processes could not be recorded: %s", exc)
