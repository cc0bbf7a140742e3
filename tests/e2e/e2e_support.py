"""Helpers for end-to-end tests: real ``trading-bot`` processes, HTTP and the shell.

Nothing here is a mock: a :class:`Bot` is a real child process with its own state folder,
HTTP port and control socket; :func:`run_cli` runs the real console script. Conditions
are awaited by polling (:func:`wait_until`), never by fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from support.ports import free_port
from support.waiting import wait_until
from tradingbot.storage import Database, RunRecord

T = TypeVar("T")

WAIT_S = 20.0
POLL_S = 0.05


def cli_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("trading-bot")
    if script.exists():
        return [os.fspath(script)]
    return [sys.executable, "-m", "tradingbot.cli"]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: nothing inherited from the test runner's ``TRADINGBOT_*``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.fspath(home.parent),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "TRADINGBOT_HOME": os.fspath(home),
        # No strategy unless a test configures one (the example trades by default
        # with the simulator; empty means none).
        "TRADINGBOT_STRATEGIES": "",
    }
    if "PYTHONPATH" in os.environ:  # where the interpreter finds trading-bot, if set
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra)
    return env


def run_cli(
    args: list[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    uid: int | None = None,
    timeout_s: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``trading-bot ARGS`` to completion and capture its output.

    With ``uid`` the command runs as that user (we must be root): the interpreter here
    lives under ``/root``, which another uid cannot even execute, so the process starts
    as root, imports trading-bot, drops to ``uid`` and only then runs the command.
    """
    command = cli_command()
    if uid is not None:
        command = [sys.executable, "-c", _AS_OTHER_UID, str(uid)]
    return subprocess.run(
        [*command, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


_AS_OTHER_UID = """
import os, sys
import tradingbot.cli, tradingbot.control.shell
tradingbot.cli._parser()  # its lazy imports too (the gateway-sim options), while still root
uid = int(sys.argv[1])
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
sys.exit(tradingbot.cli.main(sys.argv[2:]))
"""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, *, method: str = "GET", timeout_s: float = 10.0) -> HttpReply:
    """One HTTP request; error statuses are returned, not raised."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return HttpReply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return HttpReply(error.code, dict(error.headers), error.read())


def find_node(node: Mapping[str, Any], actor_id: str) -> Mapping[str, Any] | None:
    """The node of ``actor_id`` in an ``/api/actors`` tree."""
    if node["id"] == actor_id:
        return node
    for child in node["children"]:
        found = find_node(child, actor_id)
        if found is not None:
            return found
    return None


@dataclass
class Bot:
    """A running ``trading-bot run`` process and what is needed to talk to it."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    home: Path
    port: int
    database_url: str
    stdout_path: Path
    stderr_path: Path
    _run_id: str | None = field(default=None, init=False)

    # -- HTTP -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, *, method: str = "GET") -> HttpReply:
        return http_get(self.url(path), method=method)

    def answers(self) -> bool:
        try:
            return self.get("/api/health/live").status == 200
        except OSError:
            return False

    def actors(self) -> Mapping[str, Any]:
        reply = self.get("/api/actors")
        assert reply.status == 200, reply
        tree: Mapping[str, Any] = reply.json()
        return tree

    def node(self, actor_id: str) -> Mapping[str, Any]:
        found = find_node(self.actors(), actor_id)
        assert found is not None, f"{actor_id!r} is not in /api/actors"
        return found

    @property
    def run_id(self) -> str:
        """This process's run id (the ``serviceId`` of its liveness report)."""
        if self._run_id is None:
            self._run_id = str(self.get("/api/health/live").json()["serviceId"])
        return self._run_id

    # -- shell and process ------------------------------------------------------------

    def shell(
        self, command: str, *, as_json: bool = False, uid: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``trading-bot shell -c COMMAND`` against this process (as ``uid``)."""
        args = ["shell", "-c", command, *(["--json"] if as_json else [])]
        return run_cli(args, self.env, cwd=self.home.parent, uid=uid)

    @property
    def control_socket(self) -> Path:
        return self.home / "run" / "control.sock"

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout_s: float = WAIT_S) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        """Terminate (then kill) the process if it still runs; never raises."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines written to stdout so far (other lines are skipped)."""
        events = []
        for line in self.stdout().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                events.append(record)
        return events

    def diagnostics(self) -> str:
        return (
            f"--- trading-bot (pid {self.process.pid}, exit {self.process.poll()}) stdout ---\n"
            f"{self.stdout()}\n--- stderr ---\n{self.stderr()}"
        )


BotFactory = Callable[..., Bot]
"""The ``bot_factory`` fixture: ``(database_url=None, extra_env=None, *, ready, home)``."""


def start_bot(
    base: Path,
    database_url: str | None,
    extra_env: Mapping[str, str | None] | None = None,
    *,
    home: Path | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> Bot:
    """Start ``trading-bot run`` in ``base`` (a short path); return once it is launched.

    Its state folder is ``base/home`` unless ``home`` is given (a second run of the same
    installation); its stdout and stderr go to files in ``base``. ``preexec_fn`` runs in
    the child before it starts (to lower a resource limit, for example).
    """
    home = home or base / "home"
    port = free_port()
    env = clean_env(
        home,
        TRADINGBOT_HTTP_PORT=str(port),
        TRADINGBOT_HEARTBEAT_INTERVAL_S="0.2",
        TRADINGBOT_LIVENESS_PROBE_INTERVAL_S="0.2",
        TRADINGBOT_LIVENESS_DEADLINE_S="1",
    )
    if database_url is not None:
        env["TRADINGBOT_DATABASE_URL"] = database_url
    for key, value in (extra_env or {}).items():  # None: leave the variable unset
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    stdout_path = base / "bot.stdout"
    stderr_path = base / "bot.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [*cli_command(), "run"],
            env=env,
            cwd=base,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # a Ctrl-C at the test runner is not the bot's signal
            preexec_fn=preexec_fn,
        )
    return Bot(
        process=process,
        env=env,
        home=home,
        port=port,
        database_url=database_url or f"sqlite:///{home / 'trading-bot.db'}",
        stdout_path=stdout_path,
        stderr_path=stderr_path,
    )


def wait_ready(bot: Bot, timeout_s: float = 30.0) -> None:
    """Wait until ``/api/health/live`` answers 200; fail early if the process exits."""

    def ready() -> bool:
        if not bot.alive():
            raise AssertionError(f"trading-bot exited during start\n{bot.diagnostics()}")
        return bot.answers()

    wait_until(ready, timeout_s, "/api/health/live to answer 200")


def read_run(database_url: str, run_id: str) -> RunRecord:
    """This run's ``system_state`` row, read directly from the database."""
    with Database.open(database_url) as database:
        record = database.system_state.get(run_id)
    assert record is not None, f"run {run_id} is not in system_state"
    return record
