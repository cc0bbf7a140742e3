#!/usr/bin/env bash
# Refresh deploy/requirements.lock, the exact, hash-checked versions deploy/setup.sh
# installs, from pyproject.toml's dependency ranges. Run it deliberately (a dependency
# update is a change to review), then run the test suite against the new versions:
#   deploy/refresh-lock.sh && git diff deploy/requirements.lock
# Needs uv (pip install uv) and access to PyPI. tests/deploy/test_lockfile.py checks that
# the lock still satisfies pyproject.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --no-header --output-file deploy/requirements.lock \
    pyproject.toml deploy/build-requirements.in
