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
- **A write deadline.** An answer the client does not read (the send buffer stays full)
  for ``[api] write_timeout_seconds`` closes the connection, answers unsent (issue 25).
- **A cap on pipelined requests.** At most :data:`MAX_PIPELINED` requests in a row may be
  answered from what a client sent ahead; the connection is then closed.
- **A cap on open connections.** At most ``[api] max_connections`` (default: the open-files
  limit less :data:`RESERVED_FILES`) connections are open; a new one beyond that closes the
  idlest (the one whose bytes moved least recently).
- **No busy accept loop.** asyncio (3.11, 3.12) answers an ``accept()`` that fails for lack of
  descriptors by pausing the listener for a second, but goes on calling ``accept()`` in
  the same loop, each failure scheduling one more retry: thousands of failures a second.
  :class:`GuardedListener` ends that loop after the first failure and closes the idlest
  connection to make room.
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
import errno
import logging
import resource
import socket
import time
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

MAX_PIPELINED = 32
"""Requests in a row answered from bytes a client sent ahead, before the connection closes."""
ACCEPT_PAUSE_SECONDS = 0.5
"""After a failed accept, further accepts in the same turn of the loop end it (asyncio
itself tries again a second later)."""

_ACCEPT_ERROR = "socket.accept() out of system resource"
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


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


def connection_cap(open_files: int, configured: int = 0) -> int:
    """How many connections may be open: ``configured``, at most the limit less a reserve."""
    room = max(16, open_files - RESERVED_FILES)
    return min(configured, room) if configured else room


def open_files_limit() -> int:
    """The soft open-files limit now (a large number when unlimited)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return OPEN_FILES_WANTED if soft == resource.RLIM_INFINITY else soft


class ConnectionGuard:
    """What one server's connections share: the unfinished ones, oldest first, the open
    ones, idlest first, and counts."""

    def __init__(
        self,
        *,
        header_timeout: float,
        max_pending: int,
        write_timeout: float = 10.0,
        max_open: int = 1 << 20,
        configured_max_open: int = 0,
    ) -> None:
        self.header_timeout = header_timeout
        self.max_pending = max_pending
        self.write_timeout = write_timeout
        self.max_open = max_open
        self.configured_max_open = configured_max_open
        self.pending: collections.OrderedDict[GuardedProtocol, None] = collections.OrderedDict()
        self.open: collections.OrderedDict[GuardedProtocol, None] = collections.OrderedDict()
        self.timed_out = 0
        self.evicted = 0
        self.write_timed_out = 0
        self.pipelined = 0
        self.idle_evicted = 0
        self.accept_errors = 0
        self._summary: asyncio.TimerHandle | None = None

    def make_room(self, keep: GuardedProtocol | None = None) -> None:
        """Close the idlest connections until at most ``max_open`` are open."""
        while len(self.open) > self.max_open:
            idlest = next(iter(self.open))
            if idlest is keep:
                self.open.move_to_end(idlest)
                if len(self.open) == 1:
                    return
                continue
            self.open.pop(idlest)
            idlest.abort(reason="idle")

    def out_of_files(self) -> None:
        """An accept failed for lack of descriptors: shrink the cap to fit, close the idlest."""
        self.max_open = min(
            connection_cap(open_files_limit(), self.configured_max_open),
            max(1, len(self.open) - 1),
        )
        self.make_room()

    def note(self, loop: asyncio.AbstractEventLoop) -> None:
        """Something to summarize happened: make sure a summary is due."""
        if self._summary is None:
            self._summary = loop.call_later(SUMMARY_SECONDS, self.summarize)

    def summarize(self) -> None:
        """Log one line for what happened since the last one (nothing when nothing did)."""
        self._summary = None
        timed_out, evicted, accept_errors = self.timed_out, self.evicted, self.accept_errors
        write_timed_out, pipelined, idle = self.write_timed_out, self.pipelined, self.idle_evicted
        self.timed_out = self.evicted = self.accept_errors = 0
        self.write_timed_out = self.pipelined = self.idle_evicted = 0
        if not (timed_out or evicted or accept_errors or write_timed_out or pipelined or idle):
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
        if write_timed_out:
            parts.append(
                f"closed {write_timed_out} connection(s) that read no answer within "
                f"{self.write_timeout:g} s"
            )
        if pipelined:
            parts.append(
                f"closed {pipelined} connection(s) that sent more than {MAX_PIPELINED} "
                "requests ahead"
            )
        if idle:
            parts.append(
                f"closed the {idle} idlest connection(s) beyond {self.max_open} open at once"
            )
        if accept_errors:
            parts.append(f"{accept_errors} accept(s) failed: out of open files")
        log.warning(
            "%s; %d unfinished, %d open now", "; ".join(parts), len(self.pending), len(self.open)
        )

    def loop_exception_handler(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        """asyncio's handler, except that accept errors are counted, not logged each."""
        if str(context.get("message", "")).startswith(_ACCEPT_ERROR):
            self.accept_errors += 1
            self.note(loop)
            return
        loop.default_exception_handler(context)


