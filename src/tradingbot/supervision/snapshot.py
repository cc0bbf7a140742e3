"""The supervision tree as plain data, for ``/api/actors`` and the control shell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tradingbot.supervision.lifecycle import Failure


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorSnapshot:
    """One node: ``status`` is running, restarting, stopped or unresponsive."""

    id: str
    kind: str
    status: str
    restarts: int
    restart_type: str
    critical: bool
    started_at: str | None
    mailbox: int
    dropped_messages: int
    last_failure: Failure | None
    details: dict[str, Any]
    children: tuple[ActorSnapshot, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the shape of ``GET /api/actors``)."""
        failure = self.last_failure
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "restarts": self.restarts,
            "restart_type": self.restart_type,
            "critical": self.critical,
            "started_at": self.started_at,
            "mailbox": self.mailbox,
            "dropped_messages": self.dropped_messages,
            "last_failure": None
            if failure is None
            else {"type": failure.type, "message": failure.message, "traceback": failure.traceback},
            "details": self.details,
            "children": [child.to_dict() for child in self.children],
        }

    def find(self, actor_id: str) -> ActorSnapshot | None:
        if self.id == actor_id:
            return self
        for child in self.children:
            found = child.find(actor_id)
            if found is not None:
                return found
        return None

    def walk(self) -> list[ActorSnapshot]:
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


def render_tree(node: ActorSnapshot, indent: str = "") -> str:
    """A compact text tree for terminals (``trading-bot shell -c tree``)."""
    extra = f" restarts={node.restarts}" if node.restarts else ""
    if node.mailbox:
        extra += f" mailbox={node.mailbox}"
    if node.last_failure is not None and node.status != "running":
        extra += f" last_failure={node.last_failure.summary()!r}"
    lines = [f"{indent}{node.id} [{node.kind}] {node.status}{extra}"]
    for child in node.children:
        lines.append(render_tree(child, indent + "  "))
    return "\n".join(lines)
