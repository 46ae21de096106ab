"""The status page over HTTP: rendered by the real server over a planted store.

The page in a real browser (console, requests, screenshot) is tests/test_page_browser.py.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_support import ApiServer, client
from clirun import statehub
from gitfleet import fleet_settings
from page_support import HOSTILE, Planted, planted_server, slot_label


def cell_state(page: str, row: str, start: Any) -> str | None:
    """The ``data-state`` of one cell of the strip row labelled ``row``."""
    block = re.search(
        rf'<div class="row[^"]*" data-source="{re.escape(row)}">(.*?)</div>', page, re.S
    )
    if block is None:
        return None
    found = re.search(
        rf'data-state="([a-z]+)" data-slot="{re.escape(slot_label(start))}"', block.group(1)
    )
    return None if found is None else found.group(1)


def findings_repos(page: str) -> list[str]:
    return re.findall(r'<tr data-repo="([^"]+)">', page)


@pytest.fixture(scope="module")
def served(page_server: tuple[ApiServer, Planted]) -> tuple[str, Planted]:
    server, planted = page_server
    return server.url, planted


def get(url: str, path: str, **options: Any) -> Any:
    with client(url) as http:
        return http.get(path, **options)


def test_root_and_status_are_the_same_html_page(served: tuple[str, Planted]) -> None:
    """GET / and GET /status answer the page, self-refreshing, with a strict CSP."""
    url, _ = served
    for path in ("/", "/status"):
        answer = get(url, path)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert '<meta http-equiv="refresh" content="60">' in answer.text
        assert "<script" not in answer.text
        assert "http://" not in answer.text and "https://" not in answer.text


def test_strip_places_planted_slots(served: tuple[str, Planted]) -> None:
    """The summary row shows the planted missed, doubled and automation-error slots."""
    url, planted = served
    page = get(url, "/status").text
    assert cell_state(page, "all sources", planted.missed) == "missed"
    assert cell_state(page, "all sources", planted.doubled) == "doubled"
    assert cell_state(page, "all sources", planted.error) == "error"
    assert cell_state(page, "local-fallback", planted.doubled) == "failures"
    assert cell_state(page, "all sources", planted.store_since) == "clean"
    assert cell_state(page, "activity-core", planted.missed) == "none"
    before = planted.store_since - (planted.doubled - planted.error)  # two slots earlier
    assert cell_state(page, "all sources", before) == "before"
    assert page.count('data-state="missed"') == 1


def test_seven_day_strip_has_a_cell_per_slot(served: tuple[str, Planted]) -> None:
    """?window=7d draws 672 or 673 slots (7 days of 15 minutes, plus the running one)."""
    url, planted = served
    page = get(url, "/status", params={"window": "7d"}).text
    block = re.search(r'data-source="all sources">(.*?)</div>', page, re.S)
    assert block is not None
    assert block.group(1).count('class="c ') in (672, 673)
    assert cell_state(page, "all sources", planted.missed) == "missed"


def test_cell_links_to_the_events_of_its_slot(served: tuple[str, Planted]) -> None:
    """The doubled slot's link lists the sweeps of both sources."""
    url, planted = served
    page = get(url, "/status").text
    link = re.search(
        rf'<a class="c doubled" data-state="doubled" data-slot="{slot_label(planted.doubled)}"'
        r' href="([^"]+)"',
        page,
    )
    assert link is not None
    href = html.unescape(link.group(1))
    events = get(url, href).text
    assert "local-fallback" in events and "activity-core" in events
    assert events.count("<details>") == 2


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("9999-12-31T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("0001-01-01T00:00:00+14:00", "0001-01-01T01:00:00Z"),
        ("1900-01-01T00:00:00Z", "1900-01-01T01:00:00Z"),
    ],
)
def test_events_of_far_dates_are_422(served: tuple[str, Planted], since: str, until: str) -> None:
    """/status/events with dates at the ends of the calendar is 422, not 500 or a reset."""
    url, _ = served
    answer = get(url, "/status/events", params={"since": since, "until": until})
    assert answer.status_code == 422
    assert "between 1970 and 9000" in answer.text or "not an ISO-8601 time" in answer.text


