"""The HTTP API (section 7 of the contract), against the real server on loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api_support import (
    ApiServer,
    HangingRemote,
    client,
    count_events,
    event_rows,
    make_slow_repo,
    serve_fleet,
    server_env,
)
from clirun import statehub
from contract_keys import DETAIL_KEYS, EVENT_KEYS, sweep_detail
from gitfleet import make_repo, write_config
from statehub.api import PROGRESS_BYTES, SHUTDOWN_GRACE_SECONDS, TRUNCATED_HEADER
from statehub.lock import SweepLock
from statehub.store import Store
from statehub.timefmt import parse_iso
from waiting import wait_for

SWEEP = "/consistency/sweep/remote-all"
SLOW_FETCH = 4  # seconds a remote sweep of the hub's fleet lasts (its 'slow' repo hangs)
TOKEN = "s3cret-T0ken_for-tests-0123456789abcdefghijklmnop"


@dataclass
class Hub:
    server: ApiServer
    http: httpx.Client
    database: Path
    fleet: Path

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get("/healthz").json()
        return answer

    def newest_id(self) -> int:
        rows = event_rows(self.database)
        return rows[-1]["id"] if rows else 0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The server over four repos: two good, one with findings, one whose remote hangs."""
    folder = tmp_path_factory.mktemp("hub")
    fleet = folder / "fleet"
    fleet.mkdir()
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    make_repo(fleet, "gamma", {"README.md": "# gamma\n"})
    remote = HangingRemote()
    make_slow_repo(fleet, "slow", remote)
    server = serve_fleet(folder, fleet, sweep=f"fetch_timeout_seconds = {SLOW_FETCH}")
    try:
        with server, client(server.url) as http:
            yield Hub(server=server, http=http, database=folder / "statehub.db", fleet=fleet)
    finally:
        remote.close()


# -- POST /consistency/sweep/remote-all ---------------------------------------------------


def test_sweep_answers_the_event_of_section_5(hub: Hub) -> None:
    """A POST without a body sweeps every repo and answers the full recorded event."""
    answer = hub.http.post(SWEEP, json={})
    assert answer.status_code == 200
    event = answer.json()
    assert set(event) == EVENT_KEYS
    assert set(event["detail"]) == DETAIL_KEYS
    assert event["event_type"] == "consistency_sweep_remote_all"
    detail = event["detail"]
    assert detail["source"] == "manual"
    assert detail["remote"] is False
    assert detail["lock_skipped"] is False
    assert detail["max_seconds"] == 300
    assert detail["repos_total"] == 4
    assert parse_iso(detail["started_at"]) <= parse_iso(detail["finished_at"])
    processed = {item["repo"] for item in detail["repos_processed"]}
    assert processed | set(detail["skipped_clean"]) == {"alpha", "beta", "gamma", "slow"}
    assert event_rows(hub.database)[-1] == event


def test_sweep_options_are_recorded(hub: Hub) -> None:
    """max_seconds, source and remote of the body reach the recorded event."""
    answer = hub.http.post(SWEEP, json={"max_seconds": 60, "source": "activity-core"})
    assert answer.status_code == 200
    detail = answer.json()["detail"]
    assert (detail["max_seconds"], detail["source"], detail["remote"]) == (
        60,
        "activity-core",
        False,
    )
    assert event_rows(hub.database)[-1]["detail"]["source"] == "activity-core"


