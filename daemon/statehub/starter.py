"""``statehub init``: a starter configuration for a newcomer's machine.

It names the folders given (a folder that is a work tree itself goes under ``paths``,
any other under ``roots``), a database beside the file named after it (two files in one
folder never share a database), and the ``active`` mode, which
fits a machine with no cluster scheduler (``standby`` would wait for a primary that does
not exist), and a hub identity of its own: a fresh ``[schedule] id`` and ``[hub] name``
(default the host name), so hubs sharing a Temporal namespace never share a schedule
(docs/temporal.md). It never overwrites a file, validates what it wrote, and prints the next
commands with the path of the ``statehub`` it runs from. Every other key keeps its default
(``config/statehub.toml`` documents them all).

It proposes the fleet's conventions (issue 21): when no repo found has an ``AGENTS.md``
or a ``workplans/`` folder, the file switches C-02..C-11 off and says how to switch them
on; when some have them, they stay on and the repos that lack them are named. Then it
sweeps once and says how many findings there are, and the one command (``statehub
accept``) that accepts them as they stand.

``init --discover`` (what ``./dev run`` calls without a configuration of one's own) picks
the folder itself: ``~/src`` when it holds repos, else the folder holding the current one
(a checkout) when it holds other repos; else a usage error that says what to run.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from statehub.checks import AUTOMATION_ERROR
from statehub.errors import UsageError
from statehub.fleetscan import depth_reaching_all, repos_below
from statehub.safetext import visible

if TYPE_CHECKING:
    from statehub.settings import Settings

DEFAULT_TARGET = Path("statehub.toml")


def _toml_string(item: str) -> str:
    # JSON strings are TOML basic strings (both escape with backslashes), except that JSON
    # leaves DEL as it is and TOML refuses it (a folder may be named with one).
    return json.dumps(item, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(_toml_string(item) for item in items) + "]"


CONVENTIONS_OFF = """
# No repo under these folders had an AGENTS.md or a workplans/ folder when `statehub init`
# wrote this file, so the fleet's conventions are not asked for: C-02 (AGENTS.md) is off,
# and so are C-03..C-11 (workplans) through require_workplans = false above. To ask for
# them, set require_workplans = true and take "C-02" out of disable.
[checks]
disable = ["C-02"]
"""


def database_for(target: Path) -> str:
    """The starter's database, relative to the file: ``var/<file name without .toml>.db``."""
    return f"var/{target.stem or 'statehub'}.db"


def starter_text(
    roots: list[str],
    paths: list[str],
    *,
    database: str = "var/statehub.db",
    depth: int = 1,
    conventions: bool = True,
    hub_name: str = "",
    definition_id: str = "",
) -> str:
    """The starter file's TOML text: a fresh definition id unless one is given;
    ``conventions`` False switches C-02..C-11 off."""
    hub_name = hub_name or socket.gethostname()
    definition_id = definition_id or str(uuid.uuid4())
    workplans = "" if conventions else "require_workplans = false             # see [checks]\n"
    if depth != 1:
        workplans = (
            f"depth = {depth}                             # levels below a root\n" + workplans
        )
    return f"""# A starter configuration written by `statehub init`. Every key and its default:
# config/statehub.toml in the statehub checkout.

[hub]
name = {_toml_string(hub_name)}    # this hub's name on every surface
database = {_toml_string(database)}   # relative to this file's folder

[repos]
roots = {_toml_list(roots)}    # every git work tree below a root is a repo
paths = {_toml_list(paths)}    # single repos
{workplans}
[schedule]
id = "{definition_id}"   # this hub's own definition
mode = "active"                       # sweep at every fire: no cluster scheduler here
{"" if conventions else CONVENTIONS_OFF}"""


