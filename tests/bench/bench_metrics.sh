#!/usr/bin/env bash
#
# tests/bench/bench_metrics.sh - the cost of metrics: GET /json req/s of the
# same server with server.metrics=true and server.metrics=false (access log
# off in both, so only the metrics path differs). Target: on/off >= 0.97.
#
# Runs alternate (on, off, on, off, ...) so that drift on a noisy box hits both
# alike. The verdict uses the median of the per-round ratios, which one
# disturbed run cannot swing; the ratio of the summed req/s is printed too. Uses tests/bench/bench_metrics_server.c
# (no database needed). It also prints the servers' CPU time per request over all rounds.
#
# Environment:
#   PETREL_BENCH_WORKERS   worker threads (default 2)
#   PETREL_BENCH_DURATION  wrk duration per run (default 4s: more, shorter rounds
#                          cancel the box's drift better than a few long ones)
#   PETREL_BENCH_ROUNDS    rounds of the alternation (default 7)
#   PETREL_BENCH_CONNECTIONS, PETREL_BENCH_THREADS  wrk -c / -t (default 64 / 2)
#   PETREL_BENCH_BUILD     build directory (default build-release, Release)
#
# Listens on 127.0.0.1 only; every server is killed by PID when the script exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

WORKERS=${PETREL_BENCH_WORKERS:-2}
DURATION=${PETREL_BENCH_DURATION:-4s}
ROUNDS=${PETREL_BENCH_ROUNDS:-7}
CONNS=${PETREL_BENCH_CONNECTIONS:-64}
WRK_THREADS=${PETREL_BENCH_THREADS:-2}
BUILD=${PETREL_BENCH_BUILD:-build-release}
TARGET_RATIO=0.97

command -v wrk >/dev/null || {
    echo "bench_metrics: wrk not found (scripts/dev.sh deps installs it)" >&2
    exit 1
}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPETREL_TESTS=ON >/dev/null
else
    # Configure again: a tree configured before bench_metrics_server.c existed has no
    # such target, and make cannot re-run the source glob for a target it does not know.
    cmake -S . -B "$BUILD" >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target bench_metrics_server >/dev/null
SERVER="$BUILD/tests/bench/bench_metrics_server"

PIDS=()
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/petrel-bench-metrics.XXXXXX")
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    rm -rf -- "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=scripts/pg.sh
. "$ROOT/scripts/pg.sh" # for pg__free_port only

# The bench server declares no app keys (no database): a config of its own.
printf 'log:\n  level: warn\n  access: false\n' >"$LOGDIR/bench.yaml"

# start NAME METRICS -> sets PORT
start() {
    local name=$1 metrics=$2
    PORT=$(pg__free_port)
    PETREL_SERVER_WORKERS=$WORKERS PETREL_SERVER_HOST=127.0.0.1 PETREL_SERVER_PORT=$PORT \
        PETREL_LOG_ACCESS=false PETREL_SERVER_METRICS=$metrics PETREL_DEBUG=false \
        "$SERVER" serve --config "$LOGDIR/bench.yaml" >/dev/null 2>"$LOGDIR/$name.err" &
    PIDS+=($!)
    SPID=$!
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/json" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench_metrics: $name did not start:" >&2
    cat "$LOGDIR/$name.err" >&2
    exit 1
}

start on true
ON_PORT=$PORT
ON_PID=$SPID
start off false
OFF_PORT=$PORT
OFF_PID=$SPID
curl -fsS "http://127.0.0.1:$ON_PORT/metrics" | grep -q '^petrel_http_requests_total' ||
    { echo "bench_metrics: metrics not served with server.metrics=true" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OFF_PORT/metrics")" = 404 ] ||
    { echo "bench_metrics: /metrics answered with server.metrics=false" >&2; exit 1; }

# cpu_ticks PID: user + system clock ticks the server has used so far.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# run PORT PID NAME: req/s on stdout; adds the run's requests and server CPU ticks to
# REQ_<NAME> and CPU_<NAME>, the steadier figure on a box whose wrk shares the CPUs.
run() {
    local out c0 c1
    c0=$(cpu_ticks "$2")
    out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$1/json")
    c1=$(cpu_ticks "$2")
    eval "REQ_$3=\$(( REQ_$3 + $(awk '/requests in/ {print $1}' <<<"$out") ))"
    eval "CPU_$3=\$(( CPU_$3 + c1 - c0 ))"
    RUN_RPS=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
}
REQ_on=0 CPU_on=0 REQ_off=0 CPU_off=0

echo "bench_metrics: GET /json, $WORKERS workers, wrk -t$WRK_THREADS -c$CONNS -d$DURATION, $ROUNDS rounds"
sum_on=0
sum_off=0
ratios=()
for r in $(seq 1 "$ROUNDS"); do
    run "$ON_PORT" "$ON_PID" on
    on=$RUN_RPS
    run "$OFF_PORT" "$OFF_PID" off
    off=$RUN_RPS
    printf '  round %d: metrics on %10.0f req/s   off %10.0f req/s\n' "$r" "$on" "$off"
    sum_on=$(awk -v a="$sum_on" -v b="$on" 'BEGIN {print a + b}')
    sum_off=$(awk -v a="$sum_off" -v b="$off" 'BEGIN {print a + b}')
    ratios+=("$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.4f", a / b}')")
done
total=$(awk -v a="$sum_on" -v b="$sum_off" 'BEGIN {printf "%.3f", a / b}')
ratio=$(printf '%s\n' "${ratios[@]}" | sort -n |
    awk '{v[NR] = $1} END {printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
echo "bench_metrics: per-round on/off: ${ratios[*]}"
echo "bench_metrics: on/off = $ratio median of rounds, $total of summed req/s (target >= $TARGET_RATIO)"
awk -v ro="$REQ_on" -v co="$CPU_on" -v rf="$REQ_off" -v cf="$CPU_off" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { on = co * 1e6 / hz / ro; off = cf * 1e6 / hz / rf
             printf "bench_metrics: server CPU per request: on %.2f us, off %.2f us (off/on %.3f)\n",
                 on, off, off / on }'
awk -v r="$ratio" -v t="$TARGET_RATIO" 'BEGIN {exit !(r >= t)}'