def test_findings_show_c00_and_escape_markup(served: tuple[str, Planted]) -> None:
    """The planted C-00 is listed; a message holding markup is shown as text."""
    url, planted = served
    page = get(url, "/status").text
    assert planted.c00_message in page
    assert findings_repos(page) == ["beta-lib", "broken-repo", "alpha-svc"]  # newest first
    assert HOSTILE not in page
    assert html.escape(HOSTILE, quote=True) in page or "&lt;script&gt;" in page


def test_new_findings_are_marked(served: tuple[str, Planted]) -> None:
    """C-13 of beta-lib, new since its previous assessment, is marked new; C-15 is not."""
    url, _ = served
    page = get(url, "/status").text
    row = re.search(r'<tr data-repo="beta-lib">(.*?)</tr>', page, re.S)
    assert row is not None
    assert 'class="pill new"' in row.group(1)
    assert "C-13*" in re.sub(r"<[^>]+>", "", row.group(1))
    assert "C-15*" not in re.sub(r"<[^>]+>", "", row.group(1))
    alpha = re.search(r'<tr data-repo="alpha-svc">(.*?)</tr>', page, re.S)
    assert alpha is not None and "new" not in alpha.group(1)


@pytest.mark.parametrize(
    ("query", "repos"),
    [
        ({"check": "C-00"}, ["broken-repo"]),
        ({"check": "C-13"}, ["beta-lib"]),
        ({"repo": "ALPHA"}, ["alpha-svc"]),
        ({"check": "C-09", "repo": "beta"}, []),
    ],
)
def test_filter_narrows_findings(
    served: tuple[str, Planted], query: dict[str, str], repos: list[str]
) -> None:
    """The plain GET form's parameters keep only the matching repos."""
    url, _ = served
    assert findings_repos(get(url, "/status", params=query).text) == repos


def test_bad_filter_is_422(served: tuple[str, Planted]) -> None:
    """An unknown check id or window is refused with the reason."""
    url, _ = served
    assert get(url, "/status", params={"check": "C-99"}).status_code == 422
    assert get(url, "/status", params={"window": "30d"}).status_code == 422


def test_repo_page_shows_assessment_and_history(served: tuple[str, Planted]) -> None:
    """/status/repos/{name} lists its findings and what the sweeps said of it."""
    url, planted = served
    page = get(url, f"/status/repos/{planted.c00_repo}").text
    assert planted.c00_message in page
    alpha = get(url, "/status/repos/alpha-svc").text
    assert alpha.count('<span class="pill failures">findings</span>') >= 20
    missing = get(url, "/status/repos/nope")
    assert missing.status_code == 404
    assert "nope" in missing.text


def test_page_keeps_the_host_check(served: tuple[str, Planted]) -> None:
    """A foreign Host (DNS rebinding) gets 400 for the page too."""
    url, _ = served
    assert get(url, "/status", headers={"Host": "evil.example"}).status_code == 400


def test_schedule_and_runs_are_shown(served: tuple[str, Planted]) -> None:
    """Definition, mode, next fire, heartbeat and the last runs are on the page."""
    url, _ = served
    text = re.sub(r"<[^>]+>", " ", get(url, "/status").text)
    text = re.sub(r"\s+", " ", text)
    assert "*/15 * * * *" in text
    assert "standby" in text
    assert "daemon alive heartbeat" in text
    runs = text[text.index("The last runs of the schedule") :]
    assert runs.count("primary_healthy") == 2
    assert runs.count("lock_skipped") == 1
    assert "activity-core (scheduled)" in text


PAGE_TOKEN = "s3cret-token-0123456789abcdefghijklmnop"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("page-token")
    with planted_server(folder, token=PAGE_TOKEN) as (server, _):
        yield server


def _login(http: httpx.Client) -> str:
    """Log ``http`` in with the page's token; the session cookie's value."""
    right = http.post("/login", data={"token": PAGE_TOKEN}, follow_redirects=False)
    assert right.status_code == 303
    return str(http.cookies["statehub_page"])


def _csrf(http: httpx.Client) -> str:
    """The CSRF token of the page's logout form."""
    found = re.search(r'name="csrf" value="([^"]+)"', http.get("/status").text)
    assert found is not None
    return found.group(1)


