"""An event's size bound (issue 25): its lists cut to a byte budget, their counts exact."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from api_support import event_rows
from clirun import statehub
from contract_keys import sweep_detail
from gitfleet import fleet_settings, make_repo, write, write_config
from statehub import eventsize
from statehub.eventsize import EVENT_FINDINGS_BYTES, EVENT_LIST_BYTES, fit_lists, json_bytes
from statehub.page import ERRORS_SHOWN, events_view
from statehub.render import sweep_table
from statehub.store import Store
from statehub.sweep import _base_detail, run_sweep
from statehub.sweepsummary import SweepSummary

LISTS = ("repos_processed", "skipped_clean", "skipped_missing", "skipped_budget")


def _finding(n: int, message: str = "workplan has no front matter") -> dict[str, Any]:
    return {"check": "C-05", "message": message, "path": f"workplans/BAD-{n:02d}.md", "new": False}


def _entry(name: str, findings: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    entry = {"repo": name, "head": "3f2a9c1", "reassessed": True, "findings": findings}
    if total is not None:
        entry |= {"findings_total": total, "truncated": True}
    return entry


def _event(fitted: dict[str, Any]) -> dict[str, Any]:
    detail = _base_detail("activity-core", 300, False) | fitted
    return {
        "id": 1,
        "event_type": "consistency_sweep_remote_all",
        "created_at": "x",
        "detail": detail,
    }


def _listed_bytes(detail: dict[str, Any]) -> int:
    """The bytes of the items of the event's lists, each with its comma."""
    items = [item for key in (*LISTS, "automation_errors") for item in detail[key]]
    items += list(detail["accepted"]["repos"].items())
    return sum(json_bytes(item) + 1 for item in items)


def test_an_event_of_any_fleet_stays_under_1_mb_and_counts_it_all() -> None:
    """10,000 repos that need action (2,000 findings listed, as the sweep's count bounds
    leave them), 100,000 clean, 500 C-00s and 10,000 repos with accepted findings: the
    event is under 1 MB, each list a head of its own in order, and the counts are whole."""
    names = [f"platform+service-{n:06d}" for n in range(110_000)]
    need = [
        _entry(name, [_finding(k) for k in range(100)] if n < 20 else [], None if n < 20 else 10)
        for n, name in enumerate(names[:10_000])
    ]
    clean = names[10_000:]
    errors = [{"repo": name, "check": "C-00", "message": "timed out"} for name in names[:500]]
    accepted = {"total": 30_000, "repos": dict.fromkeys(names[:10000], 3)}

    fitted = fit_lists(
        errors=errors, need_action=need, missing=[], over_budget=[], clean=clean, accepted=accepted
    )

    event = _event(fitted)
    assert len(json.dumps(event, separators=(",", ":")).encode()) < 1_000_000
    assert _listed_bytes(event["detail"]) <= EVENT_LIST_BYTES
    listed = fitted["repos_processed"]
    assert listed == need[: len(listed)] and 5_000 < len(listed) < 10_000
    assert fitted["automation_errors"] == errors  # they fit: every one is listed
    # The budget went to the repos that need action; the clean get what they left.
    named_clean = fitted["skipped_clean"]
    assert named_clean == clean[: len(named_clean)] and len(named_clean) < 10
    assert fitted["accepted"] == {"total": 30_000, "repos": {}, "truncated": True}
    assert fitted["repos_truncated"] is True and "automation_errors_total" not in fitted
    summary = SweepSummary.of(event["detail"])
    assert (summary.need_action, summary.clean, summary.automation_errors) == (10_000, 100_000, 500)


