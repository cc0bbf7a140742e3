"""Opaque keyset-pagination cursors for the events query.

A cursor is the position after the last event of a page, ``(ts, seq)``, plus the
*high-water mark*: the largest ``seq`` that existed when the first page was read. Every
later page is restricted to ``seq <= high_water``, so events stored after the walk began
(even ones with old timestamps, such as a spool replayed after an outage) appear only
on a fresh first page, and the walk neither skips nor repeats an event.

Encoding: ``version | ts (µs since the epoch) | seq | high_water`` as big-endian
integers, followed by the first 16 bytes of an HMAC-SHA256 of those bytes, in URL-safe
base64 without padding (55 characters). The HMAC key is the module constant
:data:`CURSOR_KEY`: the check detects corrupted, truncated, hand-edited or foreign
tokens, not a determined forger who has read this source. That is enough, because a
forged cursor can only select a position in the same ordered set any client can read
with ``since``/``until``; it grants nothing. Cursors therefore survive restarts and
stay valid across processes, and no key has to be stored or rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tradingbot.storage.errors import InvalidQuery

CURSOR_KEY = b"trading-bot events cursor v1"
_VERSION = 1
_BODY = struct.Struct(">Bqqq")
_MAC_BYTES = 16
_TOKEN_CHARS = -(-4 * (_BODY.size + _MAC_BYTES) // 3)  # base64 without padding
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CursorPosition:
    """Where the next page starts: strictly after ``(ts, seq)``, among ``seq <= high_water``."""

    ts: datetime
    seq: int
    high_water: int


def encode_cursor(position: CursorPosition) -> str:
    """The opaque, URL-safe token of ``position``."""
    delta = position.ts.astimezone(UTC) - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    body = _BODY.pack(_VERSION, micros, position.seq, position.high_water)
    token = base64.urlsafe_b64encode(body + _mac(body))
    return token.rstrip(b"=").decode("ascii")


def decode_cursor(token: str) -> CursorPosition:
    """The position in ``token``; :class:`InvalidQuery` naming ``cursor`` if it is not valid."""
    if not isinstance(token, str) or not token:
        raise InvalidQuery("cursor: expected a non-empty string from next_cursor")
    if len(token) != _TOKEN_CHARS or not _TOKEN_PATTERN.fullmatch(token):
        raise InvalidQuery("cursor: malformed (not a cursor returned by this API)")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidQuery("cursor: malformed (not a cursor returned by this API)") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        # The last character carries unused bits: only the canonical spelling is valid.
        raise InvalidQuery("cursor: malformed (not a cursor returned by this API)")
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(body)):
        raise InvalidQuery("cursor: integrity check failed (tampered or truncated)")
    version, micros, seq, high_water = _BODY.unpack(body)
    if version != _VERSION:
        raise InvalidQuery(f"cursor: unsupported version {version}")
    try:
        ts = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise InvalidQuery("cursor: timestamp out of range") from None
    if not 0 <= seq <= high_water:
        raise InvalidQuery("cursor: inconsistent position")
    return CursorPosition(ts=ts, seq=seq, high_water=high_water)


def _mac(body: bytes) -> bytes:
    return hmac.new(CURSOR_KEY, body, hashlib.sha256).digest()[:_MAC_BYTES]
