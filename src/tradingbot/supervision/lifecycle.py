"""Actor lifecycle events: every start, crash, restart, escalation and give-up, as plain data.

They are emitted from supervisor threads to the tree's listeners (see
:class:`~tradingbot.supervision.tree.SupervisionTree`); a listener must be quick and
must not raise. The default listener writes each one as a structured log line; the
event logger persists them as SYSTEM events.
"""

from __future__ import annotations

import linecache
from dataclasses import asdict, dataclass
from traceback import walk_tb
from types import TracebackType
from typing import Any, Protocol

# Frames kept in a failure's short traceback (innermost last).
_TRACEBACK_FRAMES = 6


def short_traceback(tb: TracebackType | None, frames: int = _TRACEBACK_FRAMES) -> str:
    """The innermost ``frames`` frames in the standard layout, cheaply.

    ``traceback.format_tb`` re-stats every source file and, on Python 3.11+, parses each
    line to place ``^^^`` markers; on the crash path that doubled the time to a
    replacement (see docs/PERFORMANCE.md). Lines come from the ``linecache`` cache.
    """
    entries = [(f.f_code.co_filename, lineno, f.f_code.co_name) for f, lineno in walk_tb(tb)]
    out = []
    for filename, lineno, name in entries[-frames:]:
        out.append(f'  File "{filename}", line {lineno}, in {name}\n')
        line = linecache.getline(filename, lineno).strip()
        if line:
            out.append(f"    {line}\n")
    return "".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """Why an actor died: exception type, message and a short traceback."""

    type: str
    message: str
    traceback: str

    @classmethod
    def from_exception(cls, exc: BaseException, tb: TracebackType | None = None) -> Failure:
        return cls(
            type=type(exc).__name__,
            message=str(exc),
            traceback=short_traceback(tb or exc.__traceback__),
        )

    def summary(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisionEvent:
    """Base of every supervision event; ``actor`` is the child id it is about."""

    actor: str
    supervisor: str | None

    @property
    def name(self) -> str:
        return _snake(type(self).__name__)

    @property
    def level(self) -> str:
        return "info"

    def fields(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorStarted(SupervisionEvent):
    restarts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorCrashed(SupervisionEvent):
    failure: Failure

    @property
    def level(self) -> str:
        return "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorExited(SupervisionEvent):
    """A child stopped without an exception (its own stop, or stopped from outside)."""

    @property
    def level(self) -> str:
        return "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorRestarted(SupervisionEvent):
    restarts: int
    reason: str

    @property
    def level(self) -> str:
        return "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartScheduled(SupervisionEvent):
    """A backoff child will be restarted after ``delay_s``."""

    delay_s: float
    attempt: int

    @property
    def level(self) -> str:
        return "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorGaveUp(SupervisionEvent):
    """A child is not restarted (transient exiting normally, temporary, or failed start)."""

    reason: str

    @property
    def level(self) -> str:
        return "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorEscalated(SupervisionEvent):
    """A supervisor exceeded its restart intensity, stopped its children and failed."""

    child: str
    restarts: int
    period_s: float

    @property
    def level(self) -> str:
        return "critical"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorUnresponsive(SupervisionEvent):
    """A liveness probe missed its deadline; threads cannot be killed, only reported."""

    waited_s: float

    @property
    def level(self) -> str:
        return "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorResponsive(SupervisionEvent):
    """An actor reported unresponsive answered its probe again."""

    unresponsive_s: float

    @property
    def level(self) -> str:
        return "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagesDropped(SupervisionEvent):
    """Messages for an actor that is gone for good (or a full restart buffer)."""

    count: int
    reason: str

    @property
    def level(self) -> str:
        return "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class FatalError(SupervisionEvent):
    """A BaseException (SystemExit, KeyboardInterrupt...) in an actor: pykka stops every actor."""

    failure: Failure

    @property
    def level(self) -> str:
        return "critical"


class EventListener(Protocol):
    """Receives supervision events on a supervisor's thread; must be quick and not raise."""

    def __call__(self, event: SupervisionEvent) -> None: ...


def _snake(name: str) -> str:
    out = [name[0].lower()]
    for ch in name[1:]:
        if ch.isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
