"""Events through real processes: a PostgreSQL outage, a `kill -9` during it, redaction.

The stream of events is operator notes (`note TEXT`, a durable SYSTEM WARNING event)
written to one long-lived `trading-bot shell` REPL: each note is answered only once it
is committed or fsync'd to the spool, so every answered note must end up stored exactly
once. The real PostgreSQL server is stopped and started with ``pg_ctlcluster``; it is
always started again (and awaited) at teardown, whatever happened.
"""

from __future__ import annotations

import concurrent.futures
import queue
import re
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy
from e2e_support import Bot, BotFactory, cli_command, wait_until
from sqlalchemy.engine import make_url

from support.postgres_server import PostgresServer, postgres_server_fixture  # noqa: F401
from tradingbot.events.spool import EventSpool
from tradingbot.logconfig import LOG_FILE_NAME

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPLY_WAIT_S = 30.0
OUTAGE_WAIT_S = 30.0
_RECORDED = re.compile(r"recorded note ([0-9a-f-]{36}) \(stored durably\)")


# -- a long-lived `trading-bot shell` REPL --------------------------------------------------


class ShellSession:
    """`trading-bot shell` reading commands from a pipe; one answer line per command."""

    def __init__(self, bot: Bot) -> None:
        self.process = subprocess.Popen(
            [*cli_command(), "shell"],
            env=bot.env,
            cwd=bot.home.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._answers: queue.Queue[tuple[str, str]] = queue.Queue()
        self.transcript: list[tuple[str, str]] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        for name, stream in (("out", self.process.stdout), ("err", self.process.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self._answers.put((name, line.rstrip("\n")))

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        self.transcript.append(("in", command))

    def answer(self) -> tuple[str, str]:
        try:
            answer = self._answers.get(timeout=REPLY_WAIT_S)
        except queue.Empty:
            raise AssertionError(
                f"no answer from the shell within {REPLY_WAIT_S:g} s; {self.transcript[-5:]}"
            ) from None
        self.transcript.append(answer)
        return answer

    def note(self, text: str) -> str:
        """Record ``text`` as a note; return its event id once the bot says it is durable."""
        self.send(f"note {text}")
        stream, line = self.answer()
        found = _RECORDED.fullmatch(line)
        assert stream == "out", f"note {text!r} refused: {line}"
        assert found, f"note {text!r} not acknowledged: {line}"
        return found.group(1)

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


@pytest.fixture
def open_shell() -> Iterator[Callable[[Bot], ShellSession]]:
    """Open REPL shells on bots; each is closed (then killed) at teardown."""
    sessions: list[ShellSession] = []

    def factory(bot: Bot) -> ShellSession:
        session = ShellSession(bot)
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        session.close()


class NoteStream:
    """Numbered, unique notes sent one after another; remembers every acknowledged one."""

    def __init__(self, shell: ShellSession, prefix: str) -> None:
        self.shell = shell
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.acked: dict[str, str] = {}  # note text -> event id

    def next_text(self) -> str:
        return f"{self.prefix}-{len(self.acked)}"

    def send(self, count: int) -> None:
        for _ in range(count):
            text = self.next_text()
            self.acked[text] = self.shell.note(text)

    def send_while(self, action: Callable[[], None], *, at_least: int = 1) -> None:
        """Keep sending notes while ``action`` runs in another thread (and ``at_least``)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(action)
            sent = 0
            while not running.done() or sent < at_least:
                self.send(1)
                sent += 1
            running.result()  # its failure, if any, is the test's


# -- observing the bot and its database -----------------------------------------------------


def logger_details(bot: Bot) -> Mapping[str, Any]:
    details: Mapping[str, Any] = bot.node("event_logger")["details"]
    return details


def wait_for_logger(bot: Bot, message: str, check: Callable[[Mapping[str, Any]], bool]) -> None:
    def matches() -> bool:
        try:
            return check(logger_details(bot))
        except (OSError, KeyError, AssertionError):
            return False

    wait_until(matches, OUTAGE_WAIT_S, message)


def wait_replayed(bot: Bot) -> None:
    wait_for_logger(
        bot,
        "the event logger back in normal mode with an empty spool",
        lambda d: d.get("mode") == "normal" and d.get("spool_depth") == 0,
    )


def stored_notes(database_url: str, prefix: str) -> list[tuple[str, str, str, int]]:
    """(message, event_id, type, severity) of every stored operator note with ``prefix``."""
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT message, event_id, type, severity FROM events"
                    " WHERE source = 'operator' AND message LIKE :prefix"
                ),
                {"prefix": f"{prefix}-%"},
            ).all()
    finally:
        engine.dispose()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def assert_each_stored_once(database_url: str, notes: NoteStream) -> list[str]:
    """Every acknowledged note is stored exactly once, under the id it was acknowledged with."""
    rows = stored_notes(database_url, notes.prefix)
    messages = [row[0] for row in rows]
    repeated = sorted({m for m in messages if messages.count(m) > 1})
    assert not repeated, f"stored more than once: {repeated}"
    missing = sorted(set(notes.acked) - set(messages))
    assert not missing, f"{len(missing)} acknowledged notes lost: {missing[:10]}"
    assert {row[0]: row[1] for row in rows if row[0] in notes.acked} == notes.acked
    assert {(row[2], row[3]) for row in rows} == {("SYSTEM", 30)}
    return messages


# -- the tests ------------------------------------------------------------------------------


def test_postgres_stopped_mid_stream_stores_every_note_exactly_once(
    bot_factory: BotFactory,
    fresh_postgres_url: str,
    postgres_server: PostgresServer,
    open_shell: Callable[[Bot], ShellSession],
) -> None:
    """Stopping and starting PostgreSQL during a stream of notes loses and duplicates none."""
    bot = bot_factory(fresh_postgres_url)
    notes = NoteStream(open_shell(bot), "outage")
    try:
        notes.send(20)
        assert logger_details(bot)["mode"] == "normal"

        notes.send_while(postgres_server.stop)  # the server goes away mid-stream
        notes.send(20)  # acknowledged through the spool
        wait_for_logger(
            bot,
            "outage mode with a non-empty spool",
            lambda d: d.get("mode") == "outage" and int(d.get("spool_depth", 0)) >= 20,
        )

        def start_and_replay() -> None:
            postgres_server.start()
            wait_replayed(bot)

        notes.send_while(start_and_replay)  # the replay races with new notes
        notes.send(20)  # committed directly again
        assert logger_details(bot)["mode"] == "normal"
    finally:
        postgres_server.ensure_running()

    stored = assert_each_stored_once(fresh_postgres_url, notes)
    assert len(stored) == len(notes.acked) >= 62
    assert logger_details(bot)["spooled_total"] >= 20


def test_kill_9_during_outage_then_restart_replays_the_spool_exactly_once(
    bot_factory: BotFactory,
    fresh_postgres_url: str,
    postgres_server: PostgresServer,
    open_shell: Callable[[Bot], ShellSession],
) -> None:
    """Notes acknowledged before a kill -9 while PostgreSQL is down are all stored once later."""
    first = bot_factory(fresh_postgres_url)
    shell = open_shell(first)
    notes = NoteStream(shell, "kill9")
    try:
        notes.send(15)  # committed directly
        postgres_server.stop()
        notes.send(15)  # fsync'd to the spool
        wait_for_logger(
            first,
            "outage mode with the spooled notes",
            lambda d: d.get("mode") == "outage" and int(d.get("spool_depth", 0)) >= 15,
        )
        in_flight = notes.next_text() + "-in-flight"
        shell.send(f"note {in_flight}")  # never awaited: may or may not be durable
        first.process.kill()
        first.wait()
        shell.close()

        spool = EventSpool(first.home / "spool")
        assert spool.depth() >= 15, "the killed process left fewer spooled events than acked"

        postgres_server.start()
    finally:
        postgres_server.ensure_running()

    second = bot_factory(fresh_postgres_url, home=first.home)  # same state folder and spool
    wait_replayed(second)
    assert any(line.get("event") == "spool_found_at_start" for line in second.log_events())

    stored = assert_each_stored_once(fresh_postgres_url, notes)
    assert stored.count(in_flight) <= 1
    assert len(set(stored) - {in_flight}) == 30


def test_secrets_appear_nowhere_in_logs_output_or_events(
    bot_factory: BotFactory, fresh_postgres_url: str
) -> None:
    """The API token and the database password (decoded and percent-encoded) never reach
    logs, output or the events table."""
    token = f"tok{uuid.uuid4().hex}"
    password = f"Db#Pw/{uuid.uuid4().hex}"  # '#' and '/' are percent-encoded in the URL
    url = make_url(fresh_postgres_url).set(password=password).render_as_string(hide_password=False)
    encoded = urlsplit(url).password
    assert encoded is not None
    assert encoded != password
    bot = bot_factory(
        url,
        {"TRADINGBOT_API_TOKEN": token, "TRADINGBOT_LOG_LEVEL": "DEBUG"},  # DEBUG logs args
    )

    note = bot.shell(f"note leak check: token {token} password {password} url {url}")
    assert note.returncode == 0, note.stderr
    assert _RECORDED.fullmatch(note.stdout.strip()), note.stdout
    listed = bot.shell("events 5", as_json=True)
    assert listed.returncode == 0, listed.stderr
    bot.stop()  # every log line written and flushed

    engine = sqlalchemy.create_engine(fresh_postgres_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = [row[0] for row in connection.exec_driver_sql("SELECT e::text FROM events e")]
    finally:
        engine.dispose()
    log_file = (bot.home / "logs" / LOG_FILE_NAME).read_text(errors="replace")

    places = {
        "log file": log_file,
        "bot stdout": bot.stdout(),
        "bot stderr": bot.stderr(),
        "shell output": note.stdout + note.stderr + listed.stdout + listed.stderr,
        "events table": "\n".join(rows),
    }
    for place, text in places.items():
        assert token not in text, f"the API token leaked into the {place}"
        assert password not in text, f"the database password leaked into the {place}"
        assert encoded not in text, f"the percent-encoded password leaked into the {place}"
    notes = [row for row in rows if "leak check" in row]
    assert len(notes) == 1
    assert notes[0].count("***") >= 3  # token, password, and the password inside the URL
    assert "leak check: token ***" in log_file
    assert "leak check: token ***" in listed.stdout
    # At DEBUG the control server logs each command's arguments: redacted too.
    assert '"args":["leak","check:","token","***","password","***"' in log_file
