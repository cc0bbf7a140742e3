"""The guarded seam to pykka's internals: it fits the installed pykka, and nothing bypasses it.

``tradingbot.supervision._pykka_compat`` is the only module allowed to name pykka's
private internals. When a pykka release moves or changes one of them, these tests fail
with a message naming the hook; the module's docstring says how to upgrade.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import pykka
import pytest

import tradingbot
from tradingbot.supervision import _pykka_compat as compat
from tradingbot.supervision._pykka_compat import (
    ClosableInbox,
    Envelope,
    HookedActor,
    is_stop_request,
    start_loop,
)

WAIT_S = 5.0
PACKAGE = Path(tradingbot.__file__).parent
PYKKA = Path(pykka.__file__).parent
COMPAT = Path(compat.__file__)
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
UPGRADE = "see tradingbot/supervision/_pykka_compat.py, 'Upgrading pykka'"


# -- names and signatures ----------------------------------------------------------------


def test_installed_pykka_has_every_hook_supervision_uses() -> None:
    """Each pykka private the supervision relies on exists with the parameters it expects."""
    version = importlib.metadata.version("pykka")
    problems = compat.missing_hooks()
    assert problems == [], f"pykka {version}: {'; '.join(problems)} ({UPGRADE})"


def test_a_changed_pykka_is_reported_hook_by_hook() -> None:
    """A pykka whose hooks moved or changed is reported with each hook named, not accepted."""

    class Actor:
        def _handle_receive(self, message: Any, sender: Any) -> Any: ...

        def _actor_loop_running(self) -> None: ...

    class ThreadingActor(Actor):
        def _create_actor_inbox(self) -> Any: ...

        def _start_actor_loop(self) -> None: ...

    class EnvelopeModule:
        class Envelope:
            def __init__(self, message: Any) -> None: ...

    class Messages:
        pass

    problems = compat.missing_hooks(
        {
            "pykka._envelope": EnvelopeModule,
            "pykka.messages": Messages,
            "pykka.Actor": Actor,
            "pykka.ThreadingActor": ThreadingActor,
        }
    )
    assert problems == [
        "pykka._envelope.Envelope(message, reply_to) now takes (message)",
        "pykka.messages._ActorStop is missing",
        "pykka.ThreadingActor._create_actor_inbox() is no longer a staticmethod",
        "pykka.Actor._handle_receive(self, message) now takes (self, message, sender)",
        "pykka.Actor._actor_loop_teardown(self) is missing",
    ]


def test_starting_with_a_changed_pykka_fails_at_once_naming_the_hook() -> None:
    """With a pykka that lacks a hook, importing the supervision fails with an ImportError
    naming the hook and the tested series, instead of losing messages later."""
    script = "import pykka\ndel pykka.Actor._actor_loop_teardown\nimport tradingbot.supervision\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: tradingbot.supervision relies on pykka internals"), last
    assert "pykka.Actor._actor_loop_teardown(self) is missing" in last
    assert f"install pykka~={compat.TESTED_SERIES}.0" in last


def test_pyproject_pins_pykka_to_the_tested_minor_series() -> None:
    """pip cannot install a pykka minor release the seam was not tested with."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    pins = [dep for dep in project["dependencies"] if dep.lower().startswith("pykka")]
    expected = f"pykka~={compat.TESTED_SERIES}.0"
    assert pins == [expected], f"pyproject.toml should pin {expected} ({UPGRADE})"
    installed = importlib.metadata.version("pykka")
    assert installed.startswith(f"{compat.TESTED_SERIES}."), (
        f"pykka {installed} is installed but the seam is tested with {compat.TESTED_SERIES}"
    )


# -- behaviour of pykka's loop around the hooks ---------------------------------------------


class Probe(HookedActor):
    """Records what pykka calls, and on which thread."""

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[Any, bool]] = []
        self.left_in_inbox: list[Any] = []
        self.after_loop_calls = 0
        self.loop_ended = threading.Event()

    def _receive_message(self, message: Any) -> Any:
        on_actor_thread = threading.current_thread() is not threading.main_thread()
        self.received.append((message, on_actor_thread))
        if message == "boom":
            raise ValueError("boom")
        if message == "halt":
            self.actor_stopped.set()
            return "halting"
        return self._pykka_receive(message)

    def on_receive(self, message: Any) -> Any:
        return ("on_receive", message)

    def _after_loop(self) -> None:
        self.after_loop_calls += 1
        self.left_in_inbox = [envelope.message for envelope in self._inbox.close()]
        self.loop_ended.set()