def test_empty_json_body_means_defaults(hub: Hub) -> None:
    """An empty body with a JSON content type, or '{}', is a sweep with every default."""
    for body in (b"", b"{}", b"  \n"):
        answer = hub.http.post(SWEEP, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["detail"]["source"] == "manual"


def test_hundred_concurrent_triggers_run_one_sweep(hub: Hub) -> None:
    """100 concurrent triggers: one sweep runs, 99 are lock-skipped at once, 100 recorded."""
    before = hub.newest_id()

    async def trigger_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(
            base_url=hub.server.url, timeout=120, limits=limits, trust_env=False
        ) as http:
            return await asyncio.gather(
                *(http.post(SWEEP, json={"remote": True, "source": "burst"}) for _ in range(100))
            )

    responses = asyncio.run(trigger_all())
    assert [response.status_code for response in responses] == [200] * 100
    events = [response.json() for response in responses]
    ran = [event for event in events if not event["detail"]["lock_skipped"]]
    skipped = [event for event in events if event["detail"]["lock_skipped"]]
    assert (len(ran), len(skipped)) == (1, 99)
    # Each lock-skipped answer was recorded while the one sweep still ran: none waited.
    finished = parse_iso(ran[0]["detail"]["finished_at"])
    assert all(parse_iso(event["created_at"]) <= finished for event in skipped)
    rows = [row for row in event_rows(hub.database) if row["id"] > before]
    assert len(rows) == 100
    assert {row["id"] for row in rows} == {event["id"] for event in events}
    assert sum(1 for row in rows if not row["detail"]["lock_skipped"]) == 1


def test_healthz_answers_while_a_long_sweep_runs(hub: Hub) -> None:
    """/healthz and /progress/ answer during a sweep, and report the lock as held."""
    result: dict[str, httpx.Response] = {}

    def trigger() -> None:
        with client(hub.server.url, timeout=120) as http:
            result["sweep"] = http.post(SWEEP, json={"remote": True, "source": "long"})

    worker = threading.Thread(target=trigger)
    worker.start()
    try:
        assert wait_for(lambda: hub.health()["lock"] == "held", timeout=30)
        health = hub.http.get("/healthz")
        listed = hub.http.get("/progress/", params={"limit": 1})
        assert worker.is_alive(), "the sweep ended before the reads were answered"
    finally:
        worker.join(timeout=SLOW_FETCH + 60)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["lock"] == "held"
    assert listed.status_code == 200
    assert result["sweep"].json()["detail"]["lock_skipped"] is False
    assert hub.health()["lock"] == "free"


def test_client_that_disconnects_still_gets_its_sweep_recorded(hub: Hub) -> None:
    """A client that gives up mid-sweep does not abort it: the event is recorded in full."""
    before = hub.newest_id()
    with (
        client(hub.server.url, timeout=0.5) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(SWEEP, json={"remote": True, "source": "impatient"})
    assert hub.health()["lock"] == "held"  # the client is gone, the sweep goes on
    assert wait_for(lambda: hub.health()["lock"] == "free", timeout=SLOW_FETCH + 60)
    rows = [row for row in event_rows(hub.database) if row["id"] > before]
    assert len(rows) == 1
    detail = rows[0]["detail"]
    assert detail["source"] == "impatient"
    assert detail["lock_skipped"] is False
    assert "interrupted" not in detail
    assert detail["finished_at"] is not None
    assert [error["repo"] for error in detail["automation_errors"]] == ["slow"]
    assert "timed out" in detail["automation_errors"][0]["message"]


BAD_BODIES = [
    pytest.param(b'{"max_seconds": 30', id="malformed-json"),
    pytest.param(b"\xff\xfe{", id="not-utf8"),
    pytest.param(b"[]", id="list"),
    pytest.param(b'"manual"', id="string"),
    pytest.param(b"5", id="number"),
    pytest.param(b'{"max_seconds": "300"}', id="max-seconds-string"),
    pytest.param(b'{"max_seconds": 30.5}', id="max-seconds-float"),
    pytest.param(b'{"max_seconds": true}', id="max-seconds-bool"),
    pytest.param(b'{"max_seconds": 0}', id="max-seconds-zero"),
    pytest.param(b'{"max_seconds": 3601}', id="max-seconds-too-big"),
    pytest.param(b'{"max_seconds": -5}', id="max-seconds-negative"),
    pytest.param(b'{"remote": "true"}', id="remote-string"),
    pytest.param(b'{"remote": 1}', id="remote-int"),
    pytest.param(b'{"source": 5}', id="source-number"),
    pytest.param(b'{"source": null}', id="source-null"),
    pytest.param(b'{"source": ""}', id="source-empty"),
    pytest.param(b'{"source": "two words"}', id="source-space"),
    pytest.param(b'{"source": "-dash-first"}', id="source-dash-first"),
    pytest.param(b'{"source": "line\\n"}', id="source-newline"),
    pytest.param(json.dumps({"source": "x" * 65}).encode(), id="source-too-long"),
    pytest.param(b'{"repos": ["alpha"]}', id="unknown-field"),
    pytest.param(b'{"path": "/etc"}', id="path-field"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_sweep_body_is_422_and_starts_no_sweep(hub: Hub, body: bytes) -> None:
    """A bad body gets 422 with the reason in JSON, and no event is recorded."""
    before = count_events(hub.database)
    answer = hub.http.post(SWEEP, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert errors
    assert all(error["loc"][0] == "body" and error["msg"] for error in errors)
    assert count_events(hub.database) == before


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        pytest.param({"Content-Type": "text/plain"}, b"{}", 415, id="text-plain"),
        pytest.param(
            {"Content-Type": "application/x-www-form-urlencoded"}, b"", 415, id="empty-form"
        ),
        pytest.param({"Content-Type": "application/json"}, b" " * 70_000, 413, id="too-large"),
    ],
)
def test_non_json_sweep_request_is_refused(
    hub: Hub, headers: dict[str, str], body: bytes, status: int
) -> None:
    """A body that is not JSON (a web form, say) or is too large starts no sweep."""
    before = count_events(hub.database)
    answer = hub.http.post(SWEEP, content=body, headers=headers)
    assert answer.status_code == status
    assert answer.json()["detail"]
    assert count_events(hub.database) == before


# -- GET /progress/ -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"event_type": "bogus"}, id="unknown-event-type"),
        pytest.param({"limit": "0"}, id="limit-zero"),
        pytest.param({"limit": "1000000"}, id="limit-million"),
        pytest.param({"limit": "ten"}, id="limit-word"),
        pytest.param({"since": "yesterday"}, id="since-word"),
        pytest.param({"since": "2026-13-01T00:00:00Z"}, id="since-month-13"),
        pytest.param({"since": "9999-12-31T23:59:59-01:00"}, id="since-overflow"),
    ],
)
def test_bad_progress_query_is_422(hub: Hub, query: dict[str, str]) -> None:
    """A bad event_type, limit or since gets 422 naming the parameter."""
    answer = hub.http.get("/progress/", params=query)
    assert answer.status_code == 422, answer.text
    (name,) = query
    assert [error["loc"] for error in answer.json()["detail"]] == [["query", name]]


def test_progress_lists_newest_first_with_filters(hub: Hub) -> None:
    """/progress/ honours event_type, limit and since; /progress answers without redirect."""
    hub.http.post(SWEEP, json={"source": "listing"})
    done = statehub("sweep", "--repo", "alpha", "--json", config=hub.server.config)
    assert done.returncode == 0, done.stderr
    everything = hub.http.get("/progress/", params={"limit": 1000}).json()
    ids = [event["id"] for event in everything]
    assert ids == sorted(ids, reverse=True)
    assert ids == [row["id"] for row in reversed(event_rows(hub.database))][: len(ids)]
    chosen = hub.http.get("/progress/", params={"event_type": "consistency_sweep"}).json()
    assert chosen
    assert {event["event_type"] for event in chosen} == {"consistency_sweep"}
    newest = hub.http.get("/progress/", params={"limit": 1}).json()
    assert [event["id"] for event in newest] == ids[:1]
    assert hub.http.get("/progress/", params={"since": "2999-01-01T00:00:00Z"}).json() == []
    since = everything[1]["created_at"]
    recent = hub.http.get("/progress/", params={"since": since, "limit": 1000}).json()
    assert recent == [event for event in everything if event["created_at"] >= since]
    bare = hub.http.get("/progress", params={"limit": 2})
    assert bare.status_code == 200  # no redirect: httpx does not follow one by default
    assert [event["id"] for event in bare.json()] == ids[:2]


def test_progress_event_type_remote_all_holds_only_those(hub: Hub) -> None:
    """event_type=consistency_sweep_remote_all lists only sweeps of all repos."""
    # One event of each type, whatever ran before in this module (tests run in any order).
    assert hub.http.post(SWEEP, json={"source": "remote-all-filter"}).status_code == 200
    done = statehub("sweep", "--repo", "alpha", "--json", config=hub.server.config)
    assert done.returncode == 0, done.stderr
    listed = hub.http.get("/progress/", params={"event_type": "consistency_sweep_remote_all"})
    assert listed.status_code == 200
    assert listed.json()
    assert {event["event_type"] for event in listed.json()} == {"consistency_sweep_remote_all"}


# -- GET /repos, /healthz, /openapi.json --------------------------------------------------


def test_repos_lists_standing_assessments(hub: Hub) -> None:
    """/repos lists every assessed repo; /repos/{name} answers one, with its findings."""
    hub.http.post(SWEEP, json={})
    listed = hub.http.get("/repos")
    assert listed.status_code == 200
    by_name = {item["repo"]: item for item in listed.json()}
    assert set(by_name) == {"alpha", "beta", "gamma", "slow"}
    assert by_name["alpha"]["status"] == "ok"
    gamma = hub.http.get("/repos/gamma")
    assert gamma.status_code == 200
    assert gamma.json()["status"] == "findings"
    assert "C-02" in {finding["check"] for finding in gamma.json()["findings"]}
    assert gamma.json() == {**by_name["gamma"], "findings_total": 2}


def test_unknown_repo_is_404_with_reason(hub: Hub) -> None:
    """/repos/{name} of a repo never assessed is 404 with a JSON reason."""
    answer = hub.http.get("/repos/no-such-repo")
    assert answer.status_code == 404
    assert "no-such-repo" in answer.json()["detail"]


def test_healthz_reports_database_lock_and_last_sweep(hub: Hub) -> None:
    """/healthz: database ok, lock free, last_sweep_at of the newest sweep that ran."""
    event = hub.http.post(SWEEP, json={}).json()
    answer = hub.http.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "database": "ok",
        "lock": "free",
        "last_sweep_at": event["created_at"],
        "warnings": [],
    }