class GuardedListener(socket.socket):
    """A listening socket whose ``accept()`` ends asyncio's accept loop after a failure.

    asyncio calls ``accept()`` up to ``backlog`` times a turn; after one fails for lack of
    descriptors it has paused the listener and scheduled a retry, yet calls again, and each
    further failure schedules one more retry. Here the calls that follow a failure say
    "nothing to accept" for :data:`ACCEPT_PAUSE_SECONDS`, and the failure closes the idlest
    connection so that the retry finds a descriptor.
    """

    guard: ConnectionGuard
    _paused_until = 0.0

    def accept(self) -> tuple[socket.socket, Any]:
        if time.monotonic() < self._paused_until:
            raise BlockingIOError(errno.EAGAIN, "accepts paused")
        try:
            return super().accept()
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                self._paused_until = time.monotonic() + ACCEPT_PAUSE_SECONDS
                self.guard.out_of_files()
            raise


def guarded_listener(listening: socket.socket, guard: ConnectionGuard) -> GuardedListener:
    """``listening`` (its descriptor taken over) as a :class:`GuardedListener` of ``guard``."""
    guarded = GuardedListener(
        listening.family, listening.type, listening.proto, fileno=listening.detach()
    )
    guarded.guard = guard
    guarded.set_inheritable(True)
    return guarded


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline, a write deadline and caps."""

    guard: ConnectionGuard  # set on the subclass that guarded_protocol builds

    _deadline: asyncio.TimerHandle | None = None
    _write_deadline: asyncio.TimerHandle | None = None
    _ahead = 0  # requests answered in a row from bytes sent ahead

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_deadline()
        guard = self.guard
        while len(guard.pending) > guard.max_pending:
            oldest, _ = guard.pending.popitem(last=False)
            oldest._close(evicted=True)
        guard.open[self] = None
        guard.make_room(keep=self)

    def data_received(self, data: bytes) -> None:
        self._active()
        super().data_received(data)
        if self._reading_request():
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._start_deadline()  # the first bytes of a further request
        else:
            self._stop_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self._stop_write_deadline()
        self.guard.open.pop(self, None)
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._active()
        # Bytes already buffered after this request: the client sent it ahead (pipelining).
        self._ahead = self._ahead + 1 if self.conn.trailing_data[0] else 0
        if self._ahead > MAX_PIPELINED and not self.transport.is_closing():
            self.guard.pipelined += 1
            self.guard.note(self.loop)
            self.transport.close()  # the answers written go out; the write deadline holds
        if self.transport.get_write_buffer_size():
            self._start_write_deadline()
        super().on_response_complete()

    def pause_writing(self) -> None:
        self._start_write_deadline()
        super().pause_writing()

    def resume_writing(self) -> None:
        self._stop_write_deadline()
        self._active()
        super().resume_writing()

    def abort(self, *, reason: str) -> None:
        """Close now, unsent answers dropped; counted under ``reason`` ('idle', 'write')."""
        self._stop_deadline()
        self._stop_write_deadline()
        if reason == "idle":
            self.guard.idle_evicted += 1
        else:
            self.guard.write_timed_out += 1
        self.guard.note(self.loop)
        self.transport.abort()

    def _active(self) -> None:
        if self in self.guard.open:
            self.guard.open.move_to_end(self)

    def _start_write_deadline(self) -> None:
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(
                self.guard.write_timeout, self._on_write_deadline
            )

    def _stop_write_deadline(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _on_write_deadline(self) -> None:
        self._write_deadline = None
        if self.transport.get_write_buffer_size() or self.flow.write_paused:
            self.guard.open.pop(self, None)
            self.abort(reason="write")

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
