"""Typed, frozen configuration read from ``TRADINGBOT_*`` environment variables.

One table (:mod:`tradingbot.config.settings`) states every variable once: its kind
(type and validation, :mod:`tradingbot.config.kinds`), default, secrecy and
documentation line. :func:`load_config` (:mod:`tradingbot.config.loader`) reads it into
:class:`Config` (:mod:`tradingbot.config.model`); ``docs/configuration.md`` holds the
table rendered by :mod:`tradingbot.config.docs`.
"""

from tradingbot.config.kinds import check_mailbox, redact_url
from tradingbot.config.loader import ConfigError, default_home, load_config, read_environment
from tradingbot.config.model import BrokerKind, Config, SmtpTls
from tradingbot.config.settings import (
    DEFAULT_EMAIL_FROM,
    DEFAULT_EMAIL_TO,
    DEFAULT_PERSIST_TYPES,
    LOG_LEVELS,
    NOTIFY_TYPES,
    PREFIX,
    SETTINGS,
    SMTP_DEFAULT_PORTS,
    SMTP_TLS_MODES,
    Setting,
)

__all__ = [
    "DEFAULT_EMAIL_FROM",
    "DEFAULT_EMAIL_TO",
    "DEFAULT_PERSIST_TYPES",
    "LOG_LEVELS",
    "NOTIFY_TYPES",
    "PREFIX",
    "SETTINGS",
    "SMTP_DEFAULT_PORTS",
    "SMTP_TLS_MODES",
    "BrokerKind",
    "Config",
    "ConfigError",
    "Setting",
    "SmtpTls",
    "check_mailbox",
    "default_home",
    "load_config",
    "read_environment",
    "redact_url",
]
