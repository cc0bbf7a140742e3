"""The effective configuration of one process: a frozen dataclass, one field per row of
the settings table (:mod:`tradingbot.config.settings`, where every default lives)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

from tradingbot.config.kinds import redact_url
from tradingbot.config.settings import SECRET_FIELDS
from tradingbot.config.window import DailyWindow

BrokerKind = Literal["sim", "ibkr"]
SmtpTls = Literal["none", "starttls", "tls"]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Config:
    """The effective configuration. Units are in the field names; no field has a default
    here (``load_config`` fills every one from the table).

    Its ``repr`` is the redacted form, so logging the object never leaks a secret.
    """

    home: Path
    database_url: str
    http_host: str
    http_port: int
    api_token: str | None
    http_max_connections: int
    http_header_timeout_s: float
    http_body_timeout_s: float
    control_max_connections: int
    control_idle_timeout_s: float
    broker: BrokerKind
    ib_host: str
    ib_port: int
    ib_client_id: int
    ib_account: str | None
    ib_connect_timeout_s: float
    ib_request_timeout_s: float
    ib_probe_interval_s: float
    ib_probe_timeout_s: float
    ib_probe_misses: int
    ib_restart_window: DailyWindow | None  # the gateway's daily restart; None: none
    ib_restart_lead_s: float  # new orders pause this long before the window
    ib_restart_grace_s: float  # not back this long after it: CRITICAL
    live_trading: bool  # yes: a non-paper account may trade (BROKER=ibkr)
    heartbeat_interval_s: float
    crash_timeout_s: float
    reconcile_interval_s: float
    reconcile_cost_tolerance: float  # relative difference of average cost
    reconcile_accept: bool  # accept discrepancies without an operator
    risk_max_position_shares: float
    risk_max_position_usd: float
    risk_max_order_usd: float
    risk_max_open_orders: int
    risk_max_orders_per_minute: int
    risk_price_band_pct: float
    risk_daily_loss_limit_usd: float
    risk_warn_at: float  # share of a limit (0.8: 80 %)
    shutdown_timeout_s: float
    liveness_probe_interval_s: float
    liveness_deadline_s: float
    log_level: str
    log_dir_setting: Path | None  # TRADINGBOT_LOG_DIR; None: HOME/logs (see log_dir)
    events_persist_types: tuple[str, ...]
    events_min_severity: str
    event_retention_days: float
    events_batch_size: int
    events_flush_interval_s: float
    health_interval_s: float
    health_check_timeout_s: float
    disk_warn_free_mb: float
    disk_fail_free_mb: float
    smtp_host: str | None  # None: mail is written as .eml files to outbox_dir
    smtp_tls: SmtpTls
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None
    smtp_timeout_s: float
    smtp_ca_file: Path | None  # PEM bundle trusted for TLS (else the system store)
    smtp_retry_attempts: int
    smtp_retry_interval_s: float
    smtp_retry_jitter_s: float
    email_from: str
    email_to: tuple[str, ...]
    notify_types: tuple[str, ...]
    notify_min_severity: str
    notify_storm_window_s: float
    notify_rate_limit_per_hour: int
    strategies: tuple[str, ...]  # "[id=]module:Class" references (tradingbot.strategies)
    strategy_config: Path | None  # TOML: a table of parameters per strategy id
    watchlist: tuple[str, ...]
    strategy_max_restarts: int
    strategy_restart_period_s: float
    # Test/ops setting: the scheduler's wall clock starts at this instant (then runs at
    # normal speed), to rehearse a trading day at any hour. None: the real clock.
    scheduler_clock: datetime | None
    scheduler_tick_s: float

    @property
    def outbox_dir(self) -> Path:
        """Where mail is written as ``.eml`` files when no SMTP server is configured."""
        return self.home / "outbox"

    @property
    def templates_dir(self) -> Path:
        """Operator overrides of the notification templates (same file names)."""
        return self.home / "templates"

    @property
    def control_socket_path(self) -> Path:
        """The debug/control UNIX socket (directory 0700, socket 0600)."""
        return self.home / "run" / "control.sock"

    @property
    def log_dir(self) -> Path:
        """The JSON log and the errors-only log: ``TRADINGBOT_LOG_DIR`` or ``HOME/logs``."""
        return self.log_dir_setting or self.home / "logs"

    @property
    def spool_dir(self) -> Path:
        """Where events wait, fsync'd, while the database is unreachable."""
        return self.home / "spool"

    def secrets(self) -> tuple[str, ...]:
        """Configured secret values, for redaction wherever text leaves the process.

        Every form a secret can take is listed: the database password as written in the
        URL (percent-encoded) and as the driver uses it (decoded), and each secret's
        URL-encoded forms, so that neither ``Db%23Pw`` nor ``Db#Pw`` ever leaks.
        """
        values = [str(getattr(self, name) or "") for name in sorted(SECRET_FIELDS)]
        password = urlsplit(self.database_url).password or ""
        values.append(unquote(password))
        found = [password, *(form for value in values if value for form in _forms(value))]
        return tuple(dict.fromkeys(s for s in found if s))

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.redacted().items())
        return f"Config({fields})"

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with every secret replaced by ``***``."""
        data: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in SECRET_FIELDS and value:
                value = "***"
            elif field.name == "database_url":
                value = redact_url(value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, DailyWindow):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[field.name] = value
        data["control_socket_path"] = str(self.control_socket_path)
        del data["log_dir_setting"]
        data["log_dir"] = str(self.log_dir)
        return data


def _forms(secret: str) -> tuple[str, ...]:
    """A secret as given, percent-decoded, and percent-encoded (path and form style)."""
    return (
        secret,
        unquote(secret),
        unquote_plus(secret),
        quote(secret, safe=""),
        quote_plus(secret),
    )
