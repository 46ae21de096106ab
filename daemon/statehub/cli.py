"""The command line, thin: parse, call, print.

Heavy modules (pydantic, pygit2, rich, FastAPI, APScheduler) are imported inside the
commands that need them, so ``statehub --help`` answers at once. Expected failures become
one line on stderr and a documented exit status; never a traceback.

Exit status: 0 done (assessment failures included), 1 automation error, 2 usage,
78 bad configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from statehub.contract import AUTOMATION_ERROR, EVENT_TYPES, SOURCE_MANUAL, RepoKind
from statehub.errors import EXIT_USAGE, StatehubError
from statehub.safetext import visible

if TYPE_CHECKING:
    from statehub.settings import Settings
    from statehub.store import Store

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")

EVENT_TYPE_NAMES = EVENT_TYPES  # from contract.py: importing sweep would load the pool

STOP_FLUSH_SECONDS = 3.0
"""A stopping service waits this long at most for its queued [notify] messages."""

EPILOG = (
    "exit status: 0 done (assessment failures included), 1 automation error (C-00), "
    "2 usage, 78 bad configuration"
)


# -- shared helpers -------------------------------------------------------------------


def load(args: argparse.Namespace) -> Settings:
    """The configuration named by ``--config`` or found by the lookup order.

    Says once on stderr (not with ``--json``) which file was read when it was found, not
    named, and warns of every ``STATEHUB_*`` variable that sets nothing.
    """
    from statehub.settings import load_settings

    say_where_config_is(args)
    return load_settings(args.config)


_said: set[str] = set()
_work_status: dict[str, int] = {}
"""The status of a command's work once done, before its output: what a closed stdout
leaves it with (a sweep with a C-00 still exits 1 under ``| head``)."""


def say_where_config_is(args: argparse.Namespace) -> None:
    """The configuration's line and the environment's warnings, once per process."""
    from statehub.settings import environment_warnings, locate_config

    if "config" in _said:
        return
    _said.add("config")
    print_warnings(environment_warnings())
    location = locate_config(args.config)
    if not location.explicit and not getattr(args, "json", False):
        sys.stderr.write(f"statehub: {visible(location.describe())}\n")


def open_store(settings: Settings, *, create: bool = False) -> Store | None:
    """The store, or None when no database exists yet and ``create`` is False."""
    from statehub.store import Store

    if not create and not settings.database_path.exists():
        return None
    return Store.open(settings.database_path, create=create)


def read_store(settings: Settings, query: Callable[[Store], list[T]]) -> list[T]:
    """``query`` on the store; an empty list when no database exists yet (none is created)."""
    store = open_store(settings)
    if store is None:
        return []
    with store:
        return query(store)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def print_json_list(items: Iterable[Any]) -> None:
    """A list printed as :func:`print_json` prints it, one item at a time: a long list of
    large items (events of up to 1 MB) is never held whole."""
    out = sys.stdout
    opened = False
    for item in items:
        text = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        out.write((",\n  " if opened else "[\n  ") + text)
        opened = True
    out.write("\n]\n" if opened else "[]\n")


def console() -> Any:
    from statehub.render import output_console

    # Summary lines stay whole lines; nothing printed is read as markup (render.plain);
    # piped output is never cut at 80 columns.
    return output_console()


def print_warnings(warnings: Sequence[str]) -> None:
    """Each warning as one line on stderr, whatever the output format."""
    for warning in warnings:
        sys.stderr.write(f"statehub: warning: {visible(warning)}\n")


# -- sweep and check ------------------------------------------------------------------


def cmd_sweep(args: argparse.Namespace) -> int:
    from statehub import alerts
    from statehub.cancel import raise_on_sigterm
    from statehub.sweep import ProgressCallback, run_sweep

    repos = None if args.all or not args.repo else list(args.repo)
    if args.scheduled and repos is not None:
        raise_usage("--scheduled records a run of the schedule: it sweeps all repos, not --repo")
    if args.scheduled and args.source == SOURCE_MANUAL:
        raise_usage("--scheduled needs --source naming the scheduler (not manual)")
    settings = load(args)
    if repos is not None:
        from statehub.sweep import match_repo_names

        repos = match_repo_names(settings, repos)  # a unique prefix or suffix is enough
    # SIGTERM (kill, systemctl stop) unwinds like ^C: the sweep records itself cancelled.
    raise_on_sigterm()
    progress_bar = None
    if not args.json and sys.stderr.isatty():
        from rich.markup import escape
        from rich.progress import Progress

        progress_bar = Progress(transient=True, console=_stderr_console())

    def sweep(progress: ProgressCallback | None = None) -> Any:
        def observed() -> Any:
            return alerts.observed_sweep(
                settings,
                source=args.source,
                whole_fleet=repos is None,
                run=lambda: run_sweep(
                    settings,
                    repos=repos,
                    remote=args.remote,
                    max_seconds=args.max_seconds,
                    source=args.source,
                    progress=progress,
                ),
            )

        if not args.scheduled:
            return observed()
        from statehub.runs import scheduled_sweep, sweep_in_process
        from statehub.store import ProgressEvent

        # A run of the schedule (the archived timer's): its row in activity_runs.
        event = scheduled_sweep(
            settings,
            origin="cli",
            source=args.source,
            sweep=lambda cancel: sweep_in_process(
                settings,
                source=args.source,
                cancel=cancel,
                progress=progress,
                remote=True if args.remote else None,  # `sweep --scheduled --remote` fetches
            ),
        )
        return ProgressEvent(
            id=event["id"],
            event_type=event["event_type"],
            created_at=event["created_at"],
            detail=event["detail"],
        )

    try:
        if progress_bar is None:
            event = sweep()
        else:
            with progress_bar:
                task = progress_bar.add_task("sweeping", total=None)

                def advance(done: int, total: int, repo: str) -> None:
                    # The bar's description is markup: a repo's name is escaped for it.
                    progress_bar.update(
                        task, completed=done, total=total, description=escape(visible(repo))
                    )

                event = sweep(advance)
    finally:
        alerts.flush()  # bounded: the pings and posts of this sweep, before the exit
    print_warnings(event.detail.get("warnings", []))
    _work_status["status"] = int(event.detail["exit_code"])
    if args.json:
        print_json(event.as_dict())
    else:
        from statehub.render import sweep_table  # rich: only for people

        # Every repo that needs action is listed, re-read or not: an unchanged re-sweep
        # still answers "what is wrong" (issue 15).
        sweep_table(console(), event)
    return int(event.detail["exit_code"])


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, markup=False)


def cmd_check(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from statehub.checks import printable
    from statehub.outcome import RepoTask, Target
    from statehub.render import check_table
    from statehub.sweep import worker_pool

    settings = load(args)
    path = Path(args.path).expanduser().absolute()
    task = RepoTask(
        target=Target(name=path.name, path=path),
        checks=settings.checks_for(path.name),
        remote=args.remote,
        fetch_timeout=settings.sweep.fetch_timeout_seconds,
    )
    # Read in a worker like every sweep, under the same bounds; the deadline is the
    # worker's own time bound, with a second's margin to collect its answer.
    deadline = time.monotonic() + settings.sweep.repo_timeout_seconds + 1
    with worker_pool(settings) as pool:
        (outcome,) = pool.run([task], deadline=deadline).outcomes
    if outcome.kind == RepoKind.MISSING:
        raise_usage(f"{path}: no such folder")
    document = {
        "repo": printable(path.name),
        "path": printable(str(path)),
        "head": outcome.head,
        "findings": [finding.public_dict() for finding in outcome.findings],
    }
    if args.json:
        print_json(document)
    else:
        check_table(console(), document)
    return 1 if any(f.check == AUTOMATION_ERROR for f in outcome.findings) else 0


def raise_usage(message: str) -> None:
    from statehub.errors import UsageError

    raise UsageError(message)


# -- reading the store ----------------------------------------------------------------


def cmd_events(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from statehub.render import events_table
    from statehub.timefmt import utc_now

    if args.event_type is not None and args.event_type not in EVENT_TYPE_NAMES:
        # Checked here, not by argparse: with --json the error is a JSON document too.
        raise_usage(f"unknown event type {args.event_type!r}: {' or '.join(EVENT_TYPE_NAMES)}")
    since = utc_now() - timedelta(hours=args.since_hours) if args.since_hours else None

    def show(events: Iterable[Any]) -> None:
        if args.json:
            print_json_list(event.as_dict() for event in events)
        else:
            events_table(console(), events)

    store = open_store(load(args))
    if store is None:
        show([])
        return 0
    with store:
        # Read a few at a time and printed as read: up to --limit events of up to 1 MB
        # each are never held at once (issue 25).
        show(
            store.iter_events(
                event_type=args.event_type, limit=args.limit, since=since, before=args.before
            )
        )
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from statehub.render import runs_table

    settings = load(args)
    definition = settings.schedule.id

    def read(store: Any) -> list[Any]:
        found = store.runs(definition_id=definition, limit=args.limit)
        if args.all:  # the schedulers' decisions not to sweep, too (schedule_decisions)
            found += store.decisions(definition_id=definition, limit=args.limit)
            found = sorted(found, key=lambda run: run.fired_at, reverse=True)[: args.limit]
        return list(found)

    runs = read_store(settings, read)
    if args.json:
        print_json([run.as_dict() for run in runs])
    else:
        runs_table(console(), runs)
    return 0


def cmd_findings(args: argparse.Namespace) -> int:
    """The standing findings from the store (or the accepted ones), no sweep: a page of
    them with ``--offset`` and ``--limit``, the text saying how many there are in all."""
    settings = load(args)
    check = _check_id(args.check) if args.check else None

    def query(store: Store) -> tuple[list[dict[str, Any]], int]:
        if args.accepted:
            return store.accepted_findings(
                repo=args.repo, check=check, offset=args.offset, limit=args.limit
            )
        return store.standing_findings(
            repo=args.repo, check=check, new=args.new, offset=args.offset, limit=args.limit
        )

    store = open_store(settings)
    rows: list[dict[str, Any]] = []
    total = 0
    if store is not None:
        with store:
            rows, total = query(store)
    for row in rows:
        row.pop("line_hash", None)  # the baseline's business, not a reader's
    if args.json:
        print_json(rows)
        return 0
    out = sys.stdout
    for row in rows:
        where = row["path"] or "-"
        if row.get("line") is not None:
            where += f":{row['line']}"
        mark = "  (new)" if row.get("new") else ""
        out.write(visible(f"{row['repo']}  {row['check']}  {where}  {row['message']}{mark}") + "\n")
    kind = "accepted finding(s)" if args.accepted else "finding(s)"
    if len(rows) == total:
        out.write(f"{total} {kind}\n")
    elif rows:
        first = args.offset + 1
        out.write(f"showing {first:,}-{first + len(rows) - 1:,} of {total:,} {kind}\n")
    else:
        out.write(f"showing none of {total:,} {kind} (--offset {args.offset:,})\n")
    return 0


def cmd_accept(args: argparse.Namespace) -> int:
    """Record the standing findings in the baseline file: they are reported no more."""
    from statehub import baseline

    settings = load(args)
    checks = frozenset(_check_id(check) for check in args.check) if args.check else None
    store = open_store(settings)
    if store is None:
        raise_usage("no sweep is recorded yet: run `statehub sweep` first")
    assert store is not None
    with store:
        standing = store.assessments()
        accepted: dict[str, list[dict[str, Any]]] = {}
        rows, _ = store.accepted_findings()
        for row in rows:
            accepted.setdefault(row.pop("repo"), []).append(row)
    repos = frozenset(args.repo) if args.repo else None
    unknown = sorted((repos or frozenset()) - set(standing))
    if unknown:
        raise_usage(f"unknown repo: {', '.join(unknown)} (no standing assessment)")
    done = baseline.accept(
        settings.baseline_path,
        {name: assessment.findings for name, assessment in standing.items()},
        accepted,
        repos=repos,
        checks=checks,
        prune=args.prune,
    )
    pruned = f", {done.pruned} pruned" if args.prune else ""
    sys.stdout.write(
        visible(
            f"accepted {done.findings} finding(s) in {done.repos} repo(s): {done.path} holds "
            f"{done.entries} entr{'y' if done.entries == 1 else 'ies'}{pruned}"
        )
        + "\nthe next sweep counts them as accepted: statehub sweep"
        + (f" --config {visible(str(args.config))}" if args.config else "")
        + "\n"
    )
    return 0


def _check_id(text: str) -> str:
    """A check id as given (``C-23``, ``c-23``, ``23``), checked; UsageError when unknown."""
    from statehub.settings import CHECK_IDS

    check_id = text.upper()
    if check_id.isdigit():
        check_id = f"C-{int(check_id):02d}"
    if check_id not in CHECK_IDS:
        raise_usage(f"unknown check {text!r}: the checks are C-00 .. C-23")
    return check_id


def cmd_workplans(args: argparse.Namespace) -> int:
    from statehub.planregistry import changed_since
    from statehub.timefmt import utc_now

    try:
        since = None if args.changed_since is None else changed_since(args.changed_since, utc_now())
    except ValueError as exc:
        raise_usage(f"--changed-since: {exc}")
    filters = {"statuses": list(args.status or []), "repo": args.repo, "changed_since": since}
    store = open_store(load(args))
    total, listed = 0, "[]"
    plans: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    if store is not None:
        with store:
            if args.json:  # the list as SQLite writes it: 20,000 plans within the second
                total, listed = store.workplans_json(**filters)
            else:
                total, plans = store.workplans(**filters)
            if since is not None:
                changes = store.workplan_changes(since=since, repo=args.repo, limit=100000)
    if args.json:
        sys.stdout.write(
            f'{{"total": {total}, "workplans": {listed}, '
            f'"changes": {json.dumps(changes, ensure_ascii=False)}}}\n'
        )
    else:
        from statehub.render import workplans_table

        workplans_table(console(), plans, changes)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from statehub.compare import compare_command

    return compare_command(load(args), since_hours=args.since_hours, as_json=args.json)


def cmd_status(args: argparse.Namespace) -> int:
    """One screen (or ``--json``) of the status model the page shows too; 0 without a
    database."""
    from statehub.render import output_console, render_status
    from statehub.statusmodel import read_status

    model = read_status(load(args))
    if args.json:
        print_json(model.as_dict())
    else:
        render_status(output_console(soft_wrap=False), model)
    return 0


# -- long-running services ------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from statehub import alerts
    from statehub.api import serve

    # As the environment's overrides: a reload (SIGHUP) keeps them, and a host off
    # loopback still needs [api] token_file.
    if args.host is not None:
        os.environ["STATEHUB_API__HOST"] = args.host
    if args.port is not None:
        os.environ["STATEHUB_API__PORT"] = str(args.port)
    try:
        status = serve(load(args), args.config)
    finally:
        alerts.flush(STOP_FLUSH_SECONDS)  # the [notify] messages of the last sweeps
    if "temporalio" in sys.modules:  # the page read Temporal: leave as its commands do
        from statehub.temporal import leave

        leave(status)
    return status


def cmd_daemon(args: argparse.Namespace) -> int:
    from statehub import alerts
    from statehub.scheduler import run_daemon

    say_where_config_is(args)
    try:
        return run_daemon(args.config)
    finally:
        alerts.flush(STOP_FLUSH_SECONDS)


def cmd_schedule_show(args: argparse.Namespace) -> int:
    from statehub.scheduler import schedule_show_command

    return schedule_show_command(load(args), as_json=args.json)


def cmd_schedule_run_now(args: argparse.Namespace) -> int:
    from statehub import alerts
    from statehub.scheduler import run_now_command

    try:
        return run_now_command(load(args), force=args.force, as_json=args.json)
    finally:
        alerts.flush()  # bounded: the pings and posts of this fire, before the exit


def cmd_notify_test(args: argparse.Namespace) -> int:
    from statehub.alerts import send_test
    from statehub.errors import UsageError

    settings = load(args)
    if not settings.notify.ping_url and not settings.notify.webhook_url:
        # Not a bad configuration (78): alerts are off, which is valid (issue 23).
        raise UsageError(
            f"nothing to test: [notify] in {settings.config_file or '(built-in defaults)'} "
            "sets neither ping_url nor webhook_url: set one to send alerts"
        )
    ok = send_test(settings, lambda line: sys.stdout.write(line + "\n"))
    return 0 if ok else 1


# -- the cluster scheduler (the extra statehub[temporal]) -----------------------------


def _temporal(args: argparse.Namespace, command: Callable[[], Callable[[Settings], int]]) -> int:
    """Run a ``statehub temporal`` command: ``command()`` imports it once the SDK is known.

    A missing extra is one line and exit 78 before anything of the SDK is imported; once it
    is loaded, the process leaves through ``statehub.temporal.leave``.
    """
    settings = load(args)
    from statehub.temporal import leave, require

    require()
    try:
        status = command()(settings)
    except StatehubError as exc:
        sys.stderr.write(f"statehub: {_kind(exc)}{exc}\n")
        status = exc.exit_status
    except KeyboardInterrupt:
        sys.stderr.write("statehub: interrupted\n")
        status = 130
    leave(status)


def cmd_temporal_sync(args: argparse.Namespace) -> int:
    def command() -> Callable[[Settings], int]:
        from functools import partial

        from statehub.temporal.schedule import sync_command

        return partial(sync_command, dry_run=args.dry_run, as_json=args.json, force=args.force)

    return _temporal(args, command)


def cmd_temporal_worker(args: argparse.Namespace) -> int:
    def command() -> Callable[[Settings], int]:
        from statehub.temporal.worker import worker_command

        return worker_command

    return _temporal(args, command)


def cmd_temporal_hubs(args: argparse.Namespace) -> int:
    def command() -> Callable[[Settings], int]:
        from functools import partial

        from statehub.temporal.hubs import hubs_command

        return partial(hubs_command, as_json=args.json)

    return _temporal(args, command)


def cmd_temporal_show(args: argparse.Namespace) -> int:
    def command() -> Callable[[Settings], int]:
        from functools import partial

        from statehub.temporal.schedule import show_command

        return partial(show_command, as_json=args.json)

    return _temporal(args, command)


# -- configuration --------------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    from statehub.baseline import load as load_baseline
    from statehub.errors import EXIT_CONFIG
    from statehub.render import config_warnings
    from statehub.settings import settings_and_errors

    say_where_config_is(args)
    settings, errors = settings_and_errors(args.config)
    if settings is None:
        # Every error, one line each, so that one edit fixes them all (issue 23).
        for error in errors:
            sys.stderr.write(f"statehub: configuration error: {visible(str(error))}\n")
        return EXIT_CONFIG
    load_baseline(settings.baseline_path)  # a malformed baseline stops a sweep: say so now
    warnings = config_warnings(settings)
    where = settings.config_file or "(built-in defaults)"
    for warning in warnings:
        sys.stderr.write(f"statehub: warning: {visible(warning)}\n")
    sys.stdout.write(f"ok: {where}" + (f" ({len(warnings)} warning(s))" if warnings else "") + "\n")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from statehub.render import to_toml
    from statehub.settings import public_dict

    settings = load(args)
    document = public_dict(settings)
    if args.origin:
        return _config_origins(settings, as_json=args.json)
    if args.json:
        print_json(document)
    else:
        sys.stdout.write(f"# effective configuration from {settings.config_file or 'defaults'}\n")
        sys.stdout.write(to_toml(document))
    return 0


def _config_origins(settings: Settings, *, as_json: bool) -> int:
    """``config show --origin``: each key's value and where it came from."""
    from statehub.settings import config_origins, public_dict

    document = public_dict(settings)
    rows = []
    for key, (origin, where) in config_origins(settings).items():
        section, name = key.split(".", 1)
        rows.append({"key": key, "value": document[section][name], "origin": origin, "from": where})
    if as_json:
        print_json(rows)
        return 0
    for row in rows:
        value = json.dumps(row["value"], ensure_ascii=False)
        source = f"{row['origin']} {row['from']}".rstrip()
        sys.stdout.write(visible(f"{row['key']} = {value}    # {source}") + "\n")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from statehub.starter import init_command

    target = args.config
    if args.discover and target is None:
        raise_usage("init --discover needs --config PATH: where to write")
    if args.discover and args.folders:
        raise_usage("init --discover finds the folder itself: give no FOLDER")
    return init_command(list(args.folders), target, hub_name=args.name, discover=args.discover)


