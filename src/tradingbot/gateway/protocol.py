"""TWS API wire framing: length-prefixed messages of NUL-terminated fields.

After the client's ``API\\0`` greeting every message in both directions is a 4-byte
big-endian length followed by fields, each terminated by ``\\0`` (the last one too).
"""

from __future__ import annotations

import asyncio
import struct

__all__ = [
    "MAX_SERVER_VERSION",
    "MIN_SERVER_VERSION",
    "UNSET_DOUBLE",
    "Field",
    "ProtocolError",
    "encode_fields",
    "fmt",
    "parse_version_range",
    "read_frame",
    "read_greeting",
]

MIN_SERVER_VERSION = 157
MAX_SERVER_VERSION = 178
UNSET_DOUBLE = 1.7976931348623157e308
_MAX_FRAME = 16 * 1024 * 1024

Field = str | int | float | bool | None


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid TWS API message."""


def fmt(value: Field) -> str:
    """Format one field the way TWS does: booleans as 0/1, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def encode_fields(fields: list[Field], tail: bytes = b"") -> bytes:
    """Encode fields into one framed message; ``tail`` is more fields already encoded
    (each followed by its NUL), appended as they are."""
    payload = "".join(fmt(f) + "\0" for f in fields).encode() + tail
    return struct.pack(">I", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> list[str]:
    """Read one framed message and split it into its fields."""
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">I", header)
    if length > _MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes is too large")
    payload = await reader.readexactly(length)
    fields = payload.decode(errors="replace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


async def read_greeting(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read ``API\\0`` plus the framed ``v<min>..<max>`` and return the version range."""
    prefix = await reader.readexactly(4)
    if prefix != b"API\0":
        raise ProtocolError(f"bad greeting {prefix!r}")
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">I", header)
    if length > 1024:
        raise ProtocolError("greeting too long")
    return parse_version_range((await reader.readexactly(length)).decode(errors="replace"))


def parse_version_range(text: str) -> tuple[int, int]:
    """Parse ``v157..178`` (optionally followed by `` +PACEAPI``) into (min, max)."""
    head = text.strip("\0").split(" ", 1)[0]
    if not head.startswith("v"):
        raise ProtocolError(f"bad version range {text!r}")
    body = head[1:]
    try:
        if ".." in body:
            low, high = body.split("..", 1)
            return int(low), int(high)
        return int(body), int(body)
    except ValueError as exc:
        raise ProtocolError(f"bad version range {text!r}") from exc
