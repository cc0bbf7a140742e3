"""A client id already in use at the gateway (error 326) is retried until it is free."""

from __future__ import annotations

from brokerharness import BrokerHarness, wait_until
from ib_async import IB

from support.ib_errors import IbErrorGuard
from tradingbot.broker import ConnectionState, LoopThread
from tradingbot.gateway import SimulatorThread


def test_duplicate_client_id_is_retried_until_free(
    sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """While another client holds our client id the broker stays disconnected and retries
    with backoff; once that client leaves, the broker syncs."""
    ib_errors.allow(r"Error 326|client id is already in use|API connection failed")
    ib_errors.allow(r"^Peer closed connection\.|already in use|Make sure API port")
    other_loop = LoopThread(name="other-client")
    other_loop.start()
    other = other_loop.call(IB, 5)
    other_loop.run(other.connectAsync("127.0.0.1", sim.port, clientId=7, timeout=3), 5)
    harness = BrokerHarness(sim.port, connect_timeout_s=0.5)
    harness.start()
    try:
        wait_until(lambda: harness.node().restarts >= 2, message="retries of the broker")
        assert harness.state != ConnectionState.SYNCED
        assert "error 326" in (harness.status.view().last_error or "")
        other_loop.call(other.disconnect, 5)
        harness.wait_state(ConnectionState.SYNCED, timeout_s=15)
    finally:
        harness.stop()
        other_loop.stop(before=other.disconnect)
