"""The settings table: every ``TRADINGBOT_*`` variable, stated once.

Each :class:`Setting` holds the variable's name, its kind (type and validation), its
default, whether it is a secret, and its documentation line. The loader
(:mod:`tradingbot.config.loader`) reads the environment through this table,
:class:`~tradingbot.config.model.Config` has one field per row, ``trading-bot check``
redacts by its ``secret`` flag, and ``docs/configuration.md`` holds the table rendered by
:func:`tradingbot.config.docs.settings_markdown` (a test fails when they differ).

Rows are read in order; a default that depends on another setting (the database next
to ``HOME``, the SMTP port after the TLS mode) is computed by the loader and shown here
as text (``shown_default``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradingbot.config.kinds import (
    Boolean,
    Choice,
    DatabaseUrl,
    EventTypes,
    ExistingFile,
    Instant,
    Integer,
    Kind,
    Mailbox,
    Mailboxes,
    Number,
    Port,
    StrategyRefs,
    Subset,
    Symbols,
    Text,
    Token,
    Window,
)

PREFIX = "TRADINGBOT_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SMTP_TLS_MODES = ("none", "starttls", "tls")
SMTP_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
# Notification kinds the operator can switch off (TRADINGBOT_NOTIFY_TYPES).
NOTIFY_TYPES = ("trade_execution", "alert", "daily_summary", "recovery_report")
DEFAULT_PERSIST_TYPES = ("TRADE", "SIGNAL", "ORDER", "RISK")
DEFAULT_EMAIL_FROM = "trading-bot@localhost"
DEFAULT_EMAIL_TO: tuple[str, ...] = ("operator@localhost",)

# Liquid US symbols the built-in simulator knows (gateway/brokerage.py DEFAULT_SYMBOLS).
DEFAULT_WATCHLIST = (
    "AAPL",
    "MSFT",
    "AMZN",
    "GOOG",
    "NVDA",
    "META",
    "TSLA",
    "JPM",
    "XOM",
    "IBM",
    "SPY",
    "QQQ",
)
EXAMPLE_STRATEGY = "tradingbot.strategies.example:MovingAverageCrossover"

HOUR_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One environment variable.

    ``field`` is the :class:`Config` attribute it fills (``name.lower()`` unless given;
    ``None`` for inputs that only steer other settings). ``default`` is the value when
    the variable is unset or empty; ``shown_default`` replaces it in the documentation
    when the loader computes it from other settings.
    """

    name: str
    kind: Kind
    doc: str
    default: object = None
    shown_default: str | None = None
    secret: bool = False
    aliases: tuple[str, ...] = ()
    field: str | None = ""

    @property
    def variable(self) -> str:
        return PREFIX + self.name

    @property
    def attribute(self) -> str | None:
        """The :class:`Config` field this setting fills, if any."""
        if self.field is None:
            return None
        return self.field or self.name.lower()


