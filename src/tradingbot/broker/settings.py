"""Where the gateway is and how closely the connection is watched."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings:
    """Connection settings of one broker actor (the runtime builds them from the config)."""

    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = 1
    account: str | None = None
    connect_timeout_s: float = 10.0
    probe_interval_s: float = 5.0
    probe_timeout_s: float = 5.0
    max_probe_misses: int = 3
    request_timeout_s: float = 10.0
