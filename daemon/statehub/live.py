"""The configuration a running ``statehub serve`` answers from, swapped whole on SIGHUP.

Every request reads the settings (and the API token) of the moment it starts, so a reload
reaches the next sweep's checks and budget, the status page and the bearer check without
a restart. A reload re-reads the file (and the token file) like a start: a bad one is
refused, logged on one line, and the old settings are kept. A stricter configuration takes
effect at once: a token added, or replaced. What would loosen access or move what the
server has bound needs a restart: ``api.host``, ``api.port``, the database, and removing
the token; a reload that changes one of them is refused and says to restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from statehub.errors import ConfigError
from statehub.settings import Settings, is_loopback, load_settings, public_dict, read_token

log = logging.getLogger("statehub.api")


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Settings and the token read with them: what one request sees."""

    settings: Settings
    token: str | None


def checked_snapshot(settings: Settings) -> Snapshot:
    """The settings with their token; ConfigError when the token file is bad or missing
    where required (a host off loopback needs one)."""
    token = read_token(settings)
    if token is None and not is_loopback(settings.api.host):
        raise ConfigError(
            str(settings.config_file or "(built-in defaults)"),
            "api.token_file",
            "required when api.host is not loopback",
        )
    return Snapshot(settings=settings, token=token)


class LiveSettings:
    """The current :class:`Snapshot`, replaced in one assignment by :meth:`reload`."""

    def __init__(self, settings: Settings, config_path: str | os.PathLike[str] | None) -> None:
        self._now = checked_snapshot(settings)
        self._config_path = config_path

    @property
    def settings(self) -> Settings:
        return self._now.settings

    @property
    def token(self) -> str | None:
        return self._now.token

    def reload(self) -> bool:
        """Re-read the configuration; True when it was applied, False when refused."""
        old = self._now
        try:
            new = checked_snapshot(load_settings(self._config_path))
        except ConfigError as exc:
            log.error("configuration reload refused, keeping the previous one: %s", exc)
            return False
        fixed = _restart_only_changes(old, new)
        if fixed:
            log.error(
                "configuration reload refused, keeping the previous one: %s changed, which "
                "takes a restart (systemctl restart statehub-api)",
                ", ".join(fixed),
            )
            return False
        self._now = new
        changes = config_changes(public_dict(old.settings), public_dict(new.settings))
        if old.token is None and new.token is not None:
            changes.append("api token: set (every request but /healthz needs it from now on)")
        elif old.token != new.token:
            changes.append("api token: replaced")
        log.info(
            "configuration reloaded from %s: %s",
            new.settings.config_file or "(built-in defaults)",
            "; ".join(changes) if changes else "no change",
        )
        return True


def _restart_only_changes(old: Snapshot, new: Snapshot) -> list[str]:
    fixed = []
    if old.settings.api.host != new.settings.api.host:
        fixed.append("api.host")
    if old.settings.api.port != new.settings.api.port:
        fixed.append("api.port")
    if old.settings.database_path != new.settings.database_path:
        fixed.append("hub.database")
    if old.token is not None and new.token is None:
        fixed.append("api.token_file (unset: that would open the API)")
    return fixed


def _flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for each key whose value differs (never the token itself)."""
    before, after = _flatten(old), _flatten(new)
    return [
        f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
