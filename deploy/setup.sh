#!/usr/bin/env bash
# Install trading-bot on a Debian/Ubuntu host as a systemd service, or remove it.
#
#   sudo deploy/setup.sh                 install or update (idempotent: a second run changes nothing)
#   sudo deploy/setup.sh --dry-run       print every action, change nothing (root not needed)
#   sudo deploy/setup.sh --uninstall     remove units and venv; keep data and configuration
#   sudo deploy/setup.sh --uninstall --purge   also delete data, logs, backups, configuration, user
#
# What it does (docs/DEPLOYMENT.md explains each step):
#   system user and group `trading-bot`; a venv in PREFIX/.venv (default /opt/trading-bot)
#   with the exact, hash-checked versions of deploy/requirements.lock, then trading-bot
#   itself; /etc/trading-bot/trading-bot.env (0600, from deploy/trading-bot.env.template,
#   never overwritten); /var/lib/trading-bot (state), /var/log/trading-bot (logs);
#   `trading-bot check` and `trading-bot db upgrade` as the service user; the units
#   (service, watchdog and backup timers); /etc/logrotate.d/trading-bot; systemctl
#   daemon-reload and enable. It does not
#   start the service: edit the environment file first, then `systemctl start trading-bot`.
#
# Options:
#   --prefix DIR     where the venv goes (default /opt/trading-bot)
#   --root DIR       treat DIR as / (tests, image builds): users go to DIR/etc/passwd,
#                    units to DIR/etc/systemd/system, `systemctl --root=DIR enable`
#   --python PY      the interpreter that creates the venv (default python3; >= 3.11)
#   --use-venv DIR   do not create or pip-install the venv: link PREFIX/.venv to DIR, an
#                    existing venv that already has trading-bot installed (the test suite
#                    uses its own venv this way; so can an operator who builds it himself)
#   --user NAME      the service user and group (default trading-bot)
#
# Exit codes: 0 done (or nothing to do), 2 bad usage, 10 not root, 11 no Python >= 3.11,
# 12 a required tool is missing, 13 installing the packages failed, 14 the configuration
# is invalid (`trading-bot check` says which setting), 15 the database cannot be reached or
# upgraded (PostgreSQL URL unreachable), 16 systemctl failed.
set -euo pipefail
umask 022

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/trading-bot
ROOT=""
PYTHON=python3
USE_VENV=""
SERVICE_USER=trading-bot
DRY_RUN=0
UNINSTALL=0
PURGE=0
CHANGES=0
UNITS=(trading-bot.service trading-bot-watchdog.service trading-bot-watchdog.timer
    trading-bot-backup.service trading-bot-backup.timer)
ENABLE=(trading-bot.service trading-bot-watchdog.timer trading-bot-backup.timer)

say() { printf 'setup.sh: %s\n' "$*"; }
die() { # die CODE MESSAGE: one line on stderr, the documented exit code
    local code="$1"
    shift
    printf 'setup.sh: error: %s\n' "$*" >&2
    exit "$code"
}
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# change DESCRIPTION COMMAND...: run one changing action (or only print it with --dry-run).
change() {
    local what="$1"
    shift
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" = 1 ]; then
        say "would $what"
        return 0
    fi
    say "$what"
    "$@"
}

while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#*=}"; shift ;;
    --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
    --python=*) PYTHON="${1#*=}"; shift ;;
    --use-venv) USE_VENV="${2:?--use-venv needs a directory}"; shift 2 ;;
    --use-venv=*) USE_VENV="${1#*=}"; shift ;;
    --user) SERVICE_USER="${2:?--user needs a name}"; shift 2 ;;
    --user=*) SERVICE_USER="${1#*=}"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'setup.sh: error: unknown option %q (see --help)\n' "$1" >&2; exit 2 ;;
    esac
