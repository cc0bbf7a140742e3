"""Every runnable command shown in README.md, DEVELOPERS.md and docs/*.md runs and succeeds.

Each line is run as written, through ``bash -c``, with only what a reader would change:
``trading-bot`` (or ``.venv/bin/trading-bot``) is this installation's console script,
``./scripts/`` is the repository's, ``localhost:8000`` is the test bot's port, a
``/tmp/`` path is in a private scratch folder, a gateway ``--port`` is ``0`` (any free
port), ``$TRADINGBOT_API_TOKEN`` is the test bot's token, and a ``*.json`` file the
command names is the page's next ``json`` block. How each line is classified is in
``support.doc_commands``; tests/deploy/test_documented_commands.py fails for a line that
is neither runnable nor marked ``<!-- not-run: REASON -->``.

- offline lines run to completion, page by page in order, on one scratch home;
- server lines (``trading-bot run``, ``gateway-sim``, ``./scripts/run``) start, serve
  and stop with exit 0 on SIGTERM;
- live lines run in order against one ``trading-bot run`` for this module (a second one
  with an API token serves the lines that send it).

A line passes when it exits 0 (or with a code its comment documents, ``exit N``), prints
something (``check``, ``db …`` and ``report …`` the line saying they did their work),
never a traceback, and an HTTP API answer is JSON and not an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Bot, clean_env, cli_command, http_get, run_cli, start_bot, wait_ready

from support.doc_commands import (
    REPO,
    DocCommand,
    Kind,
    all_commands,
    following_json,
    is_trading_bot,
    program,
    segments,
)
from support.ports import free_port
from support.waiting import wait_until

pytestmark = pytest.mark.slow

TOKEN = "documented-commands-token-0123456789"
COMMANDS = all_commands()
_PROGRAM = re.compile(r"(^|&&\s*|\|\|\s*|\|\s*|;\s*)(\S*/bin/trading-bot|trading-bot)(?=\s|$)")
_LOOPBACK = re.compile(r"\b(localhost|127\.0\.0\.1):\d+")
_TMP = re.compile(r"(?<![\w./-])/tmp/")
_SCRIPTS = re.compile(r"(^|&&\s*|;\s*)\./scripts/")
_GATEWAY_PORT = re.compile(r"(gateway-sim\b.*--port[ =])\d+")
_JSON_FILE = re.compile(r"(?<![\w/.-])([\w.-]+\.json)\b")
_EXIT = re.compile(r"\bexit (\d+)\b")
# What a successful run of these subcommands prints (on stdout or stderr), so a command
# that exits 0 without doing its work still fails.
EXPECTED_OUTPUT = {
    ("check",): "configuration OK",
    ("db", "upgrade"): r"applied \d+ migration|already up to date",
    ("db", "backup"): "backup written: ",
    ("db", "verify"): "backup OK: ",
    ("db", "restore"): "restored ",
    ("report", "daily"): "Daily summary",
    ("report", "pnl"): '"from"|P&L',
    ("--version",): r"trading-bot \d",
}


def _by_page(kind: Kind) -> dict[str, list[DocCommand]]:
    found: dict[str, list[DocCommand]] = {}
    for command in COMMANDS:
        if command.kind is kind:
            found.setdefault(str(command.page.relative_to(REPO)), []).append(command)
    return found


OFFLINE = _by_page(Kind.OFFLINE)
LIVE = _by_page(Kind.LIVE)
SERVERS = [command for command in COMMANDS if command.kind is Kind.SERVER]


def runnable(command: DocCommand, scratch: Path, http_port: int | None = None) -> str:
    """The documented line with this test's program, folders and ports (see module doc)."""
    exe = shlex.join(cli_command())
    # The documented /tmp paths first: the repository itself may live under /tmp.
    text = _TMP.sub(lambda _: f"{scratch}/", command.text)
    text = _PROGRAM.sub(lambda m: m[1] + exe, text)
    text = _SCRIPTS.sub(lambda m: m[1] + shlex.quote(str(REPO / "scripts")) + "/", text)
    text = _GATEWAY_PORT.sub(lambda m: m[1] + "0", text)
    if http_port is not None:
        text = _LOOPBACK.sub(f"127.0.0.1:{http_port}", text)
    for name in _JSON_FILE.findall(text):
        content = following_json(command.page, command.line)
        if content is not None and not (scratch / name).exists():
            (scratch / name).write_text(content)
    return text