def cmd_explain(args: argparse.Namespace) -> int:
    from statehub.checks import catalogue

    if args.markdown:
        sys.stdout.write(catalogue.markdown_table() + "\n")
        return 0
    if args.check is None:
        for text in catalogue.CATALOGUE:
            sys.stdout.write(f"{text.id}  {text.summary}\n")
        sys.stdout.write("statehub explain C-NN tells why a check matters and how to fix it\n")
        return 0
    check_id = args.check.upper()
    if check_id.isdigit():
        check_id = f"C-{int(check_id):02d}"
    if check_id not in catalogue.BY_ID:
        raise_usage(f"unknown check {args.check!r}: the checks are C-00 .. C-23")
    sys.stdout.write(catalogue.explain(check_id) + "\n")
    return 0


def cmd_install_units(args: argparse.Namespace) -> int:
    from statehub.install import main as install_main

    return install_main(list(args.install_args))


# -- the parser -----------------------------------------------------------------------


def _add_notify(notify: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    notify_commands = notify.add_subparsers(dest="notify_command", metavar="COMMAND")
    notify_test = notify_commands.add_parser(
        "test",
        help="send one ping of each kind and one webhook post now (exit 1 if one fails)",
        description="send one ping of each kind (start, success, fail) and one webhook "
        "post now, and say what was delivered (exit 1 if one was not)",
        parents=[common],
    )
    notify_test.set_defaults(handler=cmd_notify_test)


def build_parser() -> argparse.ArgumentParser:  # one statement a command
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="configuration file (default: $STATEHUB_CONFIG, ./statehub.toml, "
        "/etc/statehub/statehub.toml, then config/statehub.toml beside the checkout)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout, nothing else"
    )

    parser = argparse.ArgumentParser(
        prog="statehub",
        description="Keep a fleet of git repositories consistent, record every sweep, "
        "and schedule it.",
        epilog=EPILOG,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_text: str, *parents: argparse.ArgumentParser) -> Any:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            parents=[common, *parents],
        )
        sub.set_defaults(handler=handler)
        return sub

    sweep = add("sweep", cmd_sweep, "assess the fleet and record the sweep as an event", as_json)
    which = sweep.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every configured repo (the default)")
    which.add_argument(
        "--repo",
        action="append",
        metavar="NAME",
        help="only this repo (repeatable): its name, or a unique start or end of it",
    )
    sweep.add_argument("--remote", action="store_true", help="git fetch each repo first")
    sweep.add_argument(
        "--max-seconds",
        type=_bounded_int(1, 3600),
        metavar="N",
        help="time budget of this sweep, 1..3600 (default: [sweep] max_seconds)",
    )
    sweep.add_argument(
        "--source",
        default=SOURCE_MANUAL,
        type=_source_name,
        metavar="S",
        help="who asks: recorded as detail.source (default: manual)",
    )
    sweep.add_argument(
        "--scheduled",
        action="store_true",
        help="a run of the [schedule] definition by another scheduler (a timer): also "
        "record it in activity_runs, for its slot (all repos; a --source other than manual)",
    )

    check = add("check", cmd_check, "assess one folder; no registry, no event written", as_json)
    check.add_argument("path", metavar="PATH", help="the repo's folder")
    check.add_argument("--remote", action="store_true", help="git fetch first")

    events = add("events", cmd_events, "list recorded progress events, newest first", as_json)
    events.add_argument(
        "--event-type",
        metavar="T",  # an unknown type is a usage error (exit 2), not "no events"
        help=f"only events of this type: {' or '.join(EVENT_TYPE_NAMES)}",
    )
    events.add_argument(
        "--limit", type=_bounded_int(1, 100000), default=20, metavar="N", help="default 20"
    )
    events.add_argument(
        "--since-hours", type=_positive_float, metavar="H", help="only the last H hours"
    )
    events.add_argument(
        "--before",
        type=_bounded_int(1, 2**63 - 1),
        metavar="ID",
        help="only events recorded before the event of this id (the next page: the last id shown)",
    )

    _add_baseline(add, as_json)
    _add_reports(add, as_json)

    runs = add(
        "runs", cmd_runs, "the recent runs of the schedule, by any path (activity_runs)", as_json
    )
    runs.add_argument(
        "--limit", type=_bounded_int(1, 100000), default=20, metavar="N", help="default 20"
    )
    runs.add_argument(
        "--all",
        action="store_true",
        help="also the decisions not to sweep (primary_healthy, overlap_skipped, disabled)",
    )

    _add_serve(add("serve", cmd_serve, "serve the HTTP API and the status page ([api])"))
    add("daemon", cmd_daemon, "run the scheduler daemon ([schedule])")

    schedule = add("schedule", _missing_subcommand, "the schedule definition the daemon runs")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", metavar="COMMAND")
    show = schedule_commands.add_parser(
        "show",
        help="the definition and its next five fire times",
        description="the definition and its next five fire times",
        parents=[common, as_json],
    )
    show.set_defaults(handler=cmd_schedule_show)
    run_now = schedule_commands.add_parser(
        "run-now",
        help="fire the job once now, through the path a scheduled fire takes",
        description="fire the job once now, through the path a scheduled fire takes",
        parents=[common, as_json],
    )
    run_now.add_argument(
        "--force", action="store_true", help="sweep even where standby would stay idle"
    )
    run_now.set_defaults(handler=cmd_schedule_run_now)

    add("status", cmd_status, "one screen: schedule, last runs, open findings", as_json)

    _add_temporal(add("temporal", _missing_subcommand, TEMPORAL_HELP), common, as_json)
    _add_notify(add("notify", _missing_subcommand, "the alerts of [notify]"), common)

    config = add("config", _missing_subcommand, "check or show the configuration")
    _add_config(config, common, as_json)
    _add_starter(add)

    install = add(
        "install-units",
        cmd_install_units,
        "install the systemd units from this checkout (see --help of the command)",
    )
    install.add_argument("install_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _add_config(
    config: argparse.ArgumentParser,
    common: argparse.ArgumentParser,
    as_json: argparse.ArgumentParser,
) -> None:
    """``statehub config check`` and ``statehub config show``."""
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    config_check = config_commands.add_parser(
        "check",
        help="validate the configuration (exit 78 when bad)",
        description="validate the configuration (exit 78 when bad)",
        parents=[common],
    )
    config_check.set_defaults(handler=cmd_config_check)
    config_show = config_commands.add_parser(
        "show",
        help="print the effective configuration",
        description="print the effective configuration (file, then environment overrides)",
        parents=[common, as_json],
    )
    config_show.add_argument(
        "--origin",
        action="store_true",
        help="each key on one line with where its value came from: file, environment "
        "(which variable) or default",
    )
    config_show.set_defaults(handler=cmd_config_show)


