"""Value kinds of the settings table: how one environment value is parsed and checked.

Each kind turns the raw text of one variable into its typed value, or raises
:class:`ValueError` whose message is the "expected ..." phrase of the one-line
configuration error. ``describe()`` is the same phrase for the documentation table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from tradingbot.config.window import EXAMPLE, DailyWindow, parse_daily_window

# An RFC 5321 addr-spec, deliberately stricter than RFC 5322 (no quoted local parts,
# no IP literals): what a mail server will accept, and nothing that could break a header.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*"
_DISPLAY_NAME = r'[^<>@",;:\\\x00-\x1f\x7f]*?|"[^"\\\x00-\x1f\x7f]*"'
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_MAILBOX = re.compile(
    rf"\s*(?:(?P<name>{_DISPLAY_NAME})\s*<(?P<bracketed>{_ADDR_SPEC})>|(?P<bare>{_ADDR_SPEC}))\s*"
)
_EVENT_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
# A ticker as the broker API accepts it (``tradingbot.broker.api.SYMBOL``; a test keeps
# the two equal): config does not import the broker adapter (and with it ib_async).
SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9 ._-]{0,19}")
# ``[id=]package.module:Class``: a strategy id, a dotted module path and a class name.
STRATEGY_ID = re.compile(r"[a-z][a-z0-9_-]{0,22}")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_STRATEGY_REF = re.compile(
    rf"(?:(?P<id>[^=\s]+)=)?(?P<module>{_DOTTED}):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)"
)


class Kind(Protocol):
    """How one setting's text becomes its value."""

    def parse(self, raw: str) -> object:
        """The typed value; ``ValueError("<expected phrase>")`` when ``raw`` is not one."""
        ...

    def describe(self) -> str:
        """The valid values, as the documentation table shows them."""
        ...


class Invalid(ValueError):
    """A raw value that is not of its kind: ``expected`` is the phrase, ``shown`` the value
    to echo (``None`` to echo nothing, e.g. for a value that holds a secret)."""

    def __init__(self, expected: str, shown: str | None = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.shown = shown


@dataclass(frozen=True, slots=True)
class Text:
    """Free text (surrounding blanks removed); an empty value means the default."""

    what: str = "text"

    def parse(self, raw: str) -> str:
        return raw

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True, slots=True)
class Token:
    """A secret token: printable, without blanks (a token with a space can never match),
    and at least ``min_length`` characters (a short token can be guessed over HTTP)."""

    min_length: int = 16

    def parse(self, raw: str) -> str:
        if any(ch.isspace() for ch in raw) or not raw.isprintable():
            raise Invalid("a token without spaces or control characters", None)
        if len(raw) < self.min_length:
            raise Invalid(f"a token of at least {self.min_length} characters", None)
        return raw

    def describe(self) -> str:
        return f"printable text without spaces, at least {self.min_length} characters"


@dataclass(frozen=True, slots=True)
class Integer:
    minimum: int
    maximum: int

    def parse(self, raw: str) -> int:
        try:
            value = int(raw, 10)
        except ValueError:
            raise Invalid(self.expected()) from None
        if not self.minimum <= value <= self.maximum:
            raise Invalid(self.expected())
        return value

    def expected(self) -> str:
        return f"an integer from {self.minimum} to {self.maximum}"

    def describe(self) -> str:
        return f"integer {self.minimum}..{self.maximum}"


@dataclass(frozen=True, slots=True)
class Port:
    allow_zero: bool = False

    def parse(self, raw: str) -> int:
        low = 0 if self.allow_zero else 1
        expected = f"a TCP port number from {low} to 65535"
        try:
            value = int(raw, 10)
        except ValueError:
            raise Invalid(expected) from None
        if not low <= value <= 65535:
            raise Invalid(expected)
        return value

    def describe(self) -> str:
        return f"TCP port {0 if self.allow_zero else 1}..65535"


