"""Alerts that reach a person: ``[notify]`` pings and webhook posts, sent with httpx.

Two channels, both optional:

- ``ping_url``, a dead man's switch in the manner of healthchecks.io. Every scheduled sweep
  of all repos (any source but ``manual``: the daemon, a CronJob through the API, a timer
  through the command line) sends ``<url>/start`` when it starts, then ``<url>`` when it
  completes, or ``<url>/fail`` when it had an automation error (a C-00), each a ``POST``
  with a short text body. An external monitor then notices when the sweeps stop, whoever
  runs them. A lock-skipped sweep completes with a body that says so: another sweep runs.
- ``webhook_url``, a JSON ``POST`` for each change a person must see, never one per sweep:
  automation errors appearing or clearing, a finding of a check in ``alert_checks``
  appearing (or going), a workplan entering one of ``workplan_statuses`` (the registry's
  change, posted by the process that ran the sweep), the daemon taking over as fallback and
  handing back. What was last
  reported is kept in ``hub_state`` (keys ``notify:*``), so every process serving the same
  database reports a change once.

Nothing here blocks or fails a sweep. Messages go through one background thread per
process (:class:`Outbox`), with a bounded queue (a full queue drops the newest message,
with a warning), ``timeout_seconds`` for the whole of each request and no answer body read
(:mod:`statehub.httpsend`), and ``webhook_attempts`` tries of a webhook with a backoff (a
ping is sent once). A message that cannot be delivered is logged as a warning, and the
change it carried is marked unreported again (:attr:`Message.undo`): the next sweep posts
it again. The command line waits at most :data:`EXIT_WAIT_SECONDS` for its messages before
it exits.

The webhook's body: ``{"kind", "text", "at", "host", "details"}``; ``text`` is one line for
a person (chat webhooks show it as is), ``kind`` one of :data:`KINDS`.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statehub.contract import AUTOMATION_ERROR, SOURCE_MANUAL, Detail
from statehub.errors import UsageError
from statehub.settings import Settings
from statehub.store import ProgressEvent, Store
from statehub.sweepsummary import SweepSummary
from statehub.timefmt import iso, utc_now

if TYPE_CHECKING:  # httpx is imported when a message is sent: the idle daemon stays small
    import httpx

log = logging.getLogger("statehub.alerts")

KINDS = (
    "automation_error",
    "automation_recovered",
    "new_findings",
    "findings_resolved",
    "fallback_started",
    "fallback_ended",
    "workplan_status",
    "test",
)
QUEUE_SIZE = 64
BODY_LIMIT = 1000
"""Characters of a ping's body (healthchecks.io keeps the first 100 kB)."""
LISTED_FINDINGS = 50
EXIT_WAIT_SECONDS = 10.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0)
STATE_FINDINGS = "notify:findings"
STATE_AUTOMATION = "notify:automation_error"
STATE_FALLBACK = "notify:fallback"
SWEEP_ITSELF = "(sweep)"
"""The name under which an automation error of the sweep itself (no repo) is reported."""
SILENT_SOURCES = frozenset({SOURCE_MANUAL})
"""Sweeps of these sources are not scheduled: they send no ping."""


# -- delivery -------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One request to send: a ping (text body) or a webhook post (JSON)."""

    what: str  # for the log: "ping start", "webhook new_findings", ...
    url: str
    content: bytes
    content_type: str
    attempts: int
    timeout: float
    # Called when the message is dropped or not delivered: marks its change unreported, so
    # that the next sweep posts it again. Never raises (a failure is logged).
    undo: Callable[[], None] | None = None

    def failed(self) -> None:
        """The message will not be delivered: undo what marked its change reported."""
        if self.undo is None:
            return
        try:
            self.undo()
        except Exception:  # a store that cannot be written: the change stays marked
            log.warning("%s: could not mark its change unreported", self.what, exc_info=True)


