"""The two places that lean on a dependency's internals, each under a capped version range
in pyproject.toml: these tests fail loudly, naming the internal, when it moves.

- uvicorn's ``H11Protocol`` (statehub.serving): no public option bounds a request that never
  completes, so the server subclasses it and reads ``conn``, ``loop`` and ``transport``.
- pydantic-settings' ``EnvSettingsSource.env_vars`` (statehub.settings): the environment is
  checked before pydantic reads it, by replacing that mapping once the source is built.
"""

from __future__ import annotations

import asyncio
import socket

import h11
import pytest
import uvicorn
from uvicorn.server import ServerState

from statehub.serving import ConnectionGuard, guarded_protocol
from statehub.settings import load_settings


async def _app(scope: object, receive: object, send: object) -> None:
    """An ASGI app that is never called: no request is sent."""


def test_uvicorn_h11_protocol_still_has_what_the_guard_reads() -> None:
    """A guarded connection on a real socket: h11 state read, deadline armed, then closed."""
    guard = ConnectionGuard(header_timeout=5.0, max_pending=4)
    protocol_class = guarded_protocol(guard)
    config = uvicorn.Config(_app, http=protocol_class, lifespan="off", log_config=None)
    config.load()
    ours, theirs = socket.socketpair()

    async def connect() -> None:
        loop = asyncio.get_running_loop()
        protocol = protocol_class(config, ServerState(), {}, loop)
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
        try:
            assert isinstance(protocol.conn, h11.Connection), "H11Protocol.conn moved"
            assert protocol.conn.their_state is h11.IDLE
            assert protocol.loop is loop, "H11Protocol.loop moved"
            assert protocol.transport is transport, "H11Protocol.transport moved"
            assert protocol in guard.pending  # the request deadline is armed
            protocol._on_deadline()  # the deadline passes with no byte sent
            assert transport.is_closing()
            assert guard.timed_out == 1
        finally:
            transport.close()
            protocol.connection_lost(None)

    try:
        asyncio.run(connect())
    finally:
        theirs.close()


def test_pydantic_settings_reads_the_checked_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain path in the environment is taken for a list only if env_vars is still read."""
    monkeypatch.setenv("STATEHUB_REPOS__ROOTS", "/srv/git")
    monkeypatch.setenv("STATEHUB_SWEEP__MAX_SECONDS", "77")

    settings = load_settings(None)

    assert [str(root) for root in settings.repos.roots] == ["/srv/git"]
    assert settings.sweep.max_seconds == 77
