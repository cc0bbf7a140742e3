"""Strict query-string parsing: every bad or unknown parameter is a 400 that names it.

A :class:`QueryReader` reads one request's query string. Unknown names, repeated
single-valued parameters, empty values and malformed values are all collected, so one
answer lists every problem (RFC 9457 ``invalid_params``) instead of the first only. A
typo therefore never silently widens a query to "everything".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from multidict import MultiMapping

from tradingbot.web.problems import problem

_INTEGER = re.compile(r"[0-9]{1,9}")
# "…T12:00:00 02:00": an unencoded "+" in a query string arrives as a space.
_SPACED_OFFSET = re.compile(r"(?P<moment>.*:.*[0-9]) (?P<offset>[0-9]{2}(?::?[0-9]{2})?)")
DATETIME_EXAMPLE = "2024-05-01T12:00:00Z"


@dataclass(frozen=True, slots=True)
class InvalidParam:
    """One rejected query parameter and why (an RFC 9457 ``invalid_params`` entry)."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


class InvalidParams(ValueError):
    """One or more query parameters are invalid; the message names each of them."""

    def __init__(self, params: Iterable[InvalidParam]) -> None:
        self.params = tuple(params)
        super().__init__("; ".join(f"{p.name}: {p.reason}" for p in self.params))

    @property
    def detail(self) -> str:
        return str(self)

    def response(self) -> web.Response:
        """The 400 problem+json answer, with an ``invalid_params`` member."""
        return problem(400, self.detail, invalid_params=[param.to_dict() for param in self.params])


class QueryReader:
    """Reads the parameters of one query string; call :meth:`check` once done.

    ``allowed`` are the accepted names; ``forbidden`` maps names that exist elsewhere in
    the API but make no sense here to the reason given for rejecting them.
    """

    def __init__(
        self,
        query: MultiMapping[str],
        allowed: Iterable[str],
        *,
        forbidden: Mapping[str, str] | None = None,
    ) -> None:
        self._query = query
        self._allowed = tuple(allowed)
        self._errors: dict[str, InvalidParam] = {}
        forbidden = forbidden or {}
        for name in dict.fromkeys(query.keys()):
            if name in self._allowed:
                continue
            if name in forbidden:
                self.fail(name, forbidden[name])
            else:
                self.fail(name, f"unknown parameter; expected one of {', '.join(self._allowed)}")

    def fail(self, name: str, reason: str) -> None:
        """Record a problem with ``name`` (the first one recorded for a name is kept)."""
        self._errors.setdefault(name, InvalidParam(name, reason))

    def failed(self, name: str) -> bool:
        return name in self._errors

    def check(self) -> None:
        """Raise :class:`InvalidParams` listing every problem recorded so far."""
        if self._errors:
            raise InvalidParams(self._errors.values())

    def one(self, name: str) -> str | None:
        """The single, non-empty value of ``name``, or None when absent."""
        values = self._query.getall(name, [])
        if not values:
            return None
        if len(values) > 1:
            self.fail(name, f"given {len(values)} times; expected at most once")
            return None
        value = values[0]
        if not value.strip():
            self.fail(name, "empty value; leave the parameter out instead")
            return None
        return value

    def many(self, name: str) -> list[str]:
        """Every value of ``name``, whether repeated (``a=1&a=2``) or comma-separated."""
        items: list[str] = []
        for value in self._query.getall(name, []):
            parts = [part.strip() for part in value.split(",")]
            if not all(parts):
                self.fail(name, f"empty item in {value!r}; leave the parameter out instead")
                return []
            items.extend(parts)
        return items

    def integer(self, name: str, *, default: int, minimum: int, maximum: int) -> int:
        """A decimal integer in ``minimum..maximum``, ``default`` when absent."""
        value = self.one(name)
        if value is None:
            return default
        expected = f"expected an integer from {minimum} to {maximum}"
        if not _INTEGER.fullmatch(value.strip()):
            self.fail(name, f"{expected}, got {value!r}")
            return default
        number = int(value)
        if not minimum <= number <= maximum:
            self.fail(name, f"{expected}, got {number}")
            return default
        return number

    def text(self, name: str, *, max_chars: int) -> str | None:
        """A non-empty string of at most ``max_chars`` characters."""
        value = self.one(name)
        if value is not None and len(value) > max_chars:
            self.fail(name, f"at most {max_chars} characters, got {len(value)}")
            return None
        return value

    def timestamp(self, name: str) -> datetime | None:
        """An ISO 8601 date-time with a timezone (``Z`` or an offset), as UTC."""
        value = self.one(name)
        if value is None:
            return None
        moment = parse_timestamp(value)
        if moment is None:
            self.fail(
                name,
                "expected an ISO 8601 date-time with a timezone, e.g."
                f" {DATETIME_EXAMPLE} or 2024-05-01T14:00:00%2B02:00, got {value!r}",
            )
        return moment


def parse_timestamp(value: str) -> datetime | None:
    """Parse an ISO 8601 date-time that has a timezone; None for anything else.

    A date alone or a date-time without an offset is refused: its meaning would depend
    on the server's timezone. A space where the offset's ``+`` belongs (an unencoded
    ``+`` in a URL) is read as ``+``.
    """
    text = value.strip()
    candidates = [text]
    spaced = _SPACED_OFFSET.fullmatch(text)
    if spaced:
        candidates.append(f"{spaced['moment']}+{spaced['offset']}")
    for candidate in candidates:
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.utcoffset() is None:
            continue  # naive: no timezone
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError):
            return None
    return None
