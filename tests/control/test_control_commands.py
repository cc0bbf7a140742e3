"""The shell's command set against a real runtime (SQLite, real actors): bad input and results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from control_support import run

from tradingbot.config import load_config
from tradingbot.control.commands import MAX_EVENTS_SHOWN, MAX_NOTE_CHARS, RuntimeCommands
from tradingbot.control.server import CommandError
from tradingbot.control.wiring import runtime_commands
from tradingbot.runtime import Runtime


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeCommands]:
    home: Path = tmp_path_factory.mktemp("home")
    runtime = Runtime(
        load_config(environ={"TRADINGBOT_HOME": str(home), "TRADINGBOT_STRATEGIES": ""})
    )
    runtime.start()
    try:
        yield runtime_commands(runtime)
    finally:
        runtime.stop()


def test_note_is_stored_and_listed_by_events(commands: RuntimeCommands) -> None:
    """A note is answered once durable and shows up first in `events`."""
    result = run(commands, "note gateway restarted by hand")
    assert "stored durably" in result.text
    listed = run(commands, "events 5 SYSTEM")
    assert listed.result[0]["id"] == result.result["id"]
    assert listed.result[0]["source"] == "operator"
    assert "gateway restarted by hand" in listed.text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("note", "usage: note MESSAGE"),
        ("note " + "x" * (MAX_NOTE_CHARS + 1), f"at most {MAX_NOTE_CHARS} characters"),
        ("events 0", f"LIMIT must be a whole number from 1 to {MAX_EVENTS_SHOWN}"),
        (f"events {MAX_EVENTS_SHOWN + 1}", f"from 1 to {MAX_EVENTS_SHOWN}, got '1001'"),
        ("events ²", "LIMIT must be a whole number"),
        ("events -3", "LIMIT must be a whole number"),
        ("mail retry ²", "ID must be a whole number"),
        ("mail retry 99999999999999999999999", "ID must be a whole number"),
        ("crash root", "root supervisor cannot be used for a crash drill"),
        ("hang root 1", "root supervisor cannot be used for a hang drill"),
        ("events 5 not-a-type", "type: expected an upper-case identifier"),
        ("hang heartbeat soon", "SECONDS must be a number"),
        ("hang heartbeat 0", "SECONDS must be > 0"),
        ("hang heartbeat", "usage: hang ACTOR SECONDS"),
        ("crash", "usage: crash ACTOR"),
        ("state nobody", "unknown actor 'nobody'"),
        ("tree extra", "usage: tree"),
        ("launch", "unknown command 'launch'"),
        ("reconcile now", "usage: reconcile [run|accept]"),
        ("reconcile run accept", "usage: reconcile [run|accept]"),
        ("reconcile accept", "no discrepancies await acceptance"),
    ],
)
def test_bad_input_is_one_clear_error(commands: RuntimeCommands, line: str, expected: str) -> None:
    """Every malformed command is refused with one line saying what is wrong."""
    with pytest.raises(CommandError) as raised:
        run(commands, line)
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message


def test_reconcile_shows_runs_and_reports_the_gate(commands: RuntimeCommands) -> None:
    """`reconcile run` runs one now against the simulator; `reconcile` lists it first."""
    ran = run(commands, "reconcile run")
    assert ran.result["status"] == "clean"
    assert ran.result["trigger"] == "operator"
    shown = run(commands, "reconcile")
    assert shown.result["trading_blocked"] is None
    assert shown.result["latest"][0]["id"] == ran.result["id"]
    assert shown.text.startswith("trading: open")
    assert "clean" in shown.text
