"""A synchronous client for the control socket, used by ``trading-bot shell``."""

from __future__ import annotations

import os
import select
import socket
import time
import uuid
from pathlib import Path
from types import TracebackType

from tradingbot.control.protocol import (
    MAX_RESPONSE_BYTES,
    NO_REQUEST_ID,
    ProtocolError,
    Request,
    Response,
)


class ControlUnavailable(Exception):
    """The running process cannot be reached; ``str()`` is one line saying why and what to do."""


class ControlTimeout(ControlUnavailable):
    """A request was sent but not answered in time: its outcome is unknown, not failed.

    The command may still complete in the process. ``key`` is the idempotency key it was
    sent with: sending the same command again with that key runs it at most once.
    """

    def __init__(self, message: str, *, command: str, key: str) -> None:
        super().__init__(message)
        self.command = command
        self.key = key


class ControlClient:
    """Send commands to the process listening on the control socket at ``path``.

    The connection is opened on the first request and reused for the next ones; after a
    failure it is dropped and the next request reconnects. A reused connection that the
    server closed meanwhile (its idle timeout) is replaced before sending, and a request it
    lost is sent once more on a new connection with the same idempotency key, so nothing
    runs twice. Every request waits at most ``timeout_s`` seconds for its answer. Use as a
    context manager or call :meth:`close`.
    """

    def __init__(self, path: Path, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._next_id = 1

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection now (requests do it on demand); raise :class:`ControlUnavailable`."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(os.fspath(self.path))
        except OSError as exc:
            sock.close()
            raise ControlUnavailable(self._connect_failure(exc)) from None
        self._sock = sock
        self._buffer.clear()

    def close(self) -> None:
        """Close the connection, if open. Idempotent."""
        sock, self._sock = self._sock, None
        self._buffer.clear()
        if sock is not None:
            sock.close()

    def request(self, command: str, args: list[str], *, key: str | None = None) -> Response:
        """Run one command and return its response (``ok`` true or false).

        ``key`` is the request's idempotency key (a fresh one when not given): a mutating
        command sent again with the same key is run once, and answered with the first
        outcome. Raises :class:`ControlTimeout` when the answer does not come in time
        (the outcome is unknown), :class:`ControlUnavailable` when the process cannot be
        reached or refuses the connection, and :class:`ProtocolError` when its answer is
        malformed.
        """
        key = key or uuid.uuid4().hex
        if self._sock is not None and _closed_by_peer(self._sock):
            self.close()  # the server ended the idle connection: start a new one
        reused = self._sock is not None
        try:
            return self._exchange(command, args, key)
        except ControlTimeout:
            raise
        except ControlUnavailable:
            if not reused:
                raise
        # The server closed the reused connection just as we sent: same key, new connection.
        return self._exchange(command, args, key)

    def _exchange(self, command: str, args: list[str], key: str) -> Response:
        self.connect()
        request = Request(id=self._next_id, command=command, args=tuple(args), key=key)
        self._next_id += 1
        try:
            self._send(request.encode())
            response = Response.decode(self._read_line(request))
        except BaseException:
            self.close()  # the stream is in an unknown state
            raise
        if response.id == request.id:
            return response
        self.close()
        if response.id == NO_REQUEST_ID and not response.ok:
            # The server refused the connection (or could not read the request at all).
            raise ControlUnavailable(f"trading-bot at {self.path} refused: {response.error}")
        raise ProtocolError(f"response id {response.id} does not match request id {request.id}")

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise ControlUnavailable(self._timeout_message()) from None
        except OSError as exc:
            # The server may have refused us and hung up before reading the request; its
            # one-line refusal is then already waiting in our receive buffer.
            try:
                refusal = Response.decode(self._read_line(None))
            except (ControlUnavailable, ProtocolError):
                refusal = None
            if refusal is not None and refusal.error is not None:
                raise ControlUnavailable(
                    f"trading-bot at {self.path} refused: {refusal.error}"
                ) from None
            raise ControlUnavailable(
                f"lost the connection to trading-bot at {self.path}: {exc.strerror or exc}"
            ) from None

    def _read_line(self, request: Request | None) -> bytes:
        assert self._sock is not None
        deadline = time.monotonic() + self.timeout_s
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > MAX_RESPONSE_BYTES:
                raise ProtocolError(f"response longer than the {MAX_RESPONSE_BYTES} byte limit")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(request)
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise self._timeout(request) from None
            except OSError as exc:
                raise ControlUnavailable(
                    f"lost the connection to trading-bot at {self.path}: {exc.strerror or exc}"
                ) from None
            if not chunk:
                raise ControlUnavailable(
                    f"trading-bot closed the control connection at {self.path} without answering"
                )
            self._buffer += chunk

    def _timeout_message(self) -> str:
        return f"trading-bot at {self.path} did not answer within {self.timeout_s:g} s"

    def _timeout(self, request: Request | None) -> ControlUnavailable:
        if request is None or request.key is None:
            return ControlUnavailable(self._timeout_message())
        message = (
            f"{self._timeout_message()}: the outcome of {request.command!r} is unknown "
            "(it may still complete)"
        )
        return ControlTimeout(message, command=request.command, key=request.key)

    def _connect_failure(self, exc: OSError) -> str:
        path = self.path
        if isinstance(exc, FileNotFoundError):
            return f"no trading-bot process is running: no control socket at {path}"
        if isinstance(exc, ConnectionRefusedError):
            return (
                f"no trading-bot process is running: stale control socket at {path} "
                "(nothing is listening on it)"
            )
        if isinstance(exc, PermissionError):
            return f"permission denied on {path}: run as the user that runs trading-bot"
        if isinstance(exc, TimeoutError):
            return self._timeout_message()
        return f"cannot connect to the control socket at {path}: {exc.strerror or exc}"


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed (or wrote unasked on) an idle connection."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    # Between requests, anything to read (EOF included) means the stream is over.
    return bool(poller.poll(0))
