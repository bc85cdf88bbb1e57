#!/usr/bin/env bash
# A throwaway S3-compatible server (moto) on loopback for the S3 store tests.
#
#   scripts/s3-test-server.sh start   install moto (once) and start it; idempotent
#   scripts/s3-test-server.sh env     print the env file: `eval "$(scripts/s3-test-server.sh env)"`
#   scripts/s3-test-server.sh stop    stop it; idempotent
#
# moto[server] is installed from PyPI into target/moto-venv (python3 -m venv; falls back to
# `pip install --target` where the venv module is unavailable). The server listens on
# 127.0.0.1 only, on a free port; its log is target/moto.log; target/moto.env holds
#   export CUPS_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#   export CUPS_TEST_S3_PID=PID
# Credentials are anything (tests use test/test), region us-east-1. Needs only python3 + pip.
set -euo pipefail

MOTO_VERSION=5.2.5
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/moto-venv
PKGS=$TARGET/moto-pkgs
LOG=$TARGET/moto.log
ENV_FILE=$TARGET/moto.env
PYTHON=${PYTHON:-python3}
START_TIMEOUT_S=60

die() { echo "s3-test-server: $*" >&2; exit 1; }

# The python that can import moto: the venv's, or the system one with the --target directory.
moto_python() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import moto.server" 2>/dev/null; then
        echo "$VENV/bin/python"
    elif [ -d "$PKGS" ] && PYTHONPATH=$PKGS "$PYTHON" -c "import moto.server" 2>/dev/null; then
        echo "$PYTHON"
    fi
}

install_moto() {
    if [ -n "$(moto_python)" ]; then
        return
    fi
    command -v "$PYTHON" >/dev/null || die "python3 not found"
    mkdir -p "$TARGET"
    echo "s3-test-server: installing moto[server]==$MOTO_VERSION (once)" >&2
    rm -rf "$VENV"
    if "$PYTHON" -m venv "$VENV" >/dev/null 2>&1 && [ -x "$VENV/bin/pip" ]; then
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2 \
            || die "pip install moto[server]==$MOTO_VERSION failed"
    else
        # No venv module (e.g. Debian without python3-venv): install into a private directory.
        rm -rf "$VENV" "$PKGS"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$PKGS" \
            "moto[server]==$MOTO_VERSION" >&2 || die "pip install --target failed"
    fi
    [ -n "$(moto_python)" ] || die "moto installed but not importable"
}

# Is this pid our moto server (and not a process that reused the pid)?
is_moto() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/cmdline" ]; then
        tr '\0' ' ' <"/proc/$1/cmdline" | grep -q 'moto.server'
    else
        ps -p "$1" -o args= 2>/dev/null | grep -q 'moto.server'
    fi
}

# Is the server recorded in the env file alive and answering?
running() {
    [ -f "$ENV_FILE" ] || return 1
    local endpoint pid
    endpoint=$(sed -n 's/^export CUPS_TEST_S3_ENDPOINT=//p' "$ENV_FILE")
    pid=$(sed -n 's/^export CUPS_TEST_S3_PID=//p' "$ENV_FILE")
    is_moto "$pid" || return 1
    answers "$endpoint"
}

answers() {
    "$PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP answer means it is up
EOF
}

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    if running; then
        echo "s3-test-server: already running" >&2
        cat "$ENV_FILE"
        return
    fi
    stop_quiet
    install_moto
    local py port pid endpoint i
    py=$(moto_python)
    for _attempt in 1 2 3; do
        port=$(free_port)
        endpoint="http://127.0.0.1:$port"
        # Its own session where possible, so no terminal signal of the caller reaches it.
        local detach=()
        command -v setsid >/dev/null && detach=(setsid)
        PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PKGS "${detach[@]}" "$py" -m moto.server \
            -H 127.0.0.1 -p "$port" >"$LOG" 2>&1 </dev/null &
        pid=$!
        for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do
            if answers "$endpoint"; then
                printf 'export CUPS_TEST_S3_ENDPOINT=%s\nexport CUPS_TEST_S3_PID=%s\n' \
                    "$endpoint" "$pid" >"$ENV_FILE"
                echo "s3-test-server: moto $MOTO_VERSION on $endpoint (pid $pid, log $LOG)" >&2
                cat "$ENV_FILE"
                return
            fi
            kill -0 "$pid" 2>/dev/null || break # died (e.g. port taken meanwhile): retry
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
    done
    tail -n 20 "$LOG" >&2 || true
    die "moto did not start (log: $LOG)"
}

stop_quiet() {
    [ -f "$ENV_FILE" ] || return 0
    local pid i
    pid=$(sed -n 's/^export CUPS_TEST_S3_PID=//p' "$ENV_FILE")
    if is_moto "$pid"; then
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$ENV_FILE"
}

case "${1:-}" in
start) start ;;
stop) stop_quiet; echo "s3-test-server: stopped" >&2 ;;
env)
    running || die "not running (run: $0 start)"
    cat "$ENV_FILE"
    ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