def _s(lo: float, hi: float) -> Number:
    return Number(lo, hi)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        name="ENV_FILE",
        kind=ExistingFile("an existing .env file"),
        field=None,
        doc="path of the `.env` file to read (else `./.env` when it exists)",
    ),
    Setting(
        name="HOME",
        kind=Text("a directory"),
        shown_default="`$XDG_STATE_HOME/trading-bot` or `~/.local/state/trading-bot`",
        doc="state folder: database, `logs/`, `run/control.sock`; created if missing, "
        "must be writable",
    ),
    Setting(
        name="DATABASE_URL",
        kind=DatabaseUrl(),
        shown_default="`sqlite:///$TRADINGBOT_HOME/trading-bot.db`",
        doc="the database; its password is a secret (shown as `***`); on PostgreSQL, "
        "`?options=-csearch_path%3Dtb` keeps the tables in schema `tb` (docs/DEPLOYMENT.md)",
    ),
    Setting(
        name="HTTP_HOST",
        kind=Text("a host or address"),
        default="127.0.0.1",
        doc="address of the HTTP API",
    ),
    Setting(
        name="HTTP_PORT",
        kind=Port(allow_zero=True),
        default=8000,
        doc="port of the HTTP API (0: any free port)",
    ),
    Setting(
        name="API_TOKEN",
        kind=Token(),
        secret=True,
        doc="bearer token of the HTTP API; required when `HTTP_HOST` is not a loopback address",
    ),
    Setting(
        name="HTTP_MAX_CONNECTIONS",
        kind=Integer(1, 100_000),
        default=256,
        doc="open HTTP connections served at once; one more is answered at once with `503` "
        "problem+json and closed. Lowered at start (log `http_connection_cap_lowered`) to "
        "the open-file limit minus a reserve (listen backlog 128 + `CONTROL_MAX_CONNECTIONS` "
        "+ 128), so the control socket, database and logs keep descriptors under a flood",
    ),
    Setting(
        name="HTTP_HEADER_TIMEOUT_S",
        kind=_s(0.1, HOUR_S),
        default=10.0,
        doc="a connection must deliver a complete request head within this many seconds of "
        "opening (or of its previous response: the keep-alive idle time), else it is closed",
    ),
    Setting(
        name="HTTP_BODY_TIMEOUT_S",
        kind=_s(0.1, HOUR_S),
        default=30.0,
        doc="a request body must arrive within this many seconds, else `408` problem+json",
    ),
    Setting(
        name="CONTROL_MAX_CONNECTIONS",
        kind=Integer(1, 1000),
        default=16,
        doc="control-socket connections (shells) served at once; one more gets a one-line refusal",
    ),
    Setting(
        name="CONTROL_IDLE_TIMEOUT_S",
        kind=_s(0.1, DAY_S),
        default=600.0,
        doc="a control-socket connection that sends no command for this long is closed; "
        "`trading-bot shell` reconnects by itself on its next command",
    ),
    Setting(
        name="BROKER",
        kind=Choice(("sim", "ibkr")),
        default="sim",
        doc="`sim` (built-in gateway simulator) or `ibkr` (IB Gateway / TWS)",
    ),
    Setting(
        name="IB_HOST",
        kind=Text("a host or address"),
        default="127.0.0.1",
        doc="IB Gateway / TWS address (`ibkr`)",
    ),
    Setting(name="IB_PORT", kind=Port(), default=4002, doc="IB Gateway / TWS port (`ibkr`)"),
    Setting(name="IB_CLIENT_ID", kind=Integer(0, 2**31 - 1), default=1, doc="TWS API client id"),
    Setting(
        name="IB_ACCOUNT",
        kind=Text("an account id"),
        doc="account to trade; the run lock and crash detection are per database and "
        'account (unset: the default account `""`), see [recovery](recovery.md); with '
        "`sim`, the built-in simulator's account",
    ),
    Setting(
        name="IB_CONNECT_TIMEOUT_S",
        kind=_s(0.1, 600),
        default=10.0,
        doc="seconds a connect (handshake and sync) may take before it counts as failed "
        "(then the backoff retries)",
    ),
    Setting(
        name="IB_REQUEST_TIMEOUT_S",
        kind=_s(0.1, 600),
        default=10.0,
        doc="seconds a request to the gateway (order, cancel, positions, executions, ...) "
        "may take; a query that times out raises, it is never read as empty",
    ),
    Setting(
        name="IB_PROBE_INTERVAL_S",
        kind=_s(0.05, HOUR_S),
        default=5.0,
        doc="seconds between heartbeat probes (`reqCurrentTime`) while connected",
    ),
    Setting(
        name="IB_PROBE_TIMEOUT_S",
        kind=_s(0.05, 600),
        default=5.0,
        doc="seconds a probe may take before it counts as missed (one miss: `degraded`)",
    ),
    Setting(
        name="IB_PROBE_MISSES",
        kind=Integer(1, 1000),
        default=3,
        doc="missed probes in a row after which the connection is dropped and reconnected",
    ),
    Setting(
        name="IB_RESTART_WINDOW",
        kind=Window(),
        doc="the IB Gateway's daily restart, in the gateway's local time (may span midnight); "
        "new orders pause `IB_RESTART_LEAD_S` before it and resume only after the broker is "
        "synced and a reconciliation passed after it. Unset: none. "
        "See [live trading](live-trading.md)",
    ),
    Setting(
        name="IB_RESTART_LEAD_S",
        kind=_s(0, 6 * HOUR_S),
        default=120.0,
        doc="seconds before the restart window at which new orders pause",
    ),
    Setting(
        name="IB_RESTART_GRACE_S",
        kind=_s(1, 6 * HOUR_S),
        default=900.0,
        doc="the broker not synced and reconciled this long after the window ended: a "
        "CRITICAL SYSTEM event (an alert e-mail) and `/api/health/trading` warns",
    ),
    Setting(
        name="LIVE_TRADING",
        kind=Boolean(),
        default=False,
        doc="`yes`: trade a live (non-paper) account with `BROKER=ibkr`. Otherwise, when "
        "the account (`IB_ACCOUNT`, else the one the gateway reports) does not start with "
        "`DU`, strategies do not start and no new order goes out. "
        "See [live trading](live-trading.md)",
    ),
    Setting(
        name="HEARTBEAT_INTERVAL_S",
        kind=_s(0.05, HOUR_S),
        default=30.0,
        doc="seconds between heartbeats written to `system_state`",
    ),
    Setting(
        name="CRASH_TIMEOUT_S",
        kind=_s(1, DAY_S),
        default=300.0,
        doc="a heartbeat older than this is stale: `trading-bot watchdog-check` reports the "
        "bot dead (no lock holder) or hung (lock held), and a crash report says whether the "
        "crashed run's heartbeat was stale; a run without a clean stop is a crash at the "
        "next start whatever its age. Must exceed the heartbeat interval. "
        "See [recovery](recovery.md)",
    ),
    Setting(
        name="RECONCILE_INTERVAL_S",
        kind=_s(1, DAY_S),
        default=300.0,
        doc="seconds between reconciliations with the broker while running (one also "
        "runs at start and after every reconnect)",
    ),
    Setting(
        name="RECONCILE_COST_TOLERANCE",
        kind=Number(0, 1, "relative difference"),
        default=0.01,
        doc="relative difference of a position's average cost reported as "
        "`cost_mismatch` (quantities must match exactly)",
    ),
    Setting(
        name="RECONCILE_ACCEPT",
        kind=Boolean(),
        default=False,
        doc="`true`: accept reconciliation discrepancies without an operator (recorded "
        "as accepted by this setting); `false`: new orders stay blocked until "
        "`reconcile accept`",
    ),
    # Pre-trade risk limits (docs/risk.md): checked inside the broker's order path.
    Setting(
        name="RISK_MAX_POSITION_SHARES",
        kind=Number(1, 10_000_000, "shares"),
        default=2000.0,
        doc="largest position per symbol, long or short, an order may build (an order "
        "that reduces a position is never refused by it)",
    ),
    Setting(
        name="RISK_MAX_POSITION_USD",
        kind=Number(1, 1e9, "USD"),
        default=20_000.0,
        doc="largest value of a position per symbol (shares x price) an order may build",
    ),
    Setting(
        name="RISK_MAX_ORDER_USD",
        kind=Number(1, 1e9, "USD"),
        default=10_000.0,
        doc="largest value of one order (quantity x limit price, or x the last quote for "
        "a market order)",
    ),
    Setting(
        name="RISK_MAX_OPEN_ORDERS",
        kind=Integer(1, 10_000),
        default=20,
        doc="most of our orders open at once (this order included)",
    ),
    Setting(
        name="RISK_MAX_ORDERS_PER_MINUTE",
        kind=Integer(1, 10_000),
        default=30,
        doc="most new orders in any 60 seconds (this order included; counted across restarts)",
    ),
    Setting(
        name="RISK_PRICE_BAND_PCT",
        kind=Number(0.1, 100, "percent"),
        default=5.0,
        doc="fat-finger guard: a limit price further than this from the last quote is refused",
    ),
    Setting(
        name="RISK_DAILY_LOSS_LIMIT_USD",
        kind=Number(1, 1e9, "USD"),
        default=2000.0,
        doc="the day's loss (the broker's daily P&L: realized plus unrealized) at which "
        "the kill switch trips (RISK CRITICAL, mailed) and positions are flattened",
    ),
    Setting(
        name="RISK_WARN_AT",
        kind=Number(0.1, 1, "share of a limit"),
        default=0.8,
        doc="a limit used this much or more is a RISK WARNING, once per day per limit",
    ),
    Setting(
        name="SHUTDOWN_TIMEOUT_S",
        kind=_s(1, HOUR_S),
        default=30.0,
        doc=(
            "hard deadline of an orderly shutdown; past it the process exits with code 4."
            " The clean stop is retried while the database is down until shortly before it"
            " (then exit 8), see [recovery](recovery.md)"
        ),
    ),
    Setting(
        name="LIVENESS_PROBE_INTERVAL_S",
        kind=_s(0.01, HOUR_S),
        default=5.0,
        doc="how often supervisors ping their children",
    ),
    Setting(
        name="LIVENESS_DEADLINE_S",
        kind=_s(0.01, HOUR_S),
        default=10.0,
        doc="an actor that has not answered a ping for this long is `unresponsive`; "
        "at least the probe interval",
    ),
    Setting(
        name="LOG_LEVEL",
        kind=Choice(LOG_LEVELS, upper=True),
        default="INFO",
        doc="the lowest level written to the log",
    ),
    Setting(
        name="LOG_DIR",
        kind=Text("an absolute path"),
        field="log_dir_setting",
        shown_default="`$TRADINGBOT_HOME/logs`",
        doc="absolute folder for `trading-bot.log` (every JSON line) and "
        "`trading-bot.errors.log` (ERROR and CRITICAL only); created if missing, must be "
        "writable. The systemd units set `/var/log/trading-bot`",
    ),
    Setting(
        name="EVENTS_PERSIST_TYPES",
        kind=EventTypes(),
        default=DEFAULT_PERSIST_TYPES,
        doc="event types stored whatever their severity (TRADE, ORDER and SIGNAL always are)",
    ),
    Setting(
        name="EVENTS_MIN_SEVERITY",
        kind=Choice(LOG_LEVELS, upper=True),
        default="WARNING",
        doc="events at or above this severity are stored whatever their type",
    ),
    Setting(
        name="EVENT_RETENTION_DAYS",
        kind=Number(1, 36500, "days"),
        default=30.0,
        doc="DEBUG/INFO events older than this are deleted daily at 03:15 ET by the "
        "scheduler (never TRADE/ORDER)",
    ),
    Setting(
        name="EVENTS_BATCH_SIZE",
        kind=Integer(1, 10_000),
        default=500,
        doc="events per database transaction",
    ),
    Setting(
        name="EVENTS_FLUSH_INTERVAL_S",
        kind=_s(0.001, 60),
        default=0.1,
        doc="longest wait before a partial batch is written",
    ),
    Setting(
        name="HEALTH_INTERVAL_S",
        kind=_s(0.05, HOUR_S),
        default=5.0,
        doc="how often the health actor refreshes its cached report",
    ),
    Setting(
        name="HEALTH_CHECK_TIMEOUT_S",
        kind=_s(0.05, 600),
        default=2.0,
        doc="deadline of each health check; a slower one is reported `fail`",
    ),
    Setting(
        name="DISK_WARN_FREE_MB",
        kind=Number(0, 1e9, "MiB"),
        default=1024.0,
        doc="free space (MiB) below which the disk check warns",
    ),
    Setting(
        name="DISK_FAIL_FREE_MB",
        kind=Number(0, 1e9, "MiB"),
        default=256.0,
        doc="free space (MiB) below which it fails; must not exceed the warn value",
    ),
    Setting(
        name="SMTP_HOST",
        kind=Text("a host or address"),
        doc="mail server; unset: notification mail is written as `.eml` files to "
        "`TRADINGBOT_HOME/outbox/`. See [notifications](notifications.md)",
    ),
    Setting(
        name="SMTP_STARTTLS",
        kind=Boolean(),
        field=None,
        doc="older boolean form: `false` means `SMTP_TLS=none`; ignored when `SMTP_TLS` is set",
    ),
    Setting(
        name="SMTP_TLS",
        kind=Choice(SMTP_TLS_MODES),
        default="starttls",
        doc="`starttls` (required upgrade), `tls` (implicit TLS) or `none`",
    ),
    Setting(
        name="SMTP_PORT",
        kind=Port(),
        shown_default="`587` / `465` / `25`",
        doc="mail server port; the default follows `SMTP_TLS` (`starttls` / `tls` / `none`)",
    ),
    Setting(
        name="SMTP_USERNAME",
        kind=Text("a user name"),
        aliases=("SMTP_USER",),
        doc="AUTH user; needs `SMTP_PASSWORD`",
    ),
    Setting(
        name="SMTP_PASSWORD",
        kind=Text("a password"),
        secret=True,
        doc="AUTH password (a secret: shown as `***`); needs `SMTP_USERNAME`",
    ),
    Setting(
        name="SMTP_TIMEOUT_S",
        kind=_s(0.1, 600),
        default=10.0,
        doc="bound on each socket operation of an SMTP conversation",
    ),
    Setting(
        name="SMTP_CA_FILE",
        kind=ExistingFile("an existing PEM file"),
        doc="PEM file of the CA(s) trusted for the mail server's certificate (else the "
        "system store)",
    ),
    Setting(
        name="SMTP_RETRY_ATTEMPTS",
        kind=Integer(1, 100),
        default=3,
        doc="quick attempts of a mail; after them an outage is waited out with pauses of "
        "up to 5 minutes, the mail is never given up",
    ),
    Setting(
        name="SMTP_RETRY_INTERVAL_S",
        kind=_s(0, HOUR_S),
        default=5.0,
        doc="pause between the quick attempts",
    ),
    Setting(
        name="SMTP_RETRY_JITTER_S",
        kind=_s(0, HOUR_S),
        default=1.0,
        doc="random extra pause (0..this) added to each wait",
    ),
    Setting(
        name="EMAIL_FROM",
        kind=Mailbox(),
        default=DEFAULT_EMAIL_FROM,
        doc="sender: `bot@example.com` or `Trading Bot <bot@example.com>`",
    ),
    Setting(
        name="EMAIL_TO",
        kind=Mailboxes(),
        default=DEFAULT_EMAIL_TO,
        shown_default="`operator@localhost` (required when `SMTP_HOST` is set)",
        doc="comma-separated recipients; CR/LF or anything but one mailbox per entry exits 2",
    ),
    Setting(
        name="NOTIFY_TYPES",
        kind=Subset(NOTIFY_TYPES),
        default=NOTIFY_TYPES,
        shown_default="all",
        doc="the kinds of notification mailed; `none`: no mail",
    ),
    Setting(
        name="NOTIFY_MIN_SEVERITY",
        kind=Choice(LOG_LEVELS, upper=True),
        default="ERROR",
        doc="SYSTEM and RISK events at or above this are mailed as alerts",
    ),
    Setting(
        name="NOTIFY_STORM_WINDOW_S",
        kind=_s(0, DAY_S),
        default=300.0,
        doc="identical alerts within this window become one follow-up mail with their "
        "count (0: off)",
    ),
    Setting(
        name="NOTIFY_RATE_LIMIT_PER_HOUR",
        kind=Integer(1, 100_000),
        default=30,
        doc="most mails sent in any hour; the overflow is sent as one digest when the limit allows",
    ),
    Setting(
        name="STRATEGIES",
        kind=StrategyRefs(),
        shown_default="the example strategy with `sim`, none with `ibkr`",
        doc="the strategies to run: comma-separated `[id=]module:Class` "
        f"(`{EXAMPLE_STRATEGY}` is the shipped example); empty or `none`: no strategy. "
        "Checked at start (exit 2 naming the class). See [strategies](strategies.md)",
    ),
    Setting(
        name="STRATEGY_CONFIG",
        kind=ExistingFile("an existing TOML file"),
        doc="TOML file with one table per strategy id: its parameters and an optional "
        "`watchlist`; an unknown strategy, key or ill-typed value exits 2 naming the file, "
        "the strategy and the key",
    ),
    Setting(
        name="WATCHLIST",
        kind=Symbols(),
        default=DEFAULT_WATCHLIST,
        shown_default="`" + ",".join(DEFAULT_WATCHLIST) + "`",
        doc="comma-separated symbols the strategies watch (a strategy's TOML table may "
        "set its own `watchlist`); a symbol the gateway does not know is one WARNING event "
        "and is skipped",
    ),
    Setting(
        name="STRATEGY_MAX_RESTARTS",
        kind=Integer(0, 1000),
        default=3,
        doc="restarts of one strategy within `STRATEGY_RESTART_PERIOD_S` after which it is "
        "stopped for good (a SYSTEM event and an alert say so); the others keep running",
    ),
    Setting(
        name="STRATEGY_RESTART_PERIOD_S",
        kind=_s(0.1, DAY_S),
        default=60.0,
        doc="the window of `STRATEGY_MAX_RESTARTS`",
    ),
    Setting(
        name="SCHEDULER_CLOCK",
        kind=Instant(),
        doc="**test/rehearsal only**: the instant where the scheduler's clock starts (then "
        "real speed), e.g. `2026-03-10T16:45:00-04:00`; see [scheduler](scheduler.md)",
    ),
    Setting(
        name="SCHEDULER_TICK_S",
        kind=_s(0.01, 60),
        default=0.25,
        doc="how often the scheduler reads the clock (a job fires within one tick of its time)",
    ),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
SECRET_FIELDS: frozenset[str] = frozenset(
    s.attribute for s in SETTINGS if s.secret and s.attribute is not None
)


def default(name: str) -> Any:
    """The table's default of ``TRADINGBOT_<name>``: what in-process settings objects use
    when they are built without a configuration (tests, benchmarks), so that each
    default is still stated once."""
    value = BY_NAME[name].default
    if value is None:
        raise KeyError(f"{PREFIX}{name} has no static default")
    return value
