#!/usr/bin/env bash
# Browser test of the web dashboard (README "Dashboard"): headless Debian chromium driven by
# selenium against a live `taskraft dev` cluster (3 replicas on API ports 7101-7103, 2
# workers). The checks are in tests/dashboard/test_dashboard.py: every page through a follower,
# the leader and a token-checking proxy, including the workflow pages (a diamond with a 3-shard
# node drawn as SVG and followed live to succeeded, a 200-node workflow drawn and cancelled).
# Screenshots of every page are kept in the test's temp dir (printed at the end).
#
# Env: TASKRAFT_BIN (default target/release/taskraft, else target/debug/taskraft),
#      TASKRAFT_TOKEN or TASKRAFT_TOKEN_FILE (log in through the dashboard's token prompt;
#      default: the admin token `taskraft dev` keeps in its data dir when auth is on),
#      DASHBOARD_VENV (default target/dashboard-venv), DASHBOARD_OUT (default: a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

SELENIUM_VERSION=4.27.1
READY_DEADLINE_S=90

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

venv="${DASHBOARD_VENV:-target/dashboard-venv}"
if ! "$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "selenium==$SELENIUM_VERSION"
fi

bin="${TASKRAFT_BIN:-}"
if [ -z "$bin" ]; then
    if [ -x target/release/taskraft ]; then bin=target/release/taskraft; else
        cargo build --locked --bin taskraft
        bin=target/debug/taskraft
    fi
fi

for port in 7101 7102 7103 7201 7202 7203; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use: stop the other taskraft dev cluster first" >&2
        exit 1
    fi
done

tmp="$(mktemp -d -t taskraft-dashboard-XXXXXX)"
out="${DASHBOARD_OUT:-$tmp/screenshots}"
echo "== dashboard: taskraft dev (data and log in $tmp)"
"$bin" dev --data-dir "$tmp/data" >"$tmp/dev.log" 2>&1 &
dev_pid=$!
stop_dev() {
    if kill -0 "$dev_pid" 2>/dev/null; then
        kill -INT "$dev_pid" 2>/dev/null || true
        # dev stops its replicas and workers itself (SIGTERM, grace, SIGKILL); wait for it.
        for _ in $(seq 1 150); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$dev_pid" 2>/dev/null || true
    fi
    wait "$dev_pid" 2>/dev/null || true
}
trap stop_dev EXIT

deadline=$((SECONDS + READY_DEADLINE_S))
for port in 7101 7102 7103; do
    until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do
        if ! kill -0 "$dev_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            echo "the dev cluster did not become ready (replica on $port); its output:" >&2
            cat "$tmp/dev.log" >&2
            exit 1
        fi
        sleep 0.2
    done
done
# With auth on, `taskraft dev` keeps its admin token in the data dir: log in with that one
# unless a token was given.
if [ -z "${TASKRAFT_TOKEN:-}" ] && [ -z "${TASKRAFT_TOKEN_FILE:-}" ] && [ -s "$tmp/data/admin-token" ]; then
    export TASKRAFT_TOKEN_FILE="$tmp/data/admin-token"
fi
token="${TASKRAFT_TOKEN:-}"
if [ -z "$token" ] && [ -n "${TASKRAFT_TOKEN_FILE:-}" ]; then token="$(tr -d '[:space:]' <"$TASKRAFT_TOKEN_FILE")"; fi
auth=()
[ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
# Both workers registered: the workers page must list them.
until [ "$(curl -sf "${auth[@]}" http://127.0.0.1:7101/v1/workers | grep -o '"state":"active"' | wc -l)" -ge 2 ]; do
    if [ $SECONDS -ge $deadline ]; then
        echo "the dev workers did not register; dev output:" >&2
        cat "$tmp/dev.log" >&2
        exit 1
    fi
    sleep 0.2
done

echo "== dashboard: browser test (selenium $SELENIUM_VERSION, $(chromium --version 2>/dev/null | head -1))"
start=$SECONDS
status=0
"$venv/bin/python" tests/dashboard/test_dashboard.py --base http://127.0.0.1:7101 --out "$out" --workers 2 || status=$?
echo "== dashboard: browser test took $((SECONDS - start)) s; screenshots in $out"
if [ "$status" -ne 0 ]; then
    echo "-- dev output:" >&2
    tail -n 50 "$tmp/dev.log" >&2
fi
exit "$status"