class PykkaDefaults(HookedActor):
    """Stops on "halt" and leaves the end of its loop to pykka's own clean-up."""

    use_daemon_thread = True

    def _receive_message(self, message: Any) -> Any:
        if message == "halt":
            self.actor_stopped.set()
        return None


def started(actor: pykka.ThreadingActor) -> pykka.ThreadingActor:
    pykka.ActorRegistry.register(actor.actor_ref)
    start_loop(actor)
    return actor


@pytest.fixture(autouse=True)
def _no_actor_left() -> Any:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=WAIT_S)


def test_pykka_runs_every_message_through_the_receive_hook() -> None:
    """Each message reaches _handle_receive on the actor thread, and an ask gets its result."""
    actor = Probe()
    assert isinstance(actor.actor_inbox, ClosableInbox), (
        "pykka no longer builds the inbox with Actor._create_actor_inbox"
    )
    started(actor)
    answer = actor.actor_ref.ask("hello", timeout=WAIT_S)
    assert actor.received == [("hello", True)], (
        "pykka no longer calls Actor._handle_receive once per message on the actor thread"
    )
    assert answer == ("on_receive", "hello"), (
        "Actor._handle_receive (pykka's own dispatch) no longer ends in on_receive"
    )


def test_an_exception_in_the_receive_hook_reaches_the_asker() -> None:
    """A handler's exception is handed to whoever asked, as supervision's crash path expects."""
    actor = started(Probe())
    with pytest.raises(ValueError, match="boom"):
        actor.actor_ref.ask("boom", timeout=WAIT_S)


def test_setting_actor_stopped_in_a_handler_ends_the_loop_and_runs_teardown_once() -> None:
    """A crashed actor stops reading its inbox at once, and what is left is handed back."""
    actor = Probe()
    actor.actor_inbox.put(Envelope("halt"))
    actor.actor_inbox.put(Envelope("after the crash"))
    started(actor)
    assert actor.loop_ended.wait(WAIT_S), (
        "pykka's loop did not call Actor._actor_loop_teardown after actor_stopped was set"
    )
    assert [message for message, _ in actor.received] == ["halt"], (
        "pykka's loop (Actor._actor_loop_running) kept reading after actor_stopped was set"
    )
    assert actor.left_in_inbox == ["after the crash"]
    assert actor.after_loop_calls == 1


def test_pykka_stop_request_goes_through_the_hook_and_is_recognised() -> None:
    """ref.stop() reaches the receive hook as a message is_stop_request knows, and stops."""
    actor = started(Probe())
    actor.actor_ref.stop(block=True, timeout=WAIT_S)
    stops = [message for message, _ in actor.received if is_stop_request(message)]
    assert len(stops) == 1, "pykka's stop request is no longer a messages._ActorStop"
    assert actor.loop_ended.wait(WAIT_S)
    assert not actor.actor_ref.is_alive()


def test_pykka_default_teardown_fails_the_asks_left_in_the_inbox() -> None:
    """An actor without a supervisor answers asks it will never handle with ActorDeadError."""
    actor = PykkaDefaults()
    reply: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    actor.actor_inbox.put(Envelope("halt"))
    actor.actor_inbox.put(Envelope("never handled", reply_to=reply))
    started(actor)
    with pytest.raises(pykka.ActorDeadError):
        reply.get(timeout=WAIT_S)


# -- nothing else in src/ touches pykka's privates --------------------------------------------


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        while isinstance(base, ast.Subscript):  # Generic[T], queue.Queue[X]...
            base = base.value
        if isinstance(base, ast.Attribute):
            names.add(base.attr)
        elif isinstance(base, ast.Name):
            names.add(base.id)
    return names


def _class_privates(node: ast.ClassDef) -> set[str]:
    """The private names a class defines: methods, annotated attributes, ``self.x =``."""
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(item.name)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    for inner in ast.walk(node):
        if (
            isinstance(inner, ast.Attribute)
            and isinstance(inner.value, ast.Name)
            and inner.value.id == "self"
            and isinstance(inner.ctx, ast.Store)
        ):
            names.add(inner.attr)
    return {name for name in names if _is_private(name)}


def _pykka_privates() -> dict[str, set[str]]:
    """For each class of pykka's source, the private names it and its pykka bases define."""
    classes: dict[str, ast.ClassDef] = {}
    for path in PYKKA.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = node

    def privates(name: str) -> set[str]:
        node = classes[name]
        inherited = [privates(base) for base in _base_names(node) if base in classes]
        return _class_privates(node).union(*inherited)

    return {name: privates(name) for name in classes}


