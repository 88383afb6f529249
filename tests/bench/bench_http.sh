#!/usr/bin/env bash
#
# tests/bench/bench_http.sh - outbound HTTP under load: wrk on
# GET /api/price/X (one upstream call) and GET /api/dashboard?cities=a,b,c
# (three concurrent upstream calls per request) with petrel-stub as the
# upstream. Prints req/s, p50/p99, errors, and the stub's accepted-connection
# count for each run, which must stay <= upstreams.*.max_connections: the
# shared keep-alive client makes "one connection per request" impossible.
#
# Environment:
#   PETREL_BENCH_WORKERS      worker threads (default 2)
#   PETREL_BENCH_DURATION     wrk duration per route (default 10s)
#   PETREL_BENCH_CONNECTIONS, PETREL_BENCH_THREADS  wrk -c / -t (default 64 / 2)
#   PETREL_BENCH_MAX_CONNECTIONS  upstreams.*.max_connections (default 20)
#   PETREL_BENCH_BUILD        build directory (default build-release, built if needed)
#
# Starts a throwaway PostgreSQL (the app's readiness needs one), the stub and
# the app on 127.0.0.1; everything is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

WORKERS=${PETREL_BENCH_WORKERS:-2}
DURATION=${PETREL_BENCH_DURATION:-10s}
CONNS=${PETREL_BENCH_CONNECTIONS:-64}
WRK_THREADS=${PETREL_BENCH_THREADS:-2}
MAXC=${PETREL_BENCH_MAX_CONNECTIONS:-20}
BUILD=${PETREL_BENCH_BUILD:-build-release}

command -v wrk >/dev/null || {
    echo "bench_http: wrk not found (scripts/dev.sh deps installs it)" >&2
    exit 1
}
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPETREL_TESTS=ON >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target petrel-app petrel-stub >/dev/null

# shellcheck source=scripts/pg.sh
. "$ROOT/scripts/pg.sh"

PIDS=()
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/petrel-bench-http.XXXXXX")
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    pg_stop
    rm -rf -- "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_start >/dev/null
"$BUILD/petrel-app" migrate up --config config/default.yaml >/dev/null

STUB_PORT=$(pg__free_port)
"$BUILD/petrel-stub" --port "$STUB_PORT" >/dev/null 2>"$LOGDIR/stub.err" &
PIDS+=($!)

APP_PORT=$(pg__free_port)
UP="http://127.0.0.1:$STUB_PORT"
PETREL_SERVER_WORKERS=$WORKERS PETREL_SERVER_HOST=127.0.0.1 PETREL_SERVER_PORT=$APP_PORT \
    PETREL_LOG_ACCESS=false \
    PETREL_UPSTREAMS_PRICES_BASE_URL=$UP PETREL_UPSTREAMS_WEATHER_BASE_URL=$UP \
    PETREL_UPSTREAMS_PRICES_MAX_CONNECTIONS=$MAXC PETREL_UPSTREAMS_WEATHER_MAX_CONNECTIONS=$MAXC \
    PETREL_UPSTREAMS_PRICES_MAX_KEEPALIVE=$MAXC PETREL_UPSTREAMS_WEATHER_MAX_KEEPALIVE=$MAXC \
    "$BUILD/petrel-app" serve --config config/default.yaml >/dev/null 2>"$LOGDIR/app.err" &
APP_PID=$!
PIDS+=($APP_PID)
for _ in $(seq 1 100); do
    kill -0 "$APP_PID" 2>/dev/null || { cat "$LOGDIR/app.err" >&2; exit 1; }
    curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/api/price/WARM" 2>/dev/null && break
    sleep 0.1
done

to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.2f", n }'
}

stub() { curl -fsS "http://127.0.0.1:$STUB_PORT/$1"; }

printf '%-34s %10s %9s %9s %8s %10s %8s\n' route req/s p50_ms p99_ms errors stub_conns limit
fail=0
for target in "/api/price/X" "/api/dashboard?cities=a,b,c"; do
    stub reset >/dev/null
    out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$APP_PORT$target")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    sockerr=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    errors=$(( ${non2xx:-0} + ${sockerr:-0} ))
    # The /stats request's own connection is counted by the stub: subtract it.
    accepted=$(( $(stub stats | sed -E 's/.*"accepted":([0-9]+).*/\1/') - 1 ))
    printf '%-34s %10s %9s %9s %8s %10s %8s\n' "$target" "$rps" "$p50" "$p99" "$errors" \
        "$accepted" "$MAXC"
    if [ "$accepted" -gt "$MAXC" ]; then
        echo "bench_http: the stub accepted $accepted connections, over max_connections=$MAXC" >&2
        fail=1
    fi
done
curl -fsS "http://127.0.0.1:$APP_PORT/api/upstreams"
echo
exit $fail