done
[ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ] && die 2 "--purge only goes with --uninstall"
case "$PREFIX" in /*) ;; *) die 2 "--prefix must be an absolute path, got $PREFIX" ;; esac
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die 2 "--root $ROOT is not a directory"
    ROOT="$(cd "$ROOT" && pwd)"
fi
if [ -n "$USE_VENV" ]; then
    [ -d "$USE_VENV" ] || die 2 "--use-venv $USE_VENV is not a directory"
    USE_VENV="$(cd "$USE_VENV" && pwd)"
fi
[[ "$SERVICE_USER" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die 2 "--user: not a valid user name: $SERVICE_USER"

# Paths as the service sees them (in the units) and as this script writes them (under ROOT).
VENV="$PREFIX/.venv"
ETC_DIR=/etc/trading-bot
ENV_FILE="$ETC_DIR/trading-bot.env"
STATE_DIR=/var/lib/trading-bot
LOG_DIR=/var/log/trading-bot
UNIT_DIR=/etc/systemd/system
DROPIN="$UNIT_DIR/trading-bot.service.d/10-local-postgresql.conf"
LOGROTATE=/etc/logrotate.d/trading-bot
LOCK="$SOURCE/deploy/requirements.lock"
r() { printf '%s%s' "$ROOT" "$1"; } # a path under ROOT

if [ "$(id -u)" != 0 ] && [ "$DRY_RUN" = 0 ]; then
    die 10 "run as root (sudo $0 ...), or with --dry-run to see what it would do"
fi
for tool in install sha256sum setpriv getent; do
    command -v "$tool" >/dev/null || die 12 "$tool is not installed (apt-get install coreutils util-linux libc-bin)"
done
command -v systemctl >/dev/null || die 12 "systemctl is not installed: this script installs systemd units"

# -- the service user ---------------------------------------------------------------------

user_entry() { # the passwd line of the service user, in ROOT's files or the host's
    if [ -n "$ROOT" ]; then
        grep -E "^${SERVICE_USER}:" "$(r /etc/passwd)" 2>/dev/null || true
    else
        getent passwd "$SERVICE_USER" || true
    fi
}
user_ids() { # "UID GID" of the service user (empty when it does not exist)
    user_entry | awk -F: '{print $3, $4}'
}
ensure_user() {
    if [ -n "$(user_entry)" ]; then
        return 0
    fi
    local args=(--system --user-group --home-dir "$STATE_DIR" --no-create-home
        --shell /usr/sbin/nologin --comment "trading-bot service" "$SERVICE_USER")
    command -v useradd >/dev/null || die 12 "useradd is not installed (apt-get install passwd)"
    if [ -n "$ROOT" ]; then
        change "create the directory $(r /etc) for the user database" \
            install -d -m 0755 "$(r /etc)"
        for f in passwd group shadow gshadow; do
            [ -e "$(r /etc/$f)" ] || change "create $(r /etc/$f)" touch "$(r /etc/$f)"
        done
        change "add the system user $SERVICE_USER to $(r /etc/passwd)" useradd --prefix "$ROOT" "${args[@]}"
    else
        change "add the system user $SERVICE_USER" useradd "${args[@]}"
    fi
}

# ensure_dir PATH MODE OWNER: a directory with exactly this mode and owner (uid:gid).
ensure_dir() {
    local path mode owner
    path="$(r "$1")" mode="$2" owner="$3"
    if [ ! -d "$path" ]; then
        change "create $path (mode $mode, owner $owner)" install -d -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$path"
        return 0
    fi
    if [ "$(stat -c '%a %u:%g' "$path")" != "${mode#0} $owner" ]; then
        change "set $path to mode $mode, owner $owner" \
            sh -c 'chmod "$1" "$3" && chown "$2" "$3"' _ "$mode" "$owner" "$path"
    fi
}

# -- the virtual environment --------------------------------------------------------------

check_python() {
    command -v "$PYTHON" >/dev/null || die 11 "no Python interpreter $PYTHON (apt-get install python3 python3-venv; trading-bot needs Python >= 3.11)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        die 11 "trading-bot needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1)"
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
        die 11 "$PYTHON cannot create virtual environments (apt-get install python3-venv)"
}

source_digest() { # what is installed into the venv: the lock and the project's files
    (
        cd "$SOURCE"
        {
            sha256sum deploy/requirements.lock pyproject.toml
            # Not what a build writes into the tree (egg-info) or Python's caches.
            find src -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -name '*.pyc' -print0 |
                sort -z | xargs -0 sha256sum
        } | sha256sum | cut -d' ' -f1
    )
}

install_packages() {
    local venv="$1"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-hashes --only-binary=:all: -r "$LOCK" ||
        die 13 "installing the locked dependencies (deploy/requirements.lock) into $venv failed; see pip's message above"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --no-deps --no-build-isolation --no-index "$SOURCE" ||
        die 13 "installing trading-bot from $SOURCE into $venv failed; see pip's message above"
}

ensure_venv() {
    local venv stamp want
    venv="$(r "$VENV")"
    if [ -n "$USE_VENV" ]; then
        [ -x "$USE_VENV/bin/trading-bot" ] || die 13 "--use-venv $USE_VENV has no bin/trading-bot: install trading-bot into it first"
        if [ "$(readlink "$venv" 2>/dev/null || true)" != "$USE_VENV" ]; then
            [ -e "$venv" ] && [ ! -L "$venv" ] && die 2 "$venv exists and is not a link; remove it to use --use-venv"
            change "link $venv to the existing venv $USE_VENV" ln -sfn "$USE_VENV" "$venv"
        fi
        return 0
    fi
    check_python
    [ -f "$LOCK" ] || die 13 "the lock file $LOCK is missing"
    if [ ! -x "$venv/bin/python" ]; then
        change "create the virtual environment $venv ($("$PYTHON" --version 2>&1))" "$PYTHON" -m venv "$venv"
    fi
    stamp="$venv/.trading-bot-installed"
    want="$(source_digest)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        change "install the locked dependencies and trading-bot into $venv" install_packages "$venv"
        [ "$DRY_RUN" = 1 ] || printf '%s\n' "$want" >"$stamp"
    fi
}

# -- files ----------------------------------------------------------------------------------

# ensure_file DEST MODE SOURCE_FILE: DEST has exactly SOURCE_FILE's content and MODE.
ensure_file() {
    local dest mode src
    dest="$(r "$1")" mode="$2" src="$3"
    if [ ! -f "$dest" ] || ! cmp -s "$src" "$dest"; then
        change "write $dest" install -D -m "$mode" "$src" "$dest"
    elif [ "$(stat -c '%a' "$dest")" != "${mode#0}" ]; then
        change "set $dest to mode $mode" chmod "$mode" "$dest"
    fi
}

ensure_env_file() {
    local path
    path="$(r "$ENV_FILE")"
    if [ ! -e "$path" ]; then
        change "create $path (mode 0600) from deploy/trading-bot.env.template" \
            install -m 0600 -o 0 -g 0 "$SOURCE/deploy/trading-bot.env.template" "$path"
    elif [ "$(stat -c '%a %u' "$path")" != "600 0" ]; then
        # Never overwritten; only made private again (it may hold passwords).
        change "set $path to mode 0600, owner root (its content is kept)" \
            sh -c 'chmod 0600 "$1" && chown 0:0 "$1"' _ "$path"
    fi
}

# as_service COMMAND...: run trading-bot as the service user with the environment the units
# give it (the unit's Environment= lines, then the environment file, which wins).
as_service() {
    local ids
    ids="$(user_ids)"
    "$(r "$VENV")/bin/python" - "$(r "$ENV_FILE")" "$(r "$STATE_DIR")" "$(r "$LOG_DIR")" "$ids" "$@" <<'PY'
import os, sys
from dotenv import dotenv_values
env_file, home, logs, ids, *command = sys.argv[1:]
uid, gid = ids.split()
env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": home,
       "TRADINGBOT_HOME": home, "TRADINGBOT_LOG_DIR": logs}
if os.path.exists(env_file):
    env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
os.chdir("/")  # as under systemd: no ./.env is read
os.umask(0o077)  # the units' UMask=
os.execvpe("setpriv", ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                       "--inh-caps=-all", "--", *command], env)
PY
}

check_configuration() {
    local out err
    if [ "$DRY_RUN" = 1 ]; then
        say "would check the configuration (trading-bot check) and upgrade the database (trading-bot db upgrade)"
        return 0
    fi
    err="$(mktemp)"
    if ! out="$(as_service "$(r "$VENV")/bin/trading-bot" check --json 2>"$err")"; then
        cat "$err" >&2
        rm -f "$err"
        die 14 "the configuration in $(r "$ENV_FILE") is invalid (the line above names the setting); fix it and run setup.sh again"
    fi
    rm -f "$err"
    DATABASE_URL="$(printf '%s' "$out" | "$(r "$VENV")/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["database_url"])')"
    if ! out="$(as_service "$(r "$VENV")/bin/trading-bot" db upgrade 2>&1)"; then
        printf '%s\n' "$out" >&2
        die 15 "the database ($DATABASE_URL) cannot be reached or upgraded; is the server running and TRADINGBOT_DATABASE_URL in $(r "$ENV_FILE") right?"
    fi
    case "$out" in
    "database already up to date"*) ;;
    *) CHANGES=$((CHANGES + 1)); say "$out" ;;
    esac
}

local_postgresql() { # is the configured database a PostgreSQL server on this host?
    case "${DATABASE_URL:-}" in
    postgresql*://*@localhost[:/]* | postgresql*://*@127.0.0.1[:/]* | postgresql*://*@\[::1\]* | postgresql*:///*) return 0 ;;
    postgresql*://localhost[:/]* | postgresql*://127.0.0.1[:/]*) return 0 ;;
    *) return 1 ;;
    esac
}

ensure_units() {
    local unit tmp
    tmp="$(mktemp -d)"
    UNITS_CHANGED=0
    local before=$CHANGES
    for unit in "${UNITS[@]}"; do
        sed -e "s#/opt/trading-bot/#$PREFIX/#g" \
            -e "s#^User=trading-bot\$#User=$SERVICE_USER#" -e "s#^Group=trading-bot\$#Group=$SERVICE_USER#" \
            "$SOURCE/deploy/$unit" >"$tmp/$unit"
        ensure_file "$UNIT_DIR/$unit" 0644 "$tmp/$unit"
    done
    if local_postgresql; then
        printf '%s\n' "# Written by deploy/setup.sh: TRADINGBOT_DATABASE_URL is a PostgreSQL server on this host." \
            "[Unit]" "Wants=postgresql.service" "After=postgresql.service" >"$tmp/dropin"
        ensure_file "$DROPIN" 0644 "$tmp/dropin"
    elif [ -e "$(r "$DROPIN")" ]; then
        change "remove $(r "$DROPIN") (the database is not a local PostgreSQL)" rm -f "$(r "$DROPIN")"
    fi
    rm -rf "$tmp"
    [ "$CHANGES" = "$before" ] || UNITS_CHANGED=1
}

ensure_logrotate() {
    local tmp
    tmp="$(mktemp)"
    sed -e "s#/var/log/trading-bot/#$LOG_DIR/#" "$SOURCE/deploy/trading-bot.logrotate" >"$tmp"
    ensure_file "$LOGROTATE" 0644 "$tmp"
    rm -f "$tmp"
}

systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

daemon_reload() {
    if systemd_running; then
        change "reload systemd (systemctl daemon-reload)" systemctl daemon-reload ||
            die 16 "systemctl daemon-reload failed"
    else
        say "systemd is not running here (or --root): no daemon-reload"
    fi
}

systemctl_root() { if [ -n "$ROOT" ]; then systemctl --root="$ROOT" "$@"; else systemctl "$@"; fi; }

ensure_enabled() {
    local unit
    for unit in "${ENABLE[@]}"; do
        if ! systemctl_root is-enabled --quiet "$unit" 2>/dev/null; then
            change "enable $unit" systemctl_root enable --quiet "$unit" || die 16 "systemctl enable $unit failed"
        fi
    done
}

# -- install / uninstall --------------------------------------------------------------------

install_all() {
    ensure_user
    local ids owner
    ids="$(user_ids)"
    owner="${ids/ /:}"
    [ -n "$owner" ] || owner="$SERVICE_USER:$SERVICE_USER" # only with --dry-run
    ensure_dir "$PREFIX" 0755 0:0
    ensure_venv
    ensure_dir "$ETC_DIR" 0700 0:0
    ensure_env_file
    ensure_dir "$STATE_DIR" 0700 "$owner"
    ensure_dir "$STATE_DIR/run" 0700 "$owner"
    ensure_dir "$STATE_DIR/backups" 0700 "$owner"
    ensure_dir "$LOG_DIR" 0750 "$owner"
    check_configuration
    ensure_units
    ensure_logrotate
    [ "$UNITS_CHANGED" = 1 ] && daemon_reload
    ensure_enabled
    if [ "$CHANGES" = 0 ]; then
        say "no change: trading-bot is installed and up to date"
    elif [ "$DRY_RUN" = 1 ]; then
        say "dry run: $CHANGES action(s) would be taken; nothing was changed"
    else
        say "done: $CHANGES change(s). Next: edit $ENV_FILE, then systemctl start trading-bot"
    fi
}

remove_path() { # remove_path PATH [recursive]
    local path
    path="$(r "$1")"
    if [ -L "$path" ] || [ -f "$path" ]; then
        change "remove $path" rm -f "$path"
    elif [ -d "$path" ]; then
        change "remove $path and everything in it" rm -rf "$path"
    fi
}

uninstall_all() {
    local unit
    for unit in "${ENABLE[@]}"; do
        if systemctl_root is-enabled --quiet "$unit" 2>/dev/null; then
            if systemd_running; then
                change "stop and disable $unit" systemctl disable --now --quiet "$unit" || die 16 "systemctl disable $unit failed"
            else
                change "disable $unit" systemctl_root disable --quiet "$unit" || die 16 "systemctl disable $unit failed"
            fi
        fi
    done
    local before=$CHANGES
    for unit in "${UNITS[@]}"; do remove_path "$UNIT_DIR/$unit"; done
    remove_path "$UNIT_DIR/trading-bot.service.d"
    remove_path "$LOGROTATE"
    [ "$CHANGES" = "$before" ] || daemon_reload
    remove_path "$VENV"
    if [ "$PURGE" = 1 ]; then
        remove_path "$STATE_DIR"
        remove_path "$LOG_DIR"
        remove_path "$ETC_DIR"
        if [ -n "$(user_entry)" ]; then
            if [ -n "$ROOT" ]; then
                change "remove the user $SERVICE_USER from $(r /etc/passwd)" userdel --prefix "$ROOT" "$SERVICE_USER"
            else
                change "remove the user $SERVICE_USER" userdel "$SERVICE_USER"
            fi
        fi
    fi
    if [ "$CHANGES" = 0 ]; then
        say "no change: trading-bot is not installed"
    elif [ "$DRY_RUN" = 1 ]; then
        say "dry run: $CHANGES action(s) would be taken; nothing was changed"
    else
        say "done: $CHANGES change(s)."
    fi
    if [ "$PURGE" = 0 ]; then
        say "kept: $(r "$STATE_DIR") (database, backups), $(r "$LOG_DIR"), $(r "$ENV_FILE"), the user $SERVICE_USER; --purge deletes them"
    fi
}

if [ "$UNINSTALL" = 1 ]; then
    uninstall_all
else
    install_all
fi
