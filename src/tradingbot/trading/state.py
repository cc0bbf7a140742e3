"""The kill switch's state: running, paused by an operator, or tripped by a risk limit."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class TradingMode(enum.StrEnum):
    """``running``: orders flow (other gates permitting). ``paused``: an operator stopped
    new orders. ``tripped``: a risk limit (the daily loss limit) stopped them."""

    RUNNING = "running"
    PAUSED = "paused"
    TRIPPED = "tripped"


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingState:
    """The switch as the operator reads it: its mode, who set it, why and since when.

    ``durable`` is false when the last change could not be stored (a pause during a
    database outage still stops orders, but a restart would not remember it).
    """

    mode: TradingMode
    reason: str
    changed_by: str
    since: datetime | None  # None: never switched (running since the first start)
    version: int = 0
    durable: bool = True

    @property
    def trading(self) -> bool:
        return self.mode is TradingMode.RUNNING

    def gate_reason(self) -> str:
        """The broker gate's reason while not running."""
        verb = "paused" if self.mode is TradingMode.PAUSED else "tripped"
        return f"{verb} by {self.changed_by}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "trading": self.trading,
            "reason": self.reason,
            "changed_by": self.changed_by,
            "since": None if self.since is None else self.since.isoformat(),
            "durable": self.durable,
        }


RUNNING_INITIAL = TradingState(
    mode=TradingMode.RUNNING, reason="never paused", changed_by="", since=None
)
