"""The notifier's settings: where mail goes, how it is retried, what is sent at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tradingbot.config import NOTIFY_TYPES, Config, SmtpTls
from tradingbot.events.model import Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    """One SMTP server. ``tls``: ``none``, ``starttls`` (upgrade) or ``tls`` (implicit)."""

    host: str
    port: int = 587
    tls: SmtpTls = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifySettings:
    """Everything the notifier needs; units in the names.

    ``smtp`` is ``None`` when no server is configured: mail is then written as ``.eml``
    files to ``outbox_dir``. ``retry_attempts`` tries ``retry_interval_s`` apart (plus up
    to ``retry_jitter_s``) form the quick burst after which a transient outage is waited
    out with growing pauses of at most ``max_backoff_s``: pending mail is never given up.
    """

    smtp: SmtpSettings | None
    outbox_dir: Path
    sender: str = "trading-bot@localhost"
    recipients: tuple[str, ...] = ("operator@localhost",)
    templates_dir: Path | None = None
    retry_attempts: int = 3
    retry_interval_s: float = 5.0
    retry_jitter_s: float = 1.0
    max_backoff_s: float = 300.0
    types: frozenset[str] = frozenset(NOTIFY_TYPES)
    min_severity: Severity = Severity.ERROR
    storm_window_s: float = 300.0
    rate_limit_per_hour: int = 30
    poll_interval_s: float = 1.0
    batch_size: int = 100
    retention_days: float = 30.0  # sent mail is deleted after this; pending/failed never

    @classmethod
    def from_config(cls, config: Config) -> NotifySettings:
        smtp = None
        if config.smtp_host is not None:
            smtp = SmtpSettings(
                host=config.smtp_host,
                port=config.smtp_port,
                tls=config.smtp_tls,
                username=config.smtp_username,
                password=config.smtp_password,
                timeout_s=config.smtp_timeout_s,
                ca_file=config.smtp_ca_file,
            )
        return cls(
            smtp=smtp,
            outbox_dir=config.outbox_dir,
            sender=config.email_from,
            recipients=config.email_to,
            templates_dir=config.templates_dir,
            retry_attempts=config.smtp_retry_attempts,
            retry_interval_s=config.smtp_retry_interval_s,
            retry_jitter_s=config.smtp_retry_jitter_s,
            types=frozenset(config.notify_types),
            min_severity=Severity.parse(config.notify_min_severity),
            storm_window_s=config.notify_storm_window_s,
            rate_limit_per_hour=config.notify_rate_limit_per_hour,
            retention_days=config.event_retention_days,
        )

    @property
    def lease_s(self) -> float:
        """How long a claimed row is reserved: longer than any one SMTP conversation.

        smtplib's timeout bounds each socket operation; a conversation has about six
        (connect, EHLO, STARTTLS, AUTH, MAIL/RCPT, DATA).
        """
        timeout = self.smtp.timeout_s if self.smtp is not None else 1.0
        return 8 * timeout + 5.0