def _pykka_derived(trees: list[ast.Module], pykka: dict[str, set[str]]) -> dict[str, set[str]]:
    """For each class in ``trees`` deriving from a pykka class: the pykka privates it inherits."""
    classes = [node for tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    derived = {name: set(names) for name, names in pykka.items() if not _is_private(name)}
    grew = True
    while grew:
        grew = False
        for node in classes:
            inherited = set().union(*(derived.get(base, set()) for base in _base_names(node)))
            if inherited and not inherited <= derived.get(node.name, set()):
                derived[node.name] = derived.get(node.name, set()) | inherited
                grew = True
    return derived


def _bound_by(tree: ast.AST) -> set[str]:
    """Names a module defines itself: functions, attributes it assigns, variables."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            bound.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    return bound


def _pykka_aliases(tree: ast.AST) -> set[str]:
    """Local names bound to pykka or one of its modules (``import pykka as p``...)."""
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pykka":
                    aliases.add((alias.asname or alias.name).split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "pykka"
        ):
            aliases.update(alias.asname or alias.name for alias in node.names)
    return aliases


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _offences(path: Path, root: Path, derived: dict[str, set[str]]) -> list[str]:
    """Where the module at ``path`` touches a pykka private, in line order."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(root)
    every_private = set().union(*derived.values())
    own = _bound_by(tree)
    aliases = _pykka_aliases(tree)
    found: list[tuple[int, str]] = []

    def note(node: ast.stmt | ast.expr, what: str) -> None:
        found.append((node.lineno, f"{where}:{node.lineno} {what}"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pykka.") and "._" in alias.name:
                    note(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "pykka":
                continue
            if any(_is_private(part) for part in node.module.split(".")):
                note(node, f"imports from {node.module}")
            for alias in node.names:
                if _is_private(alias.name):
                    note(node, f"imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            if not _is_private(node.attr):
                continue
            if _root_name(node) in aliases or (node.attr in every_private and node.attr not in own):
                note(node, f"uses pykka's private {node.attr}")
        elif isinstance(node, ast.ClassDef) and node.name in derived:
            inherited = derived[node.name]
            for name in sorted(_class_privates(node) & inherited):
                note(node, f"{node.name} overrides pykka's private {name}")
    return [text for _, text in sorted(found)]


def test_no_module_but_the_seam_touches_pykka_privates() -> None:
    """Only _pykka_compat imports, calls, overrides or overwrites pykka's private names."""
    pykka_privates = _pykka_privates()
    assert {"_handle_receive", "_start_actor_loop", "_stop"} <= pykka_privates["ThreadingActor"]
    paths = sorted(PACKAGE.rglob("*.py"))
    derived = _pykka_derived([ast.parse(path.read_text()) for path in paths], pykka_privates)
    assert "_handle_receive" in derived["SupervisedActor"]
    offences: list[str] = []
    for path in paths:
        if path != COMPAT:
            offences.extend(_offences(path, PACKAGE, derived))
    listing = "\n".join(offences)
    assert not offences, f"go through tradingbot.supervision._pykka_compat instead:\n{listing}"


def test_the_scan_catches_each_way_of_touching_a_private(tmp_path: Path) -> None:
    """The scan above is not vacuous: imports, calls and overrides of privates are all found."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import pykka\n"
        "from pykka import messages as m\n"
        "from pykka._envelope import Envelope\n"
        "class A(pykka.ThreadingActor):\n"
        "    def _handle_receive(self, message):\n"
        "        return m._ActorStop()\n"
        "def go(actor):\n"
        "    actor._start_actor_loop()\n"
        "class B(A):\n"
        "    def __init__(self):\n"
        "        self._stop = None\n"
        "class NotAnActor:\n"
        "    def _result(self):\n"
        "        self._stop = None\n"
        "        return self._stop\n"
    )
    tree = ast.parse(sample.read_text())
    found = _offences(sample, tmp_path, _pykka_derived([tree], _pykka_privates()))
    assert found == [
        "sample.py:3 imports from pykka._envelope",
        "sample.py:4 A overrides pykka's private _handle_receive",
        "sample.py:6 uses pykka's private _ActorStop",
        "sample.py:8 uses pykka's private _start_actor_loop",
        "sample.py:9 B overrides pykka's private _stop",
    ]
