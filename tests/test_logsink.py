"""The log sink under file faults: a failing log file never breaks a log call."""

from __future__ import annotations

import io
import os
import shutil
import socket
from pathlib import Path

from support.waiting import wait_until
from tradingbot.logsink import LogFileState, LogSink


def _block_folder(folder: Path) -> None:
    """Remove the log folder and put a plain file in its place: the file cannot reopen."""
    shutil.rmtree(folder)
    folder.write_text("not a folder")


def test_a_removed_log_folder_never_raises_and_lines_still_reach_stdout(tmp_path: Path) -> None:
    """With the log folder gone (and blocked), every log call returns, stdout gets every line,
    the failure is announced once, and the file is written again once the folder can be."""
    folder = tmp_path / "logs"
    stdout = io.StringIO()
    sink = LogSink(stdout, folder / "trading-bot.log")
    changes: list[LogFileState] = []
    sink.set_listener(changes.append)
    sink.write(b'{"n":0}')
    _block_folder(folder)

    def failed() -> bool:
        sink.write(b'{"n":1}')
        state = sink.file_state()
        return state is not None and not state.ok

    wait_until(failed, message="the sink to notice the file is gone")
    for _ in range(50):
        sink.write(b'{"n":2}')
    assert [state.ok for state in changes] == [False]
    state = sink.file_state()
    assert state is not None
    assert state.error is not None
    assert state.lines_missed >= 51
    assert stdout.getvalue().count('{"n":2}') == 50

    folder.unlink()  # the operator fixes it: the retry recreates the folder and the file

    def recovered() -> bool:
        sink.write(b'{"n":3}')
        return bool(sink.file_state() and sink.file_state().ok)  # type: ignore[union-attr]

    wait_until(recovered, message="the sink to write the file again")
    assert [state.ok for state in changes] == [False, True]
    assert '{"n":3}' in (folder / "trading-bot.log").read_text()
    sink.close()


def test_a_failed_reopen_never_writes_to_a_descriptor_it_no_longer_owns(tmp_path: Path) -> None:
    """After the log file's descriptor is closed, a socket that gets the same number from the
    kernel never receives a log line (the control socket's clients get their own answers)."""
    folder = tmp_path / "logs"
    sink = LogSink(io.StringIO(), folder / "trading-bot.log")
    sink.write(b'{"n":0}')
    _block_folder(folder)
    wait_until(
        lambda: (sink.write(b'{"n":1}'), not sink.file_state().ok)[1],  # type: ignore[union-attr]
        message="the sink to give the file up",
    )
    ours, theirs = socket.socketpair()  # the kernel reuses the lowest free numbers
    try:
        for _ in range(200):
            sink.write(b'{"leak":true}')
        ours.setblocking(False)
        try:
            leaked = ours.recv(65536)
        except BlockingIOError:
            leaked = b""
        assert leaked == b""
        theirs.setblocking(False)
        try:
            leaked = theirs.recv(65536)
        except BlockingIOError:
            leaked = b""
        assert leaked == b""
    finally:
        ours.close()
        theirs.close()
        sink.close()


def test_a_full_disk_on_the_log_file_never_raises(tmp_path: Path) -> None:
    """Writes that fail with an I/O error (here: /dev/full, ENOSPC) leave the caller unharmed
    and the line still reaches stdout."""
    link = tmp_path / "logs" / "trading-bot.log"
    link.parent.mkdir()
    os.symlink("/dev/full", link)
    stdout = io.StringIO()
    sink = LogSink(stdout, link)
    sink.write(b'{"n":1}')
    state = sink.file_state()
    assert state is not None
    assert not state.ok
    assert "No space left" in str(state.error)
    assert stdout.getvalue() == '{"n":1}\n'
    sink.close()


def test_a_quiet_process_recreates_a_removed_log_folder_when_asked_for_its_state(
    tmp_path: Path,
) -> None:
    """With no log line written, the health check's state query alone recreates a removed log
    folder and file, so the disk check never sees it missing for long."""
    folder = tmp_path / "logs"
    sink = LogSink(io.StringIO(), folder / "trading-bot.log")
    sink.write(b'{"n":0}')
    shutil.rmtree(folder)

    def recreated() -> bool:
        sink.file_state()  # what the logs:file health check calls every few seconds
        return (folder / "trading-bot.log").exists()

    wait_until(recreated, message="the folder and file to be recreated")
    state = sink.file_state()
    assert state is not None
    assert state.ok
    sink.close()
