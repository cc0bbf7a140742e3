"""The broker actor against the gateway simulator: sync, faults, reconnects, health."""

from __future__ import annotations

import threading

import pytest
from brokerharness import BrokerHarness, wait_until

from support.ib_errors import IbErrorGuard
from support.ports import free_port
from tradingbot.broker import ConnectionState
from tradingbot.events import SYSTEM, Severity
from tradingbot.gateway import SimulatorThread
from tradingbot.health.checks import broker_check

SYNCED = ConnectionState.SYNCED
DEGRADED = ConnectionState.DEGRADED
NOT_SYNCED = (ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)


def test_connects_and_reaches_synced(broker: BrokerHarness, sim: SimulatorThread) -> None:
    """The actor connects in setup; the snapshot shows synced, the gateway and a round trip."""
    broker.wait_state(SYNCED)
    wait_until(
        lambda: broker.node().details.get("last_roundtrip_ms") is not None,
        message="a heartbeat probe round trip",
    )
    details = broker.node().details
    assert details["host"] == "127.0.0.1"
    assert (details["port"], details["client_id"]) == (sim.port, 7)
    assert details["last_error"] is None
    assert sim.call(lambda s: s.connected_client_ids) == [7]
    infos = broker.sink.of_type(SYSTEM)
    assert [e.severity for e in infos] == [Severity.INFO]
    assert "synced" in infos[0].message


