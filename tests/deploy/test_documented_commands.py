"""Every `trading-bot ...` command shown in README and docs/ is a valid command line.

Each command in a fenced shell block is parsed by the real argument parser (and a
`shell -c` command must name a real shell command), so a renamed option or command
fails here. This checks the command lines, it does not run them: most need a running
bot, a gateway or systemd (the end-to-end tests run the commands themselves).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tradingbot.cli import _parser
from tradingbot.control.commands import COMMANDS

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_SHELL_BLOCKS = {"", "sh", "bash", "console"}
_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "2>&1", "<"}


def _in_command_position(words: list[str], index: int) -> bool:
    """``trading-bot`` run as a program, not a unit, user or folder named trading-bot."""
    word = words[index]
    if word.endswith("/bin/trading-bot"):
        return True
    if word != "trading-bot":
        return False
    before = words[index - 1] if index else ""
    return not before or before in _OPERATORS or before in {"sudo", "env", "exec"} or "=" in before


def _shell_blocks(text: str) -> list[str]:
    """The content of each fenced block of shell commands (fences paired in order)."""
    blocks: list[str] = []
    info: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("```"):
            if info is None:
                info, lines = line[3:].strip(), []
            else:
                if info in _SHELL_BLOCKS:
                    blocks.append("\n".join(lines))
                info = None
        elif info is not None:
            lines.append(line)
    return blocks


def _documented() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for page in PAGES:
        for block in _shell_blocks(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                if "…" in line or "..." in line or "<" in line:
                    continue  # a placeholder, not a command
                try:
                    words = shlex.split(line, comments=True)
                except ValueError:
                    continue
                for index in range(len(words)):
                    if _in_command_position(words, index):
                        argv: list[str] = []
                        for arg in words[index + 1 :]:
                            if arg in _OPERATORS:
                                break
                            argv.append(arg)
                        if argv:  # "trading-bot" alone is a user or folder name here
                            found.append((f"{page.name}: {line.strip()}", argv))
    return found


def test_documented_commands_are_found() -> None:
    """The scan finds the documented commands (a broken scan must not pass silently)."""
    commands = [" ".join(argv) for _, argv in _documented()]
    assert len(commands) >= 20
    assert "shell -c tree" in commands
    assert any(c.startswith("db restore") for c in commands)


@pytest.mark.parametrize(("where", "argv"), _documented(), ids=lambda v: str(v)[:70])
def test_documented_command_parses(where: str, argv: list[str]) -> None:
    """The command line is accepted by `trading-bot`'s parser; a shell command exists."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{where}: rejected by the parser (exit {exit_.code})")
    if args.command == "shell" and args.shell_command:
        name = args.shell_command.split()[0]
        assert name in COMMANDS, f"{where}: no shell command {name!r}"