@dataclass(frozen=True, slots=True)
class Number:
    """A finite number within ``[minimum, maximum]``: every duration is bounded, so no
    value can overflow a timer or silently disable a deadline."""

    minimum: float
    maximum: float
    unit: str = "seconds"

    def parse(self, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise Invalid(self.expected()) from None
        # NaN fails both comparisons; inf fails the maximum.
        if not (self.minimum <= value <= self.maximum):
            raise Invalid(self.expected())
        return value

    def expected(self) -> str:
        return f"a number of {self.unit} from {self.minimum:g} to {self.maximum:g}"

    def describe(self) -> str:
        return f"{self.unit} {self.minimum:g}..{self.maximum:g}"


@dataclass(frozen=True, slots=True)
class Boolean:
    def parse(self, raw: str) -> bool:
        value = raw.lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise Invalid("true or false")

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True, slots=True)
class Choice:
    allowed: tuple[str, ...]
    upper: bool = False

    def parse(self, raw: str) -> str:
        value = raw.upper() if self.upper else raw.lower()
        if value not in self.allowed:
            raise Invalid("one of " + ", ".join(self.allowed))
        return value

    def describe(self) -> str:
        return " / ".join(f"`{value}`" for value in self.allowed)


@dataclass(frozen=True, slots=True)
class EventTypes:
    """Comma-separated event type names, upper-cased."""

    def parse(self, raw: str) -> tuple[str, ...]:
        types = tuple(part.strip().upper() for part in raw.split(",") if part.strip())
        for value in types:
            if not _EVENT_TYPE.fullmatch(value):
                raise Invalid("a comma-separated list of event types like TRADE,SIGNAL,ORDER,RISK")
        return types

    def describe(self) -> str:
        return "comma-separated event types"


@dataclass(frozen=True, slots=True)
class Subset:
    """A comma-separated subset of ``allowed`` (lower-cased, duplicates dropped), or
    ``none`` for the empty set."""

    allowed: tuple[str, ...]

    def parse(self, raw: str) -> tuple[str, ...]:
        if raw.lower() == "none":
            return ()
        values = tuple(dict.fromkeys(p.strip().lower() for p in raw.split(",") if p.strip()))
        if any(value not in self.allowed for value in values):
            raise Invalid("none, or a comma-separated list of " + ", ".join(self.allowed))
        return values

    def describe(self) -> str:
        return "`none` or a comma-separated list of " + ", ".join(
            f"`{value}`" for value in self.allowed
        )


@dataclass(frozen=True, slots=True)
class Symbols:
    """Comma-separated ticker symbols (upper-cased, duplicates dropped, order kept)."""

    def parse(self, raw: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(p.strip().upper() for p in raw.split(",") if p.strip()))
        for value in values:
            if not SYMBOL.fullmatch(value):
                raise Invalid(
                    "comma-separated symbols of 1-20 letters, digits and ' ._-' "
                    f"(bad symbol {value!r})",
                    raw,
                )
        return values

    def describe(self) -> str:
        return "comma-separated symbols"


@dataclass(frozen=True, slots=True)
class StrategyRefs:
    """Comma-separated ``[id=]module:Class`` references; ``none`` for no strategy.

    Only the form is checked here; importing the classes and their parameters is
    :func:`tradingbot.strategies.loader.load_strategies`' job, at start.
    """

    def parse(self, raw: str) -> tuple[str, ...]:
        if raw.lower() == "none":
            return ()
        refs = tuple(p.strip() for p in raw.split(",") if p.strip())
        for ref in refs:
            match = _STRATEGY_REF.fullmatch(ref)
            if match is None:
                raise Invalid(
                    f"comma-separated module:Class references (bad reference {ref!r})", raw
                )
            if match.group("id") is not None and not STRATEGY_ID.fullmatch(match.group("id")):
                raise Invalid(
                    "a strategy id of 1-23 lower-case letters, digits, '_' and '-' "
                    f"(bad id {match.group('id')!r})",
                    raw,
                )
        return refs

    def describe(self) -> str:
        return "`none` or comma-separated `[id=]module:Class`"


