"""The newline-delimited JSON protocol and command-line parsing."""

from __future__ import annotations

import orjson
import pytest

from tradingbot.control import (
    MAX_REQUEST_BYTES,
    CommandLineError,
    ProtocolError,
    Request,
    Response,
    parse_command_line,
)


def test_request_round_trips_as_one_json_line() -> None:
    """A request encodes to one newline-terminated JSON line and decodes back unchanged."""
    request = Request(id=7, command="crash", args=("heartbeat",))
    line = request.encode()
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert orjson.loads(line) == {"v": 1, "id": 7, "command": "crash", "args": ["heartbeat"]}
    assert Request.decode(line) == request


def test_success_response_round_trips_with_result_and_text() -> None:
    """A successful response carries result and text and decodes back unchanged."""
    response = Response.success(3, {"actors": ["a", "b"], "n": 2}, "a\nb")
    line = response.encode()
    assert line.count(b"\n") == 1
    assert orjson.loads(line) == {
        "v": 1,
        "id": 3,
        "ok": True,
        "result": {"actors": ["a", "b"], "n": 2},
        "text": "a\nb",
    }
    assert Response.decode(line) == response


def test_failure_response_is_one_line_error() -> None:
    """A failed response carries only a one-line error message."""
    response = Response.failure(4, "unknown actor:\n  heartbeat2\n")
    assert orjson.loads(response.encode()) == {
        "v": 1,
        "id": 4,
        "ok": False,
        "error": "unknown actor: heartbeat2",
    }
    assert Response.decode(response.encode()) == response


def test_response_cannot_be_both_ok_and_failed() -> None:
    """The constructor refuses a response that is ok with an error, or failed without one."""
    with pytest.raises(ValueError, match="no error"):
        Response(id=1, ok=True, error="x")
    with pytest.raises(ValueError, match="needs an error"):
        Response(id=1, ok=False)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'{"id": 1, "command": "tree"}', "integer protocol version"),
        (b'{"v": 2, "id": 1, "command": "tree"}', "unsupported protocol version 2"),
        (b'{"v": 1, "command": "tree"}', "non-negative integer 'id'"),
        (b'{"v": 1, "id": true, "command": "tree"}', "non-negative integer 'id'"),
        (b'{"v": 1, "id": 1}', "non-empty string 'command'"),
        (b'{"v": 1, "id": 1, "command": "crash", "args": [1]}', "list of strings"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_request_raises_protocol_error(line: bytes, message: str) -> None:
    """Each kind of malformed request line raises ProtocolError saying what is wrong."""
    with pytest.raises(ProtocolError, match=message):
        Request.decode(line)


def test_protocol_error_keeps_the_request_id_when_readable() -> None:
    """A request with a readable id but a bad body reports that id, so the answer is routed."""
    with pytest.raises(ProtocolError) as caught:
        Request.decode(b'{"v": 1, "id": 42, "command": ""}')
    assert caught.value.request_id == 42


def test_oversized_request_is_rejected() -> None:
    """A request line longer than the limit is rejected before it is parsed."""
    line = Request(id=1, command="echo", args=("x" * MAX_REQUEST_BYTES,)).encode()
    with pytest.raises(ProtocolError, match="longer than the 1048576 limit"):
        Request.decode(line)


def test_unknown_keys_are_ignored_so_the_protocol_can_grow() -> None:
    """A request with an extra key from a newer client is still understood."""
    line = b'{"v": 1, "id": 1, "command": "tree", "args": [], "tty": true}'
    assert Request.decode(line) == Request(id=1, command="tree")


def test_missing_args_mean_no_arguments() -> None:
    """A request without 'args' is a command without arguments."""
    assert Request.decode(b'{"v": 1, "id": 9, "command": "health"}').args == ()


def test_command_line_is_split_with_shell_quoting() -> None:
    """A typed command line splits into the command and its quoted arguments."""
    assert parse_command_line("crash heartbeat") == ("crash", ["heartbeat"])
    assert parse_command_line("  events --type 'ORDER FILLED' \"a b\"  ") == (
        "events",
        ["--type", "ORDER FILLED", "a b"],
    )


def test_unbalanced_quotes_give_a_clear_error() -> None:
    """A command line with an unclosed quote raises CommandLineError naming the problem."""
    with pytest.raises(CommandLineError, match="No closing quotation"):
        parse_command_line("state 'heartbeat")


def test_empty_command_line_is_an_error() -> None:
    """A blank command line raises CommandLineError."""
    with pytest.raises(CommandLineError, match="empty"):
        parse_command_line("   ")
