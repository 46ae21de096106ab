"""How results look on a terminal: rich tables, the status screen and short summaries.

Text that comes from a repository (names, paths, messages, workplan titles, link targets)
is printed as text, never read as rich markup (a file named ``x[/b]`` is just that), and
its control characters are shown escaped (``\\x1b``), so a file name cannot set the
terminal's title or clear it: :func:`plain`.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from statehub.contract import AUTOMATION_ERROR, EVENT_ALL, Detail, SweepOutcome
from statehub.safetext import visible
from statehub.settings import Settings
from statehub.store import ActivityRun, ProgressEvent
from statehub.sweepsummary import SweepSummary

if TYPE_CHECKING:
    from statehub.statusmodel import StatusModel

LISTED_REPOS = 8
"""Repo names per check on the status screen before "+N more"."""
PIPE_WIDTH = 100_000
"""The width of output that is not a terminal: piped output is never cut (issue 15)."""


def output_console(*, soft_wrap: bool = True) -> Console:
    """A console on stdout for people: on a terminal, its width; piped or redirected, so
    wide that no table is cut (rich would otherwise assume 80 columns)."""
    import sys

    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return _Output(highlight=False, soft_wrap=soft_wrap, markup=False, width=width)


class _Output(Console):
    """A console whose closed stdout (``| head``) is a BrokenPipeError, as for ``print``.

    rich's own answer is ``SystemExit(1)``, the status of an automation error; the command
    line ends quietly instead, with the status of the work it did (issue 23).
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "stdout is closed")


def plain(text: object, *, style: str = "") -> Text:
    """A rich Text of ``text`` as it is: no markup read, control characters escaped."""
    return Text(visible(str(text)), style=style)


def say(out: Console, line: str, *, style: str = "") -> None:
    """One line of plain text (never markup), left for the terminal to wrap."""
    out.print(Text(visible(line), style=style), soft_wrap=True)


def compact_table(**options: Any) -> Table:
    """A table without vertical rules, one space between columns: more fits in 80 columns."""
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0), show_edge=False, **options)


def or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def short_time(created_at: str) -> str:
    """``2026-11-27T10:15:00.041Z`` as ``11-27 10:15``."""
    return created_at[5:16].replace("T", " ") if len(created_at) >= 16 else created_at


def sweep_table(out: Console, event: ProgressEvent) -> None:
    """The findings of one sweep (every repo that needs action, re-read or not), a summary."""
    detail = event.detail
    summary = SweepSummary.of(detail, event_type=event.event_type)
    if summary.lock_skipped:
        out.print(plain(f"{summary.words()} (event {event.id}, source {summary.source})"))
        return
    processed = detail[Detail.REPOS_PROCESSED]
    if processed:
        findings_table(
            out,
            [(item["repo"], finding) for item in processed for finding in item["findings"]],
            title=f"sweep {event.id}",
        )
    unlisted = sum(
        item.get("findings_total", len(item["findings"])) - len(item["findings"])
        for item in processed
    )
    # The event's bounds (issue 25): the standing assessments hold them all.
    if unlisted > 0:
        out.print(plain(f"{unlisted} more finding(s) not listed here: statehub findings"))
    unlisted_repos = summary.need_action - len(processed)
    if unlisted_repos > 0:
        out.print(
            plain(
                f"{unlisted_repos} more repo(s) that need action not listed here: statehub findings"
            )
        )
    out.print(plain(f"event {event.id} ({event.event_type}): {summary.words()}"))


