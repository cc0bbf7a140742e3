"""Health results in the IETF draft format ``application/health+json``.

A :class:`Check` is one measurement of one component (``database:responseTime``); a
:class:`HealthReport` is a set of them taken together. ``status`` is ``pass``, ``warn``
or ``fail``; a body's status is the worst of its checks; ``fail`` answers HTTP 503.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["pass", "warn", "fail"]
PASS: Status = "pass"
WARN: Status = "warn"
FAIL: Status = "fail"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}
CONTENT_TYPE = "application/health+json"


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status (``pass`` for none)."""
    result: Status = PASS
    for status in statuses:
        if _RANK[status] > _RANK[result]:
            result = status
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One measurement of one component, as in the draft's ``checks`` object."""

    component: str
    measurement: str
    status: Status
    component_type: str = "component"
    component_id: str | None = None
    observed_value: Any = None
    observed_unit: str | None = None
    output: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def key(self) -> str:
        return f"{self.component}:{self.measurement}"

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"componentType": self.component_type, "status": self.status}
        if self.component_id is not None:
            body["componentId"] = self.component_id
        if self.observed_value is not None:
            body["observedValue"] = self.observed_value
        if self.observed_unit is not None:
            body["observedUnit"] = self.observed_unit
        if self.output:
            body["output"] = self.output
        body["time"] = self.time.isoformat()
        return body


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """All checks of one refresh, and when it was taken."""

    checks: tuple[Check, ...]
    generated_at: datetime

    def select(self, components: Iterable[str] | None) -> list[Check]:
        if components is None:
            return list(self.checks)
        wanted = set(components)
        return [check for check in self.checks if check.component in wanted]


def health_body(
    checks: list[Check],
    *,
    description: str,
    release_id: str,
    service_id: str,
    output: str | None = None,
    status: Status | None = None,
) -> dict[str, Any]:
    """The ``application/health+json`` document for ``checks``."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        grouped.setdefault(check.key, []).append(check.to_dict())
    body: dict[str, Any] = {
        "status": status or worst(check.status for check in checks),
        "version": "1",
        "releaseId": release_id,
        "serviceId": service_id,
        "description": description,
        "checks": grouped,
    }
    if output:
        body["output"] = output
    return body
