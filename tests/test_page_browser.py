"""The status page in a real browser: headless Chromium (Debian's) driven by Playwright.

One browser for the module, against the module's real ``statehub serve`` over a planted
store (tests/page_support.py). Every request the browser makes is recorded, every console
message and page error too; screenshots of the page at a laptop's and a phone's size are
saved under ``tests/artifacts/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from api_support import ApiServer
from page_support import Planted, planted_server, slot_label

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 15_000
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Recorder:
    """What the browser did: every request's URL, console errors, uncaught page errors."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("request", lambda request: self.requests.append(request.url))
        page.on(
            "console",
            lambda message: (
                self.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for this module's tests. Not for the session: Playwright's sync
    API holds an event loop in the thread while it runs, and a later test of the same process
    that calls asyncio.run() would fail (an order dependence)."""
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Recorder]]:
    """A fresh page (its own context: no cookie carried over) at a laptop's size."""
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(TIMEOUT_MS)
    recorder = Recorder()
    opened = context.new_page()
    recorder.watch(opened)
    try:
        yield opened, recorder
    finally:
        context.close()


def test_page_loads_with_no_error_and_nothing_from_outside(
    page: tuple[Any, Recorder], page_server: tuple[ApiServer, Planted]
) -> None:
    """The page loads, logs no console error, and every request goes to the server."""
    tab, recorder = page
    server, _ = page_server
    answer = tab.goto(server.url + "/", wait_until="load")
    assert answer is not None and answer.status == 200
    assert tab.title() == "statehub status"
    assert recorder.console_errors == []
    assert recorder.page_errors == []
    assert recorder.requests, "no request was recorded"
    foreign = [url for url in recorder.requests if not url.startswith(server.url + "/")]
    assert foreign == []


def test_strip_shows_planted_missed_and_doubled_slots(
    page: tuple[Any, Recorder], page_server: tuple[ApiServer, Planted]
) -> None:
    """The summary row has the missed slot in red and the doubled one in violet, in order."""
    tab, _ = page
    server, planted = page_server
    tab.goto(server.url + "/status")
    summary = tab.locator('.row.summary[data-source="all sources"]')
    missed = summary.locator(f'[data-slot="{slot_label(planted.missed)}"]')
    doubled = summary.locator(f'[data-slot="{slot_label(planted.doubled)}"]')
    assert missed.get_attribute("data-state") == "missed"
    assert doubled.get_attribute("data-state") == "doubled"
    colour = "element => getComputedStyle(element).backgroundColor"
    assert missed.evaluate(colour) == "rgb(224, 49, 49)"
    assert doubled.evaluate(colour) == "rgb(112, 72, 232)"
    assert summary.locator('[data-state="missed"]').count() == 1
    missed_box, doubled_box = missed.bounding_box(), doubled.bounding_box()
    assert missed_box is not None and doubled_box is not None
    step = missed_box["width"]
    # Three slots apart, older to the left.
    assert missed_box["x"] - doubled_box["x"] == pytest.approx(3 * (step + 1), abs=1.5)
    assert "missed" in (missed.get_attribute("title") or "")
    both = tab.locator(
        f'.row[data-source="local-fallback"] [data-slot="{slot_label(planted.doubled)}"]'
    )
    assert "dbl" in (both.get_attribute("class") or "")


def test_doubled_cell_opens_its_events(
    page: tuple[Any, Recorder], page_server: tuple[ApiServer, Planted]
) -> None:
    """A click on the doubled cell lists the two sweeps that started in that slot."""
    tab, recorder = page
    server, planted = page_server
    tab.goto(server.url + "/status")
    cell = tab.locator(f'.row.summary [data-slot="{slot_label(planted.doubled)}"]')
    cell.click()
    tab.wait_for_url("**/status/events?**")
    events = tab.locator("#events details")
    assert events.count() == 2
    text = tab.locator("#events").inner_text()
    assert "activity-core" in text and "local-fallback" in text
    assert recorder.console_errors == []


def test_planted_c00_is_on_the_page(
    page: tuple[Any, Recorder], page_server: tuple[ApiServer, Planted]
) -> None:
    """The C-00 repo is listed with its check id; opening it shows the message."""
    tab, _ = page
    server, planted = page_server
    tab.goto(server.url + "/status")
    row = tab.locator(f'#findings-table tr[data-repo="{planted.c00_repo}"]')
    assert row.locator(".check.c00").inner_text() == "C-00"
    assert not row.get_by_text(planted.c00_message).is_visible()
    row.locator("summary").click()
    assert row.get_by_text(planted.c00_message).is_visible()
    row.get_by_role("link", name=planted.c00_repo).click()
    tab.wait_for_url(f"**/status/repos/{planted.c00_repo}")
    assert planted.c00_message in tab.locator("#assessment").inner_text()


def test_filter_narrows_the_findings(
    page: tuple[Any, Recorder], page_server: tuple[ApiServer, Planted]
) -> None:
    """Choosing C-00 in the form and submitting it leaves only the C-00 repo."""
    tab, _ = page
    server, planted = page_server
    tab.goto(server.url + "/status")
    rows = tab.locator("#findings-table tbody tr")
    assert rows.count() == 3
    tab.select_option('select[name="check"]', "C-00")
    tab.get_by_role("button", name="Filter").click()
    tab.wait_for_url("**check=C-00**")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-repo") == planted.c00_repo
    tab.fill('input[name="repo"]', "alpha")
    tab.select_option('select[name="check"]', "")
    tab.get_by_role("button", name="Filter").click()
    tab.wait_for_url("**repo=alpha**")
    assert [rows.nth(n).get_attribute("data-repo") for n in range(rows.count())] == ["alpha-svc"]


def test_screenshots_at_laptop_and_phone_size(
    browser: Any, page_server: tuple[ApiServer, Planted]
) -> None:
    """Screenshots are saved; on a phone only the strip scrolls sideways, not the page."""
    server, _ = page_server
    ARTIFACTS.mkdir(exist_ok=True)
    for name, viewport, mobile in (("laptop", LAPTOP, False), ("phone", PHONE, True)):
        context = browser.new_context(
            viewport=viewport, is_mobile=mobile, device_scale_factor=2 if mobile else 1
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            tab = context.new_page()
            tab.goto(server.url + "/status")
            shot = ARTIFACTS / f"status-{name}.png"
            tab.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            overflow = tab.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the {name} page scrolls sideways by {overflow} px"
        finally:
            context.close()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server with a token file, over a planted store."""
    folder = tmp_path_factory.mktemp("browser-token")
    with planted_server(folder, token="browser-s3cret-0123456789abcdefghijklmnop") as (server, _):
        yield server


def test_login_form_lets_the_browser_in(
    page: tuple[Any, Recorder], token_server: ApiServer
) -> None:
    """With a token file: the page leads to the form; the token opens the page, logout shuts it."""
    tab, recorder = page
    tab.goto(token_server.url + "/status")
    assert tab.url == token_server.url + "/login"
    tab.fill("#token", "not-it")
    tab.get_by_role("button", name="Sign in").click()
    assert tab.locator(".error").inner_text() == "that is not the token"
    tab.fill("#token", "browser-s3cret-0123456789abcdefghijklmnop")
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url("**/status")
    assert tab.title() == "statehub status"
    assert tab.locator("#findings-table tbody tr").count() == 3
    ARTIFACTS.mkdir(exist_ok=True)
    tab.get_by_role("button", name="Sign out").click()
    tab.wait_for_url("**/login")
    tab.screenshot(path=str(ARTIFACTS / "login.png"))
    tab.goto(token_server.url + "/status")
    assert tab.url == token_server.url + "/login"
    assert [url for url in recorder.requests if not url.startswith(token_server.url)] == []
    assert recorder.page_errors == []


def test_api_docs_render_with_nothing_from_outside(
    page: tuple[Any, Recorder], page_server: tuple[ApiServer, Planted]
) -> None:
    """/docs (Swagger UI) renders the API from assets the server serves itself: every
    request goes to the server, and no error is logged."""
    tab, recorder = page
    server, _ = page_server
    answer = tab.goto(server.url + "/docs", wait_until="load")
    assert answer is not None and answer.status == 200
    title = tab.locator(".swagger-ui .info .title").first
    title.wait_for(state="visible")
    assert title.inner_text().startswith("statehub")
    tab.locator(".opblock").first.wait_for(state="visible")  # the operations are listed
    foreign = [url for url in recorder.requests if not url.startswith(server.url + "/")]
    assert foreign == []
    assert any(url.startswith(server.url + "/docs-assets/") for url in recorder.requests)
    assert recorder.page_errors == []
    assert recorder.console_errors == []
