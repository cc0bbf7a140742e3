"""Outbox depth and age in the health check and the Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from tradingbot.config import load_config
from tradingbot.health.checks import notifier_check
from tradingbot.metrics import RuntimeStateCollector
from tradingbot.notify import NotifyStatus
from tradingbot.runtime import Runtime


def test_an_empty_outbox_passes() -> None:
    """Nothing pending: pass, depth 0."""
    depth, age = notifier_check(NotifyStatus("smtp"))()
    assert (depth.key, depth.status, depth.observed_value) == ("notifier:outboxDepth", "pass", 0)
    assert (age.key, age.observed_value) == ("notifier:outboxOldestAge", 0.0)


def test_mail_server_down_with_a_working_outbox_is_a_warning() -> None:
    """Mail waiting durably for a server that is down warns, it does not fail."""
    status = NotifyStatus("smtp")
    status.update(
        pending=3,
        oldest_pending_at=datetime.now(UTC) - timedelta(minutes=10),
        server_ok=False,
        last_error="ConnectionRefusedError: [Errno 111] Connection refused",
    )
    depth, age = notifier_check(status)()
    assert depth.status == "warn"
    assert depth.observed_value == 3
    assert depth.output is not None
    assert "Connection refused" in depth.output
    assert age.observed_value >= 600


def test_stale_pending_mail_warns_even_with_the_server_up() -> None:
    """Mail pending for longer than the stale limit warns."""
    status = NotifyStatus("smtp")
    status.update(pending=1, oldest_pending_at=datetime.now(UTC) - timedelta(hours=1))
    depth, _ = notifier_check(status, stale_s=900)()
    assert depth.status == "warn"


def test_an_outbox_that_cannot_be_written_fails() -> None:
    """Notifications held in memory because the database refuses them: fail."""
    status = NotifyStatus("smtp")
    status.update(outbox_error="database unavailable", unstored=4)
    depth, _ = notifier_check(status)()
    assert depth.status == "fail"
    assert depth.output is not None
    assert "4 notifications" in depth.output


def test_outbox_gauges_are_exported(tmp_path: Path) -> None:
    """/metrics carries the outbox depth, oldest age, failures and the server state."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    config = load_config(
        {
            "TRADINGBOT_HOME": str(tmp_path / "home"),
            "TRADINGBOT_ENV_FILE": str(empty),
            "TRADINGBOT_STRATEGIES": "",
        }
    )
    runtime = Runtime(config)
    runtime.notify_status.update(
        pending=2,
        oldest_pending_at=datetime.now(UTC) - timedelta(seconds=30),
        failed=1,
        server_ok=False,
    )
    runtime.notify_status.add_sent(3, datetime.now(UTC))
    registry = CollectorRegistry()
    registry.register(RuntimeStateCollector(runtime))
    text = generate_latest(registry).decode()
    assert "tradingbot_notify_outbox_depth 2.0" in text
    assert "tradingbot_notify_failed_mails 1.0" in text
    assert "tradingbot_notify_server_up 0.0" in text
    assert "tradingbot_notify_mails_sent_total 3.0" in text
    assert "tradingbot_trading_blocked 0.0" in text  # not started: nothing blocks yet
    runtime.broker_status.block_trading("reconciliation pending: not run yet")
    assert "tradingbot_trading_blocked 1.0" in generate_latest(registry).decode()
    age = next(
        line
        for line in text.splitlines()
        if line.startswith("tradingbot_notify_outbox_oldest_age_seconds ")
    )
    assert float(age.split()[1]) >= 30
