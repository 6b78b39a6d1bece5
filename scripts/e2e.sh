#!/usr/bin/env bash
# make e2e: a production-shaped Airflow on loopback (PostgreSQL, api-server, scheduler,
# dag-processor, triggerer, LocalExecutor) plus the Piriod emulator, driven from outside through
# Airflow's REST API. Every process is stopped and every file removed on exit, pass or fail.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/.venv/bin
install_system_packages() {  # PostgreSQL and Chromium from Debian, when missing
    local missing=()
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
    [ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
    ((${#missing[@]} == 0)) && return
    echo "==> apt-get install ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then echo "installing ${missing[*]} needs root" >&2; exit 1; fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
install_system_packages

WORK=$(mktemp -d /tmp/piriod-e2e.XXXXXX)
chmod 755 "$WORK"
PIDS=()

free_port() { "$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then echo "timed out waiting for $what" >&2; return 1; fi
        sleep 1
    done
}

diagnostics() {
    echo "==== e2e failed; component logs (last 60 lines each) ====" >&2
    for log in "$WORK"/logs/*.log "$WORK/pg/postgres.log"; do
        [ -f "$log" ] && { echo "---- $log" >&2; tail -n 60 "$log" | grep -v '^  token:\|AIRFLOW_CONN_PIRIOD_DEFAULT' >&2; }
    done
    find "$WORK/airflow/logs" -name '*.log' 2>/dev/null | while read -r log; do
        echo "---- task log $log" >&2; tail -n 40 "$log" >&2; done
}

cleanup() {
    local status=$?
    if ((status != 0)); then diagnostics || true; fi
    for pidfile in "$WORK"/*.pid; do [ -f "$pidfile" ] && PIDS+=("$(cat "$pidfile")"); done
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${PGBIN:-}" ]; then runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
mkdir -p "$WORK/logs" "$WORK/pg"
chown postgres "$WORK/pg"

echo "==> PostgreSQL"
PGPORT=$(free_port)
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg/data" --auth=trust -U airflow >"$WORK/logs/initdb.log"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/postgres.log" -w -t 60 \
    -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
runuser -u postgres -- "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U airflow airflow

echo "==> Piriod emulator"
"$BIN/piriod-emulator" --port 0 --customers 300 --seed 0 >"$WORK/logs/emulator.log" 2>&1 &
PIDS+=($!)
wait_for 30 "the emulator" grep -q '^export AIRFLOW_CONN_PIRIOD_DEFAULT' "$WORK/logs/emulator.log"
eval "$(grep '^export AIRFLOW_CONN_PIRIOD_DEFAULT' "$WORK/logs/emulator.log")"
EMULATOR_URL=$(sed -n 's/^Piriod emulator listening on //p' "$WORK/logs/emulator.log")
export EMULATOR_URL

APIPORT=$(free_port)
export AIRFLOW_HOME=$WORK/airflow
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow@127.0.0.1:$PGPORT/airflow"
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/example_dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
export AIRFLOW__CORE__TEST_CONNECTION=Enabled
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$APIPORT/execution/"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$APIPORT
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$APIPORT"
export AIRFLOW__API_AUTH__JWT_SECRET=$("$BIN/python" -c 'import secrets; print(secrets.token_hex(32))')
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
export AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=300
export PIRIOD_EXAMPLE_DATA_DIR=$WORK/data
export AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE="{\"conn_type\": \"sqlite\", \"host\": \"$WORK/warehouse.db\"}"
export AIRFLOW_API_URL="http://127.0.0.1:$APIPORT"

echo "==> airflow db migrate"
"$BIN/airflow" db migrate >"$WORK/logs/migrate.log" 2>&1

echo "==> api-server, scheduler, dag-processor, triggerer"
for component in api-server scheduler dag-processor; do
    "$BIN/airflow" "$component" >"$WORK/logs/$component.log" 2>&1 &
    PIDS+=($!)
done
# the triggerer's pid lives in a file: a test may stop it and start another (cleanup kills every *.pid)
"$BIN/airflow" triggerer >"$WORK/logs/triggerer.log" 2>&1 &
echo $! >"$WORK/triggerer.pid"
export E2E_WORK=$WORK
wait_for 180 "the API server" curl -sf "$AIRFLOW_API_URL/api/v2/monitor/health"

echo "==> end-to-end tests"
"$BIN/python" -m pytest -p no:cacheprovider -o addopts="" -q -rA "$ROOT/tests_e2e" ${E2E_PYTEST_ARGS:-} \
    --rootdir "$ROOT" -c /dev/null -W "ignore::DeprecationWarning"

echo "==> the API token in the collected logs"
TOKEN=$(sed -n 's/^  token: *//p' "$WORK/logs/emulator.log")
if grep -rl --fixed-strings "$TOKEN" "$WORK/logs" "$AIRFLOW_HOME/logs" 2>/dev/null | grep -v emulator.log; then
    echo "the API token appears in the logs above" >&2
    exit 1
fi
echo "e2e passed"
