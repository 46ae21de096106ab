"""``statehub init``: a starter configuration for a newcomer's machine.

It names the folders given (a folder that is a work tree itself goes under ``paths``,
any other under ``roots``), a database beside the file, and the ``active`` mode, which
fits a machine with no cluster scheduler (``standby`` would wait for a primary that does
not exist), and a hub identity of its own: a fresh ``[schedule] id`` and ``[hub] name``
(default the host name), so hubs sharing a Temporal namespace never share a schedule
(docs/temporal.md). It never overwrites a file, validates what it wrote, and prints the next
command. Every other key keeps its default (``config/statehub.toml`` documents them all).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from pathlib import Path

from statehub.errors import UsageError
from statehub.safetext import visible

DEFAULT_TARGET = Path("statehub.toml")


def _toml_list(items: list[str]) -> str:
    # JSON strings are valid TOML basic strings (both escape with backslashes).
    return "[" + ", ".join(json.dumps(item, ensure_ascii=False) for item in items) + "]"


def starter_text(
    roots: list[str], paths: list[str], *, hub_name: str = "", definition_id: str = ""
) -> str:
    """The starter file's TOML text: a fresh definition id unless one is given."""
    hub_name = hub_name or socket.gethostname()
    definition_id = definition_id or str(uuid.uuid4())
    return f"""# A starter configuration written by `statehub init`. Every key and its default:
# config/statehub.toml in the statehub checkout.

[hub]
name = {json.dumps(hub_name, ensure_ascii=False)}    # this hub's name on every surface
database = "var/statehub.db"          # relative to this file's folder

[repos]
roots = {_toml_list(roots)}    # every git work tree directly below a root is a repo
paths = {_toml_list(paths)}    # single repos

[schedule]
id = "{definition_id}"   # this hub's own definition
mode = "active"                       # sweep at every fire: no cluster scheduler here
"""


def init_command(
    folders: list[str], target: str | os.PathLike[str] | None, *, hub_name: str = ""
) -> int:
    """Write the starter configuration to ``target`` (default ``./statehub.toml``).

    Raises UsageError when the file exists (it is never overwritten) or a folder given does
    not exist; the file written is validated like any other configuration.
    """
    from statehub.render import config_warnings
    from statehub.settings import load_settings

    path = Path(target) if target is not None else DEFAULT_TARGET
    if hub_name and (
        hub_name != hub_name.strip() or not hub_name.isprintable() or len(hub_name) > 64
    ):
        raise UsageError("a hub name is up to 64 printable characters, no outer spaces")
    roots: list[str] = []
    paths: list[str] = []
    for folder in folders or ["."]:
        resolved = Path(folder).expanduser().resolve()
        if not resolved.is_dir():
            raise UsageError(f"{visible(folder)} is not a folder")
        (paths if os.path.lexists(resolved / ".git") else roots).append(str(resolved))
    try:
        text = starter_text(roots, paths, hub_name=hub_name).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("a folder's name is not UTF-8: a TOML file cannot name it") from None
    try:
        with path.open("xb") as handle:
            handle.write(text)
    except FileExistsError:
        raise UsageError(
            f"{visible(str(path))} exists; statehub init never overwrites a configuration"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write {visible(str(path))}: {exc.strerror}") from None
    settings = load_settings(path)
    for warning in config_warnings(settings):
        sys.stderr.write(f"statehub: warning: {visible(warning)}\n")
    shown = visible(str(path))
    where = "; ".join(
        part
        for part in (
            f"roots {', '.join(roots)}" if roots else "",
            f"repos {', '.join(paths)}" if paths else "",
        )
        if part
    )
    sys.stdout.write(
        f"wrote {shown} (hub {visible(settings.hub_name)}, definition {settings.schedule.id}; "
        f"{visible(where)}; database {visible(str(settings.database_path))}, mode active)\n"
        f"next: statehub sweep --config {shown}   (then: statehub daemon --config {shown};"
        f" in a checkout: ./dev run --config {shown})\n"
    )
    return 0