def findings_table(
    out: Console, rows: Sequence[tuple[str, Mapping[str, Any]]], *, title: str
) -> None:
    table = Table(title=plain(title), title_justify="left")
    # On a terminal, names and paths wrap rather than end in '...': people copy them.
    table.add_column("repo", overflow="fold")
    table.add_column("check", no_wrap=True)
    marks = any(finding.get("new") for _, finding in rows)
    if marks:  # new since the repo's previous assessment (issue 15)
        table.add_column("new", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("message", overflow="fold")
    for repo, finding in sorted(
        rows, key=lambda row: (row[1]["check"] != AUTOMATION_ERROR, not row[1].get("new"), row[0])
    ):
        error = finding["check"] == AUTOMATION_ERROR
        style = "red" if error else ("bold" if finding.get("new") else None)
        cells = [plain(repo), plain(finding["check"])]
        if marks:
            cells.append(plain("new" if finding.get("new") else ""))
        cells += [plain(finding["path"] or ""), plain(finding["message"])]
        table.add_row(*cells, style=style)
    if rows:
        out.print(table)


def check_table(out: Console, document: Mapping[str, Any]) -> None:
    findings = document["findings"]
    findings_table(
        out, [(document["repo"], finding) for finding in findings], title=document["path"]
    )
    head = document["head"] or "-"
    out.print(plain(f"{document['repo']} at {head}: {len(findings)} finding(s)"))


def events_table(out: Console, events: Iterable[ProgressEvent]) -> None:
    """One row an event, its counts only: the events may be read as the table is built."""
    table = Table()
    for column in ("id", "created_at", "type", "source", "outcome", "need action", "failures"):
        table.add_column(column, overflow="fold")
    for event in events:
        detail = event.detail
        if detail.get(Detail.LOCK_SKIPPED):
            outcome = "lock-skipped"
        elif detail.get(Detail.AUTOMATION_ERROR):
            outcome = "automation error"
        else:
            outcome = "ok"
        table.add_row(
            *(
                plain(cell)
                for cell in (
                    event.id,
                    event.created_at,
                    event.event_type,
                    detail.get(Detail.SOURCE, ""),
                    outcome,
                    SweepSummary.of(detail).need_action,
                    detail.get(Detail.ASSESSMENT_FAILURES, ""),
                )
            )
        )
    out.print(table if table.row_count else plain("no events"))


def workplans_table(
    out: Console, plans: Sequence[Mapping[str, Any]], changes: Sequence[Mapping[str, Any]]
) -> None:
    """The registry's plans (repo, id, status, title, path), then the changes asked for."""
    if plans:
        table = Table()
        for column in ("repo", "id", "status", "title", "path", "changed_at"):
            table.add_column(column, overflow="fold")
        for plan in plans:
            finding = plan.get("finding")
            table.add_row(
                plain(plan["repo"]),
                plain(plan["id"] or "-"),
                plain(plan["status"] or (finding["check"] if finding else "-")),
                plain(plan["title"] or ""),
                plain(plan["path"]),
                plain(plan["changed_at"]),
                style="red" if finding else ("bold" if plan["status"] == "blocked" else None),
            )
        out.print(table)
    out.print(plain(f"{len(plans)} workplan(s)"))
    for change in changes:
        out.print(plain(f"{change['seen_at']} {change['repo']}: {change['summary']}"))


def runs_table(out: Console, runs: Sequence[ActivityRun]) -> None:
    if not runs:
        out.print(plain("no runs recorded"))
        return
    table = Table()
    for column in ("fired_at", "scheduled_for", "outcome", "origin", "run_id"):
        table.add_column(column, overflow="fold")
    for run in runs:
        # schedule (the daemon), run-now, temporal (the worker of docs/temporal.md), http
        # (a POST with "scheduled": true) or cli (statehub sweep --scheduled)
        origin = str(run.context_snapshot.get("origin") or "-")
        cells = (run.fired_at, run.scheduled_for, run.outcome, origin, run.run_id)
        table.add_row(*(plain(cell) for cell in cells))
    out.print(table)


def config_warnings(settings: Settings) -> list[str]:
    """What is valid but probably not meant: missing roots, duplicate repo names."""
    from statehub.sweep import discover, root_warnings

    fleet = discover(settings)
    warnings: list[str] = root_warnings(settings) + list(fleet.warnings)
    for path in settings.repos.paths:
        if not settings.resolve(path).exists():
            warnings.append(f"repos.paths: {settings.resolve(path)} does not exist")
    names = {target.name for target in fleet.targets}
    for name in settings.repos.overrides:
        if name not in names:
            warnings.append(f"repos.overrides: no repo named {name!r} is configured")
    return warnings


def to_toml(document: Mapping[str, Any]) -> str:
    """A TOML rendering of the (simple) configuration document."""
    lines: list[str] = []
    _toml_table(lines, [], document)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_table(lines: list[str], prefix: list[str], table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if prefix and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_toml_key(part) for part in prefix) + "]")
    for key, value in scalars.items():
        if value is None:
            continue
        lines.append(f"{_toml_key(key)} = {json.dumps(value, ensure_ascii=False)}")
    for key, value in tables.items():
        _toml_table(lines, [*prefix, key], value)


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum()
    return key if bare else json.dumps(key)


# -- statehub status --------------------------------------------------------------------


