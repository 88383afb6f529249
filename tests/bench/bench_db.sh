#!/usr/bin/env bash
#
# tests/bench/bench_db.sh - PostgreSQL routes under wrk: req/s, p50, p99 for
# /db, /queries?queries=20 (pipeline on and off), /fortunes, /updates?queries=20,
# and a loop-latency probe: /json p99 measured while /db saturates the server.
#
# Uses PETREL_DATABASE_URL when set, else starts a throwaway PostgreSQL
# (scripts/pg.sh) and stops it on exit. Migrations are applied first.
#
# Environment:
#   PETREL_BENCH_WORKERS      worker threads (default 2)
#   PETREL_BENCH_DURATION     wrk duration per run (default 10s)
#   PETREL_BENCH_CONNECTIONS  wrk -c (default 64)
#   PETREL_BENCH_THREADS      wrk -t (default 2)
#   PETREL_BENCH_POOL_SIZE    database.pool_size, process-wide (default 16)
#   PETREL_BENCH_BUILD        build directory (default build-release, Release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

WORKERS=${PETREL_BENCH_WORKERS:-2}
DURATION=${PETREL_BENCH_DURATION:-10s}
CONNS=${PETREL_BENCH_CONNECTIONS:-64}
WRK_THREADS=${PETREL_BENCH_THREADS:-2}
POOL=${PETREL_BENCH_POOL_SIZE:-16}
BUILD=${PETREL_BENCH_BUILD:-build-release}

command -v wrk >/dev/null || {
    echo "bench_db: wrk not found (scripts/dev.sh deps installs it)" >&2
    exit 1
}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPETREL_TESTS=ON >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target petrel-app >/dev/null
APP="$ROOT/$BUILD/petrel-app"

# shellcheck source=scripts/pg.sh
. "$ROOT/scripts/pg.sh"

SERVER_PID=""
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/petrel-bench-db.XXXXXX")
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
    pg_stop
    rm -rf -- "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${PETREL_DATABASE_URL:-}" ]; then
    pg_start >/dev/null
fi
export PETREL_DATABASE_URL
"$APP" migrate up --config config/default.yaml >/dev/null

PORT=$(pg__free_port)

# start_server PIPELINE: serve with the given database.pipeline value.
start_server() {
    PETREL_SERVER_PORT=$PORT PETREL_SERVER_WORKERS=$WORKERS PETREL_LOG_ACCESS=false \
        PETREL_LOG_LEVEL=error PETREL_DATABASE_POOL_SIZE=$POOL PETREL_DATABASE_PIPELINE=$1 \
        PETREL_DATABASE_MIN_IDLE=$((POOL / WORKERS)) \
        "$APP" serve --config config/default.yaml >"$LOGDIR/server.out" 2>"$LOGDIR/server.err" &
    SERVER_PID=$!
    local i
    for i in $(seq 1 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/db" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench_db: server did not become ready" >&2
    cat "$LOGDIR/server.err" >&2
    exit 1
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# run LABEL PATH [DURATION [CONNS]]: prints "label req/s p50 p99 non2xx".
run() {
    local label=$1 path=$2 dur=${3:-$DURATION} conns=${4:-$CONNS} out rps p50 p99 errs
    out=$(wrk -t"$WRK_THREADS" -c"$conns" -d"$dur" --latency "http://127.0.0.1:$PORT$path")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    printf '%-34s %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$label" "$rps" "$p50" "$p99" \
        "${errs:-0}"
}

echo "bench_db: workers=$WORKERS wrk -t$WRK_THREADS -c$CONNS -d$DURATION pool_size=$POOL"
start_server true
run "GET /json (baseline, idle DB)" /json
run "GET /db" /db
run "GET /queries?queries=20 (pipeline)" "/queries?queries=20"
run "GET /fortunes" /fortunes
run "GET /updates?queries=20 (pipeline)" "/updates?queries=20"
# Loop latency: /json with few connections while /db saturates the server.
wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$PORT/db" >"$LOGDIR/sat.out" 2>&1 &
SAT=$!
sleep 1
run "GET /json -c8 while /db saturates" /json "$(( ${DURATION%s} - 2 ))s" 8
wait "$SAT" || true
stop_server
start_server false
run "GET /queries?queries=20 (no pipe)" "/queries?queries=20"
run "GET /updates?queries=20 (no pipe)" "/updates?queries=20"
stop_server
