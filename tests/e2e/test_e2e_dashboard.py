"""The dashboard and /docs in a real headless Chromium against a real ``trading-bot run``
(simulator broker, API token set): one browser and one bot for the whole module.

Each test logs in through the form as an operator would, looks at what the page shows,
and checks that no page logged a JavaScript error; every page is photographed at desktop
and phone width into ``build/screenshots/`` (see the README).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import CHROMIUM, ConsoleLog, require_browser, screenshot
from e2e_support import Bot, find_node, start_bot, wait_ready

pytestmark = pytest.mark.slow

TOKEN = "browser-test-token-0123456789"
WAIT_MS = 10_000  # bound on a wait for the page to show a change (it polls every 1.5 s)


def api(bot: Bot, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    """A call with the bearer token; the status and the decoded JSON body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(bot.url(path), data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def bot() -> Iterator[Bot]:
    """One real ``trading-bot run`` with an API token, on SQLite, running the example
    strategy with a crossing gap it never reaches (so it runs without trading: the
    account's positions are the tests' own)."""
    require_browser()
    base = Path(tempfile.mkdtemp(prefix="tb-web-", dir="/tmp"))
    quiet = base / "strategies.toml"
    quiet.write_text("[ma_cross]\nmin_gap_bps = 1000000.0\n")
    settings = {
        "TRADINGBOT_API_TOKEN": TOKEN,
        "TRADINGBOT_STRATEGIES": None,  # unset: the shipped example
        "TRADINGBOT_STRATEGY_CONFIG": str(quiet),
    }
    started = start_bot(base, None, settings)
    try:
        wait_ready(started)
        yield started
    finally:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(bot: Bot) -> Iterator[Any]:
    """One headless Chromium (Debian's) for the module."""
    from playwright.sync_api import sync_playwright  # here: a skipped module needs none

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser: Any, bot: Bot, console: ConsoleLog) -> Iterator[Any]:
    """A logged-in page (its own browser context), failing the test on any JS error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    console.watch(tab)
    tab.set_default_timeout(WAIT_MS)
    tab.goto(bot.url("/"))
    assert tab.url.endswith("/login"), "without a session the overview sends to the login form"
    tab.fill("#token", TOKEN)
    tab.click("button[type=submit]")
    tab.wait_for_url(bot.url("/"))
    yield tab
    context.close()
    assert console.errors == [], f"JavaScript errors on the page: {console.errors}"


def test_overview_renders_the_real_state(page: Any, bot: Bot) -> None:
    """The overview shows the bot's health, its broker connection, every actor of the
    tree, and then keeps itself up to date (the status line says when it last did),
    never taking keyboard focus away from a link inside the refreshed part."""
    status, tree = api(bot, "/api/actors")
    assert status == 200
    total = sum(1 for _ in _walk(tree))
    assert page.inner_text("#health-h") == "Health"
    assert page.locator("#actors-h + p").inner_text() == f"{total} actors"
    table = page.inner_text("table")
    for component in ("broker", "database", "supervision"):
        assert component in table
    page.locator("#live-status", has_text="Live: updated").wait_for()
    screenshot(page, "overview")
    link = page.locator("#live a[href='/tree']")
    link.focus()  # a keyboard user on a link inside the refreshed region keeps it
    page.locator("#live-status", has_text="wait while you are on a link").wait_for()
    assert link.evaluate("element => element === document.activeElement")


def trading_state(bot: Bot) -> dict[str, Any]:
    """GET /api/trading's body."""
    status, state = api(bot, "/api/trading")
    assert status == 200, state
    result: dict[str, Any] = state
    return result


def test_pause_and_resume_from_the_browser(page: Any, bot: Bot) -> None:
    """Pause with a reason from the overview (confirmed) pauses trading, as GET
    /api/trading says, and the overview shows it; resume lets orders flow again."""
    page.on("dialog", lambda dialog: dialog.accept())
    page.fill("#pause-reason", "browser drill")
    page.click("#pause-form button")
    page.locator("#control-result", has_text="trading is paused").wait_for()
    state = trading_state(bot)
    assert state["kill_switch"]["mode"] == "paused"
    assert state["kill_switch"]["reason"] == "browser drill"
    assert state["kill_switch"]["changed_by"].startswith("dashboard session")
    assert state["orders_allowed"] is False
    page.locator("#trading-mode", has_text="paused").wait_for()
    screenshot(page, "overview-paused")
    page.click("#resume-form button")
    page.locator("#control-result", has_text="trading is running").wait_for()
    assert trading_state(bot)["kill_switch"]["mode"] == "running"


def test_flatten_from_the_browser_asks_first(page: Any, bot: Bot) -> None:
    """The flatten button asks first (dismissed: nothing is done); confirmed, it flattens
    the account, says what it did, and the flatten is recorded as made by the session."""
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss() if len(dialogs) == 1 else dialog.accept()

    page.on("dialog", answer)
    page.fill("#flatten-reason", "browser flatten drill")
    page.click("#flatten-form button")
    assert dialogs[0].startswith("FLATTEN the account?")
    assert page.inner_text("#control-result") == ""
    page.click("#flatten-form button")
    page.locator("#control-result", has_text="no position to close").wait_for()
    screenshot(page, "overview-flattened")
    status, body = api(bot, "/api/events?type=RISK&limit=50")
    assert status == 200
    flattens = [e["message"] for e in body["events"] if e["message"].startswith("flatten by")]
    assert len(flattens) == 1
    assert flattens[0].startswith("flatten by dashboard session")
    assert flattens[0].endswith("browser flatten drill")


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node["children"]:
        yield from _walk(child)