def test_long_messages_leave_room_to_name_the_repos_after_them() -> None:
    """Entries whose findings are 4 KB each list them until EVENT_FINDINGS_BYTES is spent,
    then none (findings_total, truncated); the repos after them are still named."""
    long = "x" * 4_000
    need = [_entry(f"repo-{n:04d}", [_finding(k, long) for k in range(100)]) for n in range(3_000)]

    fitted = fit_lists(
        errors=[], need_action=need, missing=[], over_budget=[], clean=[], accepted=_no_accepted()
    )

    listed = fitted["repos_processed"]
    findings = [finding for entry in listed for finding in entry["findings"]]
    assert 0 < json_bytes(findings) <= EVENT_FINDINGS_BYTES
    assert len(findings) == EVENT_FINDINGS_BYTES // (json_bytes(findings[0]) + 1)
    cut = [entry for entry in listed if entry.get("truncated")]
    assert cut[0]["findings"] and [entry["findings"] for entry in cut[1:]] == [[]] * (len(cut) - 1)
    assert {entry["findings_total"] for entry in cut} == {100}
    assert len(listed) > 3_000 // 2 and fitted["repos_need_action"] == 3_000


def test_automation_errors_keep_their_count_and_half_the_budget() -> None:
    """20,000 C-00s of 200 bytes: the event lists those that fit half the budget, the sweep's
    own first, says automation_errors_total, and every surface counts 20,000."""
    errors = [{"repo": None, "check": "C-00", "message": "the workers failed"}]
    errors += [
        {"repo": f"repo-{n:05d}", "check": "C-00", "message": "m" * 160} for n in range(19_999)
    ]

    fitted = fit_lists(
        errors=errors, need_action=[], missing=[], over_budget=[], clean=[], accepted=_no_accepted()
    )

    listed = fitted["automation_errors"]
    assert listed == errors[: len(listed)] and listed[0]["repo"] is None
    assert json_bytes(listed) <= EVENT_LIST_BYTES // 2 < json_bytes(errors[: len(listed) + 1])
    assert fitted["automation_errors_total"] == 20_000
    assert "repos_truncated" not in fitted
    assert "20000 automation error(s)" in SweepSummary.of(_event(fitted)["detail"]).words()


def _no_accepted() -> dict[str, Any]:
    return {"total": 0, "repos": {}}


