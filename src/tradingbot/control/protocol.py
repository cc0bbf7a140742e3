"""The control-socket wire protocol: versioned, newline-delimited JSON.

One request or response per line, UTF-8 JSON objects, ``\\n``-terminated::

    {"v": 1, "id": 7, "command": "crash", "args": ["heartbeat"]}
    {"v": 1, "id": 7, "ok": true, "result": {...}, "text": "heartbeat crashed"}
    {"v": 1, "id": 7, "ok": false, "error": "unknown actor: heartbeat2"}

A connection carries any number of requests, answered in order, each response echoing
the request ``id``. A request may carry an idempotency ``key`` (a short string chosen by
the client): a mutating command sent again with the same key is not run again, the
server answers with the first outcome (``note`` retried after a timeout is stored once).
Id ``0`` is reserved for answers that belong to no request (a line whose id could not be
read, or a connection refused before any request was read).

The protocol can grow: a receiver ignores keys it does not know, so a new optional key
does not need a new version. A change that old peers would misread bumps ``v``, and a
peer answers a version it does not speak with a :class:`ProtocolError`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import orjson

PROTOCOL_VERSION = 1
#: Longest request line a server reads (bytes, newline included); protects the server.
MAX_REQUEST_BYTES = 1024 * 1024
#: Longest response line a client reads; larger than requests because results can be big.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: The id of a response that answers no particular request.
NO_REQUEST_ID = 0
#: Longest idempotency key accepted; keys are compared as given.
MAX_KEY_CHARS = 128


class ProtocolError(ValueError):
    """A line is not a valid protocol message; ``str()`` is a one-line explanation.

    ``request_id`` is the id found in the line when one could be read, so a server can
    still address its error response to the right request.
    """

    def __init__(self, message: str, *, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class CommandLineError(ValueError):
    """A command line typed by a user cannot be split into a command and its arguments."""


@dataclass(frozen=True, slots=True)
class Request:
    """One command sent to the running process."""

    id: int
    command: str
    args: tuple[str, ...] = ()
    key: str | None = None  # idempotency key; None: the request is not deduplicated

    def encode(self) -> bytes:
        """The request as one JSON line, newline included."""
        message: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "id": self.id,
            "command": self.command,
            "args": self.args,
        }
        if self.key is not None:
            message["key"] = self.key
        return orjson.dumps(message) + b"\n"

    @classmethod
    def decode(cls, line: bytes | str) -> Request:
        """Parse one request line; raise :class:`ProtocolError` if it is malformed."""
        message = _load(line, MAX_REQUEST_BYTES, "request")
        request_id = _id_of(message)
        command = message.get("command")
        if not isinstance(command, str) or not command:
            raise ProtocolError("request needs a non-empty string 'command'", request_id=request_id)
        args = message.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ProtocolError("request 'args' must be a list of strings", request_id=request_id)
        key = message.get("key")
        if key is not None and (
            not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS or not key.isprintable()
        ):
            raise ProtocolError(
                f"request 'key' must be a printable string of 1 to {MAX_KEY_CHARS} characters",
                request_id=request_id,
            )
        return cls(id=request_id, command=command, args=tuple(args), key=key)


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to one request: ``ok`` with ``result`` and ``text``, or ``error``.

    Build one with :meth:`success` or :meth:`failure`; the constructor rejects a
    response that is both or neither.
    """

    id: int
    ok: bool
    result: Any = None
    text: str = ""
    error: str | None = None

    def __post_init__(self) -> None:
        if self.ok and self.error is not None:
            raise ValueError("a successful response carries no error")
        if not self.ok and self.error is None:
            raise ValueError("a failed response needs an error message")

    @classmethod
    def success(cls, request_id: int, result: Any, text: str) -> Response:
        """A successful answer: ``result`` is plain JSON data, ``text`` its rendering."""
        return cls(id=request_id, ok=True, result=result, text=text)

    @classmethod
    def failure(cls, request_id: int, error: str) -> Response:
        """A failed answer; the message is folded onto one line."""
        return cls(id=request_id, ok=False, error=one_line(error))

    def encode(self) -> bytes:
        """The response as one JSON line, newline included.

        Raises ``TypeError`` (``orjson.JSONEncodeError``) if ``result`` is not JSON data.
        """
        message: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": self.id, "ok": self.ok}
        if self.ok:
            message["result"] = self.result
            message["text"] = self.text
        else:
            message["error"] = self.error
        return orjson.dumps(message) + b"\n"

    @classmethod
    def decode(cls, line: bytes | str) -> Response:
        """Parse one response line; raise :class:`ProtocolError` if it is malformed."""
        message = _load(line, MAX_RESPONSE_BYTES, "response")
        response_id = _id_of(message)
        ok = message.get("ok")
        if ok is True:
            text = message.get("text", "")
            if not isinstance(text, str):
                raise ProtocolError("response 'text' must be a string", request_id=response_id)
            return cls.success(response_id, message.get("result"), text)
        if ok is False:
            error = message.get("error")
            if not isinstance(error, str):
                raise ProtocolError("response 'error' must be a string", request_id=response_id)
            return cls.failure(response_id, error)
        raise ProtocolError("response 'ok' must be true or false", request_id=response_id)


def parse_command_line(line: str) -> tuple[str, list[str]]:
    """Split ``crash heartbeat`` into ``("crash", ["heartbeat"])`` with shell quoting rules.

    Raises :class:`CommandLineError` for an empty line or unbalanced quotes.
    """
    try:
        words = shlex.split(line, comments=False, posix=True)
    except ValueError as exc:  # shlex says "No closing quotation" / "No escaped character"
        raise CommandLineError(f"cannot parse command line {line!r}: {exc}") from None
    if not words:
        raise CommandLineError("empty command line")
    return words[0], words[1:]


def one_line(message: str) -> str:
    """Fold a message onto one line (errors are printed as exactly one line)."""
    return " ".join(message.split()) or "(no message)"


def _load(line: bytes | str, limit: int, kind: str) -> dict[str, Any]:
    raw = line.encode() if isinstance(line, str) else line
    if len(raw) > limit:
        raise ProtocolError(f"{kind} line is {len(raw)} bytes, longer than the {limit} limit")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"{kind} is not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"{kind} must be a JSON object, got {type(message).__name__}")
    version = message.get("v")
    request_id = message.get("id")
    known_id = request_id if _is_int(request_id) else None
    if not _is_int(version):
        raise ProtocolError(f"{kind} needs an integer protocol version 'v'", request_id=known_id)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {version} (this side speaks {PROTOCOL_VERSION})",
            request_id=known_id,
        )
    return message


def _id_of(message: dict[str, Any]) -> int:
    request_id = message.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0:
        raise ProtocolError("message needs a non-negative integer 'id'")
    return request_id


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