def accepted_codes(command: DocCommand) -> set[int]:
    """0, and any exit code the line's own comment documents (``# … (exit 1 when …)``)."""
    return {0, *(int(code) for code in _EXIT.findall(command.comment))}


def run_line(
    command: DocCommand, env: dict[str, str], scratch: Path, http_port: int | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", runnable(command, scratch, http_port)],
        env=env,
        cwd=scratch,
        input="help\n",  # an interactive `trading-bot shell` reads one command, then EOF
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def check_result(command: DocCommand, result: subprocess.CompletedProcess[str]) -> None:
    """Exit code documented, some output, no traceback, a JSON answer from the HTTP API."""
    said = f"{command.where}: `{command.text}`\n--- stdout ---\n{result.stdout[-2000:]}\n"
    said += f"--- stderr ---\n{result.stderr[-2000:]}"
    assert result.returncode in accepted_codes(command), f"exit {result.returncode}: {said}"
    assert "Traceback" not in result.stdout + result.stderr, said
    assert (result.stdout + result.stderr).strip(), f"no output: {said}"
    name, args = program(segments(shlex.split(command.text))[0])
    if result.returncode == 0 and is_trading_bot(name):
        for words, pattern in EXPECTED_OUTPUT.items():
            if tuple(args[: len(words)]) == words:
                assert re.search(pattern, result.stdout + result.stderr), said
    if result.returncode == 0 and name == "curl":
        if "/api/" in command.text:
            answer = json.loads(result.stdout)
            problem = isinstance(answer, dict) and isinstance(answer.get("status"), int)
            assert not problem, f"an error answer: {said}"
        elif "/metrics" in command.text:
            assert "# TYPE" in result.stdout, said


def _shell_args(command: DocCommand) -> list[str] | None:
    """The arguments of a ``trading-bot shell`` line, ``None`` for any other line."""
    name, args = program(segments(shlex.split(command.text))[0])
    return args if is_trading_bot(name) and args[:1] == ["shell"] else None


def is_stream(command: DocCommand) -> bool:
    """A shell command that prints until Ctrl-C (``events --follow``, ``watch``)."""
    args = _shell_args(command)
    if args is None or "-c" not in args:
        return False
    line = args[args.index("-c") + 1]
    return line.startswith("watch") or "--follow" in line.split()


# -- offline ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page", sorted(OFFLINE))
def test_offline_commands_run_in_order_on_a_scratch_home(page: str, short_tmp: Path) -> None:
    """Each offline command of the page, run in order on one fresh home, succeeds."""
    env = clean_env(short_tmp / "home")
    for command in OFFLINE[page]:
        check_result(command, run_line(command, env, short_tmp))


# -- servers ---------------------------------------------------------------------------------


def _venv_is_current() -> bool:
    """Whether ./scripts/run would start at once (its .venv is installed and current)."""
    stamp = REPO / ".venv" / ".trading-bot-installed"
    files = [REPO / "pyproject.toml", REPO / "deploy" / "requirements.lock"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in files if p.exists())).hexdigest()
    return stamp.exists() and stamp.read_text().split()[-1:] == [digest]


