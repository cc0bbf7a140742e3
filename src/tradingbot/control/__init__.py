"""The control socket: a local, uid-checked UNIX socket for ``trading-bot shell``.

The running process serves a :class:`CommandHandler` with :class:`ControlServer`;
``trading-bot shell`` talks to it with :class:`ControlClient` through :func:`run_shell`.
Messages are the newline-delimited JSON of :mod:`tradingbot.control.protocol`.
"""

from tradingbot.control.client import ControlClient, ControlTimeout, ControlUnavailable
from tradingbot.control.protocol import (
    MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES,
    PROTOCOL_VERSION,
    CommandLineError,
    ProtocolError,
    Request,
    Response,
    parse_command_line,
)
from tradingbot.control.server import (
    CommandError,
    CommandHandler,
    CommandResult,
    ControlServer,
    ControlServerError,
    ControlSocketInUse,
    PeerCredentials,
)
from tradingbot.control.shell import run_shell

__all__ = [
    "MAX_REQUEST_BYTES",
    "MAX_RESPONSE_BYTES",
    "PROTOCOL_VERSION",
    "CommandError",
    "CommandHandler",
    "CommandLineError",
    "CommandResult",
    "ControlClient",
    "ControlServer",
    "ControlServerError",
    "ControlSocketInUse",
    "ControlTimeout",
    "ControlUnavailable",
    "PeerCredentials",
    "ProtocolError",
    "Request",
    "Response",
    "parse_command_line",
    "run_shell",
]
