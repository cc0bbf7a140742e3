"""One structured-logging pipeline for the whole process.

structlog and the standard library (aiohttp, sqlalchemy, pykka, ib_async) all end in
the same processors: context from contextvars, ISO UTC timestamp, level, logger name,
secret redaction, and one JSON line per record, written to stdout and to
``trading-bot.log`` in the log directory (``TRADINGBOT_LOG_DIR``, default
``TRADINGBOT_HOME/logs``). Records of level ERROR and above are also written to
``trading-bot.errors.log`` next to it: the short file to read first at 3 a.m.

structlog lines take a direct path (level filter first, the processors, orjson, one
write to each output) because the standard library's handler machinery costs several
times more per line (see docs/PERFORMANCE.md). Standard-library records go through
``ProcessorFormatter`` once and are written to the same outputs. The log file is
reopened when logrotate moves it (checked at most once a second); a log file that cannot
be written never breaks a log call (see :mod:`tradingbot.logsink`).
"""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tradingbot.logsink import LogFileListener, LogFileState, LogSink

LOG_FILE_NAME = "trading-bot.log"
ERRORS_FILE_NAME = "trading-bot.errors.log"  # ERROR and CRITICAL lines only
REDACTED = "***"
_SECRET_KEY = re.compile(
    r"passw(or)?d|passphrase|token|api_?key|secret|authorization|credential", re.I
)


class Redactor:
    """Replaces secret-looking keys' values and any configured secret value in a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))
        self._secret_keys: dict[str, bool] = {}

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        self.redact(event_dict)
        return event_dict

    def redact(self, data: MutableMapping[str, Any]) -> None:
        """Redact a mapping in place, recursively: secret-looking keys and secret values."""
        for key in list(data):
            data[key] = self._value(key, data[key])

    def _is_secret_key(self, key: str) -> bool:
        known = self._secret_keys.get(key)
        if known is None:
            known = bool(_SECRET_KEY.search(key))
            if len(self._secret_keys) < 10_000:  # keys are few; never grow without bound
                self._secret_keys[key] = known
        return known

    def _value(self, key: Any, value: Any) -> Any:
        if value is None or value is True or value is False or type(value) in (int, float):
            return value
        if isinstance(key, str) and value != "" and self._is_secret_key(key):
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


class _CurrentSink:
    """The sinks of the latest configuration; loggers cached by structlog follow them."""

    sink: LogSink | None = None
    errors: LogSink | None = None  # the errors-only file (no stream)
    listener: LogFileListener | None = None


class _NoStream(io.StringIO):
    """The stream of the errors-only sink: those lines reach stdout through the main sink."""

    def write(self, text: str) -> int:
        return len(text)


def _error_msg(self: _DirectLogger, message: bytes) -> None:
    self.msg(message)
    errors = _CurrentSink.errors
    if errors is not None:
        errors.write(message)


def log_file_state() -> LogFileState | None:
    """Whether the log file is written (``None``: no log file is configured)."""
    sink = _CurrentSink.sink
    return None if sink is None else sink.file_state()


def set_log_file_listener(listener: LogFileListener | None) -> None:
    """Be told (once per episode) when the log file fails and when it works again."""
    _CurrentSink.listener = listener
    if _CurrentSink.sink is not None:
        _CurrentSink.sink.set_listener(listener)


class _DirectLogger:
    """The structlog logger behind every ``structlog.get_logger(name)``: a JSON line sink."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: bytes) -> None:
        sink = _CurrentSink.sink
        if sink is not None:
            sink.write(message)

    log = debug = info = warning = warn = msg
    error = err = critical = exception = fatal = _error_msg


def _direct_logger_factory(*args: Any) -> _DirectLogger:
    return _DirectLogger(str(args[0]) if args else "")


class _SinkHandler(logging.Handler):
    """Standard-library records: formatted once, written to both outputs."""

    def __init__(self, sink: LogSink, errors: LogSink | None = None) -> None:
        super().__init__()
        self._sink = sink
        self._errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode()
            self._sink.write(line)
            if self._errors is not None and record.levelno >= logging.ERROR:
                self._errors.write(line)
        except Exception:  # noqa: BLE001 - the logging contract: emit never raises
            self.handleError(record)


def _json_bytes(logger: WrappedLogger, method: str, event_dict: EventDict) -> bytes:
    return orjson.dumps(event_dict, default=str)


def configure_logging(
    *,
    level: str = "INFO",
    log_dir: Path | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library once; safe to call again (tests)."""
    redact = Redactor(secrets)
    numeric_level = logging.getLevelName(level.upper())
    sink = LogSink(stream or sys.stdout, None if log_dir is None else log_dir / LOG_FILE_NAME)
    errors = None if log_dir is None else LogSink(_NoStream(), log_dir / ERRORS_FILE_NAME)
    sink.set_listener(_CurrentSink.listener)
    previous, _CurrentSink.sink = _CurrentSink.sink, sink
    previous_errors, _CurrentSink.errors = _CurrentSink.errors, errors
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
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
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    if previous is not None:
        previous.close()
    if previous_errors is not None:
        previous_errors.close()
    handler = _SinkHandler(sink, errors)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(numeric_level)
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
            structlog.processors.format_exc_info,
            redact,
            _json_bytes,
        ],
        logger_factory=_direct_logger_factory,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=True,
    )