def test_healthz_reports_a_held_lock(hub: Hub) -> None:
    """While any process holds the sweep lock, /healthz says held and a POST is skipped."""
    lock = SweepLock(hub.database)
    assert lock.acquire()
    try:
        assert hub.health()["lock"] == "held"
        answer = hub.http.post(SWEEP, json={"source": "while-held"})
        assert answer.json()["detail"]["lock_skipped"] is True
    finally:
        lock.release()
    assert hub.health()["lock"] == "free"


def test_openapi_lists_every_endpoint(hub: Hub) -> None:
    """/openapi.json documents every endpoint and the sweep body; /docs is served."""
    document = hub.http.get("/openapi.json").json()
    paths = {path: set(methods) for path, methods in document["paths"].items()}
    assert paths == {
        "/consistency/sweep/remote-all": {"post"},
        "/progress/": {"get"},
        "/repos": {"get"},
        "/repos/{name}": {"get"},
        "/workplans": {"get"},
        "/workplans/{repo}/{plan}": {"get"},
        "/healthz": {"get"},
        "/metrics": {"get"},
    }
    body = document["paths"]["/consistency/sweep/remote-all"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"max_seconds", "source", "remote", "scheduled"}
    assert schema["additionalProperties"] is False
    progress = document["paths"]["/progress/"]["get"]["parameters"]
    assert {parameter["name"] for parameter in progress} == {
        "event_type",
        "limit",
        "since",
        "until",
        "before",
        "source",
        "completed",
    }
    docs = hub.http.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


