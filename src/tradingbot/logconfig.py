"""One structured-logging pipeline for the whole process.

structlog and the standard library (aiohttp, sqlalchemy, pykka, ib_async) all end in
the same processors: context from contextvars, ISO UTC timestamp, level, logger name,
secret redaction, and one JSON line per record, written to stdout and to
``TRADINGBOT_HOME/logs/trading-bot.log``.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LOG_FILE_NAME = "trading-bot.log"
REDACTED = "***"
_SECRET_KEY = re.compile(
    r"passw(or)?d|passphrase|token|api_?key|secret|authorization|credential", re.I
)


class Redactor:
    """Replaces secret-looking keys' values and any configured secret value in a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        self.redact(event_dict)
        return event_dict

    def redact(self, data: MutableMapping[str, Any]) -> None:
        """Redact a mapping in place, recursively: secret-looking keys and secret values."""
        for key in list(data):
            data[key] = self._value(key, data[key])

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(key, str) and _SECRET_KEY.search(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, MutableMapping):
            return {k: self._value(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value("", v) for v in value]
        return value


def _dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure_logging(
    *,
    level: str = "INFO",
    log_dir: Path | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library once; safe to call again (tests)."""
    redact = Redactor(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if log_dir is not None:
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        handlers.append(logging.handlers.WatchedFileHandler(log_dir / LOG_FILE_NAME))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    # Library chatter below WARNING is noise for an operator at 3 a.m.
    for name in ("sqlalchemy", "alembic", "aiohttp.access", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # Every pykka failure path is reported once, with its traceback, as a supervision
    # event (actor_crashed, fatal_error...); pykka's own copies would double each one.
    logging.getLogger("pykka").setLevel(logging.CRITICAL)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
