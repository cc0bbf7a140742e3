"""docs/TROUBLESHOOTING.md explains every message the CLI can print on stderr, every exit code.

The messages are found in the code, not listed by hand: every ``print(..., file=stderr)``
in ``src/tradingbot``, the shell client's errors, the backup errors, and setup.sh's
``die`` lines. Each literal part of a message (the text between its placeholders) must
appear on the page, so a new or reworded message fails here until it is documented.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradingbot import exitcodes

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "tradingbot"
PAGE = REPO / "docs" / "TROUBLESHOOTING.md"
_MIN_PART = 8  # shorter literal parts ("is a", ": ") say nothing on their own


def _template(node: ast.expr) -> str | None:
    """The message with every placeholder as ``{}``; ``None`` when not a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _is_stderr(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "stderr") or (
        isinstance(node, ast.Name) and node.id == "stderr"
    )


def _stderr_prints() -> Iterator[tuple[str, str]]:
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
                and node.args
                and any(k.arg == "file" and _is_stderr(k.value) for k in node.keywords)
            ):
                text = _template(node.args[0])
                if text is not None:
                    yield f"{path.name}:{node.lineno}", text


def _is_message(node: ast.AST) -> bool:
    """``return f"..."`` or ``message = ...``: a message built for an exception."""
    if isinstance(node, ast.Return):
        return isinstance(node.value, ast.JoinedStr)
    return isinstance(node, ast.Assign) and [
        getattr(target, "id", None) for target in node.targets
    ] == ["message"]


def _raised_or_returned(path: Path, exceptions: set[str]) -> Iterator[tuple[str, str]]:
    """Messages given to ``raise E(...)`` for E in ``exceptions``, and returned f-strings."""
    for node in ast.walk(ast.parse(path.read_text())):
        value: ast.expr | None = None
        if (
            isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and isinstance(node.exc.func, ast.Name)
            and node.exc.func.id in exceptions
            and node.exc.args
        ):
            value = node.exc.args[0]
        elif _is_message(node):
            assert isinstance(node, ast.Return | ast.Assign)
            value = node.value
        text = None if value is None else _template(value)
        if text is not None:
            yield f"{path.name}:{node.lineno}", text


def _shell_errors() -> Iterator[tuple[str, str]]:
    """The shell's own ``_error(stderr, ...)`` lines."""
    path = SRC / "control" / "shell.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_error"
            and len(node.args) == 2
        ):
            text = _template(node.args[1])
            if text is not None:
                yield f"{path.name}:{node.lineno}", "error: " + text


def _setup_errors() -> Iterator[tuple[str, str]]:
    script = (REPO / "deploy" / "setup.sh").read_text()
    expansion = re.compile(r"\$\((?:[^()]|\([^()]*\))*\)|\$\{?[A-Za-z_0-9]+\}?")
    for number, line in enumerate(script.splitlines(), 1):
        match = re.search(r'\bdie \d+ "(.*)"', line)
        if match:  # shell expansions are the placeholders
            yield f"setup.sh:{number}", expansion.sub("{}", match[1])


def _messages() -> list[tuple[str, str]]:
    return [
        *_stderr_prints(),
        *_raised_or_returned(
            SRC / "control" / "client.py", {"ControlUnavailable", "ProtocolError"}
        ),
        *_raised_or_returned(SRC / "storage" / "backup.py", {"BackupError"}),
        *_raised_or_returned(SRC / "storage" / "backup_postgres.py", {"BackupError"}),
        *_shell_errors(),
        *_setup_errors(),
    ]


def _parts(template: str) -> list[str]:
    parts = (part.strip(" :;,.()'\"\n") for part in template.split("{}"))
    return [part for part in parts if len(part) >= _MIN_PART]


def test_messages_are_found_in_the_code() -> None:
    """The scan sees the CLI's messages (a broken scan must not pass silently)."""
    found = " | ".join(text for _, text in _messages())
    for expected in (
        "trading-bot: configuration error:",
        "trading-bot: restore refused:",
        "no trading-bot process is running",
        "checksum mismatch",
        "run as root",
    ):
        assert expected in found


@pytest.mark.parametrize(("where", "template"), _messages(), ids=lambda v: str(v)[:60])
def test_every_message_is_explained(where: str, template: str) -> None:
    """Each literal part of a stderr message in the code appears in TROUBLESHOOTING.md."""
    page = " ".join(PAGE.read_text().split())
    missing = [part for part in _parts(template) if " ".join(part.split()) not in page]
    assert missing == [], f"{where}: {template!r} is not explained in {PAGE.name}"


@pytest.mark.parametrize(
    ("name", "code"),
    [(n, v) for n, v in vars(exitcodes).items() if n.isupper() and isinstance(v, int)],
)
def test_every_exit_code_is_explained(name: str, code: int) -> None:
    """Each exit code of tradingbot.exitcodes has its row (code and name) in the table."""
    assert f"| {code} | {name} |" in PAGE.read_text()


def test_every_setup_exit_code_is_explained() -> None:
    """Each exit code setup.sh can return has its row in the setup.sh table."""
    codes = set(re.findall(r"\bdie (\d+) ", (REPO / "deploy" / "setup.sh").read_text()))
    section = PAGE.read_text().split("### `deploy/setup.sh`")[1]
    for code in codes:
        assert f"\n| {code} |" in section, code
