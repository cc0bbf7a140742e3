"""A real headless Chromium for the browser tests: Debian's ``chromium`` driven by
Playwright's Python package (never ``playwright install``, which downloads a browser).

Without the browser or the package the tests skip with the reason, unless ``CI=true``,
where they fail: CI must never pass by skipping them (``scripts/test`` installs
``chromium`` when it runs as root). Screenshots go to ``SCREENSHOT_DIR`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TRADINGBOT_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_DIR = Path(
    os.environ.get(
        "TRADINGBOT_SCREENSHOT_DIR",
        Path(__file__).resolve().parents[2] / "build" / "screenshots",
    )
)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


def require_browser() -> None:
    """Skip with the reason when the browser is missing; fail instead under CI=true."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI=true: {reason}")
    pytest.skip(reason)


@dataclass
class ConsoleLog:
    """JavaScript errors a page reported (console.error and uncaught exceptions)."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))


def screenshot(page: Any, name: str) -> None:
    """``name``-desktop.png and ``name``-phone.png of the page as it is now."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOT_DIR / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
