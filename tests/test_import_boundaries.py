"""Import boundaries between the packages of ``tradingbot``.

The broker adapter, the supervision library and the gateway simulator are the lower
layers: they must not reach up into the actors, the HTTP or control layers or the
runtime that wires everything (issue #12). And no two modules may import each other,
directly or through others, at import time: such a cycle works or fails depending on
which module happens to be imported first.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import tradingbot

PACKAGE = Path(tradingbot.__file__).parent
LOWER = ("broker", "supervision", "gateway")
UPPER = (
    "tradingbot.actors",
    "tradingbot.web",
    "tradingbot.control",
    "tradingbot.runtime",
    "tradingbot.strategies",
)
# The strategy host sits between: it may use the broker, storage, events and
# supervision, but never the HTTP or control layers or the runtime that wires it.
ABOVE_STRATEGIES = ("tradingbot.web", "tradingbot.control", "tradingbot.runtime")


def module_name(path: Path) -> str:
    parts = ("tradingbot", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``import from`` in module ``name`` names."""
    if node.level == 0:
        return node.module or ""
    package = name.split(".")
    is_package = modules()[name].name == "__init__.py"
    base = package if is_package else package[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(name: str, path: Path, *, at_import_time: bool) -> Iterator[tuple[str, int]]:
    """Every tradingbot module ``name`` imports (with the line); ``at_import_time`` leaves
    out imports inside functions and ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), filename=str(path))
    known = modules()

    def visit(nodes: list[ast.stmt]) -> Iterator[tuple[str, int]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, node.lineno
            elif isinstance(node, ast.ImportFrom):
                # ``from package import module`` needs the module, not the package's
                # __init__ to be complete; any other name needs the module it is in.
                target = resolve(name, node)
                submodules = [f"{target}.{a.name}" for a in node.names]
                for submodule in submodules:
                    if submodule in known:
                        yield submodule, node.lineno
                if not all(submodule in known for submodule in submodules):
                    yield target, node.lineno
            elif isinstance(node, ast.If):
                checking = "TYPE_CHECKING" in ast.unparse(node.test)
                if not (checking and at_import_time):
                    yield from visit(node.body)
                yield from visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    yield from visit(block)
                for handler in node.handlers:
                    yield from visit(handler.body)
            elif isinstance(node, ast.ClassDef) or (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not at_import_time
            ):
                yield from visit(node.body)

    for target, line in visit(tree.body):
        if target == "tradingbot" or target.startswith("tradingbot."):
            yield target, line


def test_lower_layers_import_nothing_from_the_upper_ones() -> None:
    """broker/, supervision/ and gateway/ import nothing from actors/, web/, control/ or
    runtime, not even inside a function."""
    offenders = []
    for name, path in modules().items():
        if name.partition(".")[2].split(".")[0] not in LOWER:
            continue
        for target, line in imports(name, path, at_import_time=False):
            if any(target == up or target.startswith(f"{up}.") for up in UPPER):
                offenders.append(f"{name}:{line} imports {target}")
    assert offenders == []


def test_lower_layers_load_no_upper_module() -> None:
    """Importing broker, supervision and gateway in a fresh interpreter loads no module of
    actors/, web/, control/ or runtime, however indirectly."""
    code = (
        "import sys, tradingbot.broker, tradingbot.supervision, tradingbot.gateway\n"
        f"up = {UPPER!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(up)))\n"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_strategies_import_no_upper_layer_and_no_ib_async() -> None:
    """strategies/ imports nothing from web/, control/ or runtime, and never ib_async:
    a strategy author's API holds plain dataclasses only."""
    offenders = []
    for name, path in modules().items():
        if not name.startswith("tradingbot.strategies"):
            continue
        for target, line in imports(name, path, at_import_time=False):
            if any(target == up or target.startswith(f"{up}.") for up in ABOVE_STRATEGIES):
                offenders.append(f"{name}:{line} imports {target}")
        source = ast.parse(path.read_text())
        for node in ast.walk(source):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{name}:{node.lineno} imports ib_async" for n in names if "ib_async" in n
            ]
    assert offenders == []


def test_no_import_cycle() -> None:
    """No tradingbot module imports itself again through others at import time."""
    known = modules()
    graph = {
        name: sorted({t for t, _ in imports(name, path, at_import_time=True) if t in known})
        for name, path in known.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in graph[name]:
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            walk(name)
    assert [" -> ".join(cycle) for cycle in cycles] == []
