"""The control-socket server: a UNIX socket that answers commands from ``trading-bot shell``.

Security is the filesystem plus the kernel: the socket lives in a directory of mode 0700,
is itself mode 0600, and every connection is checked with ``SO_PEERCRED``; only the uid
that runs the server and root may talk to it. There is no TCP listener and no password.

The server runs on the caller's asyncio loop. Requests on one connection are answered in
order; connections are served concurrently. What a command does is up to the
:class:`CommandHandler` the caller supplies.

Limits: at most ``max_connections`` connections are served at once (one more is
answered with a one-line refusal and closed), and a connection that sends no request
for ``idle_timeout_s`` is closed. A request with an idempotency ``key`` for a command
that ``mutates`` runs once: a retry with the same key waits for, and answers with, the
first outcome (the last :data:`MAX_KEYS` keys are remembered).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import stat
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from tradingbot.control.protocol import (
    MAX_REQUEST_BYTES,
    NO_REQUEST_ID,
    ProtocolError,
    Request,
    Response,
)

log = structlog.get_logger(__name__)

_PEERCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}
_PROBE_TIMEOUT_S = 1.0
#: How many idempotency keys (and their outcomes) are remembered.
MAX_KEYS = 1000
_REFUSAL_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command returns: ``result`` is plain JSON data, ``text`` its human rendering."""

    result: Any
    text: str


class CommandError(Exception):
    """A user error (unknown command, unknown actor, bad argument).

    ``str()`` is sent to the user as the one-line error; no traceback is logged.
    """


class CommandHandler(Protocol):
    """Executes one command. Runs on the server's event loop; must not block it.

    Return a :class:`CommandResult`, or raise :class:`CommandError` for a user error.
    Any other exception is logged with its traceback and answered as an internal error;
    the server keeps serving.
    """

    async def __call__(self, command: str, args: list[str]) -> CommandResult: ...


class ControlServerError(Exception):
    """The control socket cannot be set up; ``str()`` says why and names the path."""


