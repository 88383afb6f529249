#!/usr/bin/env bash
#
# tests/bench/bench_cpu.sh - the point of the process pool: while POST
# /api/score keeps every pool child busy, GET /json p99 should stay within 2x
# its idle value; the same CPU work done inline on the loop (POST
# /api/score_inline, debug only) shows the stall it causes.
#
# Three phases, each measuring GET /json with `wrk --latency`:
#   idle     nothing else running
#   pool     plus a wrk loading POST /api/score (process pool)
#   inline   plus a wrk loading POST /api/score_inline (on the event loop)
#
# Environment:
#   PETREL_BENCH_APP       petrel-app binary (default build-release/petrel-app, built if absent)
#   PETREL_BENCH_WORKERS   worker threads (default 2)
#   PETREL_BENCH_DURATION  wrk duration per phase (default 5s)
#   PETREL_BENCH_ROUNDS    SHA-256 rounds per score job (default 200000)
# A throwaway PostgreSQL is started (scripts/pg.sh) unless PETREL_DATABASE_URL is set.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
APP=${PETREL_BENCH_APP:-build-release/petrel-app}
WORKERS=${PETREL_BENCH_WORKERS:-2}
DURATION=${PETREL_BENCH_DURATION:-5s}
ROUNDS=${PETREL_BENCH_ROUNDS:-200000}

command -v wrk >/dev/null || { echo "bench_cpu: wrk not found" >&2; exit 1; }
if [ ! -x "$APP" ]; then
    cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DPETREL_TESTS=OFF >/dev/null
    cmake --build build-release -j"$(nproc)" --target petrel-app >/dev/null
fi

APP_PID=""
TMP=$(mktemp -d)
cleanup() {
    [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null && wait "$APP_PID" 2>/dev/null || true
    if declare -F pg_stop >/dev/null; then pg_stop; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

if [ -z "${PETREL_DATABASE_URL:-}" ]; then
    # shellcheck source=scripts/pg.sh
    . scripts/pg.sh
    pg_start >/dev/null
fi
"$APP" migrate up --config config/default.yaml >/dev/null

PORT=$(( (RANDOM % 20000) + 30000 ))
PETREL_SERVER_PORT=$PORT PETREL_SERVER_WORKERS=$WORKERS PETREL_DEBUG=true \
    PETREL_LOG_ACCESS=false PETREL_PROCESS_POOL_BACKLOG=1000 PETREL_PROCESS_POOL_JOB_TIMEOUT_MS=60000 \
    PETREL_SERVER_REQUEST_TIMEOUT_MS=120000 \
    "$APP" serve --config config/default.yaml >"$TMP/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done

for r in score score_inline; do
    cat >"$TMP/$r.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"data":"petrel","rounds":$ROUNDS}'
wrk.headers["Content-Type"] = "application/json"
LUA
done

p99() { awk '$1 == "99%" {print $2}' "$1"; }
json_p99() {
    wrk -t1 -c8 -d"$DURATION" --latency "http://127.0.0.1:$PORT/json" >"$TMP/json_$1.txt"
    p99 "$TMP/json_$1.txt"
}
load() {
    wrk -t1 -c8 -d"$DURATION" --timeout 60s -s "$TMP/$1.lua" "http://127.0.0.1:$PORT/api/$1" \
        >"$TMP/load_$1.txt"
}

IDLE=$(json_p99 idle)
load score & L=$!; sleep 0.5; POOL=$(json_p99 pool); wait "$L"
SCORE_RPS=$(awk '/Requests\/sec/ {print $2}' "$TMP/load_score.txt")
load score_inline & L=$!; sleep 0.5; INLINE=$(json_p99 inline); wait "$L"
INLINE_RPS=$(awk '/Requests\/sec/ {print $2}' "$TMP/load_score_inline.txt")

echo "GET /json p99 idle:                         $IDLE"
echo "GET /json p99 while /api/score saturates:   $POOL   (score jobs/s: $SCORE_RPS)"
echo "GET /json p99 while /api/score_inline runs: $INLINE   (inline jobs/s: $INLINE_RPS)"