def test_a_sweep_past_the_budget_lists_a_head_and_counts_every_repo(
    tmp_path: Path, fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the lists' budget at 2,500 bytes, 16 repos with findings, 16 clean, 3 missing:
    the event lists the repos that fit, counts all (repos_need_action, repos_clean,
    repos_missing, repos_truncated), is stored compact and read back alike by the store
    and plain SQL; `statehub events` counts 16 that need action, the sweep's table says how
    many it did not list, and an unlisted repo's history says so."""
    monkeypatch.setattr(eventsize, "EVENT_LIST_BYTES", 2_500)
    template = make_repo(tmp_path / "template", "template")
    for n in range(16):
        shutil.copytree(template, fleet / f"clean-{n:02d}", symlinks=True)
        write(
            shutil.copytree(template, fleet / f"dirty-{n:02d}", symlinks=True), {"notes.txt": "x"}
        )
    gone = [tmp_path / f"gone-{n}" for n in range(3)]
    paths = "paths = [" + ", ".join(f'"{path}"' for path in gone) + "]"
    settings = fleet_settings(tmp_path, roots=[fleet], repos=paths)

    event = run_sweep(settings)

    detail = event.detail
    assert _listed_bytes(detail) <= 2_500
    counts = [detail[key] for key in ("repos_need_action", "repos_clean", "repos_missing")]
    assert counts == [16, 16, 3] and detail["repos_over_budget"] == 0
    assert detail["repos_truncated"] is True
    listed = [entry["repo"] for entry in detail["repos_processed"]]
    assert 0 < len(listed) < 16 and all(name.startswith("dirty-") for name in listed)
    assert len(detail["skipped_clean"]) < 16
    assert detail["assessment_failures"] == 16
    assert "16 need action, 16 clean" in SweepSummary.of(detail).words()
    assert event_rows(settings.database_path) == [event.as_dict()]
    with sqlite3.connect(settings.database_path) as connection:
        whole = connection.execute("SELECT count(*) FROM sweep_events WHERE entries IS NULL")
        assert whole.fetchone() == (0,)
    table = statehub("events", config=write_config(tmp_path, roots=[fleet], repos=paths))
    assert table.returncode == 0
    row = next(line for line in table.stdout.splitlines() if "consistency_sweep_remote" in line)
    assert row.split("│")[-3].strip() == "16"
    shown = io.StringIO()
    sweep_table(Console(file=shown, width=200), event)
    more = f"{16 - len(listed)} more repo(s) that need action not listed here: statehub findings"
    assert more in shown.getvalue()
    unlisted = next(f"dirty-{n:02d}" for n in range(16) if f"dirty-{n:02d}" not in listed)
    with Store.open(settings.database_path) as store:
        [said] = store.repo_history(unlisted, scan=5)
    assert said[4] == "unlisted"


def test_the_events_page_names_the_first_errors_and_counts_the_rest(tmp_path: Path) -> None:
    """An event listing 30 of its 50 C-00s: the events page names 20 and says 30 more."""
    started = datetime(2026, 11, 27, 10, tzinfo=UTC)
    errors = [{"repo": f"repo-{n:02d}", "check": "C-00", "message": "timed out"} for n in range(30)]
    detail = sweep_detail("activity-core", started, automation_errors=errors)
    detail |= {"automation_error": True, "automation_errors_total": 50}
    with Store.open(tmp_path / "hub.db") as store:
        store.append_event("consistency_sweep_remote_all", detail, created_at=started)
        view = events_view(store, since=started, until=started + timedelta(minutes=15), source=None)
    [shown] = view["events"]
    assert shown["errors"][:2] == ["repo-00: timed out", "repo-01: timed out"]
    assert shown["errors"][ERRORS_SHOWN:] == [
        "and 30 more automation error(s): statehub findings --check C-00"
    ]


def test_an_event_within_the_budget_lists_everything() -> None:
    """A small fleet: every list whole, the counts their lengths, no truncated flag."""
    need = [_entry("a", [_finding(1)])]
    fitted = fit_lists(
        errors=[],
        need_action=need,
        missing=["gone"],
        over_budget=["slow"],
        clean=["b", "c"],
        accepted={"total": 2, "repos": {"a": 2}},
    )
    assert fitted == {
        "repos_processed": need,
        "skipped_missing": ["gone"],
        "skipped_budget": ["slow"],
        "skipped_clean": ["b", "c"],
        "automation_errors": [],
        "repos_need_action": 1,
        "repos_clean": 2,
        "repos_missing": 1,
        "repos_over_budget": 1,
        "accepted": {"total": 2, "repos": {"a": 2}},
    }


def test_a_configuration_of_many_empty_roots_keeps_the_event_under_1_mb(
    tmp_path: Path, fleet: Path
) -> None:
    """3,000 configured roots that do not exist, each named by a 300-character path, and
    one that holds a repo: the sweep's warnings (1.0 MB of them) are cut to their budget,
    their last line says how many more, warnings_total counts them all, and the event is
    under 1 MB; `statehub config check` still lists every one."""
    make_repo(fleet, "alpha")
    gone = [str(tmp_path / "gone" / (f"{n:05d}-" + "x" * 290)) for n in range(3000)]
    config = write_config(tmp_path, roots=[fleet, *gone])
    swept = statehub("sweep", "--json", config=config)
    assert swept.returncode == 0, swept.stderr
    event = event_rows(tmp_path / "statehub.db")[-1]
    detail = event["detail"]
    assert len(json.dumps(event).encode()) < 1_000_000
    assert detail["warnings_total"] == 3000
    listed = detail["warnings"]
    assert 100 < len(listed) < 3000
    assert listed[:-1] == [
        f"repos.roots: {path} does not exist" for path in gone[: len(listed) - 1]
    ]
    more = 3000 - (len(listed) - 1)
    assert listed[-1] == f"... and {more} more warning(s): statehub config check lists them all"
    assert json.loads(swept.stdout)["detail"]["warnings_total"] == 3000
    checked = statehub("config", "check", config=config)
    assert checked.stdout.count(" does not exist") + checked.stderr.count(" does not exist") == 3000
