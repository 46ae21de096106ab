"""Serving the HTTP app: uvicorn, hardened against connections that never finish a request.

uvicorn (0.29 .. 0.55 at least) arms its only per-connection timer, ``timeout_keep_alive``,
after a response: a connection that opens and never completes its first request has no
timer at all, and neither has one that sends half a second request. Such connections were
held forever, so 1,100 of them exhausted the open-files limit (1,024 under systemd by
default), and asyncio then logged ``socket.accept() out of system resource`` many times a
millisecond (issue 12). No uvicorn option bounds this (``limit_concurrency`` answers 503 to
real requests instead, ``backlog`` only sizes the kernel queue, and httptools has no such
timer either), so :func:`guarded_protocol` builds a small subclass of uvicorn's h11
protocol:

- **A request deadline.** From a connection's start, and from the first byte of each
  further request on it, the whole request (headers, and the body of a POST) must arrive
  within ``[api] header_timeout_seconds``; else the connection is closed, without answer.
- **A cap on unfinished requests.** At most :func:`pending_cap` connections may hold an
  unfinished request; a new one beyond that closes the oldest, so a flood never takes the
  descriptors a real request needs.
- **A bounded log.** Connections closed either way are counted, and one summary line is
  logged at most every :data:`SUMMARY_SECONDS` (and at stop); asyncio's accept errors are
  counted into it too instead of being logged one by one.

:func:`raise_open_files_limit` lifts the soft open-files limit to the hard one (bounded),
where the process may (the shipped unit sets ``LimitNOFILE`` instead and forbids
``setrlimit``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import resource
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("statehub.api")

SUMMARY_SECONDS = 10.0
"""At most one summary line of closed connections per this many seconds."""
OPEN_FILES_WANTED = 65536
"""The soft open-files limit the server asks for (never above the hard limit)."""
RESERVED_FILES = 64
"""Descriptors kept for the database, the lock, the log and real requests."""

_ACCEPT_ERROR = "socket.accept() out of system resource"


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Lift the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit); the new soft.

    Where the process may not (a seccomp filter, as in the shipped unit), the limit stays
    as it is: the unit sets ``LimitNOFILE`` itself.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            return soft
        return target
    return soft


def pending_cap(open_files: int) -> int:
    """How many connections may hold an unfinished request: half of what is left to use."""
    return max(16, (open_files - RESERVED_FILES) // 2)


class ConnectionGuard:
    """What one server's connections share: the unfinished ones, oldest first, and counts."""

    def __init__(self, *, header_timeout: float, max_pending: int) -> None:
        self.header_timeout = header_timeout
        self.max_pending = max_pending
        self.pending: collections.OrderedDict[GuardedProtocol, None] = collections.OrderedDict()
        self.timed_out = 0
        self.evicted = 0
        self.accept_errors = 0
        self._summary: asyncio.TimerHandle | None = None

    def note(self, loop: asyncio.AbstractEventLoop) -> None:
        """Something to summarize happened: make sure a summary is due."""
        if self._summary is None:
            self._summary = loop.call_later(SUMMARY_SECONDS, self.summarize)

    def summarize(self) -> None:
        """Log one line for what happened since the last one (nothing when nothing did)."""
        self._summary = None
        timed_out, evicted, accept_errors = self.timed_out, self.evicted, self.accept_errors
        self.timed_out = self.evicted = self.accept_errors = 0
        if not (timed_out or evicted or accept_errors):
            return
        parts = []
        if timed_out:
            parts.append(
                f"closed {timed_out} connection(s) that sent no whole request within "
                f"{self.header_timeout:g} s"
            )
        if evicted:
            parts.append(
                f"closed the {evicted} oldest unfinished connection(s) beyond "
                f"{self.max_pending} at once"
            )
        if accept_errors:
            parts.append(f"{accept_errors} accept(s) failed: out of open files")
        log.warning("%s; %d unfinished now", "; ".join(parts), len(self.pending))

    def loop_exception_handler(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        """asyncio's handler, except that accept errors are counted, not logged each."""
        if str(context.get("message", "")).startswith(_ACCEPT_ERROR):
            self.accept_errors += 1
            self.note(loop)
            return
        loop.default_exception_handler(context)


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and a cap on unfinished requests."""

    guard: ConnectionGuard  # set on the subclass that guarded_protocol builds

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_deadline()
        guard = self.guard
        while len(guard.pending) > guard.max_pending:
            oldest, _ = guard.pending.popitem(last=False)
            oldest._close(evicted=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_request():
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._start_deadline()  # the first bytes of a further request
        else:
            self._stop_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _reading_request(self) -> bool:
        """True while a request is expected or only partly received."""
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

    def _start_deadline(self) -> None:
        self._deadline = self.loop.call_later(self.guard.header_timeout, self._on_deadline)
        self.guard.pending[self] = None

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.pending.pop(self, None)

    def _on_deadline(self) -> None:
        self._deadline = None
        self.guard.pending.pop(self, None)
        # Headers still incomplete, or a POST's body late (its request then sees a
        # disconnect and answers nobody).
        if self._reading_request():
            self._close(evicted=False)

    def _close(self, *, evicted: bool) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.transport.is_closing():
            return
        if evicted:
            self.guard.evicted += 1
        else:
            self.guard.timed_out += 1
        self.guard.note(self.loop)
        self.transport.close()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` whose connections share ``guard``."""
    return type("GuardedH11Protocol", (GuardedProtocol,), {"guard": guard})