def test_a_crash_drill_shows_in_the_tree(page: Any, bot: Bot) -> None:
    """After ``crash heartbeat`` in the shell, the open tree page shows the restart and
    the failure without a reload."""
    from playwright.sync_api import expect

    page.goto(bot.url("/tree"))
    row = page.locator('tr[data-actor="heartbeat"]')
    before = int(row.locator(".restarts").inner_text())
    result = bot.shell("crash heartbeat")
    assert result.returncode == 0, result.stderr
    expect(row.locator(".restarts")).not_to_have_text(str(before), timeout=WAIT_MS)
    assert "CrashDrill" in row.locator(".failure").inner_text()
    status, tree = api(bot, "/api/actors")
    assert status == 200
    node = find_node(tree, "heartbeat")
    assert node is not None
    assert node["restarts"] > before
    screenshot(page, "tree")


def test_a_note_from_the_shell_appears_in_the_live_tail(page: Any, bot: Bot) -> None:
    """An event recorded through the shell appears at the top of the open events page."""
    page.goto(bot.url("/events"))
    page.locator("#tail-status", has_text="● Live").wait_for()
    result = bot.shell("note browser-tail-check from the shell")
    assert result.returncode == 0, result.stderr
    page.locator("#live-rows tr", has_text="browser-tail-check").wait_for()
    screenshot(page, "events")


def test_mail_pnl_jobs_and_docs_render(page: Any, bot: Bot) -> None:
    """The mail page renders its three lists, the P&L page its total, the jobs page
    refreshes itself, and /docs renders the API's operations."""
    page.goto(bot.url("/mail"))
    for heading in ("#mail-pending-h", "#mail-failed-h", "#mail-sent-h"):
        assert page.locator(heading).is_visible()
    screenshot(page, "mail")
    page.goto(bot.url("/pnl"))
    assert page.locator("#pnl-total").is_visible()
    screenshot(page, "pnl")
    page.goto(bot.url("/jobs"))
    page.locator("#live-status", has_text="Live: updated").wait_for()
    screenshot(page, "jobs")
    page.goto(bot.url("/docs"))
    operation = page.locator(".opblock-summary-path", has_text="/api/actors").first
    operation.wait_for()
    assert page.locator(".opblock").count() >= 10
    screenshot(page, "docs")


def test_pages_render_with_javascript_off(browser: Any, bot: Bot) -> None:
    """With JavaScript off the login form works and every page shows its data."""
    context = browser.new_context(java_script_enabled=False)
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    tab.goto(bot.url("/login"))
    tab.fill("#token", TOKEN)
    tab.click("button[type=submit]")
    tab.wait_for_url(bot.url("/"))
    status, tree = api(bot, "/api/actors")
    assert status == 200
    assert tab.inner_text("#actors-h + p") == f"{sum(1 for _ in _walk(tree))} actors"
    tab.goto(bot.url("/tree"))
    assert tab.locator('tr[data-actor="heartbeat"]').count() == 1
    tab.goto(bot.url("/events"))
    assert tab.locator("table.events tbody tr").count() >= 1
    context.close()


def test_without_a_session_the_api_refuses_the_browser(browser: Any, bot: Bot) -> None:
    """A browser that never logged in gets the login form for pages and 401 from the API,
    and cannot pause trading."""
    context = browser.new_context()
    tab = context.new_page()
    console = ConsoleLog()
    console.watch(tab)
    tab.goto(bot.url("/tree"))
    assert tab.url.endswith("/login")
    screenshot(tab, "login")
    assert console.errors == [], "the login page logs no JavaScript error"
    status = tab.evaluate("fetch('/api/actors').then(r => r.status)")
    assert status == 401
    pause = "fetch('/api/trading/pause', {method: 'POST', body: '{\"reason\": \"x\"}'})"
    assert tab.evaluate(pause + ".then(r => r.status)") == 401
    context.close()
    assert trading_state(bot)["kill_switch"]["mode"] == "running"


def test_the_strategies_page_shows_the_running_example(page: Any, bot: Bot) -> None:
    """The Strategies link opens the page showing the example strategy running, with its
    class and watchlist, as GET /api/strategies says."""
    page.click("nav >> text=Strategies")
    page.wait_for_url(bot.url("/strategies"))
    section = page.locator('section[data-strategy="ma_cross"]')
    page.locator('section[data-strategy="ma_cross"][data-state="running"]').wait_for()
    assert "running" in section.locator(".strategy-state").inner_text()
    status, body = api(bot, "/api/strategies")
    assert status == 200
    entry = next(s for s in body["strategies"] if s["id"] == "ma_cross")
    assert entry["state"] == "running"
    assert "MovingAverageCrossover" in section.inner_text()
    for symbol in entry["watchlist"]:
        assert symbol in section.inner_text()
    page.locator("#live-status", has_text="Live: updated").wait_for()
    screenshot(page, "strategies")


def test_the_overview_shows_a_position_with_its_pnl(page: Any, bot: Bot) -> None:
    """A position bought through the shell appears on the overview with its quantity,
    average cost, market price and unrealized P&L in words; today's P&L and the equity
    are shown too."""
    result = bot.shell("order BUY 3 MSFT")
    assert result.returncode == 0, result.stderr
    row = page.locator('#positions tr[data-symbol="MSFT"]')
    row.wait_for()
    cells = row.inner_text()
    assert "3" in cells
    assert any(word in cells for word in ("gain", "loss", "flat"))
    page.locator("#equity", has_text="USD").wait_for()
    assert page.locator("#pnl-daily").inner_text() != ""
    assert page.locator("#account-stale").count() == 0  # the broker is connected
    screenshot(page, "overview-position")
