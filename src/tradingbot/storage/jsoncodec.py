"""The JSON of JSON columns: orjson on both backends, and text PostgreSQL can store.

Values are encoded exactly as the event spool encodes them (orjson: datetimes and UUIDs
become ISO/hex strings, NaN and infinities become ``null``), so an event stored directly
and one replayed from the spool are stored alike. PostgreSQL cannot store the NUL
character (U+0000) in ``text`` or ``jsonb``; it is replaced by U+FFFD on both backends,
so the two hold the same data.
"""

from __future__ import annotations

from typing import Any

import orjson

NUL = "\x00"
NUL_REPLACEMENT = "\ufffd"
_ESCAPED_NUL = b"\\u0000"


def encode(value: Any) -> bytes:
    """The JSON of ``value`` as UTF-8; ``TypeError`` if orjson cannot serialise it."""
    data = orjson.dumps(value)
    if _ESCAPED_NUL in data:
        # Decode to plain JSON values first, so NULs inside dataclasses etc. are found too.
        data = orjson.dumps(_without_nul(orjson.loads(data)))
    return data


def dumps(value: Any) -> str:
    """:func:`encode` as text (the engines' ``json_serializer``)."""
    return encode(value).decode()


def loads(data: str | bytes) -> Any:
    """Parse JSON text (the engines' ``json_deserializer``)."""
    return orjson.loads(data)


def text_without_nul(value: str) -> str:
    """``value`` with every NUL character replaced by U+FFFD."""
    return value.replace(NUL, NUL_REPLACEMENT) if NUL in value else value


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return text_without_nul(value)
    if isinstance(value, dict):
        return {text_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value
