"""Every test says, in its docstring, the behaviour an operator would notice (house rule)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def undocumented(root: Path) -> list[str]:
    """``path:line name`` of each test function under ``root`` without a docstring."""
    missing = []
    for path in sorted(root.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name.startswith("test")
                and not ast.get_docstring(node)
            ):
                missing.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return missing


def test_every_test_has_a_docstring() -> None:
    """A test without its one-sentence docstring fails the suite, naming file, line and test."""
    assert undocumented(TESTS) == [], "add a one-sentence docstring saying the behaviour"


def test_the_check_finds_a_test_without_a_docstring(tmp_path: Path) -> None:
    """The check is not vacuous: a test function without a docstring is named."""
    (tmp_path / "test_sample.py").write_text(
        'def test_documented():\n    """Says what."""\n\n\nasync def test_bare():\n    pass\n'
    )
    assert undocumented(tmp_path) == ["test_sample.py:5 test_bare"]
