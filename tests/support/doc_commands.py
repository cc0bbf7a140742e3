"""The commands shown in README.md, DEVELOPERS.md and docs/*.md, found and classified.

Every line of a fenced ``sh`` block (also ``bash``, ``shell``, ``console``) is a command
that a test runs, unless an HTML comment right before the block marks it:

- ``<!-- not-run: REASON -->`` — no line of the block is run (it needs systemd, root,
  a real IB gateway, minutes, ...); ``REASON`` says which.
- ``<!-- not-run PREFIX: REASON -->`` — only the lines starting with ``PREFIX`` are not
  run (several such comments may precede one block).

In a ``console`` block only the lines starting with ``$ `` are commands (the rest is
their output). A block without a language is refused: commands go in ``sh`` blocks, output and
diagrams in ``text`` blocks. The rest of this module says how each unmarked line is run
(:class:`Kind`), so a new command that fits no rule fails with its page, line and why.
"""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
OPERATORS = frozenset({"&&", "||", "|", ";", ">", ">>", "2>&1", "<"})
_MARKER = re.compile(r"^<!--\s*not-run(?:\s+(?P<prefix>[^:]+?))?\s*:\s*(?P<reason>.*?)\s*-->$")
_LOOPBACK_URL = re.compile(r"^(https?://)?(localhost|127\.0\.0\.1)(:\d+)?(/|$)")

# ``trading-bot`` subcommands by how they run: to completion on a scratch home; as a
# server that is started, awaited and stopped; against a running bot.
OFFLINE_SUBCOMMANDS = frozenset({"check", "db", "report", "--version", "--help", "-h"})
SERVER_SUBCOMMANDS = frozenset({"run", "gateway-sim"})
LIVE_SUBCOMMANDS = frozenset({"shell", "watchdog-check"})
SERVER_SCRIPTS = frozenset({"./scripts/run"})


class Kind(enum.Enum):
    """How a documented command is run by the tests."""

    OFFLINE = "runs to completion with a scratch TRADINGBOT_HOME"
    SERVER = "is started, awaited until it serves, and stopped with SIGTERM"
    LIVE = "runs against a running `trading-bot run`"
    NOT_RUN = "is marked not-run in the docs"


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: its language, first content line and not-run markers."""

    page: Path
    language: str
    line: int  # 1-based line of the first content line
    lines: list[str]
    markers: dict[str, str] = field(default_factory=dict)  # prefix ("" = all) -> reason


@dataclass(frozen=True, slots=True)
class DocCommand:
    """One command line of a shell block (continuation lines joined)."""

    page: Path
    line: int
    text: str  # without its trailing comment
    comment: str
    kind: Kind | None  # None: not classified (see ``why``)
    why: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def pages() -> list[Path]:
    """The pages whose commands are checked."""
    return [REPO / "README.md", REPO / "DEVELOPERS.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(page: Path) -> Iterator[Block]:
    """Every fenced block of ``page`` with the not-run markers written right before it."""
    text = page.read_text().splitlines()
    index = 0
    while index < len(text):
        line = text[index]
        if not line.lstrip().startswith("```"):
            index += 1
            continue
        language = line.lstrip()[3:].strip().split(" ")[0]
        start = index + 1
        end = start
        while end < len(text) and not text[end].lstrip().startswith("```"):
            end += 1
        markers: dict[str, str] = {}
        before = index - 1
        while before >= 0 and (match := _MARKER.match(text[before].strip())):
            markers[(match["prefix"] or "").strip()] = match["reason"]
            before -= 1
        yield Block(page, language, start + 1, text[start:end], markers)
        index = end + 1


def commands(page: Path) -> Iterator[DocCommand]:
    """The command lines of the shell blocks of ``page``, each classified."""
    for block in blocks(page):
        if block.language not in SHELL_LANGUAGES:
            continue
        number = block.line
        pending = ""
        first = number
        for offset, raw in enumerate(block.lines):
            if not pending:
                first = number + offset
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            joined = (pending + raw).strip()
            pending = ""
            if block.language == "console":  # "$ command" lines; the others are output
                if not joined.startswith("$ "):
                    continue
                joined = joined[2:].strip()
            if not joined or joined.startswith("#"):
                continue
            yield _classified(block, first, joined)


def unlabelled_blocks() -> Iterator[tuple[Path, int]]:
    """Fenced blocks without a language (page, line of the opening fence)."""
    for page in pages():
        for block in blocks(page):
            if block.language == "":
                yield page, block.line - 1


def all_commands() -> list[DocCommand]:
    return [command for page in pages() for command in commands(page)]


def _classified(block: Block, line: int, joined: str) -> DocCommand:
    text, comment = _split_comment(joined)
    for prefix, reason in block.markers.items():
        if prefix == "" or text.startswith(prefix):
            return DocCommand(block.page, line, text, comment, Kind.NOT_RUN, reason)
    kind, why = classify(text)
    return DocCommand(block.page, line, text, comment, kind, why)


def _split_comment(line: str) -> tuple[str, str]:
    """``cmd  # comment`` -> (``cmd``, ``comment``), honouring quotes."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line, ""