def parse_strategy_ref(ref: str) -> tuple[str | None, str, str]:
    """(id or None, module, class name) of one reference checked by :class:`StrategyRefs`."""
    match = _STRATEGY_REF.fullmatch(ref)
    if match is None:
        raise ValueError(f"not a module:Class reference: {ref!r}")
    return match.group("id"), match.group("module"), match.group("cls")


def check_mailbox(value: str) -> str:
    """Return ``addr@host`` or ``Name <addr@host>`` normalised; ``ValueError`` otherwise.

    Control characters (CR/LF above all) are refused, so a configured address can never
    inject a header.
    """
    match = None if _CONTROL_CHARS.search(value) else _MAILBOX.fullmatch(value)
    if match is None:
        raise ValueError(f"not an e-mail address like ops@example.com: {value!r}")
    address = match.group("bracketed") or match.group("bare")
    name = (match.group("name") or "").strip().strip('"').strip()
    return f'"{name}" <{address}>' if name else address


@dataclass(frozen=True, slots=True)
class Mailbox:
    def parse(self, raw: str) -> str:
        try:
            return check_mailbox(raw)
        except ValueError:
            raise Invalid("an e-mail address like Bot <bot@example.com>") from None

    def describe(self) -> str:
        return "`addr@host` or `Name <addr@host>`"


@dataclass(frozen=True, slots=True)
class Mailboxes:
    def parse(self, raw: str) -> tuple[str, ...]:
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if not parts:
            raise Invalid("comma-separated e-mail addresses")
        try:
            return tuple(check_mailbox(part) for part in parts)
        except ValueError as exc:
            raise Invalid(f"comma-separated e-mail addresses ({exc})", None) from None

    def describe(self) -> str:
        return "comma-separated e-mail addresses"


@dataclass(frozen=True, slots=True)
class Instant:
    """An ISO 8601 date-time with an offset (``2026-03-10T16:45:00-04:00``)."""

    def parse(self, raw: str) -> datetime:
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            value = None
        if value is None or value.utcoffset() is None:
            raise Invalid("an ISO 8601 date-time with an offset, like 2026-03-10T16:45:00-04:00")
        return value

    def describe(self) -> str:
        return "ISO 8601 date-time with an offset"


@dataclass(frozen=True, slots=True)
class Window:
    """A daily window of local time, ``HH:MM[:SS]-HH:MM[:SS] Zone`` (may span midnight)."""

    def parse(self, raw: str) -> DailyWindow:
        try:
            return parse_daily_window(raw)
        except ValueError as exc:
            raise Invalid(str(exc)) from None

    def describe(self) -> str:
        return f"`HH:MM[:SS]-HH:MM[:SS] Zone`, e.g. `{EXAMPLE}`"


@dataclass(frozen=True, slots=True)
class ExistingFile:
    what: str = "an existing file"

    def parse(self, raw: str) -> Path:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise Invalid(self.what)
        return path

    def describe(self) -> str:
        return self.what.removeprefix("an ")


def redact_url(url: str) -> str:
    """Replace the password of a database URL with ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A SQLAlchemy URL for SQLite or PostgreSQL through psycopg2 (errors never echo the
    password)."""

    def parse(self, raw: str) -> str:
        expected = "a URL like sqlite:///path/to.db or postgresql+psycopg2://user@host/db"
        scheme = raw.split(":", 1)[0].lower() if ":" in raw else ""
        dialect = scheme.split("+", 1)[0]
        if dialect not in ("sqlite", "postgresql") or "://" not in raw:
            raise Invalid(expected, redact_url(raw))
        if dialect == "postgresql" and scheme not in ("postgresql", "postgresql+psycopg2"):
            raise Invalid("the psycopg2 driver (postgresql+psycopg2://)", scheme)
        return raw

    def describe(self) -> str:
        return "`sqlite:///…` or `postgresql+psycopg2://…`"
