"""SQLite: the store. With its modules, the only place that writes SQL.

| module | holds |
| --- | --- |
| ``connection.py`` | open and migrate, transactions, sqlite3 errors mapped to StoreError |
| ``schema.py`` | the numbered migrations and how they are applied |
| ``records.py`` | the record types: event, standing assessment, activity run |
| ``events.py`` | progress events: append, read, prune |
| ``compact.py`` | how an event's long lists are stored apart, and made whole again |
| ``assessments.py`` | the standing assessments and their findings |
| ``runs.py`` | the activity runs (``activity_runs``) |
| ``hubstate.py`` | the small key/value state (``hub_state``) |
| ``reports.py`` | the read models of ``compare``, the page, metrics and health |
| ``workplans.py`` | the workplan registry: the fleet's plans, their changes |

Inserts, upserts and simple reads go through sqlite-utils (:attr:`Store.db`), except on the
path of an unchanged re-sweep, which stays raw ``sqlite3``: reading the standing assessments,
``mark_assessed``, ``forget_repos``, appending the event and ``hub_state`` (the in-progress
marker, the daily prune's stamp). Importing sqlite-utils there would cost about 30 ms of that
command's 0.5 s target (docs, Performance), and ``tests/test_store.py`` checks that such a
sweep does not load it. Joins, ``json_extract`` and aggregates, which sqlite-utils has no
form for, are SQL too.
"""

from __future__ import annotations

from statehub.store.assessments import Assessments
from statehub.store.connection import BUSY_TIMEOUT_MS, MIN_FREE_BYTES, StoreBase, free_bytes
from statehub.store.events import Events
from statehub.store.hubstate import HubState
from statehub.store.records import ActivityRun, Assessment, ProgressEvent, StandingSummary
from statehub.store.reports import Reports
from statehub.store.runs import Runs
from statehub.store.workplans import Workplans

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIN_FREE_BYTES",
    "ActivityRun",
    "Assessment",
    "ProgressEvent",
    "StandingSummary",
    "Store",
    "StoreBase",
    "free_bytes",
]


class Store(Events, Assessments, Runs, HubState, Reports, Workplans):
    """The SQLite store. Open it with :meth:`open`; every method raises StoreError."""
