"""systemd unit files read as systemd reads them: ``[Section]`` headers, ``Key=value``
assignments, ``#`` and ``;`` comments.

:func:`assignments` gives every assignment in file order; :func:`unit_settings` folds a unit
and its drop-ins into one list of values a key, where an empty assignment resets the list,
as systemd does.
"""

from __future__ import annotations

from pathlib import Path

Key = tuple[str, str]  # (section, key)


def assignments(path: Path) -> list[tuple[Key, str | None]]:
    """Every assignment of the file in order, its value stripped; None for an empty one."""
    found: list[tuple[Key, str | None]] = []
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found.append(((section, key.strip()), value.strip() or None))
    return found


def unit_settings(unit: Path, *dropins: Path) -> dict[Key, list[str]]:
    """``(section, key) -> values`` of ``unit`` then its ``dropins``, each in file order.

    An empty assignment resets the list, as systemd does.
    """
    settings: dict[Key, list[str]] = {}
    for path in (unit, *dropins):
        for key, value in assignments(path):
            values = settings.setdefault(key, [])
            if value is None:
                values.clear()
            else:
                values.append(value)
    return settings
