"""The workplan registry's surfaces: the CLI, the API and the page agree on one store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_support import client, serve_fleet
from clirun import statehub
from gitfleet import commit_all, make_repo, workplan, write
from test_alerts import Receiver, notify_config, sweep

PLAN = "workplans/DEMO-WP-0001-plan.md"


@pytest.mark.long(10)
def test_cli_api_and_page_agree(tmp_path: Path, fleet: Path) -> None:
    """After a plan is blocked, the CLI, GET /workplans and the page show the same plans."""
    root = make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    server = serve_fleet(tmp_path, fleet)
    assert statehub("sweep", "--all", "--json", config=server.config).returncode == 0
    write(root, {PLAN: workplan("DEMO-WP-0001", status="blocked")})
    commit_all(root)
    assert statehub("sweep", "--all", "--json", config=server.config).returncode == 0

    cli = statehub("workplans", "--json", config=server.config)
    blocked_cli = statehub("workplans", "--status", "blocked", "--json", config=server.config)
    recent = statehub("workplans", "--changed-since", "1h", "--json", config=server.config)
    with server, client(server.url) as http:
        listed = http.get("/workplans").json()
        blocked_api = http.get("/workplans", params={"status": "blocked"}).json()
        paged = http.get("/workplans", params={"limit": 1, "offset": 1}).json()
        one = http.get("/workplans/alpha/DEMO-WP-0001").json()
        page = http.get("/status").text
        repo_page = http.get("/status/repos/alpha").text
        missing = http.get("/workplans/alpha/NOPE-WP-0001")
        bad = http.get("/workplans", params={"changed_since": "soon"})

    everything = json.loads(cli.stdout)
    assert cli.returncode == 0 and everything["total"] == listed["total"] == 4
    assert everything["workplans"] == listed["workplans"]
    assert json.loads(blocked_cli.stdout)["workplans"] == blocked_api["workplans"]
    assert [(p["repo"], p["id"]) for p in blocked_api["workplans"]] == [("alpha", "DEMO-WP-0001")]
    assert paged["workplans"] == listed["workplans"][1:2] and paged["total"] == 4
    assert [c["summary"] for c in one["changes"]] == [
        "DEMO-WP-0001: active -> blocked",
        "DEMO-WP-0001: added (active)",
    ]
    assert json.loads(recent.stdout)["changes"][0]["summary"] == "DEMO-WP-0001: active -> blocked"
    assert 'data-status="blocked">blocked&nbsp;\u00d71' in page
    assert 'data-status="active">active&nbsp;\u00d73' in page
    assert '<a href="/status/repos/alpha">alpha</a>: DEMO-WP-0001: active -&gt; blocked' in page
    assert repo_page.count('<tr data-plan="') == 2
    assert '<tr data-plan="DEMO-WP-0001"><td class="mono">DEMO-WP-0001</td>' in repo_page
    assert missing.status_code == 404
    assert bad.status_code == 422


def test_cli_table_and_usage_error(tmp_path: Path, fleet: Path) -> None:
    """The table names each plan; a --changed-since that is no age nor date is exit 2."""
    make_repo(fleet, "alpha")
    server = serve_fleet(tmp_path, fleet)
    statehub("sweep", "--all", config=server.config)

    table = statehub("workplans", "--repo", "alpha", config=server.config)
    bad = statehub("workplans", "--changed-since", "lately", config=server.config)

    assert table.returncode == 0
    assert "DEMO-WP-0002" in table.stdout and "2 workplan(s)" in table.stdout
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "--changed-since" in bad.stderr


def test_plan_entering_a_watched_status_is_posted_once(tmp_path: Path, fleet: Path) -> None:
    """[notify] workplan_statuses: a plan turning blocked is posted once, a first read is not."""
    root = make_repo(fleet, "alpha")
    write(root, {"workplans/DEMO-WP-0002-plan.md": workplan("DEMO-WP-0002", status="blocked")})
    commit_all(root)
    receiver = Receiver()
    try:
        config = notify_config(tmp_path, fleet, receiver, 'workplan_statuses = ["blocked"]\n')
        assert sweep(config).returncode == 0  # DEMO-WP-0002 was blocked before: no post
        write(root, {PLAN: workplan("DEMO-WP-0001", status="blocked")})
        commit_all(root)
        assert sweep(config).returncode == 0
        assert sweep(config).returncode == 0  # unchanged: nothing more
        posts = [hook for hook in receiver.hooks() if hook["kind"] == "workplan_status"]
    finally:
        receiver.close()

    [post] = posts
    # The webhook's text escapes chat markup (<, >, &), as every text it posts does.
    assert post["text"] == "statehub: workplan in alpha: DEMO-WP-0001: active -&gt; blocked"
    assert [(p["repo"], p["plan_id"], p["new_status"]) for p in post["details"]["workplans"]] == [
        ("alpha", "DEMO-WP-0001", "blocked")
    ]
