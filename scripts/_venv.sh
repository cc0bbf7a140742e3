# Shared by scripts/run and scripts/test: create .venv and install the project into it.
# Reinstalls only when pyproject.toml changed (a stamp in .venv holds its hash).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TRADINGBOT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
    local extras="$1"
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "trading-bot needs Python 3.11 or newer; found: $("$PYTHON" --version 2>&1)" >&2
        exit 2
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating virtual environment in $VENV" >&2
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.trading-bot-installed"
    local lock="$ROOT/deploy/requirements.lock"
    local hash want have
    hash="$(cat "$ROOT/pyproject.toml" "$lock" 2>/dev/null | sha256sum | cut -d' ' -f1)"
    want="$extras $hash"
    have="$(cat "$stamp" 2>/dev/null || true)"
    # No extras wanted (scripts/run): any install of the same files will do, so running
    # the bot after scripts/test neither reinstalls nor drops the test tools.
    if [ "$have" != "$want" ] && ! { [ -z "$extras" ] && [ "${have##* }" = "$hash" ]; }; then
        echo "==> installing trading-bot${extras:+[$extras]} into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        # The runtime dependencies at the exact versions deploy/setup.sh installs (the lock
        # without its hashes, as constraints: pip refuses hashes next to an editable install).
        local constraints="$VENV/constraints.txt"
        : > "$constraints"
        if [ -f "$lock" ]; then
            sed -n -e 's/^\([A-Za-z0-9][^ ]*==[^ ]*\)\( ;[^\\]*\)\{0,1\} *\\\{0,1\}$/\1\2/p' "$lock" > "$constraints"
        fi
        "$VENV/bin/python" -m pip install --quiet -c "$constraints" -e "$ROOT${extras:+[$extras]}"
        echo "$want" > "$stamp"
    fi
}
