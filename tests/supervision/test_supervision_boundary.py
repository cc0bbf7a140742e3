"""The supervision is a library: it depends on pykka and structlog, never on the product."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import tradingbot.supervision

SUPERVISION = Path(tradingbot.supervision.__file__).parent
# Third-party packages the supervision may import (the rest must be the standard library).
THIRD_PARTY = {"pykka", "structlog"}


def test_supervision_imports_only_itself_pykka_structlog_and_the_standard_library() -> None:
    """No module of tradingbot.supervision imports another tradingbot package or a new
    dependency, so actors, web and runtime can change without touching the supervision."""
    offenders = []
    for path in sorted(SUPERVISION.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if name == "tradingbot.supervision" or name.startswith("tradingbot.supervision."):
                    continue
                if top in THIRD_PARTY or top in sys.stdlib_module_names or top == "__future__":
                    continue
                offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


def test_importing_the_supervision_loads_no_other_tradingbot_module() -> None:
    """At run time too (lazy imports included), the supervision pulls in nothing else."""
    script = (
        "import json, sys\n"
        "import tradingbot.supervision\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tradingbot'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(done.stdout)
    others = [m for m in loaded if m != "tradingbot" and not m.startswith("tradingbot.supervision")]
    assert others == []
    assert "tradingbot.supervision._pykka_compat" in loaded
