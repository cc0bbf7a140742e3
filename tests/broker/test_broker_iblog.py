"""ib_async's ERROR records for what the broker handles itself are lowered; real errors stay."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from brokerharness import BrokerHarness, wait_until

from tradingbot.broker import ConnectionState, OrderRequest, cancel_order, place_order
from tradingbot.broker.iblog import corrected_level
from tradingbot.gateway import SimulatorThread

WRAPPER, CLIENT = "ib_async.wrapper", "ib_async.client"


@pytest.mark.parametrize(
    ("logger", "message", "level"),
    [
        (WRAPPER, "Error 202, reqId 7: Order Canceled - reason:", logging.INFO),
        (WRAPPER, "Error 201, reqId 8: Order rejected - reason:desk says no", logging.WARNING),
        (WRAPPER, "Error 200, reqId 9: No security definition has been found", logging.WARNING),
        (WRAPPER, "Error 1100, reqId -1: Connectivity between IB and TWS has been lost.", 30),
        (WRAPPER, "Error 1101, reqId -1: Connectivity restored - data lost.", logging.WARNING),
        (WRAPPER, "Error 1102, reqId -1: Connectivity restored - data maintained.", 20),
        (CLIENT, "Peer closed connection.", logging.WARNING),
        (CLIENT, "API connection failed: ConnectionRefusedError(111, 'refused')", 30),
        (CLIENT, "API connection failed: TimeoutError()", logging.WARNING),
        (CLIENT, "Make sure API port on TWS/IBG is open", logging.WARNING),
    ],
)
def test_what_the_broker_handles_is_not_an_error(logger: str, message: str, level: int) -> None:
    """Connection losses, restores and refused connects that the broker actor handles itself are
    logged as warnings or info, not as errors."""
    assert corrected_level(logger, message) == level


@pytest.mark.parametrize(
    ("logger", "message"),
    [
        # a misconfiguration the operator must fix: another client holds our client id
        (WRAPPER, "Error 326, reqId -1: Unable to connect as the client id is already in use"),
        (CLIENT, "Peer closed connection. clientId 4 already in use?"),
        (WRAPPER, "Error 10147, reqId 3: OrderId 3 that needs to be cancelled is not found."),
        (WRAPPER, "Error 2000, reqId 1: a code nobody knows"),
        ("ib_async.ib", "positions request timed out"),
        (CLIENT, "API connection failed: RuntimeError('unexpected')"),
    ],
)
def test_everything_else_stays_an_error(logger: str, message: str) -> None:
    """A client id in use, an unknown error code or an unexpected failure stays an ERROR log line
    for the operator."""
    assert corrected_level(logger, message) is None


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("ib_async")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_a_cancel_we_asked_for_is_logged_at_info(
    broker: BrokerHarness, sim: SimulatorThread, captured: Captured
) -> None:
    """The gateway's 202 confirmation still reaches the log, at INFO, with no ERROR record
    (the autouse guard fails this test on any ERROR record from ib_async)."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    limit = round(sim.call(lambda s: s.brokerage.prices.price("MSFT")) * 0.5, 2)
    ref = place_order(handle, broker.status, OrderRequest("MSFT", "BUY", 1, "LMT", limit))
    cancel_order(handle, broker.status, ref)

    def confirmation() -> logging.LogRecord | None:
        found = [r for r in captured.records if r.getMessage().startswith("Error 202,")]
        return found[0] if found else None

    record = wait_until(confirmation, message="the gateway's cancel confirmation")
    assert (record.name, record.levelname) == (WRAPPER, "INFO")
