"""The simulator's parts without sockets: framing, message layouts, prices, bookkeeping."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradingbot.gateway import (
    Brokerage,
    OrderRequest,
    PriceModel,
    Rejection,
    build_simulator,
    main,
)
from tradingbot.gateway import messages as msg
from tradingbot.gateway.protocol import encode_fields, parse_version_range, read_frame


def _request(**overrides: object) -> OrderRequest:
    fields: dict[str, object] = {
        "order_id": 1,
        "con_id": 0,
        "symbol": "AAPL",
        "sec_type": "STK",
        "exchange": "SMART",
        "currency": "USD",
        "action": "BUY",
        "quantity": 100.0,
        "order_type": "MKT",
        "lmt_price": None,
        "tif": "DAY",
        "account": "",
        "order_ref": "ref-1",
    }
    fields.update(overrides)
    return OrderRequest(**fields)  # type: ignore[arg-type]


def test_frames_round_trip() -> None:
    """An encoded message reads back as the same fields, booleans as 0/1."""

    async def scenario() -> list[str]:
        reader = asyncio.StreamReader()
        reader.feed_data(encode_fields([9, 1, 42, True, None, 1.5]))
        return await read_frame(reader)

    assert asyncio.run(scenario()) == ["9", "1", "42", "1", "", "1.5"]


def test_version_range_parsing_accepts_connect_options() -> None:
    """The client's version range is parsed with or without " +PACEAPI"."""
    assert parse_version_range("v157..178") == (157, 178)
    assert parse_version_range("v100..176 +PACEAPI") == (100, 176)


@pytest.mark.parametrize(("version", "count"), [(157, 120), (176, 128), (178, 127)])
def test_open_order_field_count_matches_the_client_decoder(version: int, count: int) -> None:
    """openOrder has exactly as many fields as ib_async's decoder reads at each version."""
    broker = Brokerage()
    result = broker.place(1, _request())
    assert not isinstance(result, Rejection)
    assert len(msg.open_order(result.order, "Filled", version)) == count


def test_price_model_is_deterministic_per_seed() -> None:
    """Two models with the same seed produce the same walk; another seed differs."""
    a, b, c = PriceModel(7), PriceModel(7), PriceModel(8)
    walk_a = [a.step("AAPL") for _ in range(20)]
    assert walk_a == [b.step("AAPL") for _ in range(20)]
    assert walk_a != [c.step("AAPL") for _ in range(20)]


def test_brokerage_order_ids_and_duplicates() -> None:
    """Order ids continue per client and a reused id is refused with error 103."""
    broker = Brokerage()
    assert broker.next_order_id(3) == 1
    assert not isinstance(broker.place(3, _request(order_id=10)), Rejection)
    assert broker.next_order_id(3) == 11
    assert broker.next_order_id(4) == 1
    duplicate = broker.place(3, _request(order_id=10))
    assert isinstance(duplicate, Rejection)
    assert duplicate.code == 103


def test_brokerage_books_cash_position_and_realized_pnl() -> None:
    """A buy then a higher sell updates cash and realizes P&L net of commissions."""
    broker = Brokerage(accounts={"DU1": 10_000.0})
    broker.prices.set_price("AAPL", 100.0)
    broker.place(1, _request(order_id=1, quantity=10.0))
    broker.prices.set_price("AAPL", 110.0)
    broker.place(1, _request(order_id=2, quantity=10.0, action="SELL"))
    [pos] = broker.account_positions("DU1")
    assert pos.quantity == 0
    assert broker.executions[-1].realized_pnl == pytest.approx(100.0 - 2.0)
    assert broker.accounts["DU1"].cash == pytest.approx(10_000 + 100 - 2)


def _control(path: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        return sock.makefile().readline().strip()


def test_gateway_sim_command_serves_until_sigterm(tmp_path: Path) -> None:
    """`trading-bot gateway-sim` prints its port, takes fault commands and exits 0 on SIGTERM."""
    control = tmp_path / "sim.sock"
    command = [sys.executable, "-m", "tradingbot.cli", "gateway-sim"]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--seed", "3", "--control", str(control)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and not line.startswith("gateway simulator listening on"):
            line = proc.stdout.readline()  # the JSON log lines come first
        assert line.startswith("gateway simulator listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        assert control.stat().st_mode & 0o777 == 0o600
        assert _control(control, "status") == "ok clients=[] frozen=False"
        assert _control(control, "freeze") == "ok freeze"
        assert _control(control, "status") == "ok clients=[] frozen=True"
        assert _control(control, "explode").startswith("error unknown command")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the listener accepts connections
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_gateway_sim_command_rejects_a_bad_seed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed seed file is a usage error (exit 2, one line on stderr), not a traceback."""
    bad = tmp_path / "seed.json"
    bad.write_text("{not json")
    assert main(["--port", "0", "--seed-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trading-bot gateway-sim: bad --seed-file:")
    assert err.count("\n") == 1


def test_seeded_executions_are_replayed_as_the_days_fills(tmp_path: Path) -> None:
    """A seed file's executions become fills at their time and price, and move positions."""
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "executions": [
                    {"time": "2025-01-06T14:30:00+00:00", "symbol": "AAPL", "side": "BUY",
                     "quantity": 10, "price": 100.0, "client_id": 3, "order_ref": "TB-a"},
                    {"time": "2025-01-06T14:31:00+00:00", "symbol": "AAPL", "side": "SELL",
                     "quantity": 4, "price": 110.0, "client_id": 3, "order_ref": "TB-b"},
                ]
            }
        )
    )  # fmt: skip
    brokerage = build_simulator(seed_file=seed).brokerage
    first, second = brokerage.executions
    assert (first.order.order_ref, first.shares, first.price) == ("TB-a", 10, 100.0)
    assert first.time == datetime(2025, 1, 6, 14, 30, tzinfo=UTC)
    assert second.realized_pnl > 0
    [held] = brokerage.account_positions()
    assert held.quantity == 6
    assert held.avg_cost == pytest.approx((10 * 100.0 + 1.0) / 10)
    assert [o.status for o in brokerage.completed_orders()] == ["Filled", "Filled"]


@pytest.mark.parametrize(
    "fill",
    [
        {"time": "2025-01-06T14:30:00", "symbol": "AAPL", "side": "BUY", "quantity": 1,
         "price": 1.0},
        {"time": "2025-01-06T14:30:00+00:00", "symbol": "AAPL", "side": "BUY", "quantity": 0,
         "price": 1.0},
        {"time": "2025-01-06T14:30:00+00:00", "side": "BUY", "quantity": 1, "price": 1.0},
    ],
)  # fmt: skip
def test_a_bad_seeded_execution_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fill: dict[str, object]
) -> None:
    """A seed file with a bad execution makes gateway-sim exit 2 with one line naming --seed-
    file."""
    bad = tmp_path / "seed.json"
    bad.write_text(json.dumps({"executions": [fill]}))
    assert main(["--port", "0", "--seed-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trading-bot gateway-sim: bad --seed-file:")
    assert err.count("\n") == 1


def test_gateway_sim_help_shows_partial_fills_and_refuses_a_bad_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`gateway-sim --help` lists --max-fill-shares; a size that is not above 0 is a
    usage error (exit 2) naming the option, not a traceback."""
    with pytest.raises(SystemExit) as shown:
        main(["--help"])
    assert shown.value.code == 0
    assert "--max-fill-shares SHARES" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["--max-fill-shares", "0"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "argument --max-fill-shares: want a number of shares above 0, got '0'" in err
