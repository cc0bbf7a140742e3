"""deploy/requirements.lock (what setup.sh installs) still matches pyproject.toml.

The lock is refreshed deliberately with deploy/refresh-lock.sh; these checks fail when
pyproject.toml gains, drops or narrows a dependency without the lock being refreshed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "deploy" / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


def _entries() -> list[tuple[str, Version, str]]:
    """(canonical name, pinned version, the entry's whole text) for each pinned package."""
    entries: list[tuple[str, Version, str]] = []
    for block in re.split(r"\n(?=\S)", LOCK.read_text()):
        match = _PIN.match(block)
        if match:
            entries.append((canonicalize_name(match[1]), Version(match[2]), block))
    return entries


def _project() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _dependencies() -> list[Requirement]:
    listed = _project()["dependencies"]
    assert isinstance(listed, list)
    return [Requirement(text) for text in listed]


def test_every_dependency_is_pinned_within_its_range() -> None:
    """Each pyproject.toml dependency has a pin in the lock that its version range allows."""
    pins: dict[str, list[Version]] = {}
    for name, version, _ in _entries():
        pins.setdefault(name, []).append(version)
    for requirement in _dependencies():
        versions = pins.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in {LOCK.name}: run deploy/refresh-lock.sh"
        for version in versions:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{LOCK.name} pins {requirement.name}=={version}, outside {requirement.specifier}"
            )


def test_lock_lists_exactly_the_direct_dependencies() -> None:
    """The packages the lock says come from pyproject.toml are exactly its dependencies."""
    direct = {name for name, _, block in _entries() if "trading-bot (pyproject.toml)" in block}
    assert direct == {canonicalize_name(r.name) for r in _dependencies()}


def test_every_pin_is_hash_checked() -> None:
    """Every locked package carries sha256 hashes, so pip installs exactly what was tested."""
    entries = _entries()
    assert entries
    for name, _, block in entries:
        assert "--hash=sha256:" in block, name


def test_build_backend_can_be_installed_from_the_lock() -> None:
    """The lock pins a setuptools new enough for the build (setup.sh builds offline)."""
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in build:
        requirement = Requirement(text)
        pinned = [v for n, v, _ in _entries() if n == canonicalize_name(requirement.name)]
        assert pinned, text
        assert all(requirement.specifier.contains(v) for v in pinned), text


def test_license_is_an_spdx_string() -> None:
    """pyproject.toml uses the SPDX license string, not the deprecated table (no build warning)."""
    assert _project()["license"] == "MIT"