def test_foreign_host_header_is_refused_on_loopback(hub: Hub) -> None:
    """Bound to loopback, a request naming another Host (DNS rebinding) gets 400."""
    answer = hub.http.get("/repos", headers={"Host": "attacker.example"})
    assert answer.status_code == 400
    assert hub.http.get("/repos", headers={"Host": f"localhost:{hub.server.port}"}).is_success


# -- /metrics -----------------------------------------------------------------------------


def test_metrics_are_computed_from_the_store(tmp_path: Path, fleet: Path) -> None:
    """/metrics parses as Prometheus text and counts sweeps, repos and findings."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "gamma", {"README.md": "# gamma\n"})
    with serve_fleet(tmp_path, fleet) as server, client(server.url) as http:
        first = http.post(SWEEP, json={"source": "tester"}).json()
        broken = fleet / "broken"
        broken.mkdir()
        (broken / ".git").write_text("gitdir: /nowhere/at/all\n", encoding="utf-8")
        second = http.post(SWEEP, json={"source": "tester"}).json()
        lock = SweepLock(tmp_path / "statehub.db")
        assert lock.acquire()
        try:
            skipped = http.post(SWEEP, json={"source": "other"}).json()
            held = _samples(http.get("/metrics").text)
        finally:
            lock.release()
        answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    if datetime.now(UTC).date() != parse_iso(first["created_at"]).date():
        pytest.skip("the day changed between the sweeps and the scrape (counters reset)")
    assert second["detail"]["automation_error"] is True
    assert skipped["detail"]["lock_skipped"] is True
    samples = _samples(answer.text)
    assert held[("statehub_sweep_running", ())] == 1
    assert samples[("statehub_sweep_running", ())] == 0
    assert samples[("statehub_database_up", ())] == 1
    sweeps = {
        (labels["source"], labels["outcome"]): value
        for (name, label_items), value in samples.items()
        if name == "statehub_sweeps_total"
        for labels in [dict(label_items)]
    }
    assert sweeps == {
        ("tester", "ok"): 1,
        ("tester", "automation_error"): 1,
        ("tester", "lock_skipped"): 0,
        ("other", "ok"): 0,
        ("other", "automation_error"): 0,
        ("other", "lock_skipped"): 1,
    }
    tester = (("source", "tester"),)
    assert samples[("statehub_last_success_timestamp_seconds", tester)] == pytest.approx(
        parse_iso(first["created_at"]).timestamp()
    )
    assert samples[("statehub_last_sweep_timestamp_seconds", tester)] == pytest.approx(
        parse_iso(second["created_at"]).timestamp()
    )
    assert samples[("statehub_last_sweep_duration_seconds", tester)] == pytest.approx(
        second["detail"]["duration_seconds"]
    )
    assert ("statehub_last_sweep_timestamp_seconds", (("source", "other"),)) not in samples
    assert {
        status: samples[("statehub_repos", (("status", status),))]
        for status in ("ok", "findings", "error")
    } == {"ok": 1, "findings": 1, "error": 1}
    assert samples[("statehub_findings", (("check", "C-00"),))] == 1
    assert samples[("statehub_findings", (("check", "C-02"),))] == 1
    assert samples[("statehub_findings", (("check", "C-23"),))] == 0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# -- a database that cannot be used -------------------------------------------------------


def test_unusable_database_is_503_not_500(tmp_path: Path, fleet: Path) -> None:
    """With the database path unusable, /healthz and the rest answer 503 with a reason."""
    make_repo(fleet, "alpha")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be\n", encoding="utf-8")
    server = serve_fleet(tmp_path, fleet)
    text = server.config.read_text(encoding="utf-8")
    server.config.write_text(
        text.replace('database = "statehub.db"', 'database = "blocker/statehub.db"'),
        encoding="utf-8",
    )
    with server, client(server.url) as http:
        health = http.get("/healthz")
        sweep = http.post(SWEEP, json={})
        listed = http.get("/progress/")
        metrics = http.get("/metrics")
    assert health.status_code == 503
    assert health.json()["status"] == "error"
    assert health.json()["database"].startswith("error: ")
    for answer in (sweep, listed):
        assert answer.status_code == 503
        assert "database error" in answer.json()["detail"]
    assert _samples(metrics.text)[("statehub_database_up", ())] == 0
    assert "Traceback" not in server.log_text()


# -- the bearer token ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The server on loopback with a token file configured: the token is required."""
    folder = tmp_path_factory.mktemp("guarded")
    fleet = folder / "fleet"
    fleet.mkdir()
    make_repo(fleet, "alpha")
    (folder / "api-token").write_text(TOKEN + "\n", encoding="utf-8")
    # Many wrong tokens below, from one client: the throttle's limit set out of their way.
    api = 'token_file = "api-token"\nauth_failures_per_minute = 1000'
    with serve_fleet(folder, fleet, api=api) as server:
        yield server


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-header"),
        pytest.param(f"Bearer {TOKEN}x", id="wrong-token"),
        pytest.param(f"Bearer {TOKEN[:-1]}", id="prefix-of-token"),
        pytest.param("Bearer", id="empty-token"),
        pytest.param(f"Basic {TOKEN}", id="basic-scheme"),
        pytest.param(TOKEN, id="no-scheme"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/progress/"),
        ("GET", "/repos"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", SWEEP),
    ],
)
def test_request_without_the_token_is_401(
    guarded: ApiServer, authorization: str | None, method: str, path: str
) -> None:
    """With a token configured, every endpoint but /healthz answers 401 without it."""
    database = guarded.config.parent / "statehub.db"
    before = count_events(database)
    headers = {"Authorization": authorization} if authorization is not None else {}
    with client(guarded.url) as http:
        answer = http.request(method, path, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["detail"]
    assert count_events(database) == before


def test_right_token_is_let_in_and_healthz_is_open(guarded: ApiServer) -> None:
    """The right bearer token opens every endpoint; /healthz needs none."""
    with client(guarded.url) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
    with client(guarded.url, token=TOKEN) as http:
        assert http.post(SWEEP, json={}).status_code == 200
        for path in ("/progress/", "/repos", "/repos/alpha", "/metrics", "/openapi.json"):
            assert http.get(path).status_code == 200, path


def test_non_loopback_bind_requires_the_token(tmp_path: Path, fleet: Path) -> None:
    """Bound to all interfaces with a token: the token is required, any Host is fine."""
    make_repo(fleet, "alpha")
    (tmp_path / "api-token").write_text(TOKEN, encoding="utf-8")
    server = serve_fleet(tmp_path, fleet, api='host = "0.0.0.0"\ntoken_file = "api-token"')
    with server, client(server.url) as anonymous, client(server.url, token=TOKEN) as http:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/repos").status_code == 401
        named = http.get("/repos", headers={"Host": f"statehub.example:{server.port}"})
        assert named.status_code == 200


@pytest.mark.parametrize(
    ("api", "token_text", "reason"),
    [
        pytest.param('host = "0.0.0.0"', None, "required when api.host", id="exposed-no-token"),
        pytest.param('token_file = "api-token"', "", "is empty", id="empty-token-file"),
        pytest.param('token_file = "api-token"', "  \n", "is empty", id="blank-token-file"),
        pytest.param('token_file = "api-token"', "x\n", "fewer than 32", id="short-token-file"),
        pytest.param('token_file = "missing-token"', None, "missing-token", id="no-token-file"),
    ],
)
def test_server_refuses_to_start_without_a_usable_token(
    tmp_path: Path, fleet: Path, api: str, token_text: str | None, reason: str
) -> None:
    """A non-loopback host without a token, or an empty/missing token file: exit 78."""
    if token_text is not None:
        (tmp_path / "api-token").write_text(token_text, encoding="utf-8")
    config = write_config(tmp_path, roots=[fleet], api=f"port = 0\n{api}")
    done = subprocess.run(
        [sys.executable, "-m", "statehub", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    assert "api.token_file" in done.stderr
    assert reason in done.stderr
    assert "Traceback" not in done.stderr


# -- the process --------------------------------------------------------------------------


def test_server_logs_each_request_and_stops_with_status_0(tmp_path: Path, fleet: Path) -> None:
    """One stderr line per request; SIGTERM stops the server with exit status 0."""
    make_repo(fleet, "alpha")
    server = serve_fleet(tmp_path, fleet).start()
    try:
        with client(server.url) as http:
            http.get("/repos/alpha")
            http.get("/progress/", params={"limit": 3})
    finally:
        status = server.stop()
    assert status == 0
    lines = server.log_text().splitlines()
    assert sum('"GET /repos/alpha" 404' in line for line in lines) == 1
    assert sum('"GET /progress/?limit=3" 200' in line for line in lines) == 1


def test_port_in_use_is_exit_status_1(tmp_path: Path, fleet: Path) -> None:
    """A second server on a port already taken exits 1 with the reason on stderr."""
    with serve_fleet(tmp_path, fleet) as first:
        (tmp_path / "second").mkdir()
        second = write_config(tmp_path / "second", roots=[fleet], api=f"port = {first.port}")
        done = subprocess.run(
            [sys.executable, "-m", "statehub", "serve", "--config", str(second)],
            capture_output=True,
            text=True,
            env=server_env(),
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()  # one clear line, no "startup complete" before it
    assert "address already in use" in line
    assert line.endswith(
        f"ERROR statehub.api: cannot serve on 127.0.0.1:{first.port}: address already in use"
    )


@pytest.mark.long(15)
def test_sigterm_during_a_sweep_stops_promptly(tmp_path: Path, fleet: Path) -> None:
    """SIGTERM mid-sweep exits 0 within the grace; the next sweep records it interrupted."""
    remote = HangingRemote()
    try:
        make_repo(fleet, "alpha")
        make_slow_repo(fleet, "slow", remote)
        server = serve_fleet(tmp_path, fleet, sweep="fetch_timeout_seconds = 300").start()
        outcome: dict[str, object] = {}

        def trigger() -> None:
            with client(server.url, timeout=120) as http:
                outcome["answer"] = http.post(SWEEP, json={"remote": True, "source": "doomed"})

        worker = threading.Thread(target=trigger)
        worker.start()
        with client(server.url) as http:
            assert wait_for(lambda: http.get("/healthz").json()["lock"] == "held", timeout=30)
        began = time.monotonic()
        status = server.stop(timeout=60)
        stopped_after = time.monotonic() - began
        worker.join(timeout=30)
    finally:
        remote.close()  # the orphaned fetch fails at once
    assert status == 0
    assert stopped_after < SHUTDOWN_GRACE_SECONDS + 10
    answer = outcome["answer"]
    assert isinstance(answer, httpx.Response)
    assert answer.status_code == 503
    assert "interrupted" in answer.json()["detail"]
    assert "Traceback" not in server.log_text()
    done = statehub("sweep", "--all", "--json", config=server.config)
    assert done.returncode == 0, done.stderr
    interrupted = [
        row["detail"]
        for row in event_rows(tmp_path / "statehub.db")
        if row["detail"].get("interrupted")
    ]
    assert [detail["source"] for detail in interrupted] == ["doomed"]
    assert interrupted[0]["automation_error"] is True


def test_a_repos_findings_are_answered_a_page_at_a_time(tmp_path: Path, fleet: Path) -> None:
    """GET /repos/{name} answers at most `limit` findings from `offset`, with findings_total;
    the pages together are the whole standing assessment. GET /repos lists its first 100,
    with findings_total and truncated, and the other repo whole."""
    files = {f"workplans/bad-{n:03d}.md": "no front matter\n" for n in range(250)}
    make_repo(fleet, "plans", files)
    make_repo(fleet, "small", {"README.md": "# small\n"})
    with serve_fleet(tmp_path, fleet) as server, client(server.url) as http:
        assert http.post(SWEEP, json={}).status_code == 200
        first = http.get("/repos/plans", params={"limit": 100}).json()
        pages = [first]
        while len(pages) * 100 < first["findings_total"]:
            pages.append(
                http.get("/repos/plans", params={"limit": 100, "offset": len(pages) * 100}).json()
            )
        whole = http.get("/repos/plans").json()
        too_many = http.get("/repos/plans", params={"limit": 100_000})
        listed = {repo["repo"]: repo for repo in http.get("/repos").json()}
        small = http.get("/repos/small").json()
    assert first["findings_total"] > 250
    assert len(first["findings"]) == 100
    assert [f for page in pages for f in page["findings"]] == whole["findings"]
    assert len(whole["findings"]) == whole["findings_total"]
    assert too_many.status_code == 422
    assert listed["plans"] == {**first, "truncated": True}
    assert listed["small"] == {
        key: value for key, value in small.items() if key != "findings_total"
    }
    assert len(listed["small"]["findings"]) == small["findings_total"] > 0


def test_progress_stops_at_its_byte_bound_and_says_so(tmp_path: Path, fleet: Path) -> None:
    """Ten events of 0.94 MB each: GET /progress/ (limit 50) answers the newest 8 (7.5 MB,
    under its 8 MB bound) with X-Statehub-Truncated: 8; its Link rel="next" gives the other
    2; a limit the bound does not reach has no such header."""
    names = [f"platform+service-{n:06d}" for n in range(36_000)]  # 0.94 MB of clean names
    database = tmp_path / "statehub.db"
    start = datetime(2026, 11, 27, 10, tzinfo=UTC)
    with Store.open(database) as store:
        for n in range(10):
            started = start + timedelta(minutes=15 * n)
            detail = sweep_detail("activity-core", started, skipped_clean=names)
            store.append_event("consistency_sweep_remote_all", detail, created_at=started)
    with serve_fleet(tmp_path, fleet) as server, client(server.url, timeout=60) as http:
        first = http.get("/progress/")
        rest = http.get(first.links["next"]["url"])
        five = http.get("/progress/", params={"limit": 5})
    assert first.status_code == 200
    assert 7_000_000 < len(first.content) <= PROGRESS_BYTES
    assert first.headers[TRUNCATED_HEADER] == "8"
    assert [event["id"] for event in first.json()] == list(range(10, 2, -1))
    assert first.links["next"]["url"] == "/progress/?before=3"
    assert [event["id"] for event in rest.json()] == [2, 1]
    assert TRUNCATED_HEADER not in rest.headers
    assert "link" not in rest.headers  # the last page
    assert [event["id"] for event in five.json()] == [10, 9, 8, 7, 6]
    assert TRUNCATED_HEADER not in five.headers


def test_progress_pages_by_its_link_list_every_event_once(tmp_path: Path, fleet: Path) -> None:
    """Seven events, three of them recorded in one millisecond: following Link rel="next"
    (limit 2, the filters kept) lists each once, where paging with until= the oldest
    created_at answered skips those sharing its millisecond."""
    database = tmp_path / "statehub.db"
    start = datetime(2026, 11, 27, 10, tzinfo=UTC)
    times = [start + timedelta(minutes=n) for n in (0, 1, 2, 2, 2, 3, 4)]
    with Store.open(database) as store:
        for at in times:
            detail = sweep_detail("activity-core", at)
            store.append_event("consistency_sweep_remote_all", detail, created_at=at)
    pages: list[list[int]] = []
    with serve_fleet(tmp_path, fleet) as server, client(server.url) as http:
        answer = http.get(
            "/progress/", params={"limit": 2, "event_type": "consistency_sweep_remote_all"}
        )
        while True:
            assert answer.status_code == 200, answer.text
            pages.append([event["id"] for event in answer.json()])
            if "next" not in answer.links:
                break
            assert "event_type=consistency_sweep_remote_all" in answer.links["next"]["url"]
            answer = http.get(answer.links["next"]["url"])
        by_time: list[int] = []
        until = None
        for _ in range(10):
            params: dict[str, str | int] = {"limit": 2} | ({"until": until} if until else {})
            page = http.get("/progress/", params=params).json()
            if not page:
                break
            by_time += [event["id"] for event in page]
            until = page[-1]["created_at"]
        unknown = http.get("/progress/", params={"before": 1})
        invalid = http.get("/progress/", params={"before": 0})
        too_large = http.get("/progress/", params={"before": 2**64})
    assert pages == [[7, 6], [5, 4], [3, 2], [1]]
    assert by_time == [7, 6, 5, 4, 2, 1]  # the old recipe lost event 3
    assert unknown.status_code == 200 and unknown.json() == []  # nothing before the first
    assert invalid.status_code == 422
    assert too_large.status_code == 422  # not a 500: no id is past SQLite's integers
