"""The web and control layers see named services, never the whole Runtime (issue #12).

Only the wiring modules know :class:`~tradingbot.runtime.Runtime`: ``web/app.py``
(``create_app`` fills one app key per service, ``tradingbot.web.services``) and
``control/wiring.py`` (``runtime_commands`` builds the commands' ``ControlServices``).
Any other module of ``web/`` or ``control/`` that imports ``tradingbot.runtime``, names
the app key holding the Runtime (``RUNTIME``) or reads a ``.runtime`` attribute fails
here with its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tradingbot
from tradingbot.config import load_config
from tradingbot.control import CommandError
from tradingbot.control.wiring import runtime_commands
from tradingbot.runtime import Runtime
from tradingbot.web.app import RUNTIME, create_app

PACKAGE = Path(tradingbot.__file__).parent
LAYERS = ("web", "control")
WIRING = frozenset({"tradingbot.web.app", "tradingbot.control.wiring"})
FORBIDDEN_NAMES = frozenset({"Runtime", "RUNTIME"})
FORBIDDEN_ATTRIBUTES = frozenset({"runtime", "_runtime"})


def module_name(path: Path, root: Path) -> str:
    parts = ("tradingbot", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def reaches_for_the_runtime(name: str, path: Path) -> list[str]:
    """``name:line what`` for each place the module reaches for the Runtime (anywhere in
    it: at import time, in a function or under ``if TYPE_CHECKING:``)."""
    found = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            imported = [alias.asname or alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".")[: None if is_package else -1]
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"{name}:{node.lineno} reads .{node.attr}")
            continue
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{name}:{node.lineno} uses {node.id}")
            continue
        else:
            continue
        if any(t == "tradingbot.runtime" or t.startswith("tradingbot.runtime.") for t in targets):
            found.append(f"{name}:{node.lineno} imports tradingbot.runtime")
        for alias in sorted(FORBIDDEN_NAMES.intersection(imported)):
            found.append(f"{name}:{node.lineno} imports {alias}")
    return found


def offenders(root: Path) -> list[str]:
    """Every place a non-wiring module of web/ or control/ under ``root`` reaches for the
    Runtime."""
    found = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            name = module_name(path, root)
            if name not in WIRING:
                found.extend(reaches_for_the_runtime(name, path))
    return found


def test_only_the_wiring_modules_know_the_runtime() -> None:
    """No web/ or control/ module other than web/app.py and control/wiring.py imports
    tradingbot.runtime, names the app key holding the Runtime, or reads `.runtime`."""
    assert offenders(PACKAGE) == [], "read a named service (web/services.py, ControlServices)"


def test_the_check_finds_a_module_that_reaches_for_the_runtime(tmp_path: Path) -> None:
    """The check is not vacuous: each way a handler could reach the Runtime is named."""
    (tmp_path / "web").mkdir()
    (tmp_path / "control").mkdir()
    (tmp_path / "web" / "app.py").write_text("from tradingbot.runtime import Runtime\n")
    (tmp_path / "web" / "page.py").write_text(
        "from tradingbot.web.app import RUNTIME\n"
        "def page(request):\n"
        "    return request.app[RUNTIME].database\n"
    )
    (tmp_path / "control" / "cmd.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import tradingbot.runtime\n"
        "def cmd(ctx):\n"
        "    return ctx.runtime.kill_switch\n"
    )
    assert offenders(tmp_path) == [
        "tradingbot.web.page:1 imports RUNTIME",
        "tradingbot.web.page:3 uses RUNTIME",
        "tradingbot.control.cmd:3 imports tradingbot.runtime",
        "tradingbot.control.cmd:5 reads .runtime",
    ]


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return Runtime(load_config(environ={"TRADINGBOT_HOME": str(tmp_path)}))


def test_the_app_holds_the_runtime_under_one_key_only(runtime: Runtime) -> None:
    """An app built by create_app keeps the Runtime under the wiring's key alone; every
    other key holds one service."""
    app = create_app(runtime, manage_runtime=False)
    holding = [key for key, value in app.items() if value is runtime]
    assert holding == [RUNTIME]


def test_the_commands_hold_named_services_not_the_runtime(runtime: Runtime) -> None:
    """The shell's command set reads its services by name, none of them the Runtime; one
    the runtime has not started yet is a one-line error naming it."""
    commands = runtime_commands(runtime)
    assert not hasattr(commands, "runtime")
    assert commands.broker_status is runtime.broker_status
    assert commands.scheduler_status is runtime.scheduler_status
    assert commands.account == runtime.account
    for service, message in [
        ("tree", "the supervision tree is not running"),
        ("database", "the database is not open"),
        ("recorder", "the event logger is not running"),
        ("kill_switch", "the kill switch is not running"),
        ("notifier", "the notifier is not running"),
    ]:
        with pytest.raises(CommandError, match=f"^{message}$"):
            getattr(commands, service)