class ControlSocketInUse(ControlServerError):
    """Another live process already answers on the control socket."""


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """The process at the other end of a connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int


class ControlServer:
    """Serve :class:`CommandHandler` on a UNIX socket at ``path``.

    ``start()`` prepares the directory (mode 0700), replaces a stale socket file, binds
    (mode 0600) and listens; it raises :class:`ControlSocketInUse` if another process
    answers on ``path``. ``close()`` stops listening, ends open connections and removes
    the socket file (only if it is still the one this server created).
    """

    def __init__(
        self,
        path: Path,
        handler: CommandHandler,
        *,
        max_connections: int = 16,
        idle_timeout_s: float = 600.0,
        mutates: Callable[[str, Sequence[str]], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self._handler = handler
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self._mutates = mutates or (lambda command, args: True)
        self._server: asyncio.Server | None = None
        self._inode: tuple[int, int] | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._allowed_uids = frozenset({os.getuid(), 0})
        self._keyed: OrderedDict[str, _Keyed] = OrderedDict()
        self._refused = 0
        self._refusal_logged_at = float("-inf")

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Bind and listen; return once connections are accepted."""
        if self._server is not None:
            raise RuntimeError("control server already started")
        self._prepare_directory()
        await self._remove_stale_socket()
        sock = self._bind()
        try:
            self._server = await asyncio.start_unix_server(
                self._serve_connection, sock=sock, limit=MAX_REQUEST_BYTES
            )
        except BaseException:
            sock.close()
            self._unlink_own_socket()
            raise
        log.info("control.listening", path=str(self.path))

    async def close(self) -> None:
        """Stop listening, end open connections, remove the socket file. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        for keyed in self._keyed.values():
            keyed.task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()
        self._unlink_own_socket()
        log.info("control.closed", path=str(self.path))

    # -- setup ---------------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)  # mkdir's mode is masked by umask; an old dir may be wider
        except OSError as exc:
            raise ControlServerError(
                f"cannot prepare control socket directory {directory}: {exc.strerror or exc}"
            ) from exc

    async def _remove_stale_socket(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlServerError(
                f"{self.path} exists and is not a socket; refusing to replace it"
            )
        if await _answers(self.path):
            raise ControlSocketInUse(
                f"another process is already listening on {self.path}: "
                "is trading-bot already running?"
            )
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        log.info("control.stale_socket_removed", path=str(self.path))

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # umask is process-wide: 0o077 (not 0o177) so that a directory another thread
            # happens to create in this instant still gets its x bit.
            old_umask = os.umask(0o077)
            try:
                sock.bind(os.fspath(self.path))
            finally:
                os.umask(old_umask)
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            sock.close()
            self._unlink_own_socket()
            raise ControlServerError(
                f"cannot bind control socket {self.path}: {exc.strerror or exc}"
            ) from exc
        return sock

    def _unlink_own_socket(self) -> None:
        inode, self._inode = self._inode, None
        if inode is None:
            return
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == inode:  # never remove a successor's socket
            self.path.unlink(missing_ok=True)

    # -- connections ---------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if len(self._connections) > self.max_connections:
                self._log_refusal()
                message = (
                    f"too many control connections ({self.max_connections} open); "
                    "close another shell and retry"
                )
                await _send(writer, Response.failure(NO_REQUEST_ID, message))
                return
            peer = _peer_credentials(writer)
            if peer.uid not in self._allowed_uids:
                log.warning("control.peer_refused", pid=peer.pid, uid=peer.uid, gid=peer.gid)
                message = f"permission denied: uid {peer.uid} is not allowed"
                await _send(writer, Response.failure(NO_REQUEST_ID, message))
                return
            await self._serve_requests(reader, writer, peer)
        except ConnectionError:
            return  # the client went away; nothing to answer
        except Exception:
            log.exception("control.connection_failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: PeerCredentials
    ) -> None:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), self.idle_timeout_s)
            except TimeoutError:
                log.info("control.idle_closed", pid=peer.pid, idle_timeout_s=self.idle_timeout_s)
                return
            except ValueError:  # asyncio's LimitOverrunError, re-raised by readline()
                error = f"request line longer than the {MAX_REQUEST_BYTES} byte limit"
                await _send(writer, Response.failure(NO_REQUEST_ID, error))
                return  # the rest of the oversized line cannot be resynchronised
            if not line:
                return
            if not line.strip():
                continue
            writer.write(await self._answer(line, peer))
            await writer.drain()

    def _log_refusal(self) -> None:
        """Say that connections are refused, at most once a minute (with the count)."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= _REFUSAL_LOG_INTERVAL_S:
            log.warning(
                "control.connections_refused",
                refused=self._refused,
                max_connections=self.max_connections,
            )
            self._refusal_logged_at = now
            self._refused = 0

    async def _answer(self, line: bytes, peer: PeerCredentials) -> bytes:
        """The encoded response to one request line; never raises (except cancellation)."""
        try:
            request = Request.decode(line.rstrip(b"\r\n"))
        except ProtocolError as exc:
            request_id = NO_REQUEST_ID if exc.request_id is None else exc.request_id
            return Response.failure(request_id, f"bad request: {exc}").encode()
        log.debug("control.command", command=request.command, args=request.args, pid=peer.pid)
        if request.key is None or not self._mutates(request.command, request.args):
            response = await self._execute(request)
        else:
            response = await self._execute_once(request, request.key)
        try:
            return response.encode()
        except TypeError as exc:  # orjson.JSONEncodeError: the result is not JSON data
            log.error("control.result_not_json", command=request.command, error=str(exc))
            error = f"internal error: the result of {request.command!r} is not JSON data: {exc}"
            return Response.failure(request.id, error).encode()

    async def _execute_once(self, request: Request, key: str) -> Response:
        """Run a keyed request once; a retry with the same key gets the first outcome."""
        keyed = self._keyed.get(key)
        if keyed is None:
            task = asyncio.create_task(self._execute(request))
            keyed = _Keyed(request.command, request.args, task)
            self._keyed[key] = keyed
            while len(self._keyed) > MAX_KEYS:
                self._keyed.popitem(last=False)  # a running task goes on; only dedup ends
        elif (keyed.command, keyed.args) != (request.command, request.args):
            first = " ".join([keyed.command, *keyed.args])
            return Response.failure(
                request.id,
                f"idempotency key {key!r} was already used for a different command: {first!r}",
            )
        else:
            log.info("control.duplicate_request", command=request.command, key=key)
        # Shielded: a client that gives up (or its connection closing) never cancels the
        # command itself; its outcome stays for the retry.
        first_response = await asyncio.shield(keyed.task)
        return dataclasses.replace(first_response, id=request.id)

    async def _execute(self, request: Request) -> Response:
        """Run one request through the handler; never raises (except cancellation)."""
        try:
            outcome = await self._handler(request.command, list(request.args))
        except CommandError as exc:
            return Response.failure(request.id, str(exc))
        except Exception as exc:
            log.exception("control.command_failed", command=request.command, args=request.args)
            error = f"internal error: {type(exc).__name__}: {exc}"
            return Response.failure(request.id, error)
        if not isinstance(outcome, CommandResult):
            log.error("control.bad_handler_result", command=request.command, got=repr(outcome))
            error = f"internal error: {request.command!r} returned {type(outcome).__name__}"
            return Response.failure(request.id, error)
        return Response.success(request.id, outcome.result, outcome.text)


@dataclass(frozen=True, slots=True)
class _Keyed:
    """A keyed request: what it asked for and the task that runs (or ran) it once."""

    command: str
    args: tuple[str, ...]
    task: asyncio.Task[Response]


async def _send(writer: asyncio.StreamWriter, response: Response) -> None:
    writer.write(response.encode())
    await writer.drain()


def _peer_credentials(writer: asyncio.StreamWriter) -> PeerCredentials:
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


async def _answers(path: Path) -> bool:
    """Whether some process accepts connections on the UNIX socket at ``path``."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(os.fspath(path)), _PROBE_TIMEOUT_S
        )
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except TimeoutError:
        return True  # something is there but its backlog is full: treat it as alive
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return True
