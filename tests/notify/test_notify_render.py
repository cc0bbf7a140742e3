"""Notification content: every template in both parts, escaping, overrides, headers."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from support.notify_support import DAILY_SUMMARY, RECOVERY_REPORT, TRADE, alert
from tradingbot.config import ConfigError, check_mailbox, load_config
from tradingbot.notify import Rendered, Renderer, build_message, clean_header
from tradingbot.notify.render import to_wire

SENT_AT = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)


def parts(rendered: Rendered) -> tuple[str, str]:
    return rendered.text, rendered.html


def parse(wire: str) -> EmailMessage:
    message = email.message_from_string(wire, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_trade_execution_mail_in_both_parts() -> None:
    """The trade mail: a scannable subject and every fill detail in text and HTML."""
    rendered = Renderer().render("trade_execution", {**TRADE, "count": 1})
    assert rendered.subject == "[trading-bot] FILLED BUY 10 AAPL @ 189.20"
    for part in parts(rendered):
        for fact in ("AAPL", "BUY", "189.20", "1.00", "TB-42", "0001f4e8.65.01.01", "USD"):
            assert fact in part
        assert "2025-01-06 14:30:00 UTC" in part
    assert "Realized P&L:  +0.00 USD" in rendered.text
    assert "Realized P&amp;L" in rendered.html


def test_reconciled_trade_says_it_was_found_after_a_restart() -> None:
    """A fill imported by reconciliation is marked as such in the subject and body."""
    rendered = Renderer().render("trade_execution", {**TRADE, "reconciled": True, "count": 1})
    assert rendered.subject.endswith("(reconciled)")
    assert "reconciliation" in rendered.text
    assert "reconciliation" in rendered.html


def test_alert_mail_in_both_parts_and_with_a_count() -> None:
    """An alert shows severity, category, source and details; a coalesced one its count."""
    one = Renderer().render("alert", {**alert(), "count": 1})
    assert one.subject == "[trading-bot] ERROR SYSTEM: actor_crashed broker: CrashDrill: drill"
    for part in parts(one):
        assert "actor_crashed broker: CrashDrill: drill" in part
        assert "broker" in part
        assert "event" in part
        assert "times" not in part
    many = Renderer().render("alert", {**alert(), "count": 37, "follow_up": True})
    assert many.subject.startswith("[trading-bot] ERROR x37 SYSTEM:")
    for part in parts(many):
        assert "37 times" in part


def test_daily_summary_mail_in_both_parts() -> None:
    """The daily summary lists P&L, every trade and every open position."""
    rendered = Renderer().render("daily_summary", {**DAILY_SUMMARY, "count": 1})
    assert rendered.subject == "[trading-bot] Daily summary 2025-01-06: P&L +1,234.50 USD, 2 trades"
    for part in parts(rendered):
        for fact in ("+1,234.50", "-210.25", "101,024.25", "191.75", "MSFT", "410.10", "DU123456"):
            assert fact in part
        assert "TRADE: 2" in part or "TRADE: 2" in part.replace("<li>", "")


def test_daily_summary_mail_shows_the_brokers_account_in_both_parts() -> None:
    """With the broker's account recorded, the summary shows the net liquidation, its
    change since the last recorded one, the broker's P&L of the day and the positions
    at the broker with their marks and the time of those marks."""
    broker = {
        "positions": [
            {
                "symbol": "MSFT",
                "quantity": 5,
                "avg_cost": 410.1,
                "market_price": 405.0,
                "unrealized_pnl": -25.5,
            }
        ],
        "positions_source": "broker",
        "position_differences": [],
        "equity": 101_024.25,
        "equity_previous": {"date": "2025-01-03", "equity": 100_000.0},
        "equity_change": 1_024.25,
        "equity_change_pct": 1.02,
        "broker_pnl": {"daily": 1_009.0, "realized": 1_234.5, "unrealized": -225.5},
        "broker": {"recorded": True, "as_of": "2025-01-06T21:30:00+00:00", "note": None},
    }
    rendered = Renderer().render("daily_summary", {**DAILY_SUMMARY, **broker, "count": 1})
    for part in parts(rendered):
        for fact in (
            "101,024.25",
            "+1,024.25",
            "(+1.02%)",
            "since 2025-01-03",
            "+1,009.00",
            "at the broker, marks as of 2025-01-06 21:30:00 UTC",
            "405.00",
            "-25.50",
        ):
            assert fact in part, fact
        assert "from our books" not in part


def test_recovery_report_mail_in_both_parts() -> None:
    """The recovery report gives the previous run, the downtime and each discrepancy."""
    rendered = Renderer().render("recovery_report", {**RECOVERY_REPORT, "count": 1})
    assert rendered.subject == (
        "[trading-bot] RECOVERY after a crash (kill -9): 2 discrepancies, "
        "trading blocked until an operator accepts"
    )
    for part in parts(rendered):
        for fact in ("4242", "bot-1", "1h 2m 5s", "position_quantity", "missing_fill"):
            assert fact in part
        assert "SELL 5 @ 405.00" in part
        assert "2025-01-06 14:00:00 UTC" in part


def test_digest_mail_lists_every_held_notification() -> None:
    """The rate-limit digest lists each held mail with its subject and text."""
    items = [
        {
            "subject": f"[trading-bot] ERROR RISK: limit {n}",
            "text": f"limit {n} breached",
            "kind": "alert",
            "severity": "ERROR",
            "created_at": "2025-01-06T14:30:00+00:00",
            "count": 1,
        }
        for n in range(3)
    ]
    rendered = Renderer().render("digest", {"items": items, "rate_limit_per_hour": 30})
    assert rendered.subject == "[trading-bot] DIGEST of 3 notifications held by the rate limit"
    for part in parts(rendered):
        assert "30 mails per hour" in part
        for n in range(3):
            assert f"limit {n} breached" in part


def test_html_is_autoescaped_and_text_is_not() -> None:
    """Markup in a value is escaped in the HTML part and kept verbatim in the text part."""
    rendered = Renderer().render("alert", {**alert("<script>alert(1)</script> & co"), "count": 1})
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in rendered.html
    assert "<script>alert(1)</script> & co" in rendered.text


def test_a_template_in_the_home_folder_overrides_the_packaged_one(tmp_path: Path) -> None:
    """An operator's template replaces the packaged one of the same name, the rest stay."""
    (tmp_path / "alert.subject.txt").write_text("ALERT {{ message | upper }}")
    rendered = Renderer(tmp_path).render("alert", {**alert("disk full"), "count": 1})
    assert rendered.subject == "ALERT DISK FULL"
    assert "disk full" in rendered.text  # the packaged text part


