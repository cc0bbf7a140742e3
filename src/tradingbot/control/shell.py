"""``trading-bot shell``: run commands in the running process through its control socket.

``run_shell`` never lets a traceback reach the operator: every failure is one line on
stderr and a non-zero exit code (1 for a failed command or an unreachable process, 2 for
a command line that cannot be parsed, 130 when interrupted).

On a terminal the shell has line editing, a history kept across sessions and tab
completion (:mod:`tradingbot.control.lineedit`), plus two live views that run until
Ctrl-C, ``events --follow [TYPE...]`` and ``watch tree`` (:mod:`tradingbot.control.follow`).
Ctrl-C cancels the current command or view, not the shell; Ctrl-D (or ``quit``) leaves.

Each command is sent with an idempotency key (``--key`` with ``-c``, else a fresh one).
When the answer does not come in time, the message says the outcome is unknown, not
failed, and shows how to retry with the same key so that the command runs at most once.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tradingbot.control.client import ControlClient, ControlTimeout, ControlUnavailable
from tradingbot.control.follow import follow_events, watch_tree
from tradingbot.control.protocol import (
    CommandLineError,
    ProtocolError,
    Response,
    parse_command_line,
)
from tradingbot.control.terminal import json_printable, printable

if TYPE_CHECKING:
    from tradingbot.control.lineedit import LineEditor

PROMPT = "trading-bot> "
_QUIT = frozenset({"quit", "exit"})


def run_shell(
    socket_path: Path,
    command: str | None,
    *,
    as_json: bool,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    key: str | None = None,
    timeout_s: float = 10.0,
    history_path: Path | None = None,
    secrets: Sequence[str] = (),
) -> int:
    """Run ``command`` (``shell -c``), or a line REPL on ``stdin``; return the exit code.

    With ``as_json`` a successful command prints its ``result`` as indented, key-sorted
    JSON instead of its text rendering. ``key`` is the idempotency key of ``command``;
    ``timeout_s`` how long each command's answer is awaited. ``history_path`` keeps the
    interactive history; lines containing one of ``secrets`` are never written to it.
    """
    with ControlClient(socket_path, timeout_s=timeout_s) as client:
        if command is not None:
            try:
                return _run_one(
                    client, command, as_json=as_json, stdout=stdout, stderr=stderr, key=key
                )
            except KeyboardInterrupt:
                _error(stderr, "interrupted")
                return 130
        editor = None
        if stdin is sys.stdin and _isatty(stdin) and stdout is sys.stdout:
            from tradingbot.control.lineedit import Completions, LineEditor

            editor = LineEditor(history_path, secrets, Completions(_fetcher(client)))
        try:
            return _repl(
                client, as_json=as_json, stdin=stdin, stdout=stdout, stderr=stderr, editor=editor
            )
        finally:
            problem = None if editor is None else editor.save()
            if problem:
                _error(stderr, problem)


def _fetcher(client: ControlClient) -> Any:
    def fetch(command: str) -> Any:
        try:
            response = client.request(command, [])
        except (ControlUnavailable, ProtocolError):
            return None
        return response.result if response.ok else None

    return fetch


def _live_view(client: ControlClient, line: str, stdout: TextIO, stderr: TextIO) -> int | None:
    """Run ``events --follow`` or ``watch tree`` if ``line`` is one; None otherwise."""
    try:
        command, args = parse_command_line(line)
    except CommandLineError:
        return None

    def request(name: str, arguments: list[str]) -> Response:
        return client.request(name, arguments)

    try:
        if command == "events" and "--follow" in args:
            types = [a for a in args if a != "--follow"]
            return follow_events(request, types, stdout, stderr)
        if command == "watch":
            if args != ["tree"]:
                _error(stderr, "usage: watch tree")
                return 2
            return watch_tree(request, stdout, stderr, clear=_isatty(stdout))
    except (ControlUnavailable, ProtocolError) as exc:
        _error(stderr, str(exc))
        return 1
    return None


def _run_one(
    client: ControlClient,
    line: str,
    *,
    as_json: bool,
    stdout: TextIO,
    stderr: TextIO,
    key: str | None = None,
) -> int:
    live = _live_view(client, line, stdout, stderr)
    if live is not None:
        return live
    try:
        command, args = parse_command_line(line)
    except CommandLineError as exc:
        _error(stderr, str(exc))
        return 2
    try:
        response = client.request(command, args, key=key)
    except ControlTimeout as exc:
        retry = f"trading-bot shell --key {shlex.quote(exc.key)} -c {shlex.quote(line)}"
        _error(stderr, f"{exc}; to retry without running it twice: {retry}")
        return 1
    except (ControlUnavailable, ProtocolError) as exc:
        _error(stderr, str(exc))
        return 1
    return _print_response(response, as_json=as_json, stdout=stdout, stderr=stderr)


def _repl(
    client: ControlClient,
    *,
    as_json: bool,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    editor: LineEditor | None = None,
) -> int:
    try:
        client.connect()  # say at once when there is nothing to talk to
    except ControlUnavailable as exc:
        _error(stderr, str(exc))
        return 1
    interactive = _isatty(stdin)
    while True:
        try:
            if editor is not None:
                try:
                    line = editor.read(PROMPT) + "\n"
                except EOFError:
                    line = ""
            else:
                if interactive:
                    stdout.write(PROMPT)
                    stdout.flush()
                line = stdin.readline()
            if not line:  # EOF
                if interactive:
                    stdout.write("\n")
                return 0
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in _QUIT:
                return 0
            _run_one(client, line, as_json=as_json, stdout=stdout, stderr=stderr)
        except KeyboardInterrupt:
            client.close()  # an interrupted request leaves the stream in an unknown state
            stdout.write("\n")


def _print_response(response: Response, *, as_json: bool, stdout: TextIO, stderr: TextIO) -> int:
    if not response.ok:
        _error(stderr, response.error or "command failed")
        return 1
    if as_json:
        _write_block(stdout, _pretty_json(response.result))
    else:
        _write_block(stdout, response.text)
    stdout.flush()
    return 0


def _pretty_json(value: Any) -> str:
    return json_printable(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def _write_block(out: TextIO, text: str) -> None:
    if text:
        text = printable(text)
        out.write(text if text.endswith("\n") else text + "\n")


def _error(stderr: TextIO, message: str) -> None:
    stderr.write(f"error: {printable(' '.join(message.split()))}\n")
    stderr.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
