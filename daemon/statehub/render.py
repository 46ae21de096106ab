"""How results look on a terminal: rich tables and short summaries for the command line.

Text that comes from a repository (names, paths, messages, workplan titles, link targets)
is printed as text, never read as rich markup (a file named ``x[/b]`` is just that), and
its control characters are shown escaped (``\\x1b``), so a file name cannot set the
terminal's title or clear it: :func:`plain`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from statehub.safetext import visible
from statehub.settings import Settings
from statehub.store import ActivityRun, ProgressEvent
from statehub.sweepsummary import SweepSummary

PIPE_WIDTH = 100_000
"""The width of output that is not a terminal: piped output is never cut (issue 15)."""


def output_console(*, soft_wrap: bool = True) -> Console:
    """A console on stdout for people: on a terminal, its width; piped or redirected, so
    wide that no table is cut (rich would otherwise assume 80 columns)."""
    import sys

    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(highlight=False, soft_wrap=soft_wrap, markup=False, width=width)


def plain(text: object, *, style: str = "") -> Text:
    """A rich Text of ``text`` as it is: no markup read, control characters escaped."""
    return Text(visible(str(text)), style=style)


def sweep_table(out: Console, event: ProgressEvent) -> None:
    """The findings of one sweep (every repo that needs action, re-read or not), a summary."""
    detail = event.detail
    summary = SweepSummary.of(detail, event_type=event.event_type)
    if summary.lock_skipped:
        out.print(plain(f"{summary.words()} (event {event.id}, source {summary.source})"))
        return
    processed = detail["repos_processed"]
    if processed:
        findings_table(
            out,
            [(item["repo"], finding) for item in processed for finding in item["findings"]],
            title=f"sweep {event.id}",
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
        rows, key=lambda row: (row[1]["check"] != "C-00", not row[1].get("new"), row[0])
    ):
        style = "red" if finding["check"] == "C-00" else ("bold" if finding.get("new") else None)
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


def events_table(out: Console, events: Sequence[ProgressEvent]) -> None:
    if not events:
        out.print(plain("no events"))
        return
    table = Table()
    for column in ("id", "created_at", "type", "source", "outcome", "need action", "failures"):
        table.add_column(column, overflow="fold")
    for event in events:
        detail = event.detail
        if detail.get("lock_skipped"):
            outcome = "lock-skipped"
        elif detail.get("automation_error"):
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
                    detail.get("source", ""),
                    outcome,
                    len(detail.get("repos_processed", [])),
                    detail.get("assessment_failures", ""),
                )
            )
        )
    out.print(table)


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
