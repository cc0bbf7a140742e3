"""``events --follow``: what the operator's terminal receives for hostile event text."""

from __future__ import annotations

import io

from tradingbot.control.follow import follow_events
from tradingbot.control.protocol import Response


def test_followed_events_print_control_characters_as_escapes_one_line_each() -> None:
    """A followed event whose message holds an escape sequence or a newline prints as one
    line with the control characters shown as ``\\xNN``: it cannot clear the screen or
    forge a second event line."""
    row = {
        "id": "e1",
        "timestamp": "2026-03-10T15:00:00+00:00",
        "severity": "WARNING",
        "type": "SYSTEM",
        "source": "shell",
        "message": "note\x1b[2J\n2026-03-10T15:00:01 CRITICAL RISK fake",
    }
    calls = 0

    def request(command: str, args: list[str]) -> Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise KeyboardInterrupt
        return Response.success(1, [row], "")

    out, err = io.StringIO(), io.StringIO()
    assert follow_events(request, [], out, err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "2026-03-10T15:00:00 WARNING  SYSTEM  shell: note\\x1b[2J\\n"
        "2026-03-10T15:00:01 CRITICAL RISK fake"
    )
    assert "\x1b" not in out.getvalue()
    assert err.getvalue() == ""
