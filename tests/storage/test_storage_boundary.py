"""Only ``tradingbot.storage`` may import SQLAlchemy or alembic (GUIDE section 5)."""

from __future__ import annotations

import ast
from pathlib import Path

import tradingbot

PACKAGE = Path(tradingbot.__file__).parent
FORBIDDEN = ("sqlalchemy", "alembic")


def test_only_storage_imports_sqlalchemy() -> None:
    """No module outside tradingbot.storage imports sqlalchemy or alembic."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "storage":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if any(name.split(".")[0] in FORBIDDEN for name in names):
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []
