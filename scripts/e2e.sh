#!/usr/bin/env bash
# make e2e: a production-shaped Airflow on loopback (PostgreSQL, api-server, scheduler,
# dag-processor, triggerer) plus the Piriod emulator, driven from outside through Airflow's REST
# API, deployed twice with the same tests: on the LocalExecutor, then on the CeleryExecutor with a
# Redis broker and two Celery workers. Each deployment lives in its own work dir; every process is
# stopped and every file removed when it ends, pass or fail.
#
#   E2E_EXECUTORS="CeleryExecutor" make e2e     one deployment only
#   E2E_PYTEST_ARGS="-k fifty" make e2e         some of the tests only (one word: it is split on spaces)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/.venv/bin
EXECUTORS=${E2E_EXECUTORS:-LocalExecutor CeleryExecutor}
CELERY_WORKERS=(e2e-worker-1 e2e-worker-2)
CELERY_CONCURRENCY=8 # per worker: two of them hold 16 tasks, Airflow's default max_active_tasks per DAG

install_system_packages() { # PostgreSQL, Redis and Chromium from Debian, when missing
    local missing=()
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
    [ -x /usr/bin/redis-server ] || missing+=(redis-server)
    [ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
    ((${#missing[@]} == 0)) && return
    echo "==> apt-get install ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then echo "installing ${missing[*]} needs root" >&2; exit 1; fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

free_port() { "$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then echo "timed out waiting for $what" >&2; return 1; fi
        sleep 1
    done
}

start() { # start NAME COMMAND...: run a component in the background, its output in logs/NAME.log
    local name=$1
    shift
    "$@" >"$WORK/logs/$name.log" 2>&1 &
    PIDS+=($!)
}

# ---------------------------------------------------------------- one deployment's components

start_postgres() {
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    PGPORT=$(free_port)
    mkdir -p "$WORK/pg"
    chown postgres "$WORK/pg"
    runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg/data" --auth=trust -U airflow >"$WORK/logs/initdb.log"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/postgres.log" -w -t 60 \
        -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
    runuser -u postgres -- "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U airflow airflow
}

start_emulator() { # exports EMULATOR_URL and the piriod_default connection it prints, with a webhook secret
    start emulator "$BIN/piriod-emulator" --port 0 --customers 300 --seed 0
    wait_for 30 "the emulator" grep -q '^export AIRFLOW_CONN_PIRIOD_DEFAULT' "$WORK/logs/emulator.log"
    eval "$(grep '^export AIRFLOW_CONN_PIRIOD_DEFAULT' "$WORK/logs/emulator.log")"
    EMULATOR_URL=$(sed -n 's/^Piriod emulator listening on //p' "$WORK/logs/emulator.log")
    E2E_WEBHOOK_SECRET=whsecret_$("$BIN/python" -c 'import secrets; print(secrets.token_hex(20))')
    AIRFLOW_CONN_PIRIOD_DEFAULT=$("$BIN/python" -c 'import json, os, sys
conn = json.loads(os.environ["AIRFLOW_CONN_PIRIOD_DEFAULT"])
conn["extra"] = {**conn.get("extra", {}), "webhook_secret": sys.argv[1]}
print(json.dumps(conn))' "$E2E_WEBHOOK_SECRET")
    export EMULATOR_URL E2E_WEBHOOK_SECRET AIRFLOW_CONN_PIRIOD_DEFAULT
}

start_redis() { # the Celery broker: loopback only, nothing written to disk
    REDISPORT=$(free_port)
    mkdir -p "$WORK/redis"
    start redis redis-server --bind 127.0.0.1 --port "$REDISPORT" --dir "$WORK/redis" \
        --save "" --appendonly no --protected-mode yes
    wait_for 30 "Redis" redis-cli -h 127.0.0.1 -p "$REDISPORT" ping
}

configure_airflow() { # configure_airflow EXECUTOR: the whole Airflow environment, exported to every component and the tests
    local executor=$1
    APIPORT=$(free_port)
    export E2E_EXECUTOR=$executor E2E_WORK=$WORK
    export AIRFLOW_HOME=$WORK/airflow
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow@127.0.0.1:$PGPORT/airflow"
    export AIRFLOW__CORE__EXECUTOR=$executor
    export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/example_dags
    export AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
    export AIRFLOW__CORE__TEST_CONNECTION=Enabled
    export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$APIPORT/execution/"
    export AIRFLOW__API__HOST=127.0.0.1
    export AIRFLOW__API__PORT=$APIPORT
    export AIRFLOW__API__BASE_URL="http://127.0.0.1:$APIPORT"
    AIRFLOW__API_AUTH__JWT_SECRET=$("$BIN/python" -c 'import secrets; print(secrets.token_hex(32))')
    export AIRFLOW__API_AUTH__JWT_SECRET
    export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
    export AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=300
    export PIRIOD_EXAMPLE_DATA_DIR=$WORK/data
    export PIRIOD_EXAMPLE_POLL_INTERVAL=3 # the event-driven example polls Piriod every 3 s here
    export AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE="{\"conn_type\": \"sqlite\", \"host\": \"$WORK/warehouse.db\"}"
    export AIRFLOW_API_URL="http://127.0.0.1:$APIPORT"
    export E2E_WORKERS="" # the Celery workers' host names, for the tests; none on the LocalExecutor
    if [ "$executor" = CeleryExecutor ]; then
        export AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:$REDISPORT/0"
        export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql+psycopg2://airflow@127.0.0.1:$PGPORT/airflow"
        export AIRFLOW__CELERY__WORKER_CONCURRENCY=$CELERY_CONCURRENCY
        export E2E_WORKERS="${CELERY_WORKERS[*]}"
    fi
}

start_airflow() { # api-server, scheduler, dag-processor and triggerer, on a migrated database
    "$BIN/airflow" db migrate >"$WORK/logs/migrate.log" 2>&1
    # every component reads and writes the task logs in AIRFLOW_HOME/logs, so none serves them over
    # HTTP (Airflow's log server listens on every interface, not on loopback)
    # the api-server's and the triggerer's pids live in files: a test may stop one and start another
    # (cleanup kills every *.pid)
    "$BIN/airflow" api-server >"$WORK/logs/api-server.log" 2>&1 &
    echo $! >"$WORK/api-server.pid"
    start scheduler "$BIN/airflow" scheduler --skip-serve-logs
    start dag-processor "$BIN/airflow" dag-processor
    "$BIN/airflow" triggerer --skip-serve-logs >"$WORK/logs/triggerer.log" 2>&1 &
    echo $! >"$WORK/triggerer.pid"
}

write_worker_hostname_callable() {
    # Task instances record the host their worker reports ([core] hostname_callable). These workers
    # share one machine, so each reports the name it was started under, as it would on its own host.
    mkdir -p "$WORK/celery"
    cat >"$WORK/celery/e2e_worker_host.py" <<'PY'
import os


def name() -> str:
    return os.environ["E2E_WORKER_HOST"]
PY
}

start_celery_workers() { # two workers on the Redis queue, each named as its own host
    write_worker_hostname_callable
    local worker
    for worker in "${CELERY_WORKERS[@]}"; do
        start "$worker" env E2E_WORKER_HOST="$worker" PYTHONPATH="$WORK/celery" \
            AIRFLOW__CORE__HOSTNAME_CALLABLE=e2e_worker_host.name \
            "$BIN/airflow" celery worker --celery-hostname "celery@$worker" --concurrency "$CELERY_CONCURRENCY" \
            --skip-serve-logs
    done
    for worker in "${CELERY_WORKERS[@]}"; do
        wait_for 180 "Celery worker $worker" grep -q "celery@$worker ready" "$WORK/logs/$worker.log"
    done
}

run_tests() {
    wait_for 180 "the API server" curl -sf "$AIRFLOW_API_URL/api/v2/monitor/health"
    echo "==> end-to-end tests on the $E2E_EXECUTOR"
    # shellcheck disable=SC2086  # E2E_PYTEST_ARGS holds several arguments
    "$BIN/python" -m pytest -p no:cacheprovider -o addopts="" -q -rA --durations=5 "$ROOT/tests_e2e" \
        ${E2E_PYTEST_ARGS:-} --rootdir "$ROOT" -c /dev/null -W "ignore::DeprecationWarning"
}

check_token_not_logged() {
    echo "==> the API token and the webhook secret in the collected logs"
    local token secret
    token=$(sed -n 's/^  token: *//p' "$WORK/logs/emulator.log")
    for secret in "$token" "$E2E_WEBHOOK_SECRET"; do
        if grep -rl --fixed-strings "$secret" "$WORK/logs" "$AIRFLOW_HOME/logs" 2>/dev/null | grep -v emulator.log; then
            echo "a secret appears in the logs above" >&2
            return 1
        fi
    done
}

# ---------------------------------------------------------------- teardown

diagnostics() {
    echo "==== e2e failed on the ${E2E_EXECUTOR:-}; component logs (last 60 lines each) ====" >&2
    for log in "$WORK"/logs/*.log "$WORK/pg/postgres.log"; do
        [ -f "$log" ] && { echo "---- $log" >&2; tail -n 60 "$log" | grep -v '^  token:\|AIRFLOW_CONN_PIRIOD_DEFAULT' >&2; }
    done
    find "$WORK/airflow/logs" -name '*.log' 2>/dev/null | while read -r log; do
        echo "---- task log $log" >&2
        tail -n 40 "$log" >&2
    done
}

stop_processes() { # SIGTERM each (a Celery worker then finishes its tasks); SIGKILL what is left after 60 s
    local pid deadline=$((SECONDS + 60))
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid did not stop in time; killing it and its children" >&2
            # shellcheck disable=SC2046  # one pid per word
            kill -KILL $(pgrep -P "$pid") "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local status=$?
    if ((status != 0)); then diagnostics || true; fi
    for pidfile in "$WORK"/*.pid; do [ -f "$pidfile" ] && PIDS+=("$(cat "$pidfile")"); done
    stop_processes "${PIDS[@]}"
    if [ -n "${PGBIN:-}" ]; then runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
    exit "$status"
}

# ---------------------------------------------------------------- main

deployment() { # deployment EXECUTOR: start everything, run the tests, stop everything (run in a subshell)
    local executor=$1
    WORK=$(mktemp -d /tmp/piriod-e2e.XXXXXX)
    chmod 755 "$WORK"
    mkdir -p "$WORK/logs"
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT # through cleanup, as a failure
    trap 'exit 143' TERM
    case $executor in
        LocalExecutor) echo "==> $executor deployment: PostgreSQL, the Piriod emulator" ;;
        CeleryExecutor) echo "==> $executor deployment: PostgreSQL, the Piriod emulator, Redis" ;;
        *) echo "unknown executor $executor (LocalExecutor or CeleryExecutor)" >&2; return 1 ;;
    esac
    start_postgres
    start_emulator
    if [ "$executor" = CeleryExecutor ]; then start_redis; fi
    configure_airflow "$executor"
    echo "==> airflow db migrate; api-server, scheduler, dag-processor, triggerer"
    start_airflow
    if [ "$executor" = CeleryExecutor ]; then
        echo "==> Celery workers ${CELERY_WORKERS[*]}"
        start_celery_workers
    fi
    run_tests
    check_token_not_logged
}

main() {
    install_system_packages
    for executor in $EXECUTORS; do
        (deployment "$executor")
    done
    echo "e2e passed ($EXECUTORS)"
}

# on one line, so bash has read all of this file before running it: editing it meanwhile is harmless
main "$@"; exit
