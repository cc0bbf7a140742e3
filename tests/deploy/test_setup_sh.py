"""deploy/setup.sh installs the service into a scratch root, idempotently, with clear errors.

Each run uses ``--root`` (a scratch directory standing for ``/``) and ``--use-venv`` with
the test suite's own virtual environment, so no package is downloaded or built here: the
venv creation and the hash-checked pip install are the only steps these tests do not run
(``deploy/requirements.lock`` itself is checked by test_lockfile.py). Everything else is
real: ``useradd --prefix``, ``setpriv`` to the service user, ``trading-bot check`` and
``db upgrade`` as that user, the units, ``systemctl --root enable``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ports import free_port
from tradingbot.storage import Database

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "deploy" / "setup.sh"
VENV = Path(sys.prefix)
Run = subprocess.CompletedProcess[str]
SERVICES = ("trading-bot.service", "trading-bot-watchdog.service", "trading-bot-backup.service")
ANALYZE = shutil.which("systemd-analyze")
UNITS = (
    "trading-bot.service",
    "trading-bot-watchdog.service",
    "trading-bot-watchdog.timer",
    "trading-bot-backup.service",
    "trading-bot-backup.timer",
)


def _other_users_can_run_this_venv() -> bool:
    """setup.sh runs `trading-bot check` as the service user: the venv must be reachable."""
    if os.geteuid() != 0:
        return False
    probe = [
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        str(VENV / "bin" / "python"), "-c", "import tradingbot",
    ]  # fmt: skip
    try:
        return subprocess.run(probe, capture_output=True, timeout=60, cwd="/").returncode == 0
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="setup.sh needs root (useradd, chown, setpriv)"),
    pytest.mark.skipif(
        not _other_users_can_run_this_venv(),
        reason="another user cannot run this venv's interpreter (it lives in a private folder)",
    ),
    pytest.mark.skipif(
        not (VENV / "bin" / "trading-bot").exists(),
        reason="trading-bot is not installed in sys.prefix",
    ),
]


def setup(root: Path, *args: str, venv: bool = True) -> subprocess.CompletedProcess[str]:
    """Run deploy/setup.sh against ``root``; never raises on a non-zero exit."""
    command = ["bash", str(SETUP), "--root", str(root)]
    if venv:
        command += ["--use-venv", str(VENV)]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def make_root() -> Path:
    """A scratch ``/`` the service user can traverse (pytest's tmp_path is root-only)."""
    root = Path(tempfile.mkdtemp(prefix="tb-setup-"))
    root.chmod(0o755)
    return root


@pytest.fixture
def root() -> Iterator[Path]:
    path = make_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Run, Run]]:
    """A scratch root after two setup.sh runs in a row (first, second)."""
    path = make_root()
    first = setup(path)
    second = setup(path)
    yield path, first, second
    shutil.rmtree(path, ignore_errors=True)


def service_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        name, _, uid, gid, *_ = line.split(":")
        if name == "trading-bot":
            return int(uid), int(gid)
    raise AssertionError("no trading-bot user in the scratch root's /etc/passwd")


def test_second_run_reports_no_change(installed: tuple[Path, ...]) -> None:
    """Running setup.sh twice: the first installs, the second changes nothing and says so."""
    _, first, second = installed
    assert first.returncode == 0, first.stderr
    assert "done:" in first.stdout
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "setup.sh: no change: trading-bot is installed and up to date"


def test_install_layout(installed: tuple[Path, ...]) -> None:
    """The user, private directories, the 0600 env file and the upgraded database are in place."""
    root = installed[0]
    assert isinstance(root, Path)
    uid, gid = service_ids(root)
    for folder, mode in (
        ("var/lib/trading-bot", 0o700),
        ("var/lib/trading-bot/run", 0o700),
        ("var/lib/trading-bot/backups", 0o700),
        ("var/log/trading-bot", 0o750),
    ):
        info = (root / folder).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (mode, uid, gid), folder
    env = root / "etc" / "trading-bot" / "trading-bot.env"
    info = env.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, 0)
    assert env.read_text() == (REPO / "deploy" / "trading-bot.env.template").read_text()
    db_file = root / "var" / "lib" / "trading-bot" / "trading-bot.db"
    assert db_file.stat().st_uid == uid
    with Database.open(f"sqlite:///{db_file}") as database:
        assert database.current_revision() == database.head_revision()


