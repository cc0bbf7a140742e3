"""E-mail notifications: durable outbox, Jinja2 templates, SMTP or ``.eml`` delivery.

Other code enqueues through :class:`Notifier` (durable when ``enqueue`` returns); the
notifier actor (:mod:`tradingbot.notify.actor`) delivers from the outbox and turns
TRADE, SYSTEM and RISK events into mail. See ``docs/notifications.md``.
"""

from tradingbot.notify.notifier import Enqueued, Notifier, dedup_key_of
from tradingbot.notify.render import KINDS, Rendered, Renderer, build_message, clean_header
from tradingbot.notify.retry import RetryPolicy, is_transient
from tradingbot.notify.routing import (
    ALERT,
    DAILY_SUMMARY,
    NOTIFIER_SOURCE,
    RECOVERY_REPORT,
    TRADE_EXECUTION,
    Notification,
    route,
)
from tradingbot.notify.settings import NotifySettings, SmtpSettings
from tradingbot.notify.status import DeliveryReport, NotifyStatus
from tradingbot.notify.transport import ConnectFailed, EmlTransport, SmtpTransport, eml_name

__all__ = [
    "ALERT",
    "DAILY_SUMMARY",
    "KINDS",
    "NOTIFIER_SOURCE",
    "RECOVERY_REPORT",
    "TRADE_EXECUTION",
    "ConnectFailed",
    "DeliveryReport",
    "EmlTransport",
    "Enqueued",
    "Notification",
    "Notifier",
    "NotifySettings",
    "NotifyStatus",
    "Rendered",
    "Renderer",
    "RetryPolicy",
    "SmtpSettings",
    "SmtpTransport",
    "build_message",
    "clean_header",
    "dedup_key_of",
    "eml_name",
    "is_transient",
    "route",
]
