"""The kill switch from outside a real process: the shell, the HTTP API, a restart."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request

import pytest
from e2e_support import Bot, BotFactory, HttpReply

pytestmark = pytest.mark.slow

TOKEN = "kill-switch-test-token-0815"


def _post(bot: Bot, path: str, body: bytes | None, token: str | None = TOKEN) -> HttpReply:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(bot.url(path), data=body or b"", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return HttpReply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return HttpReply(error.code, dict(error.headers), error.read())


def _trading(bot: Bot) -> dict[str, object]:
    result = bot.shell("trading", as_json=True)
    assert result.returncode == 0, result.stderr
    state: dict[str, object] = json.loads(result.stdout)["kill_switch"]
    return state


def test_a_shell_pause_holds_across_a_restart_and_resume_reopens(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """`pause` stops orders and is still in force after a restart; `resume` lifts it."""
    env = {"TRADINGBOT_API_TOKEN": TOKEN}
    first = bot_factory(bot_database_url, env)
    refused = first.shell("pause")
    assert refused.returncode == 1
    assert "pause REASON" in refused.stderr
    assert "Traceback" not in refused.stderr

    paused = first.shell("pause earnings call at 16:00")
    assert paused.returncode == 0, paused.stderr
    assert "trading: paused by shell uid" in paused.stdout
    assert "earnings call at 16:00" in paused.stdout
    first.signal(signal.SIGTERM)
    assert first.wait() == 0

    second = bot_factory(bot_database_url, env, home=first.home)
    state = _trading(second)
    assert (state["mode"], state["reason"]) == ("paused", "earnings call at 16:00")

    resumed = second.shell("resume call is over")
    assert resumed.returncode == 0, resumed.stderr
    assert _trading(second)["mode"] == "running"
    again = second.shell("resume")
    assert again.returncode == 0
    assert "unchanged: already running" in again.stdout


def test_http_pause_and_resume_need_the_token(bot_factory: BotFactory) -> None:
    """With a token: pause/resume over HTTP work with it and answer 401 without it;
    a malformed body is a 400 problem naming what is wrong."""
    bot = bot_factory(None, {"TRADINGBOT_API_TOKEN": TOKEN})
    assert _post(bot, "/api/trading/pause", b'{"reason": "x"}', token=None).status == 401
    bad = _post(bot, "/api/trading/pause", b'{"why": "x"}')
    assert bad.status == 400
    assert bad.headers["Content-Type"].startswith("application/problem+json")
    assert "reason" in bad.json()["detail"]
    assert _post(bot, "/api/trading/pause", b"not json").status == 400
    # A reason is mailed and printed in terminals: control characters are refused.
    assert _post(bot, "/api/trading/pause", b'{"reason": "x\\u001b[2Jhidden"}').status == 400

    paused = _post(bot, "/api/trading/pause", b'{"reason": "fed minutes"}')
    assert paused.status == 200, paused.body
    body = paused.json()
    assert body["changed"] is True
    assert body["orders_allowed"] is False
    assert body["kill_switch"]["mode"] == "paused"
    assert body["kill_switch"]["changed_by"].startswith("HTTP API token")
    assert body["gates"]["kill_switch"].endswith("fed minutes")

    resumed = _post(bot, "/api/trading/resume", None)
    assert resumed.status == 200, resumed.body
    assert resumed.json()["kill_switch"]["mode"] == "running"


def test_without_a_token_http_cannot_change_trading(sqlite_bot: Bot) -> None:
    """With no token configured, a local client can read the state but a pause answers
    403 pointing to the shell, and nothing changes."""
    refused = _post(sqlite_bot, "/api/trading/pause", b'{"reason": "x"}', token=None)
    assert refused.status == 403
    assert "trading-bot shell" in refused.json()["detail"]
    state = sqlite_bot.get("/api/trading")
    assert state.status == 200
    assert state.json()["kill_switch"]["mode"] == "running"