def _add_serve(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", metavar="HOST", help="listen here (default: [api] host)")
    serve.add_argument(
        "--port",
        type=_bounded_int(0, 65535),
        metavar="N",
        help="listen on this port (default: [api] port; 0 picks a free one)",
    )


def _add_baseline(add: Callable[..., Any], as_json: argparse.ArgumentParser) -> None:
    """``statehub findings`` and ``statehub accept``: the standing findings and the baseline."""
    findings = add(
        "findings", cmd_findings, "the standing findings of the last sweeps (no sweep)", as_json
    )
    findings.add_argument("--repo", metavar="NAME", help="only this repo")
    findings.add_argument("--check", metavar="C-NN", help="only this check")
    findings.add_argument(
        "--new", action="store_true", help="only findings new since the repo's previous assessment"
    )
    findings.add_argument(
        "--accepted",
        action="store_true",
        help="the findings the baseline accepts instead (statehub accept)",
    )
    findings.add_argument(
        "--offset",
        type=_bounded_int(0, 1_000_000_000),
        default=0,
        metavar="K",
        help="skip the first K findings (default 0)",
    )
    findings.add_argument(
        "--limit",
        type=_bounded_int(1, 1_000_000_000),
        metavar="N",
        help="list at most N findings (default: every one); the last line says how many "
        "there are in all",
    )
    accept = add(
        "accept",
        cmd_accept,
        "accept the standing findings as they are: record them in the baseline file "
        "([checks] baseline); later sweeps count them as accepted, not as findings",
    )
    accept.add_argument(
        "--repo", action="append", metavar="NAME", help="only this repo (repeatable)"
    )
    accept.add_argument(
        "--check", action="append", metavar="C-NN", help="only this check (repeatable)"
    )
    accept.add_argument(
        "--prune",
        action="store_true",
        help="also drop the entries of accepted findings that are gone",
    )


def _add_reports(add: Callable[..., Any], as_json: argparse.ArgumentParser) -> None:
    """``statehub compare`` and ``statehub workplans`` (the registry of issue 26)."""
    compare = add("compare", cmd_compare, "sweeps summed by source, and slot coverage", as_json)
    compare.add_argument(
        "--since-hours", type=_positive_float, default=24.0, metavar="H", help="default 24"
    )
    workplans = add(
        "workplans", cmd_workplans, "the fleet's workplans, as the last sweeps read them", as_json
    )
    workplans.add_argument(
        "--status", action="append", metavar="S", help="only plans with this status (repeatable)"
    )
    workplans.add_argument("--repo", metavar="NAME", help="only the plans of this repo")
    workplans.add_argument(
        "--changed-since",
        metavar="AGE",
        help="only plans added or changed since then (7d, 12h, 30m, 2w, or a date), "
        "and list every change of that time, removals included",
    )


def _add_starter(add: Callable[..., Any]) -> None:
    """``statehub init`` and ``statehub explain``: for a newcomer (issue 15)."""
    init = add(
        "init",
        cmd_init,
        "write a starter configuration (--config PATH, default ./statehub.toml)",
    )
    init.add_argument(
        "folders",
        nargs="*",
        metavar="FOLDER",
        help="a folder holding repos (a root), or a repo itself (default: the current folder)",
    )
    init.add_argument(
        "--name",
        default="",
        metavar="HUB",
        help="this hub's name, [hub] name (default: the host name)",
    )
    init.add_argument(
        "--discover",
        action="store_true",
        help="find the folder: ~/src if it holds repos, else the folder holding the current "
        "one if it holds other repos (what ./dev run does without a configuration)",
    )
    explain = add("explain", cmd_explain, "what a check looks for, why, and how to fix it")
    explain.add_argument("check", nargs="?", metavar="C-NN", help="a check id (default: list all)")
    explain.add_argument(
        "--markdown", action="store_true", help="print the README's table of checks"
    )


TEMPORAL_HELP = "the cluster scheduler: a Temporal Schedule and this host's worker"


def _add_temporal(
    temporal: argparse.ArgumentParser,
    common: argparse.ArgumentParser,
    as_json: argparse.ArgumentParser,
) -> None:
    """The subcommands of ``statehub temporal`` (docs/temporal.md)."""
    temporal_commands = temporal.add_subparsers(dest="temporal_command", metavar="COMMAND")
    for name, handler, text, parents in (
        (
            "sync",
            cmd_temporal_sync,
            "create or update the Temporal Schedule from [schedule] (idempotent)",
            [common, as_json],
        ),
        (
            "worker",
            cmd_temporal_worker,
            "run this host's Temporal worker: the sweep activity (systemd notify)",
            [common],
        ),
        (
            "show",
            cmd_temporal_show,
            "the Schedule as Temporal holds it, beside the local definition; exit 3 on drift",
            [common, as_json],
        ),
        (
            "hubs",
            cmd_temporal_hubs,
            "every hub's schedule in the namespace: last runs, outcomes, quiet hubs",
            [common, as_json],
        ),
    ):
        sub = temporal_commands.add_parser(name, help=text, description=text, parents=parents)
        sub.set_defaults(handler=handler)
        if name == "sync":
            sub.add_argument(
                "--dry-run", action="store_true", help="print what it would do, change nothing"
            )
            sub.add_argument(
                "--force",
                action="store_true",
                help="take over a schedule (or definition) another hub owns",
            )


def _missing_subcommand(args: argparse.Namespace) -> int:
    sys.stderr.write(f"statehub {args.command}: a subcommand is required (see --help)\n")
    return EXIT_USAGE


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 24 * 366 * 10:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of hours")
    return value


def _source_name(text: str) -> str:
    import re

    from statehub.settings import SOURCE_PATTERN

    if not re.match(SOURCE_PATTERN, text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a source is a short name of letters, digits, '.', '_', '-'"
        )
    return text


def _version() -> str:
    from statehub import __version__

    return f"statehub {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["install-units"]:
        # Its options belong to the installer's own parser (argparse's REMAINDER would
        # not take leading options).
        from statehub.install import main as install_main

        return install_main(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    if not hasattr(args, "config"):
        args.config = None
    handler: Handler = args.handler
    try:
        return handler(args)
    except StatehubError as exc:
        sys.stderr.write(f"statehub: {_kind(exc)}{visible(str(exc))}\n")
        if getattr(args, "json", False):
            # So that `| jq` says something useful: the error as the one JSON document.
            print_json({"error": f"{_kind(exc)}{exc}", "exit_code": exc.exit_status})
        return exc.exit_status
    except KeyboardInterrupt as exc:  # ^C, or SIGTERM where a command asked (cancel.py)
        from statehub.cancel import stopped_by

        name = stopped_by(exc)
        sys.stderr.write(f"statehub: cancelled by {name}\n")
        return 128 + int(signal.Signals[name])
    except BrokenPipeError:
        # A closed stdout (`| head`) ends the command quietly with the status of its work
        # (issue 23). stdout points at /dev/null from here, so that the interpreter's last
        # flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _work_status.get("status", 0)


def _kind(exc: StatehubError) -> str:
    from statehub.errors import ConfigError, StoreError, UsageError

    if isinstance(exc, ConfigError):
        return "configuration error: "
    if isinstance(exc, StoreError):
        return "database error (C-00): "
    if isinstance(exc, UsageError):
        return ""
    return "error: "


if __name__ == "__main__":
    raise SystemExit(main())