class Outbox:
    """A background thread that sends :class:`Message` s in order; never raises to callers."""

    def __init__(self, *, size: int = QUEUE_SIZE) -> None:
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.delivered = 0
        self.failed = 0

    def put(self, message: Message) -> None:
        """Queue ``message``; drops it (with a warning) when the queue is full."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            log.warning(
                "%s to %s dropped: %d messages wait already",
                message.what,
                _safe(message.url),
                self._queue.maxsize,
            )
            message.failed()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every queued message was handled."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="statehub-alerts", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        from statehub.httpsend import bounded_client

        # One client for the thread's life: a keep-alive connection to the monitor. The
        # environment's proxy settings apply (HTTPS_PROXY, NO_PROXY), as for curl.
        with bounded_client() as client:
            while True:
                message = self._queue.get()
                try:
                    if deliver(client, message):
                        self.delivered += 1
                    else:
                        self.failed += 1
                        message.failed()
                finally:
                    self._queue.task_done()


def deliver(client: httpx.Client, message: Message) -> bool:
    """POST ``message`` with its retries; True when the receiver answered 2xx.

    Each attempt keeps to ``message.timeout`` as a whole; its answer's body is not read.
    """
    import httpx

    from statehub import httpsend

    attempt = 0
    while True:
        attempt += 1
        reason = ""
        again = attempt < message.attempts
        try:
            status = httpsend.post(
                client,
                message.url,
                content=message.content,
                content_type=message.content_type,
                timeout=message.timeout,
            )
        except httpx.HTTPError as exc:
            reason = type(exc).__name__  # its text may quote the URL, whose path is secret
        else:
            if 200 <= status < 300:
                return True
            reason = f"HTTP {status}"
            # A refusal (4xx but 429) will not change: sending again would not help.
            again = again and (status >= 500 or status == 429)
        if not again:
            log.warning(
                "%s to %s not delivered (%s) after %d attempt(s)%s",
                message.what,
                _safe(message.url),
                reason,
                attempt,
                "; posted again after the next sweep" if message.undo else "",
            )
            return False
        time.sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])


def _safe(url: str) -> str:
    """A URL for the log without its path (a ping URL's path is its secret)."""
    import httpx

    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


_outbox: Outbox | None = None
_outbox_lock = threading.Lock()


def outbox() -> Outbox:
    """This process's outbox (started at its first message)."""
    global _outbox  # noqa: PLW0603 - one sender thread per process
    with _outbox_lock:
        if _outbox is None:
            _outbox = Outbox()
        return _outbox


def flush(timeout: float = EXIT_WAIT_SECONDS) -> bool:
    """Wait (bounded) for this process's queued messages; True when all were handled."""
    with _outbox_lock:
        box = _outbox
    return True if box is None else box.flush(timeout)


# -- pings ----------------------------------------------------------------------------


def ping(settings: Settings, suffix: str, body: str) -> None:
    """Queue a ping of ``<ping_url><suffix>`` (``/start``, ``""``, ``/fail``) if configured."""
    url = settings.notify.ping_url
    if not url:
        return
    outbox().put(
        Message(
            what=f"ping {suffix.strip('/') or 'success'}",
            url=url + suffix,
            content=body[:BODY_LIMIT].encode("utf-8"),
            content_type="text/plain; charset=utf-8",
            attempts=1,
            timeout=settings.notify.timeout_seconds,
        )
    )


def sweep_summary(event: ProgressEvent) -> str:
    """A ping's body: the sweep in words (:mod:`statehub.sweepsummary`), then its first
    automation errors, one a line."""
    detail = event.detail
    summary = SweepSummary.of(detail, event_type=event.event_type)
    line = f"event {event.id} {summary.source}: {summary.words()}"
    if summary.lock_skipped:
        return line
    for error in (detail.get(Detail.AUTOMATION_ERRORS) or [])[:5]:
        if isinstance(error, dict):
            line += f"\n{error.get('repo') or '(sweep)'}: {error.get('message')}"
    return line


def observed_sweep(
    settings: Settings,
    *,
    source: str,
    whole_fleet: bool,
    run: Callable[[], ProgressEvent],
) -> ProgressEvent:
    """``run()`` (a sweep) with its pings around it and its changes posted after it.

    Raises what ``run`` raises (after a ``/fail`` ping); alerting itself never raises.
    """
    pinged = whole_fleet and source not in SILENT_SOURCES
    if pinged:
        _quietly(ping, settings, "/start", f"{source}: sweep of all repos starting")
    try:
        event = run()
    except UsageError:
        raise  # a request naming an unknown repo: nothing a monitor must hear of
    except Exception as exc:
        if pinged:
            _quietly(ping, settings, "/fail", f"{source}: the sweep failed: {exc}")
        _quietly(_post_failure, settings, source, exc)
        raise
    if pinged:
        failed = bool(event.detail.get(Detail.AUTOMATION_ERROR))
        _quietly(ping, settings, "/fail" if failed else "", sweep_summary(event))
    if not event.detail.get(Detail.LOCK_SKIPPED):
        _quietly(after_sweep, settings, event)
    return event


def _quietly(call: Callable[..., Any], *args: Any) -> None:
    try:
        call(*args)
    except Exception:  # an alert must never fail a sweep
        log.exception("alerting failed")


# -- webhook --------------------------------------------------------------------------


def chat_text(text: str) -> str:
    """``text`` with chat markup made inert: a repo's name or message may hold ``<!channel>``
    or a link disguised as ``<https://...|label>``; Slack and Mattermost read ``&``, ``<``
    and ``>`` escaped as entities as the characters themselves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post(
    settings: Settings,
    kind: str,
    text: str,
    details: dict[str, Any],
    undo: Callable[[], None] | None = None,
) -> None:
    """Queue one webhook post (if ``webhook_url`` is set); ``undo`` when not delivered."""
    url = settings.notify.webhook_url
    if not url:
        return
    body = {
        "kind": kind,
        "text": f"statehub: {chat_text(text)}",
        "at": iso(utc_now()),
        "host": socket.gethostname(),
        "details": details,
    }
    outbox().put(
        Message(
            what=f"webhook {kind}",
            url=url,
            content=json.dumps(body, ensure_ascii=False, default=str).encode("utf-8"),
            content_type="application/json",
            attempts=settings.notify.webhook_attempts,
            timeout=settings.notify.timeout_seconds,
            undo=undo,
        )
    )


def _unclaim(
    settings: Settings, key: str, claimed: str, previous: str | None
) -> Callable[[], None]:
    """What marks a change unreported again: ``key`` back to ``previous`` unless a later
    sweep moved it on since."""

    def undo() -> None:
        with Store.open(settings.database_path) as store:
            store.restore_state(key, claimed, previous)

    return undo


_last_failure: list[str] = []


def _post_failure(settings: Settings, source: str, exc: Exception) -> None:
    """A sweep that raised (its database unusable): post once per distinct reason."""
    reason = str(exc)
    if _last_failure == [reason]:
        return
    _last_failure[:] = [reason]
    post(
        settings,
        "automation_error",
        f"a sweep by {source} could not run: {reason}",
        {"source": source, "error": reason},
    )


def after_sweep(settings: Settings, event: ProgressEvent) -> None:
    """Post what changed with this sweep: automation errors, findings of ``alert_checks``.

    Automation errors are those standing (repos whose assessment is a C-00) and the
    sweep's own (an error with no repo, shown as ``(sweep)``): a repo joining them is
    posted as ``automation_error``, none left as ``automation_recovered``.
    """
    if not settings.notify.webhook_url:
        return
    _last_failure.clear()
    detail = event.detail
    source = detail.get("source")
    watched = set(settings.notify.alert_checks)
    errors = [e for e in detail.get("automation_errors") or [] if isinstance(e, dict)]
    with Store.open(settings.database_path) as store:
        standing = store.open_findings()
        broken = {row[0] for row in standing if row[2] == AUTOMATION_ERROR}
        if any(error.get("repo") is None for error in errors):
            broken.add(SWEEP_ITSELF)
        broken_text = json.dumps(sorted(broken))
        was_broken_text = store.swap_state(STATE_AUTOMATION, broken_text)
        rows = [row for row in standing if row[2] in watched]
        current = {(row[0], row[2]) for row in rows}
        current_text = json.dumps(sorted([list(pair) for pair in current]))
        previous_text = store.swap_state(STATE_FINDINGS, current_text)
    # Claimed above (another process serving this database posts nothing of it), given
    # back when a post is not delivered: a change is reported once it reached the receiver.
    was_broken = set(json.loads(was_broken_text or "[]"))
    undo_automation = _unclaim(settings, STATE_AUTOMATION, broken_text, was_broken_text)
    undo_findings = _unclaim(settings, STATE_FINDINGS, current_text, previous_text)
    previous = {(str(a), str(b)) for a, b in json.loads(previous_text or "[]")}
    common = {"source": source, "event_id": event.id}
    newly_broken = sorted(broken - was_broken)
    if newly_broken:
        reasons = {row[0]: row[3] for row in standing if row[2] == AUTOMATION_ERROR}
        own = [str(e.get("message")) for e in errors if e.get("repo") is None]
        if own:
            reasons[SWEEP_ITSELF] = own[0]
        first = newly_broken[0]
        post(
            settings,
            "automation_error",
            f"automation error (C-00): {first}: {reasons.get(first)}"
            + (f" (and {len(newly_broken) - 1} more)" if len(newly_broken) > 1 else ""),
            {
                **common,
                "automation_errors": [
                    {"repo": name, "message": reasons.get(name)}
                    for name in newly_broken[:LISTED_FINDINGS]
                ],
                "total": len(broken),
            },
            undo_automation,
        )
    elif was_broken and not broken:
        post(
            settings,
            "automation_recovered",
            f"no automation error left (event {event.id}, {source})",
            {**common, "cleared": sorted(was_broken)[:LISTED_FINDINGS]},
            undo_automation,
        )
    appeared = sorted(current - previous)
    if appeared:
        messages = {(row[0], row[2]): row[3] for row in rows}
        post(
            settings,
            "new_findings",
            f"{len(appeared)} new finding(s): {_pairs_text(appeared)}",
            {
                **common,
                "findings": [
                    {"repo": repo, "check": check, "message": messages.get((repo, check))}
                    for repo, check in appeared[:LISTED_FINDINGS]
                ],
            },
            undo_findings,
        )
    _workplans_entering(settings, event)
    resolved = sorted(previous - current)
    if resolved:
        post(
            settings,
            "findings_resolved",
            f"{len(resolved)} finding(s) gone: {_pairs_text(resolved)}",
            {
                **common,
                "findings": [
                    {"repo": repo, "check": check} for repo, check in resolved[:LISTED_FINDINGS]
                ],
            },
            undo_findings,
        )


def _workplans_entering(settings: Settings, event: ProgressEvent) -> None:
    """Post the plans that entered one of ``workplan_statuses`` with this sweep.

    The registry records each transition once, with the sweep that saw it, so reading the
    sweep's own changes posts each once.
    """
    watched = settings.notify.workplan_statuses
    run_id = event.detail.get("run_id")
    if not watched or not isinstance(run_id, str):
        return
    with Store.open(settings.database_path) as store:
        entering = store.workplans_entering(run_id, watched)
    if not entering:
        return
    first = entering[0]
    post(
        settings,
        "workplan_status",
        f"workplan in {first['repo']}: {first['summary']}"
        + (f" (and {len(entering) - 1} more)" if len(entering) > 1 else ""),
        {
            "source": event.detail.get("source"),
            "event_id": event.id,
            "workplans": [
                {
                    key: change[key]
                    for key in ("repo", "plan_id", "path", "old_status", "new_status", "summary")
                }
                for change in entering[:LISTED_FINDINGS]
            ],
            "total": len(entering),
        },
    )


def _pairs_text(pairs: Iterable[tuple[str, str]], limit: int = 5) -> str:
    listed = list(pairs)
    text = ", ".join(f"{check} in {repo}" for repo, check in listed[:limit])
    return text + (f" and {len(listed) - limit} more" if len(listed) > limit else "")


def fallback_state(settings: Settings, store: Store, *, active: bool, detail: str) -> None:
    """The standby daemon's state after a fire: post when it takes over or hands back.

    Never raises: a failure is logged and the fire goes on.
    """
    if settings.notify.webhook_url:
        _quietly(_fallback_changes, settings, store, active, detail)


def _fallback_changes(settings: Settings, store: Store, active: bool, detail: str) -> None:
    now = json.dumps(active)
    held = store.swap_state(STATE_FALLBACK, now)
    was = held == "true"
    source = {"source": settings.schedule.fallback_source}
    undo = _unclaim(settings, STATE_FALLBACK, now, held)
    if active and not was:
        post(settings, "fallback_started", f"the standby daemon takes over: {detail}", source, undo)
    elif was and not active:
        text = f"the primary sweeps again, handed back: {detail}"
        post(settings, "fallback_ended", text, source, undo)


# -- statehub notify test -------------------------------------------------------------


def send_test(settings: Settings, out: Callable[[str], object]) -> bool:
    """Send one of each (ping start, success, fail; one webhook post) now; True if all
    were delivered. Each result is one line through ``out``."""
    notify = settings.notify
    messages: list[Message] = []
    if notify.ping_url:
        for suffix in ("/start", "", "/fail"):
            messages.append(
                Message(
                    what=f"ping {suffix.strip('/') or 'success'}",
                    url=notify.ping_url + suffix,
                    content=b"statehub notify test",
                    content_type="text/plain; charset=utf-8",
                    attempts=1,
                    timeout=notify.timeout_seconds,
                )
            )
    if notify.webhook_url:
        body = {
            "kind": "test",
            "text": "statehub: test alert (statehub notify test); nothing is wrong",
            "at": iso(utc_now()),
            "host": socket.gethostname(),
            "details": {"alert_checks": list(notify.alert_checks)},
        }
        messages.append(
            Message(
                what="webhook test",
                url=notify.webhook_url,
                content=json.dumps(body).encode("utf-8"),
                content_type="application/json",
                attempts=1,
                timeout=notify.timeout_seconds,
            )
        )
    from statehub.httpsend import bounded_client

    ok = True
    with bounded_client() as client:
        for message in messages:
            delivered = deliver(client, message)
            ok = ok and delivered
            out(
                f"{message.what}: {'delivered' if delivered else 'NOT delivered (see above)'}"
                f" to {_safe(message.url)}"
            )
    return ok
