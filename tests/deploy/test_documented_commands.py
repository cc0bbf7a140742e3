"""Every command shown in README, DEVELOPERS.md and docs/ is run by a test or marked.

This module is the fast half: each command line of a fenced shell block must fit a rule
of ``support.doc_commands`` (then tests/e2e/test_e2e_documented_commands.py runs it) or
sit in a block marked ``<!-- not-run: REASON -->``; every ``trading-bot …`` line, marked
or not, is accepted by the real argument parser and names a real shell command.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from support.doc_commands import (
    REPO,
    Kind,
    all_commands,
    blocks,
    classify,
    commands,
    is_trading_bot,
    pages,
    program,
    segments,
    unclassified_message,
    unlabelled_blocks,
)
from tradingbot.cli import _parser
from tradingbot.control.commands import COMMANDS

COMMAND_LINES = all_commands()


def _trading_bot_argvs() -> list[tuple[str, list[str]]]:
    found = []
    for command in COMMAND_LINES:
        if "…" in command.text or "<" in command.text:
            continue  # a placeholder in a marked block (an install from git, say)
        for part in segments(shlex.split(command.text)):
            name, args = program(part)
            if is_trading_bot(name) and args:
                found.append((f"{command.where}: {command.text}", args))
    return found


def test_documented_commands_are_found() -> None:
    """The scan finds the documented commands of every kind (a broken scan must not pass)."""
    kinds = {command.kind for command in COMMAND_LINES}
    assert {Kind.OFFLINE, Kind.SERVER, Kind.LIVE, Kind.NOT_RUN} <= kinds
    argvs = [" ".join(argv) for _, argv in _trading_bot_argvs()]
    assert len(argvs) >= 30
    assert "shell -c tree" in argvs
    assert any(argv.startswith("db restore") for argv in argvs)


def test_every_documented_command_is_run_or_marked() -> None:
    """A command line no test can run and no marker explains fails, naming page and line."""
    problems = [unclassified_message(c) for c in COMMAND_LINES if c.kind is None]
    assert problems == [], "\n".join(problems)


def test_every_code_block_says_what_it_holds() -> None:
    """A fence without a language fails: commands go in ```sh, output in ```text."""
    found = [
        f"{page.relative_to(REPO)}:{line}: a code block without a language; use ```sh for "
        "commands (run by the tests) or ```text for output and diagrams"
        for page, line in unlabelled_blocks()
    ]
    assert found == [], "\n".join(found)


def test_every_not_run_marker_gives_a_reason() -> None:
    """A not-run marker says why; an empty reason would hide a runnable command."""
    empty = [
        f"{page.name}:{block.line - 1}"
        for page in pages()
        for block in blocks(page)
        for reason in block.markers.values()
        if not reason.strip()
    ]
    assert empty == []


def test_every_prefix_marker_matches_a_line() -> None:
    """A `<!-- not-run PREFIX: … -->` whose prefix starts no line of its block is stale."""
    stale = [
        f"{page.relative_to(REPO)}:{block.line - 1}: no line starts with {prefix!r}"
        for page in pages()
        for block in blocks(page)
        for prefix in block.markers
        if prefix and not any(line.strip().startswith(prefix) for line in block.lines)
    ]
    assert stale == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("trading-bot db verify /tmp/x.tar", Kind.OFFLINE),
        ("trading-bot gateway-sim --help", Kind.OFFLINE),
        ("trading-bot gateway-sim --port 4002", Kind.SERVER),
        ('trading-bot shell -c "pause earnings"', Kind.LIVE),
        ("curl -s localhost:8000/api/health", Kind.LIVE),
        ("sudo systemctl start trading-bot", None),
        ("trading-bot shell -c 'note text...'", None),
        ("trading-bot strategies list", None),
        ("curl -s https://example.com/", None),
        ("journalctl -u trading-bot", None),
    ],
)
def test_classification_rules(line: str, expected: Kind | None) -> None:
    """The rules run what they can and refuse what they cannot, saying why."""
    kind, why = classify(line)
    assert kind == expected
    assert (why == "") == (expected is not None)


@pytest.mark.parametrize(("where", "argv"), _trading_bot_argvs(), ids=lambda v: str(v)[:70])
def test_documented_command_parses(where: str, argv: list[str]) -> None:
    """The command line is accepted by `trading-bot`'s parser; a shell command exists."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        if exit_.code == 0:  # --help and --version print and exit 0
            return
        pytest.fail(f"{where}: rejected by the parser (exit {exit_.code})")
    if args.command == "shell" and args.shell_command:
        name = args.shell_command.split()[0]
        assert name in COMMANDS, f"{where}: no shell command {name!r}"


def test_console_blocks_run_only_the_prompted_lines(tmp_path: Path) -> None:
    """In a ```console block the `$ ` lines are commands and the rest is their output."""
    page = tmp_path / "page.md"
    page.write_text("```console\n$ trading-bot --version\ntrading-bot 0.1.0\n```\n")
    assert [(c.text, c.kind) for c in commands(page)] == [("trading-bot --version", Kind.OFFLINE)]


def test_a_prefix_marker_skips_only_its_lines(tmp_path: Path) -> None:
    """`<!-- not-run PREFIX: … -->` exempts the lines starting with PREFIX, not the block."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not-run ./scripts/test: the whole suite -->\n"
        "```sh\n./scripts/run      # the bot\n./scripts/test\n```\n"
    )
    found = [(c.text, c.kind, c.why) for c in commands(page)]
    assert found == [
        ("./scripts/run", Kind.SERVER, ""),
        ("./scripts/test", Kind.NOT_RUN, "the whole suite"),
    ]
