"""``statehub install-units``: copy the systemd units of a checkout into ``/etc/systemd/system``.

The units in ``infra/systemd/`` (and, on request, the emergency pair in
``infra/systemd/archived/``) are copied byte for byte. Every action is reported as one line:

    install infra/systemd/statehub-api.service -> /etc/systemd/system/statehub-api.service
    unchanged infra/systemd/statehub-sweepd.service -> /etc/systemd/system/...
    replace infra/systemd/statehub-api.service -> /etc/... (old copy kept as ....bak)
    skip infra/systemd/statehub-api.service -> /etc/... (a symlink: ...)

An existing file that differs is replaced, never silently: its previous content is kept
beside it as ``<name>.bak``. A symlink in the target's place (a masked or linked unit) is
left alone. With ``dry_run`` nothing is written and the lines say ``would install`` /
``would replace``. See docs/install.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from statehub.errors import EXIT_AUTOMATION_ERROR, EXIT_OK, EXIT_USAGE, UsageError

#: ``infra/systemd`` of the checkout this module was loaded from.
DEFAULT_SOURCE_DIR = Path(__file__).resolve().parents[2] / "infra" / "systemd"
#: Where systemd looks for units of the administrator, below the prefix.
UNIT_DIR = Path("etc/systemd/system")
#: Units are configuration, readable by all (systemd itself reads them as root).
UNIT_MODE = 0o644


def unit_sources(source_dir: Path, *, include_archived: bool = False) -> list[Path]:
    """The unit files to install from ``source_dir``, in a stable order.

    Every ``*.service`` directly in ``source_dir``; with ``include_archived`` also every
    ``*.service`` and ``*.timer`` of ``source_dir/archived``. Raises UsageError when
    ``source_dir`` holds no unit.
    """
    sources = sorted(source_dir.glob("*.service"))
    if include_archived:
        archived = source_dir / "archived"
        sources += sorted([*archived.glob("*.service"), *archived.glob("*.timer")])
    if not sources:
        raise UsageError(f"{source_dir}: no systemd unit files (*.service) there")
    return sources


def install_units(
    source_dir: Path, prefix: Path, *, dry_run: bool, include_archived: bool = False
) -> list[str]:
    """Copy the units of ``source_dir`` into ``<prefix>/etc/systemd/system``; one line per action.

    A missing target is installed, an identical one left alone (``unchanged``), a differing
    one replaced after its content is saved as ``<target>.bak``, a symlink skipped. The
    last line says what to run next. With ``dry_run`` nothing is written. The lines are
    returned, not printed.
    Raises UsageError when ``source_dir`` holds no unit, OSError when a file cannot be
    read or written (for example without root for ``prefix = /``).
    """
    target_dir = prefix / UNIT_DIR
    lines: list[str] = []
    changed = False
    replaced: list[str] = []
    for source in unit_sources(source_dir, include_archived=include_archived):
        target = target_dir / source.name
        content = source.read_bytes()
        shown = f"{_display(source, source_dir)} -> {target}"
        if target.is_symlink():
            # `systemctl mask` links a unit to /dev/null: replacing the link would unmask it.
            lines.append(f"skip {shown} (a symlink, e.g. a masked unit: left alone)")
            continue
        if target.exists() and not target.is_file():
            # Reading a named pipe would wait for a writer forever; a folder cannot be read.
            raise OSError(f"{target} is not a regular file: move it away first")
        if not target.exists():
            lines.append(f"{'would install' if dry_run else 'install'} {shown}")
            if not dry_run:
                target_dir.mkdir(parents=True, exist_ok=True)
                _write(target, content)
        elif target.read_bytes() == content:
            lines.append(f"unchanged {shown}")
            continue
        else:
            backup = target.with_name(target.name + ".bak")
            verb = "would replace" if dry_run else "replace"
            lines.append(f"{verb} {shown} (old copy kept as {backup})")
            if not dry_run:
                _write(backup, target.read_bytes())
                _write(target, content)
            replaced.append(source.name)
        changed = True
    if dry_run:
        lines.append("dry run: nothing written (a real run ends with: systemctl daemon-reload)")
    elif changed:
        lines.append("next: systemctl daemon-reload")
        if replaced:
            # A running unit keeps its old definition until it is restarted.
            lines.append(f"then: systemctl try-restart {' '.join(replaced)}")
    else:
        lines.append("nothing changed: no daemon-reload needed")
    return lines


def _display(source: Path, source_dir: Path) -> str:
    """``infra/systemd/...`` for a checkout's own folder, else the path as found."""
    if source_dir.parts[-2:] == ("infra", "systemd"):
        return source.relative_to(source_dir.parent.parent).as_posix()
    return str(source)


def _write(target: Path, content: bytes) -> None:
    """Write ``content`` to ``target`` atomically (a reader never sees half a unit)."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        Path(temporary).chmod(UNIT_MODE)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def build_parser() -> argparse.ArgumentParser:
    """The options of ``statehub install-units``."""
    parser = argparse.ArgumentParser(
        prog="statehub install-units",
        description=(
            "Copy the systemd units of this checkout (infra/systemd/*.service) into "
            "PREFIX/etc/systemd/system. A differing existing unit is replaced and kept "
            "as .bak."
        ),
    )
    parser.add_argument(
        "--prefix",
        type=Path,
        default=Path("/"),
        help="root of the target file system (default: /)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be done, write nothing",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="a configuration to validate first (every command takes it; the units read "
        "/etc/statehub/statehub.toml)",
    )
    parser.add_argument(
        "--archived",
        action="store_true",
        help="also the emergency timer pair of infra/systemd/archived (see its README)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``statehub install-units``; returns the exit status (0, 1 or 2)."""
    parser = build_parser()
    try:
        options = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage and 0 for --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if options.config is not None:
        from statehub.errors import ConfigError
        from statehub.settings import load_settings  # pydantic: only when asked

        try:
            load_settings(options.config)
        except ConfigError as exc:
            print(f"statehub: configuration error: {exc}", file=sys.stderr)
            return exc.exit_status
    try:
        lines = install_units(
            DEFAULT_SOURCE_DIR,
            options.prefix,
            dry_run=options.dry_run,
            include_archived=options.archived,
        )
    except UsageError as exc:
        # A venv installed without -e holds no infra/ folder: say where the units come from.
        hint = " (run it from a checkout of statehub: docs/install.md, step 3)"
        print(f"{parser.prog}: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return EXIT_AUTOMATION_ERROR
    for line in lines:
        print(line)
    return EXIT_OK
