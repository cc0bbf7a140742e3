"""The shell's live views: ``events --follow [TYPE...]`` and ``watch tree``.

Both poll the running process through the control socket (every ``POLL_S``) until
Ctrl-C, which ends the view and returns to the prompt, not the shell. ``events --follow``
prints the last ``FOLLOW_BACKLOG`` events, then each new one once (by id), oldest first;
``watch tree`` redraws the tree when it changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from tradingbot.control.protocol import Response
from tradingbot.control.terminal import printable

POLL_S = 0.5
FOLLOW_BACKLOG = 10
FOLLOW_PAGE = 100
CLEAR = "\x1b[H\x1b[2J"

Request = Callable[[str, list[str]], Response]


def follow_events(request: Request, types: list[str], out: TextIO, err: TextIO) -> int:
    """Print new events until Ctrl-C; 1 if the process refuses (bad type), else 0."""
    seen: set[str] = set()
    first = True
    try:
        while True:
            response = request("events", [str(FOLLOW_PAGE), *types])
            if not response.ok:
                err.write(f"error: {printable(str(response.error))}\n")
                return 1
            rows: list[dict[str, Any]] = list(response.result or [])
            fresh = [row for row in reversed(rows) if row.get("id") not in seen]
            seen.update(str(row.get("id")) for row in rows)
            if first:
                fresh = fresh[-FOLLOW_BACKLOG:]
                first = False
            for row in fresh:
                out.write(_event_line(row) + "\n")
            out.flush()
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        out.write("\n(stopped following)\n")
        return 0


def watch_tree(request: Request, out: TextIO, err: TextIO, *, clear: bool) -> int:
    """Redraw the tree whenever it changes, until Ctrl-C."""
    shown = None
    try:
        while True:
            response = request("tree", [])
            if not response.ok:
                err.write(f"error: {printable(str(response.error))}\n")
                return 1
            if response.text != shown:
                shown = response.text
                moment = datetime.now(UTC).strftime("%H:%M:%S UTC")
                header = f"tree at {moment} (Ctrl-C to stop)\n"
                body = printable(response.text.rstrip("\n"))
                out.write((CLEAR if clear else "") + header + body + "\n")
                out.flush()
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        out.write("\n(stopped watching)\n")
        return 0


def _event_line(row: dict[str, Any]) -> str:
    stamp = str(row.get("timestamp", ""))[:19]
    return printable(
        f"{stamp} {row.get('severity', ''):<8} {row.get('type', ''):<7} "
        f"{row.get('source') or '-'}: {row.get('message', '')}"
    ).replace("\n", "\\n")