def render_status(out: Console, model: StatusModel) -> None:
    """The status model (:mod:`statehub.statusmodel`) as one screen of text and tables."""
    schedule = model.schedule.as_dict()
    state = "enabled" if schedule["enabled"] else "DISABLED (the daemon idles)"
    say(out, f"hub       {visible(model.hub)}", style="bold")
    say(out, f"schedule  {schedule['name']} ({schedule['id']})", style="bold")
    say(
        out,
        f"          '{schedule['trigger']}' in {schedule['timezone']}, "
        f"{schedule['mode']} mode, {state}; next fire {_fire(schedule)}",
    )
    for process in model.processes:
        say(out, _process_line(process.as_dict(), schedule["configured_trigger"]))
    database = model.database
    if not database.exists:
        say(out, f"database  {database.path}: no database yet (run a sweep first)")
        return
    wal = f" + {_mib(database.wal_bytes)} WAL" if database.wal_bytes else ""
    say(
        out,
        f"database  {database.path}: {_mib(database.size_bytes)}{wal}, {database.events} event(s)",
    )
    if not database.events and not model.runs:
        say(out, "no sweeps recorded yet")
        return
    for warning in model.clock_warnings:
        say(out, f"warning: {warning}", style="yellow")
    for warning in model.warnings:
        say(out, f"warning: {warning} (the newest sweep)", style="yellow")
    _status_runs(out, model)
    _status_sweeps(out, model)
    _status_findings(out, model)


def _process_line(process: dict[str, Any], configured: str) -> str:
    at = process["at"] or "never"
    line = f"{process['name']:<9} {process['state']} (last recorded {at})"
    if process["pid"] is not None:
        line += f", pid {process['pid']}"
    trigger = process["trigger"]
    if trigger is not None and trigger != configured:
        line += f"; fires on '{trigger}', not the file's '{configured}'"
    return line


def _status_runs(out: Console, model: StatusModel) -> None:
    if not model.runs:
        say(out, "runs: none recorded for this definition")
        return
    say(
        out,
        f"the last {len(model.runs)} run(s) of the schedule, from any origin "
        "(daemon, run-now, temporal, http, cli), times in UTC",
        style="bold",
    )
    table = compact_table()
    for column in ("fired", "scheduled for", "origin", "outcome", "sweep"):
        table.add_column(column, overflow="fold")
    for run in model.runs:
        table.add_row(
            short_time(run.fired_at),
            short_time(run.scheduled_for),
            plain(run.origin),
            plain(run.outcome, style="red" if run.failed else ""),
            plain(run.error or (run.sweep.words() if run.sweep is not None else "")),
        )
    out.print(table)


def _status_sweeps(out: Console, model: StatusModel) -> None:
    seen = [item for item in model.last_sweeps if item.row is not None]
    if not seen:
        say(out, "no sweeps within the retention window")
        return
    say(out, "last event per source, times in UTC", style="bold")
    table = compact_table()
    for column in ("source", "at", "sweep of", "outcome"):
        table.add_column(column, overflow="fold")
    for column in ("duration s", "failures"):
        table.add_column(column, justify="right", overflow="fold")
    styles = {
        SweepOutcome.AUTOMATION_ERROR: "red",
        SweepOutcome.INTERRUPTED: "red",
        SweepOutcome.CANCELLED: "yellow",
        SweepOutcome.LOCK_SKIPPED: "yellow",
    }
    for item in seen:
        row = item.row
        assert row is not None
        table.add_row(
            plain(item.source),
            short_time(row.created_at),
            "all repos" if row.event_type == EVENT_ALL else "chosen repos",
            plain(row.outcome.replace("_", " "), style=styles.get(row.outcome, "")),
            seconds(row.duration_seconds),
            or_dash(row.assessment_failures),
        )
    out.print(table)


def _status_findings(out: Console, model: StatusModel) -> None:
    summary = (
        f"{model.repos_with_findings} of {model.repos_assessed} assessed repo(s) with open findings"
    )
    if model.new_findings:
        summary += f"; {model.new_findings} finding(s) new since their repo's previous assessment"
    say(out, summary, style="bold")
    groups = model.by_check()
    if not groups:
        return
    table = compact_table()
    for column in ("check", "repos", "names"):
        table.add_column(column, overflow="fold")
    for group in groups:
        repos = group["repos"]
        names = ", ".join(repos[:LISTED_REPOS])
        if len(repos) > LISTED_REPOS:
            names += f" +{len(repos) - LISTED_REPOS} more"
        style = "red" if group["check"] == AUTOMATION_ERROR else ""
        table.add_row(plain(group["check"], style=style), str(len(repos)), plain(names))
    out.print(table)


def _mib(size: int | None) -> str:
    return "?" if size is None else f"{size / 1_048_576:.1f} MiB"


def _fire(schedule: Mapping[str, Any]) -> str:
    if schedule["next_fire"] is None:
        return "never"
    if schedule["timezone"] == "UTC":
        return str(schedule["next_fire"])
    return f"{schedule['next_fire']} ({schedule['next_fire_local']} local)"
