"""Text for the operator's terminal: control characters made visible, never obeyed.

Event messages, reasons and notes come from strategies, brokers and other users; printed
raw, an escape sequence in one could clear the screen, retitle the terminal or hide the
lines before it. :func:`printable` shows every control character (C0, DEL, C1) except
newline and tab as a ``\\xNN`` escape; :func:`json_printable` does the same inside JSON
output with ``\\u00NN`` escapes, which keep it valid JSON.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C1 = re.compile(r"[\x7f-\x9f]")  # json.dumps escapes C0 itself, not DEL or C1


def printable(text: str) -> str:
    """``text`` with each control character but newline and tab shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def json_printable(text: str) -> str:
    """JSON text (from ``json.dumps``) with DEL and C1 characters escaped as ``\\u00NN``."""
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