def _write_validated(path: Path, text: bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, loaded as a
    configuration first: nothing is left behind when it is not valid, and an existing file
    is never replaced (a hard link fails when the name is taken). Raises UsageError."""
    import tempfile

    from statehub.errors import ConfigError
    from statehub.settings import load_settings

    taken = f"{visible(str(path))} exists; statehub init never overwrites a configuration"
    if os.path.lexists(path):
        raise UsageError(taken)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {visible(str(path))}: {exc.strerror}") from None
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(text)
        load_settings(temporary)
        os.link(temporary, path)
    except ConfigError as exc:
        raise UsageError(f"the starter file for these folders is not valid: {exc}") from None
    except FileExistsError:
        raise UsageError(taken) from None
    except OSError as exc:
        raise UsageError(f"cannot write {visible(str(path))}: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _conventions(repos: list[Path]) -> tuple[list[str], list[str]]:
    """The names of the repos without an AGENTS.md, and of those without ``workplans/``.

    Two ``lstat`` calls a repo, as the fleet's discovery makes: no file is read.
    """
    no_agents = [repo.name for repo in repos if not os.path.lexists(repo / "AGENTS.md")]
    no_plans = [repo.name for repo in repos if not (repo / "workplans").is_dir()]
    return no_agents, no_plans


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(visible(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def statehub_executable() -> str:
    """How to run the ``statehub`` this process runs from, as a shell word or two.

    The console script beside this Python (``.venv/bin/statehub``) when there is one, else
    ``python -m statehub``: a newcomer's ``statehub`` is often not on ``PATH``.
    """
    script = Path(sys.executable).parent / "statehub"
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m statehub"


def discover_folder(home: Path, current: Path) -> tuple[Path, int]:
    """The folder of repos of ``./dev run`` without a configuration, and its depth.

    ``home/src`` when it holds repos; else the folder holding ``current`` (a checkout of
    statehub) when it holds repos other than ``current``. Raises UsageError saying what to
    run when neither does.
    """
    src = home / "src"
    depth = depth_reaching_all(src)
    if depth is not None:
        return src, depth
    parent = current.parent
    depth = depth_reaching_all(parent)
    if depth is not None and any(path != current for path in repos_below(parent, depth)):
        return parent, depth
    raise UsageError(
        f"no git repos under {visible(str(src))} nor beside {visible(str(current))}: "
        f"name your folders of repos with `{statehub_executable()} init FOLDER ... "
        "--config PATH`, then run `./dev run --config PATH`"
    )


def init_command(
    folders: list[str],
    target: str | os.PathLike[str] | None,
    *,
    hub_name: str = "",
    discover: bool = False,
) -> int:
    """Write the starter configuration to ``target`` (default ``./statehub.toml``).

    With ``discover`` and no folders, the folder is :func:`discover_folder`'s. Raises
    UsageError when the file exists (it is never overwritten), a folder given does not
    exist, or (``discover``) no folder of repos is found; the file written is validated like
    any other configuration.
    """
    from statehub.render import config_warnings
    from statehub.settings import load_settings

    path = Path(target) if target is not None else DEFAULT_TARGET
    if hub_name and (
        hub_name != hub_name.strip() or not hub_name.isprintable() or len(hub_name) > 64
    ):
        raise UsageError("a hub name is up to 64 printable characters, no outer spaces")
    if os.path.lexists(path):
        raise UsageError(
            f"{visible(str(path))} exists; statehub init never overwrites a configuration"
        )
    roots: list[str] = []
    paths: list[str] = []
    depth = 1
    if discover and not folders:
        found, depth = discover_folder(Path.home(), Path.cwd())
        roots.append(str(found.resolve()))
    for folder in folders or ([] if roots else ["."]):
        resolved = Path(folder).expanduser().resolve()
        if not resolved.is_dir():
            raise UsageError(f"{visible(folder)} is not a folder")
        (paths if os.path.lexists(resolved / ".git") else roots).append(str(resolved))
    repos = _repos(roots, paths, depth)
    no_agents, no_plans = _conventions(repos)
    # Off only when no repo follows them at all: a fleet that half follows them is told
    # which repos lack them instead.
    conventions = not repos or len(no_agents) < len(repos) or len(no_plans) < len(repos)
    try:
        text = starter_text(
            roots,
            paths,
            database=database_for(path),
            depth=depth,
            conventions=conventions,
            hub_name=hub_name,
        ).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("a folder's name is not UTF-8: a TOML file cannot name it") from None
    _write_validated(path, text)
    settings = load_settings(path)
    for warning in config_warnings(settings):
        sys.stderr.write(f"statehub: warning: {visible(warning)}\n")
    shown = shlex.quote(visible(str(path)))
    exe = statehub_executable()
    where = "; ".join(
        part
        for part in (
            f"roots {', '.join(roots)}" if roots else "",
            f"depth {depth}" if depth != 1 else "",
            f"repos {', '.join(paths)}" if paths else "",
        )
        if part
    )
    sys.stdout.write(
        f"wrote {visible(str(path))} (hub {visible(settings.hub_name)}, "
        f"definition {settings.schedule.id}; "
        f"{visible(where)}; database {visible(str(settings.database_path))}, mode active)\n"
    )
    if not conventions:
        sys.stdout.write(
            "no repo has an AGENTS.md or a workplans/ folder: C-02..C-11 are off "
            "(the file says how to switch them on)\n"
        )
    elif repos and (no_agents or no_plans):
        lacking = [
            f"{len(no_agents)} without AGENTS.md ({_names(no_agents)})" if no_agents else "",
            f"{len(no_plans)} without workplans/ ({_names(no_plans)})" if no_plans else "",
        ]
        sys.stdout.write(
            "conventions on (C-02..C-11), some repos lack them: "
            + "; ".join(part for part in lacking if part)
            + "\n"
        )
    if repos:
        _first_sweep(settings, exe, shown)
    sys.stdout.write(
        f"next: {exe} daemon --config {shown}   (in a checkout: ./dev run --config {shown};"
        f" one sweep now: {exe} sweep --config {shown})\n"
    )
    return 0


def _repos(roots: list[str], paths: list[str], depth: int) -> list[Path]:
    """The repos a sweep of these roots and paths would find."""
    from statehub.settings import RepoSettings, Settings
    from statehub.sweep import discover

    settings = Settings(
        repos=RepoSettings(
            roots=[Path(r) for r in roots], paths=[Path(p) for p in paths], depth=depth
        )
    )
    return [target.path for target in discover(settings).targets]


def _first_sweep(settings: Settings, exe: str, shown: str) -> None:
    """Sweep once and say how many findings there are, and the one command to accept them
    (``exe``: how to run statehub; ``shown``: the configuration's path, quoted)."""
    from statehub.store import Store
    from statehub.sweep import run_sweep
    from statehub.sweepsummary import SweepSummary

    detail = run_sweep(settings, source="init").detail
    summary = SweepSummary.of(detail)
    # Counted in the standing assessments: they hold every finding, the event only those
    # its size bounds let it list (issue 25).
    with Store.open(settings.database_path) as store:
        counts = store.finding_counts()
    total = sum(count for check, count in counts.items() if check != AUTOMATION_ERROR)
    sys.stdout.write(
        f"first sweep: {total} finding(s) in {summary.with_findings} of {detail['repos_total']} "
        f"repo(s), {summary.automation_errors} automation error(s); see them: "
        f"{exe} findings --config {shown}\n"
    )
    if total:
        sys.stdout.write(
            "to accept them as they stand (only new ones are reported from then on): "
            f"{exe} accept --config {shown}\n"
        )
