"""ib_async's log levels, corrected for what the broker actor handles itself.

ib_async logs every gateway message that is not on its short warning list at ERROR,
including the confirmation of a cancel we asked for (202) and the connectivity notices
(1100-1102) the broker turns into its own state changes, and it logs a lost or refused
connection at ERROR although the broker reconnects by itself. An operator reading logs at
3 a.m. (or a log alert on ERROR) would chase these. :func:`correct_ib_log_levels` puts a
filter on ib_async's loggers that lowers exactly those records: WARNING for what changes
the broker's state (the broker says so at WARNING too), INFO for confirmations. Every
other ERROR record (a client id already in use, a timed-out startup request, an unknown
code) keeps its level.
"""

from __future__ import annotations

import logging
import re

# Gateway codes (``Error <code>, reqId <id>: ...`` from ib_async.wrapper) and their level.
GATEWAY_CODE_LEVELS: dict[int, int] = {
    200: logging.WARNING,  # no security definition: the caller gets UnknownSymbol
    162: logging.WARNING,  # historical data refused: the caller gets BarsUnavailable
    201: logging.WARNING,  # order rejected: recorded as the order's final ORDER event
    202: logging.INFO,  # order cancelled: the confirmation of a cancel
    1100: logging.WARNING,  # connectivity to IB lost: the broker turns degraded
    1101: logging.WARNING,  # restored, data lost: the broker asks for orders, fills again
    1102: logging.INFO,  # restored, data kept: the broker is synced again
}
# ib_async.client's messages about the connection itself: the broker reconnects.
CONNECTION_MESSAGES = re.compile(
    r"^(Peer closed connection\.(?! clientId)|API connection failed: (ConnectionRefusedError"
    r"|ConnectionResetError|TimeoutError|OSError)|Make sure API port on TWS/IBG is open$)"
)
_GATEWAY_CODE = re.compile(r"^Error (\d+), reqId -?\d+: ")
WRAPPER_LOGGER = "ib_async.wrapper"
CLIENT_LOGGER = "ib_async.client"


class IbLogLevels(logging.Filter):
    """Lowers the level of the ib_async records the broker handles (see the module)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            level = corrected_level(record.name, record.getMessage())
            if level is not None:
                record.levelno = level
                record.levelname = logging.getLevelName(level)
        return True


def corrected_level(logger: str, message: str) -> int | None:
    """The level an ib_async ERROR record should have, or ``None`` to keep ERROR."""
    if logger == WRAPPER_LOGGER:
        match = _GATEWAY_CODE.match(message)
        return None if match is None else GATEWAY_CODE_LEVELS.get(int(match[1]))
    if logger == CLIENT_LOGGER and CONNECTION_MESSAGES.match(message):
        return logging.WARNING
    return None


def correct_ib_log_levels() -> None:
    """Install the filter on ib_async's loggers (idempotent; any thread)."""
    for name in (WRAPPER_LOGGER, CLIENT_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(f, IbLogLevels) for f in logger.filters):
            logger.addFilter(IbLogLevels())