def test_closed_connection_is_reconnected_by_the_backoff(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """A gateway that closes the socket takes the actor out of synced; the backoff reconnects."""
    broker.wait_state(SYNCED)
    sim.call(lambda s: s.close_all_connections())
    wait_until(lambda: broker.node().restarts >= 1, message="a restart of the broker")
    broker.wait_state(SYNCED)
    assert broker.status.view().connects == 2
    warnings = [e for e in broker.sink.of_type(SYSTEM) if e.severity == Severity.WARNING]
    assert len(warnings) == 1
    assert "connection lost" in warnings[0].message
    assert sim.call(lambda s: s.connected_client_ids) == [7]


def test_frozen_gateway_is_detected_and_recovers(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """A frozen gateway (socket open, no answers) makes the probe report degraded; after
    unfreeze the broker is synced again."""
    ib_errors.allow(r"TimeoutError|timed out|Peer closed connection")
    broker.wait_state(SYNCED)
    sim.call(lambda s: s.freeze())
    broker.wait_state(DEGRADED, *NOT_SYNCED)
    assert broker.status.view().last_error
    sim.call(lambda s: s.unfreeze())
    broker.wait_state(SYNCED, timeout_s=15)
    assert any(
        e.severity == Severity.WARNING and "degraded" in e.message
        for e in broker.sink.of_type(SYSTEM)
    )


def test_a_gateway_frozen_for_good_is_dropped_after_the_missed_probes(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """Each unanswered heartbeat probe is counted in the degraded state's error; the third
    in a row drops the connection, saying so; after unfreeze the broker reconnects."""
    ib_errors.allow(r"TimeoutError|timed out|Peer closed connection|API connection failed")
    broker.wait_state(SYNCED)
    sim.call(lambda s: s.freeze())

    def system_messages() -> list[str]:
        return [e.message for e in broker.sink.of_type(SYSTEM)]

    lost = "broker connection lost: the gateway did not answer 3 heartbeat probes"
    wait_until(lambda: lost in system_messages(), message="the connection dropped")
    degraded = [m for m in system_messages() if m.startswith("broker degraded")]
    assert degraded == ["broker degraded: heartbeat probe 1 failed: TimeoutError"]
    sim.call(lambda s: s.unfreeze())
    broker.wait_state(SYNCED, timeout_s=15)
    # The new incarnation may sync before its supervisor has recorded the restart.
    wait_until(lambda: broker.node().restarts >= 1, message="the restart recorded")


def test_a_gateway_that_refuses_connections_is_named_in_the_last_error(
    ib_errors: IbErrorGuard,
) -> None:
    """With nothing listening on the gateway's port the broker stays disconnected and its
    last error names the address and the refusal (what the health check shows)."""
    ib_errors.allow(r"API connection failed|Make sure API port|Connect call failed")
    port = free_port()
    broker = BrokerHarness(port)
    broker.start()
    try:
        wait_until(
            lambda: (broker.status.view().last_error or "").startswith(
                f"connect to 127.0.0.1:{port} failed: ConnectionRefusedError"
            ),
            message="the refused connect in the last error",
        )
        assert broker.status.view().state in NOT_SYNCED
    finally:
        broker.stop()


def test_restart_window_is_survived(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """While the gateway refuses connections the broker retries with backoff, then syncs."""
    broker.wait_state(SYNCED)
    sim.run(sim.call(lambda s: s.refuse_connections(1.5)))
    broker.wait_state(*NOT_SYNCED)
    wait_until(lambda: broker.node().restarts >= 2, message="failed reconnect attempts")
    broker.wait_state(SYNCED, timeout_s=15)
    assert broker.status.view().connects == 2
    assert broker.status.view().last_error is None  # the refused connects are over


def test_connectivity_notices_degrade_and_restore(
    sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """Error 1100 makes the broker degraded without reconnecting, and it stays so while the
    gateway still answers its heartbeat; 1102 makes it synced again; after that a heartbeat
    hiccup degrades it and the next answered probe syncs it, saying so."""
    ib_errors.allow(r"TimeoutError|timed out")
    # Many misses allowed: the hiccup must be recovered by a probe, never by a reconnect.
    broker = BrokerHarness(sim.port, max_probe_misses=100)
    broker.start()
    try:
        broker.wait_state(SYNCED)
        sim.call(lambda s: s.connectivity_lost())
        broker.wait_state(DEGRADED)
        assert (broker.status.view().last_error or "").startswith("1100: ")
        answered_at = broker.status.view().last_ok or 0.0
        wait_until(
            lambda: (broker.status.view().last_ok or 0.0) > answered_at + 0.3,
            message="heartbeat probes answered while IB is cut off",
        )
        assert broker.status.view().state == DEGRADED
        sim.call(lambda s: s.connectivity_restored())
        broker.wait_state(SYNCED)
        assert broker.status.view().last_error is None
        # The state changes before its SYSTEM event is recorded: wait for the event.
        restored = (
            "broker synced again: Connectivity between IB and Trader Workstation has been"
            " restored - data maintained."
        )
        wait_until(lambda: messages(broker)[-1] == restored, message="the restored event")
        sim.call(lambda s: s.freeze())
        broker.wait_state(DEGRADED)
        sim.call(lambda s: s.unfreeze())
        broker.wait_state(SYNCED, timeout_s=15)
        assert broker.status.view().last_error is None
        answers = "broker synced again: the gateway answers"
        wait_until(lambda: messages(broker)[-1] == answers, message="the answered-probe event")
        assert broker.node().restarts == 0
    finally:
        broker.stop()


def messages(broker: BrokerHarness, severity: Severity = Severity.INFO) -> list[str]:
    """The SYSTEM events of ``severity`` the broker recorded."""
    return [e.message for e in broker.sink.of_type(SYSTEM) if e.severity == severity]


def test_health_check_follows_the_connection(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """The broker health check passes when synced, warns when degraded and fails when down
    longer than the grace period, then passes again."""
    check = broker_check(broker.status, grace_s=0.5)
    broker.wait_state(SYNCED)
    [synced] = check()
    assert synced.status == "pass"
    assert synced.observed_unit == "s"
    assert 0 <= synced.observed_value < 5
    sim.call(lambda s: s.connectivity_lost())
    broker.wait_state(DEGRADED)
    [degraded] = check()
    assert degraded.status == "warn"
    assert "degraded" in (degraded.output or "")
    sim.run(sim.call(lambda s: s.refuse_connections(3.0)))
    wait_until(lambda: check()[0].status == "fail", message="the check to fail")
    assert "disconnected" in (check()[0].output or "") or "connecting" in (check()[0].output or "")
    broker.wait_state(SYNCED, timeout_s=15)
    assert check()[0].status == "pass"


@pytest.mark.parametrize("code", [1101, 1102])
def test_restored_notice_after_loss(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard, code: int
) -> None:
    """Both restore notices (data lost or maintained) bring a degraded broker back to synced."""
    broker.wait_state(SYNCED)
    sim.call(lambda s: s.connectivity_lost())
    broker.wait_state(DEGRADED)
    sim.call(lambda s: s.connectivity_restored(data_lost=code == 1101))
    broker.wait_state(SYNCED)


def test_crash_drill_closes_the_client_and_reconnects(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """A crash of the actor (operator drill) stops its client loop thread; the replacement
    connects with the same client id and no loop thread is left behind."""
    broker.wait_state(SYNCED)
    broker.tree.crash("broker")
    wait_until(lambda: broker.node().restarts >= 1, message="the replacement broker")
    broker.wait_state(SYNCED)
    wait_until(lambda: broker.status.view().connects == 2, message="the second connect")
    assert sim.call(lambda s: s.connected_client_ids) == [7]
    loops = [t for t in threading.enumerate() if t.name.startswith("ib-loop-")]
    assert len(loops) == 1
