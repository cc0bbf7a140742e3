"""The product's supervised actors (heartbeat now; broker, notifier, ... as they land)."""

from tradingbot.actors.heartbeat import HeartbeatActor, WriteHeartbeat

__all__ = ["HeartbeatActor", "WriteHeartbeat"]