def test_login_sets_a_cookie_that_reads_but_never_sweeps(token_server: ApiServer) -> None:
    """With a token file: the page sends to /login; the token sets a read-only cookie."""
    with client(token_server.url) as http:
        first = http.get("/status", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/login"
        assert http.get("/login").status_code == 200
        wrong = http.post("/login", data={"token": "guess"}, follow_redirects=False)
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        right = http.post("/login", data={"token": PAGE_TOKEN}, follow_redirects=False)
        assert right.status_code == 303
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
        assert PAGE_TOKEN not in cookie
        assert http.get("/status").status_code == 200
        assert http.get("/progress/").status_code == 200
        sweep = http.post("/consistency/sweep/remote-all")
        assert sweep.status_code == 401


def test_each_login_is_a_new_random_session_that_logout_revokes(token_server: ApiServer) -> None:
    """Two logins get two session ids; POST /logout with the CSRF token ends one (a replay
    of its cookie is sent to /login), the other still reads."""
    with client(token_server.url) as first, client(token_server.url) as second:
        one, two = _login(first), _login(second)
        assert one != two
        done = first.post("/logout", data={"csrf": _csrf(first)}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/login"
        with client(token_server.url) as replay:
            replay.cookies.set("statehub_page", one)
            assert replay.get("/status", follow_redirects=False).status_code == 303
        assert second.get("/status", follow_redirects=False).status_code == 200


def test_logout_is_a_post_with_the_sessions_csrf_token(token_server: ApiServer) -> None:
    """GET /logout is 405; a POST without this session's CSRF token is 403 and ends nothing."""
    with client(token_server.url) as http:
        _login(http)
        assert http.get("/logout", follow_redirects=False).status_code == 405
        assert http.post("/logout", data={"csrf": "forged"}).status_code == 403
        assert http.post("/logout", data={}).status_code == 403
        assert http.get("/status", follow_redirects=False).status_code == 200


def test_api_without_token_is_still_401_with_a_token_file(token_server: ApiServer) -> None:
    """The cookie path changes nothing for API clients: no token, 401."""
    with client(token_server.url) as http:
        assert http.get("/repos").status_code == 401
        bogus = http.get("/repos", headers={"Cookie": "statehub_page=deadbeef"})
        assert bogus.status_code == 401


def test_templates_ship_with_the_package() -> None:
    """The templates are package data, listed in pyproject.toml."""
    import statehub

    folder = Path(statehub.__file__).parent / "templates"
    names = {path.name for path in folder.glob("*.html")}
    assert {"base.html", "status.html", "repo.html", "events.html", "login.html"} <= names
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert 'statehub = ["templates/*.html"]' in pyproject


def _sweep(store: Any, source: str, at: Any) -> None:
    from page_support import detail

    store.append_event("consistency_sweep_remote_all", detail(source, at), created_at=at)


def test_window_rows_read_only_new_events_and_match_a_fresh_read(tmp_path: Path) -> None:
    """Kept between calls, the window equals a fresh read after appends and a new file."""
    from datetime import timedelta

    from statehub.page import WindowRows
    from statehub.store import Store
    from statehub.timefmt import utc_now

    now = utc_now()
    since = now - timedelta(hours=26)
    kept = WindowRows()
    with Store.open(tmp_path / "hub.db") as store:
        _sweep(store, "old", now - timedelta(hours=30))  # before the window
        for minutes in (600, 300, 60):
            _sweep(store, "activity-core", now - timedelta(minutes=minutes))
        assert [row.source for row in kept.rows(store, since=since, now=now)] == [
            "activity-core"
        ] * 3
        _sweep(store, "local-fallback", now)
        later = kept.rows(store, since=since, now=now)
        assert later == WindowRows().rows(store, since=since, now=now)
        assert [row.source for row in later][-1] == "local-fallback"
        assert set(kept.newest(since=since)) == {"activity-core", "local-fallback"}
    (tmp_path / "hub.db").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"hub.db{suffix}").unlink(missing_ok=True)
    with Store.open(tmp_path / "hub.db") as store:
        _sweep(store, "new-file", now)
        assert [row.source for row in kept.rows(store, since=since, now=now)] == ["new-file"]


def test_page_of_an_empty_store(tmp_path: Path) -> None:
    """A store without events: no missed slot (all before the store), no finding."""
    from statehub.page import render, status_view
    from statehub.store import Store

    (tmp_path / "fleet").mkdir()
    settings = fleet_settings(tmp_path, roots=[tmp_path / "fleet"])
    with Store.open(settings.database_path) as store:
        view = status_view(settings, store)
    page = render("status.html", **view)
    assert view["strip"].counts["missed"] == 0
    assert "No open findings." in page
    assert "No run of this definition recorded yet." in page


def _without_the_clock(document: dict[str, Any]) -> dict[str, Any]:
    """A status document less what moves between two reads: the time, the file sizes."""
    document.pop("at")
    document.pop("last_sweeps_since")  # now less the retention
    for key in ("size_bytes", "wal_bytes"):
        document["database"].pop(key)
    for key in ("next_fire", "next_fire_local"):
        document["schedule"].pop(key)
    return document


def test_the_pages_json_is_the_document_of_statehub_status(
    page_server: tuple[ApiServer, Planted],
) -> None:
    """GET /status.json and `statehub status --json` are one model; "new" is the API's."""
    server, _ = page_server
    served = get(server.url, "/status.json").json()
    printed = statehub("status", "--json", config=server.config)
    assert printed.returncode == 0, printed.stderr

    assert _without_the_clock(served) == _without_the_clock(json.loads(printed.stdout))
    [beta] = [repo for repo in served["findings"] if repo["repo"] == "beta-lib"]
    marked = {check["check"]: check["new"] for check in beta["checks"]}
    api = get(server.url, "/repos/beta-lib").json()
    assert marked == {finding["check"]: finding["new"] for finding in api["findings"]}
    assert marked == {"C-13": True, "C-15": False}
    assert served["new_findings"] == 1
    assert served["processes"]["daemon"]["state"] == "alive"


# -- throttled guesses, trusted proxies (issue 25) -------------------------------------


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server with a token that trusts 127.0.0.1 as its reverse proxy."""
    folder = tmp_path_factory.mktemp("page-proxied")
    lines = 'trusted_proxies = ["127.0.0.1"]'
    with planted_server(folder, token=PAGE_TOKEN, api_lines=lines) as (server, _):
        yield server


def _as(address: str, proto: str = "http") -> dict[str, str]:
    return {"X-Forwarded-For": f"{address}", "X-Forwarded-Proto": proto}


def test_wrong_tokens_are_throttled_per_client(proxied_server: ApiServer) -> None:
    """After 10 wrong tokens a client is answered 429 unchecked (the right token too), with
    a log line and a metric; another client is not affected."""
    guesser, other = _as("203.0.113.7"), _as("203.0.113.8")
    right = {"Authorization": f"Bearer {PAGE_TOKEN}"}
    with client(proxied_server.url) as http:
        for n in range(10):
            wrong = http.get("/repos", headers={**guesser, "Authorization": f"Bearer guess{n}"})
            assert wrong.status_code == 401
        held = http.get("/repos", headers={**guesser, **right})
        assert held.status_code == 429 and int(held.headers["retry-after"]) > 0
        login = http.post("/login", data={"token": PAGE_TOKEN}, headers=guesser)
        assert login.status_code == 429
        assert http.get("/repos", headers={**other, **right}).status_code == 200
        metrics = http.get("/metrics", headers={**other, **right}).text
    assert "statehub_auth_failures_total 10.0" in metrics
    assert "statehub_auth_refused_total 2.0" in metrics
    assert "client 203.0.113.7: 10 wrong bearer token(s) within 60 s" in proxied_server.log_text()


def test_forwarded_headers_count_only_from_a_trusted_proxy(
    tmp_path: Path, proxied_server: ApiServer
) -> None:
    """X-Forwarded-Proto: https makes the cookie Secure only through a trusted proxy, and
    X-Forwarded-For from anyone else does not dodge the throttle."""
    with client(proxied_server.url) as http:
        trusted = http.post(
            "/login", data={"token": PAGE_TOKEN}, headers=_as("198.51.100.1", "https")
        )
    assert "Secure" in trusted.headers["set-cookie"]
    with planted_server(tmp_path, token=PAGE_TOKEN) as (server, _), client(server.url) as http:
        spoofed = http.post(
            "/login",
            data={"token": PAGE_TOKEN},
            headers=_as("198.51.100.1", "https"),
        )
        assert "Secure" not in spoofed.headers["set-cookie"]
        for n in range(10):  # each claims another client: all count against the peer
            headers = {**_as(f"198.51.100.{n + 10}"), "Authorization": f"Bearer guess{n}"}
            assert http.get("/repos", headers=headers).status_code == 401
        held = http.get("/repos", headers={"Authorization": "Bearer guess-again"})
        assert held.status_code == 429