def test_a_broken_override_falls_back_to_the_packaged_template(tmp_path: Path) -> None:
    """An override that fails to render never stops the alert: the packaged one is used."""
    (tmp_path / "alert.txt").write_text("{{ message | no_such_filter }}")
    (tmp_path / "alert.html").write_text("{% if %}")
    rendered = Renderer(tmp_path).render("alert", {**alert("disk full"), "count": 1})
    assert "disk full" in rendered.text
    assert "disk full" in rendered.html


def test_unknown_kind_is_refused() -> None:
    """Only the known kinds render."""
    with pytest.raises(ValueError, match="unknown notification kind"):
        Renderer().render("newsletter", {})


def test_message_is_multipart_alternative_with_both_parts() -> None:
    """The built message has a text and an HTML part, a Message-ID and a UTC date."""
    rendered = Renderer().render("trade_execution", {**TRADE, "count": 1})
    wire = to_wire(
        build_message(
            rendered,
            sender="Trading Bot <bot@example.com>",
            recipients=("ops@example.com", "Desk <desk@example.com>"),
            message_id="<abc.trade_execution@example.com>",
            date=SENT_AT,
            kind="trade_execution",
            severity="INFO",
        )
    )
    assert wire.isascii()
    assert "\r\n" in wire
    message = parse(wire)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "AAPL" in text.get_content()
    assert "<table" in html.get_content()
    assert message["Message-ID"] == "<abc.trade_execution@example.com>"
    assert message["Date"] == "Mon, 06 Jan 2025 14:30:00 +0000"
    assert message["To"] == "ops@example.com, Desk <desk@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize(
    "injection",
    [
        "crash\r\nBcc: victim@evil.example",
        "crash\nBcc: victim@evil.example",
        "crash\rBcc: victim@evil.example",
        "crash\r\n\r\n<html>body injection</html>",
        "crash\u2028Bcc: victim@evil.example",
        "crash\x00\x0bBcc: victim@evil.example",
    ],
)
def test_cr_lf_in_a_value_cannot_inject_a_header(injection: str) -> None:
    """A subject value with CR/LF (or other line breaks) stays one Subject line."""
    rendered = Renderer().render("alert", {**alert(injection), "count": 1})
    assert "\r" not in rendered.subject
    assert "\n" not in rendered.subject
    wire = to_wire(
        build_message(
            rendered,
            sender="bot@example.com",
            recipients=("ops@example.com",),
            message_id="<x@example.com>",
            date=SENT_AT,
            kind="alert\r\nBcc: kind@evil.example",
            severity="ERROR\nBcc: sev@evil.example",
        )
    )
    message = parse(wire)
    assert message["Bcc"] is None
    assert len(message.get_all("Subject") or []) == 1
    assert "Bcc" in str(message["Subject"]) or "body injection" in str(message["Subject"])
    headers = wire.split("\r\n\r\n", 1)[0]
    assert "\r\nBcc:" not in headers
    assert "evil" not in "".join(k for k in message)


def test_clean_header_keeps_text_on_one_short_line() -> None:
    """Control characters become single spaces; overlong subjects are cut with an ellipsis."""
    assert clean_header(" a\r\n\tb \x07 c ") == "a b c"
    long = clean_header("x" * 500)
    assert len(long) == 200
    assert long.endswith("…")


@pytest.mark.parametrize(
    "value",
    [
        "ops@example.com\r\nBcc: victim@evil.example",
        "ops@example.com\nBcc: victim@evil.example",
        "Ops <ops@example.com>\r\nX: y",
        "Evil\r\n <ops@example.com>",
        "not-an-address",
        "a@@example.com",
        "ops@example.com, other@example.com",
        "ops@-example.com",
    ],
)
def test_address_with_line_breaks_or_garbage_is_refused(value: str) -> None:
    """Only a single well-formed mailbox passes address validation."""
    with pytest.raises(ValueError, match="e-mail address"):
        check_mailbox(value)


def test_addresses_are_normalised() -> None:
    """Bare addresses stay bare; display names are quoted."""
    assert check_mailbox(" ops@example.com ") == "ops@example.com"
    assert check_mailbox("Trading Bot <bot@example.com>") == '"Trading Bot" <bot@example.com>'
    assert check_mailbox('"Desk, NY" <desk@example.com>') == '"Desk, NY" <desk@example.com>'


def test_header_injection_through_configuration_exits_at_load(tmp_path: Path) -> None:
    """A CR/LF in TRADINGBOT_EMAIL_FROM is a configuration error naming the variable."""
    env = {
        "TRADINGBOT_HOME": str(tmp_path),
        "TRADINGBOT_ENV_FILE": "",
        "TRADINGBOT_EMAIL_FROM": "bot@example.com\r\nBcc: victim@evil.example",
    }
    with pytest.raises(ConfigError, match="TRADINGBOT_EMAIL_FROM"):
        load_config(env)