def segments(words: list[str]) -> list[list[str]]:
    """The simple commands of a command line, split at ``&&``, ``|``, ``;`` ..."""
    parts: list[list[str]] = [[]]
    for word in words:
        if word in OPERATORS:
            parts.append([])
        else:
            parts[-1].append(word)
    return [part for part in parts if part]


def program(words: list[str]) -> tuple[str, list[str]]:
    """The program of a simple command and its arguments (after sudo, env, VAR=value)."""
    index = 0
    while index < len(words):
        word = words[index]
        if word == "sudo":
            index += 1
            while index < len(words) and words[index].startswith("-"):
                index += 2 if words[index] in ("-u", "-g") else 1
        elif word == "env" or ("=" in word and not word.startswith("-")):
            index += 1
        else:
            return word, words[index + 1 :]
    return "", []


def is_trading_bot(name: str) -> bool:
    return name == "trading-bot" or name.endswith("/bin/trading-bot")


def classify(text: str) -> tuple[Kind | None, str]:
    """The kind of an unmarked command line, or ``None`` and why it cannot be run here."""
    if "…" in text or "..." in text or re.search(r"<[a-z][^>]*>", text):
        return None, "it holds a placeholder (… or <…>): write a concrete example"
    try:
        words = shlex.split(text)
    except ValueError as error:
        return None, f"it is not a valid shell line ({error})"
    kinds: list[Kind] = []
    for part in segments(words):
        name, args = program(part)
        if name in ("sudo", "systemctl", "journalctl") or part[0] == "sudo":
            return None, "it needs root or systemd"
        if is_trading_bot(name):
            sub = args[0] if args else ""
            if sub in OFFLINE_SUBCOMMANDS or "--help" in args or "-h" in args:
                kinds.append(Kind.OFFLINE)
            elif sub in SERVER_SUBCOMMANDS:
                kinds.append(Kind.SERVER)
            elif sub in LIVE_SUBCOMMANDS:
                kinds.append(Kind.LIVE)
            else:
                return None, (
                    f"`trading-bot {sub}` is not classified: add it to OFFLINE_, SERVER_ or "
                    "LIVE_SUBCOMMANDS in tests/support/doc_commands.py"
                )
        elif name in SERVER_SCRIPTS:
            kinds.append(Kind.SERVER)
        elif name == "curl":
            urls = [arg for arg in args if _LOOPBACK_URL.match(arg)]
            if not urls:
                return None, "curl names no loopback URL of the bot"
            kinds.append(Kind.LIVE)
        else:
            return None, f"the program {name!r} is not one the tests know how to run"
    for kind in (Kind.LIVE, Kind.SERVER, Kind.OFFLINE):
        if kind in kinds:
            return kind, ""
    return None, "it runs no program"


def unclassified_message(command: DocCommand) -> str:
    """One line naming the page, line and command, why it is not run, and the fix."""
    return (
        f"{command.where}: `{command.text}` cannot be run by the tests: {command.why}. "
        "Make it runnable, or mark its block with `<!-- not-run: REASON -->` (or "
        "`<!-- not-run PREFIX: REASON -->` for the lines starting with PREFIX) right "
        "before the fence (DEVELOPERS.md, 'Documented commands')"
    )


def following_json(page: Path, after_line: int) -> str | None:
    """The first ``json`` block of ``page`` after ``after_line`` (a file a command names)."""
    for block in blocks(page):
        if block.language == "json" and block.line > after_line:
            return "\n".join(block.lines) + "\n"
    return None