@pytest.mark.parametrize("command", SERVERS, ids=lambda c: c.where)
def test_server_commands_start_serve_and_stop(command: DocCommand, short_tmp: Path) -> None:
    """A documented server starts, serves (HTTP or its port) and exits 0 on SIGTERM."""
    if "./scripts/" in command.text and not _venv_is_current():
        reason = f"{REPO / '.venv'} is missing or stale; ./scripts/run would reinstall it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    env = clean_env(short_tmp / "home", TRADINGBOT_HTTP_PORT=str(port))
    out, err = short_tmp / "server.out", short_tmp / "server.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            ["bash", "-c", "exec " + runnable(command, short_tmp)],
            env=env,
            cwd=short_tmp,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    said = lambda: f"{command.where}: `{command.text}`\n{out.read_text()}\n{err.read_text()}"  # noqa: E731

    def serving() -> bool:
        assert process.poll() is None, f"exited {process.returncode}: {said()}"
        if "gateway-sim" in command.text:
            return "listening on" in out.read_text()
        try:
            return http_get(f"http://127.0.0.1:{port}/api/health/live").status == 200
        except OSError:
            return False

    try:
        wait_until(serving, 60, f"{command.where} to serve")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, said()
        assert "Traceback" not in err.read_text(), said()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=15)


# -- against a running bot ---------------------------------------------------------------------


class LiveBots:
    """At most two bots for the module, started on first use: without and with a token."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._bots: dict[bool, Bot] = {}

    def get(self, token: bool) -> Bot:
        if token not in self._bots:
            base = self._base / ("token" if token else "open")
            base.mkdir()
            extra = {"TRADINGBOT_API_TOKEN": TOKEN} if token else {}
            bot = start_bot(base, None, extra)
            self._bots[token] = bot
            wait_ready(bot)
        return self._bots[token]

    def resume_trading(self) -> None:
        """Each page starts as its reader finds the bot: trading, not left paused (or
        flattened into a pause) by an earlier page's recipe."""
        for bot in self._bots.values():
            resumed = run_cli(["shell", "-c", "resume the next page starts trading"], bot.env)
            assert resumed.returncode == 0, resumed.stderr

    def stop(self) -> None:
        """Kill: a clean stop is not under test here, and a drilled hang would delay it."""
        for bot in self._bots.values():
            bot.process.kill()
            bot.process.wait(timeout=15)


@pytest.fixture(scope="module")
def live_bots() -> Iterator[LiveBots]:
    base = Path(tempfile.mkdtemp(prefix="tb-doc-", dir="/tmp"))
    bots = LiveBots(base)
    yield bots
    bots.stop()
    shutil.rmtree(base, ignore_errors=True)


def uses_token(command: DocCommand) -> bool:
    return "TRADINGBOT_API_TOKEN" in command.text or "Authorization:" in command.text


def run_stream(command: DocCommand, bot: Bot, scratch: Path) -> subprocess.CompletedProcess[str]:
    """Start a Ctrl-C command, make an event happen, await its output, then Ctrl-C it."""
    out = scratch / "stream.out"
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            ["bash", "-c", "exec " + runnable(command, scratch, bot.port)],
            env=bot.env,
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        stimulus = run_cli(["shell", "-c", "note documented-commands test"], bot.env)
        assert stimulus.returncode == 0, stimulus.stderr
        wait_until(lambda: out.read_text().strip(), 30, f"{command.where} to print")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=15)
    return subprocess.CompletedProcess(process.args, process.returncode, out.read_text(), stderr)


@pytest.mark.parametrize("page", sorted(LIVE))
def test_live_commands_run_in_order_against_a_bot(
    page: str, live_bots: LiveBots, short_tmp: Path
) -> None:
    """Each command the page shows against a running bot, run in order, succeeds."""
    live_bots.resume_trading()
    for command in LIVE[page]:
        bot = live_bots.get(uses_token(command))
        if is_stream(command):
            result = run_stream(command, bot, short_tmp)
        else:
            result = run_line(command, bot.env, short_tmp, bot.port)
        if result.returncode not in accepted_codes(command) or "Traceback" in result.stderr:
            print(bot.diagnostics()[-4000:], file=sys.stderr)
        check_result(command, result)
