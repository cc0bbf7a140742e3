"""Where the gateway is and how closely the connection is watched."""

from __future__ import annotations

from dataclasses import dataclass

from tradingbot.config import Config
from tradingbot.config.settings import default


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings:
    """Connection settings of one broker actor; the defaults are the settings table's."""

    host: str = default("IB_HOST")
    port: int = default("IB_PORT")
    client_id: int = default("IB_CLIENT_ID")
    account: str | None = None
    connect_timeout_s: float = default("IB_CONNECT_TIMEOUT_S")
    probe_interval_s: float = default("IB_PROBE_INTERVAL_S")
    probe_timeout_s: float = default("IB_PROBE_TIMEOUT_S")
    max_probe_misses: int = default("IB_PROBE_MISSES")
    request_timeout_s: float = default("IB_REQUEST_TIMEOUT_S")

    @classmethod
    def from_config(cls, config: Config, *, simulator_port: int | None = None) -> BrokerSettings:
        """The settings of ``TRADINGBOT_IB_*``; with ``simulator_port`` the in-process
        simulator on loopback instead of the configured gateway."""
        host, port = config.ib_host, config.ib_port
        if simulator_port is not None:
            host, port = "127.0.0.1", simulator_port
        return cls(
            host=host,
            port=port,
            client_id=config.ib_client_id,
            account=config.ib_account,
            connect_timeout_s=config.ib_connect_timeout_s,
            request_timeout_s=config.ib_request_timeout_s,
            probe_interval_s=config.ib_probe_interval_s,
            probe_timeout_s=config.ib_probe_timeout_s,
            max_probe_misses=config.ib_probe_misses,
        )