def test_units_installed_and_enabled(installed: tuple[Path, ...]) -> None:
    """Every unit is installed as shipped; the service and both timers are enabled."""
    root = installed[0]
    assert isinstance(root, Path)
    system = root / "etc" / "systemd" / "system"
    for unit in UNITS:
        assert (system / unit).read_text() == (REPO / "deploy" / unit).read_text()
    assert (system / "multi-user.target.wants" / "trading-bot.service").is_symlink()
    for timer in ("trading-bot-watchdog.timer", "trading-bot-backup.timer"):
        assert (system / "timers.target.wants" / timer).is_symlink()
    assert not (system / "trading-bot.service.d").exists()  # SQLite: no PostgreSQL drop-in
    logrotate = root / "etc" / "logrotate.d" / "trading-bot"
    assert logrotate.read_text() == (REPO / "deploy" / "trading-bot.logrotate").read_text()


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_installed_units_verify_and_are_hardened(installed: tuple[Path, ...]) -> None:
    """The installed units pass `systemd-analyze verify` silently and score exposure <= 2.0."""
    root = installed[0]
    assert isinstance(root, Path)
    assert ANALYZE is not None
    system = root / "etc" / "systemd" / "system"
    check = root / "verify"
    check.mkdir(exist_ok=True)
    for unit in UNITS:  # ExecStart= must exist: point it at the venv behind the link
        text = (system / unit).read_text().replace("/opt/trading-bot/", f"{root}/opt/trading-bot/")
        (check / unit).write_text(text)
    for unit in UNITS:
        result = subprocess.run(
            [ANALYZE, "verify", str(check / unit)], capture_output=True, text=True, timeout=60
        )
        assert (result.returncode, result.stderr.strip()) == (0, ""), unit
    for unit in SERVICES:
        result = subprocess.run(
            [ANALYZE, "security", "--offline=yes", "--threshold=20", str(system / unit)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout[-2000:]


def test_env_file_is_never_overwritten(root: Path) -> None:
    """An operator's environment file keeps its content; a loosened mode is made 0600 again."""
    assert setup(root).returncode == 0
    env = root / "etc" / "trading-bot" / "trading-bot.env"
    env.write_text("TRADINGBOT_LOG_LEVEL=DEBUG\n")
    env.chmod(0o644)
    again = setup(root)
    assert again.returncode == 0, again.stderr
    assert "its content is kept" in again.stdout
    assert env.read_text() == "TRADINGBOT_LOG_LEVEL=DEBUG\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_dry_run_changes_nothing(root: Path) -> None:
    """--dry-run prints every action it would take and leaves the root untouched."""
    result = setup(root, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would add the system user trading-bot" in result.stdout
    assert "would write" in result.stdout
    assert "would enable trading-bot.service" in result.stdout
    assert "nothing was changed" in result.stdout
    assert list(root.iterdir()) == []


def test_not_root_is_a_clear_error(root: Path) -> None:
    """Run by another user, setup.sh refuses with exit 10 and says to use sudo."""
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(SETUP)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert result.returncode == 10
    assert result.stderr.startswith("setup.sh: error: run as root")


def test_missing_python_is_a_clear_error(root: Path) -> None:
    """Without a Python >= 3.11 to build the venv, setup.sh exits 11 naming the interpreter."""
    result = setup(root, "--python", str(root / "no-python3"), venv=False)
    assert result.returncode == 11
    assert "needs Python >= 3.11" in result.stderr


def test_bad_configuration_is_a_clear_error(root: Path) -> None:
    """A bad value in the environment file: exit 14, and trading-bot check's line names it."""
    (root / "etc" / "trading-bot").mkdir(parents=True)
    (root / "etc" / "trading-bot" / "trading-bot.env").write_text("TRADINGBOT_HTTP_PORT=eighty\n")
    result = setup(root)
    assert result.returncode == 14
    assert "TRADINGBOT_HTTP_PORT" in result.stderr
    assert not (root / "etc" / "systemd" / "system" / "trading-bot.service").exists()


def test_unreachable_postgresql_is_a_clear_error(root: Path) -> None:
    """A PostgreSQL URL nobody answers: exit 15 naming the database, units not enabled."""
    (root / "etc" / "trading-bot").mkdir(parents=True)
    url = f"postgresql+psycopg2://bot:secret-pw@127.0.0.1:{free_port()}/trading_bot"
    (root / "etc" / "trading-bot" / "trading-bot.env").write_text(
        f"TRADINGBOT_DATABASE_URL={url}\n"
    )
    result = setup(root)
    assert result.returncode == 15
    assert "cannot be reached" in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout


@pytest.mark.postgres
def test_local_postgresql_gets_a_wants_drop_in(root: Path, fresh_postgres_url: str) -> None:
    """With a PostgreSQL database on this host the service also Wants= postgresql.service."""
    (root / "etc" / "trading-bot").mkdir(parents=True)
    (root / "etc" / "trading-bot" / "trading-bot.env").write_text(
        f"TRADINGBOT_DATABASE_URL={fresh_postgres_url}\n"
    )
    result = setup(root)
    assert result.returncode == 0, result.stderr
    drop_in = root / "etc/systemd/system/trading-bot.service.d/10-local-postgresql.conf"
    assert "Wants=postgresql.service" in drop_in.read_text()
    with Database.open(fresh_postgres_url) as database:
        assert database.current_revision() == database.head_revision()


def test_uninstall_keeps_data_and_purge_removes_it(root: Path) -> None:
    """--uninstall removes units and venv but keeps data; --purge then removes the rest."""
    assert setup(root).returncode == 0
    removed = setup(root, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not (root / "etc/systemd/system/trading-bot.service").exists()
    assert not (root / "opt/trading-bot/.venv").exists()
    assert not (root / "etc/logrotate.d/trading-bot").exists()
    assert (root / "var/lib/trading-bot/trading-bot.db").exists()
    assert (root / "etc/trading-bot/trading-bot.env").exists()
    assert setup(root, "--uninstall").stdout.startswith("setup.sh: no change")
    purged = setup(root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    for gone in ("var/lib/trading-bot", "var/log/trading-bot", "etc/trading-bot"):
        assert not (root / gone).exists()
    assert "trading-bot:" not in (root / "etc" / "passwd").read_text()
