"""Which events become mail: TRADE events a trade-execution mail, SYSTEM and RISK events
at or above the alert severity an alert (an actor crash or an escalation is one).

The notifier's own reports of undeliverable mail (``mail_failed``) never become mail:
a refusing mail server would otherwise be asked to carry news of its own refusals, in a
loop. A crash of the notifier actor is mailed like any other (by its replacement).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tradingbot.events.model import RISK, SYSTEM, TRADE, Event, Severity
from tradingbot.events.recorder import EventRecorder
from tradingbot.notify.settings import NotifySettings
from tradingbot.storage.outbox import OutboxRecord

NOTIFIER_SOURCE = "notifier"
KILL_SWITCH_SOURCE = "kill_switch"  # tradingbot.trading's events (always mailed)
LOWEST_ALWAYS_MAILED = Severity.WARNING  # the lowest severity of an always-mailed event
MAIL_FAILED = "mail_failed"  # context["event"] of the notifier's permanent-failure event
TRADE_EXECUTION = "trade_execution"
ALERT = "alert"
DAILY_SUMMARY = "daily_summary"
RECOVERY_REPORT = "recovery_report"


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """What to enqueue for one event (see :meth:`Notifier.enqueue`)."""

    kind: str
    context: dict[str, Any] = field(default_factory=dict)
    severity: Severity = Severity.INFO
    dedup_key: str | None = None
    token: str | None = None
    event_id: str | None = None  # the event it was made from


def always_mailed(event: Event) -> bool:
    """Kill-switch changes (pause, resume, a tripped limit) are mailed whatever the alert
    severity: the operator must hear of every one."""
    return event.type == RISK and event.source == KILL_SWITCH_SOURCE


def route(event: Event, settings: NotifySettings) -> Notification | None:
    """The notification ``event`` calls for, or ``None``."""
    if event.source == NOTIFIER_SOURCE and event.context.get("event") == MAIL_FAILED:
        return None
    common = {
        "event_id": str(event.id),
        "timestamp": event.timestamp.isoformat(),
        "message": event.message,
        "source": event.source,
        "strategy_id": event.strategy_id,
        "trade_id": event.trade_id,
    }
    if event.type == TRADE:
        if TRADE_EXECUTION not in settings.types:
            return None
        return Notification(
            kind=TRADE_EXECUTION,
            context={"status": "FILLED", **event.context, **common},
            severity=event.severity,
            token=f"event:{event.id}",
            event_id=str(event.id),
        )
    if event.type in (SYSTEM, RISK) and (
        event.severity >= settings.min_severity or always_mailed(event)
    ):
        if ALERT not in settings.types:
            return None
        what = str(event.context.get("event") or event.message)
        return Notification(
            kind=ALERT,
            context={
                **common,
                "category": event.type,
                "severity": event.severity.name,
                "details": event.context,
            },
            severity=event.severity,
            # Every kill-switch change gets its own mail, never folded into a storm count.
            dedup_key=None if always_mailed(event) else f"{event.type}:{event.source}:{what}",
            token=f"event:{event.id}",
            event_id=str(event.id),
        )
    return None


def record_mail_failed(recorder: EventRecorder, record: OutboxRecord, error: BaseException) -> None:
    """Record the ERROR event of a mail refused permanently (:func:`route` never mails it)."""
    recorder.record(
        SYSTEM,
        f"mail refused permanently: {record.subject}",
        severity=Severity.ERROR,
        source=NOTIFIER_SOURCE,
        context={
            "event": MAIL_FAILED,
            "message_id": record.message_id,
            "kind": record.kind,
            "error": f"{type(error).__name__}: {error}",
        },
    )
