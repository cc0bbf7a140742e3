"""run_shell: exit codes and output of ``trading-bot shell`` against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

from control_support import ServerThread

from tradingbot.control import run_shell


class TtyInput(io.StringIO):
    """Standard input that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def shell(
    path: Path, command: str | None, *, as_json: bool = False, stdin: str = ""
) -> tuple[int, str, str]:
    """Run the shell with in-memory streams; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = run_shell(
        path, command, as_json=as_json, stdin=io.StringIO(stdin), stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


def test_command_prints_text_and_exits_0(server: ServerThread) -> None:
    """``shell -c`` prints the human-readable text of a successful command and exits 0."""
    assert shell(server.path, "tree") == (0, "root\n  heartbeat\n", "")


def test_command_arguments_are_shell_quoted(server: ServerThread) -> None:
    """Quoted words in ``-c`` reach the command as single arguments."""
    assert shell(server.path, "echo 'a b' c") == (0, "a b c\n", "")
    assert server.handler.calls == [("echo", ["a b", "c"])]


def test_json_prints_the_result_pretty_and_sorted(server: ServerThread) -> None:
    """``--json`` prints the result as indented JSON with sorted keys."""
    code, out, err = shell(server.path, "tree", as_json=True)
    assert (code, err) == (0, "")
    result = {"id": "root", "kind": "supervisor", "children": [{"id": "heartbeat"}]}
    assert out == json.dumps(result, indent=2, sort_keys=True) + "\n"
    assert out.index('"children"') < out.index('"id"') < out.index('"kind"')


def test_control_characters_in_answers_are_shown_not_obeyed(server: ServerThread) -> None:
    """An escape sequence inside an answer (an event message, a reason) is printed as a
    visible ``\\xNN`` escape, in text, JSON and error output, so it cannot clear or
    retitle the operator's terminal; plain text, newlines and non-ASCII stay as they are."""
    hostile = "\x1b[2J\x1b]0;pwned\x07caf\u00e9\x9b"
    code, out, err = shell(server.path, f"echo '{hostile}'")
    assert (code, err) == (0, "")
    assert out == "\\x1b[2J\\x1b]0;pwned\\x07caf\u00e9\\x9b\n"
    code, out, err = shell(server.path, f"echo '{hostile}'", as_json=True)
    assert not set(out) & set("\x1b\x9b\x07")
    assert json.loads(out) == {"args": [hostile]}
    code, out, err = shell(server.path, f"state '{hostile}'")
    assert code == 1
    assert err == "error: unknown actor: \\x1b[2J\\x1b]0;pwned\\x07caf\u00e9\\x9b\n"


def test_failed_command_prints_one_error_line_and_exits_1(server: ServerThread) -> None:
    """A command the process rejects prints one error line on stderr and exits 1."""
    assert shell(server.path, "state nope") == (1, "", "error: unknown actor: nope\n")
    assert shell(server.path, "boom", as_json=True) == (
        1,
        "",
        "error: internal error: RuntimeError: kaboom\n",
    )


def test_no_server_prints_why_and_exits_1(tmp_path: Path) -> None:
    """Without a running process the shell explains it in one line and exits 1, no traceback."""
    path = tmp_path / "run" / "control.sock"
    code, out, err = shell(path, "tree")
    assert (code, out) == (1, "")
    assert err == f"error: no trading-bot process is running: no control socket at {path}\n"


def test_unparsable_command_line_exits_2(server: ServerThread) -> None:
    """A ``-c`` command with unbalanced quotes is a usage error (exit 2) and sends nothing."""
    code, out, err = shell(server.path, "state 'heartbeat")
    assert (code, out) == (2, "")
    assert err.startswith("error: cannot parse command line")
    assert "No closing quotation" in err
    assert server.handler.calls == []


def test_repl_runs_each_line_until_quit(server: ServerThread) -> None:
    """The REPL runs every line, reports errors without stopping, and ends at ``quit``."""
    script = "echo one\n\nstate nope\n# a comment\necho 'two 2'\nquit\necho never\n"
    code, out, err = shell(server.path, None, stdin=script)
    assert code == 0
    assert out == "one\ntwo 2\n"  # no prompt: stdin is not a terminal
    assert err == "error: unknown actor: nope\n"
    assert [call[0] for call in server.handler.calls] == ["echo", "state", "echo"]


def test_repl_ends_at_end_of_input_with_prompt_on_a_tty(server: ServerThread) -> None:
    """On a terminal the REPL prompts ``trading-bot> `` and ends cleanly at EOF."""
    out, err = io.StringIO(), io.StringIO()
    code = run_shell(
        server.path, None, as_json=False, stdin=TtyInput("echo hi\n"), stdout=out, stderr=err
    )
    assert code == 0
    assert out.getvalue() == "trading-bot> hi\ntrading-bot> \n"
    assert err.getvalue() == ""


def test_repl_exit_and_json_mode(server: ServerThread) -> None:
    """``exit`` ends the REPL and ``--json`` applies to every command in it."""
    code, out, _ = shell(server.path, None, as_json=True, stdin="state heartbeat\nexit\n")
    assert (code, out) == (0, '{\n  "status": "running"\n}\n')


def test_repl_without_server_exits_1(tmp_path: Path) -> None:
    """The REPL says at once that no process is running instead of waiting for input."""
    code, out, err = shell(tmp_path / "control.sock", None, stdin="tree\n")
    assert (code, out) == (1, "")
    assert err.startswith("error: no trading-bot process is running")
