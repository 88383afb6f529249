#!/usr/bin/env bash
#
# tests/bench/bench_json.sh - GET /json throughput and latency of petrel
# against bare libh2o (tests/bench/bare_h2o.c) on the same machine, same
# worker count, same wrk settings. Target: petrel/bare >= 0.90 in req/s.
#
# petrel runs twice: with config/default.yaml (access log on, written to
# /dev/null so the disk is not measured) and with log.access=false; host,
# port and workers come from the environment. Each round runs the three back
# to back, the rounds cycling through all six orders, so that a box whose speed
# drifts (run-to-run noise here is +-10-15%) or differs by position favours no
# server; the verdict is the median of the per-round ratios, which a disturbed
# round cannot swing.
#
# Environment:
#   PETREL_BENCH_WORKERS   worker threads for both servers (default 2)
#   PETREL_BENCH_DURATION  wrk duration per run (default 10s)
#   PETREL_BENCH_ROUNDS    rounds (default 12: two cycles of the six orders; more
#                          rounds follow the box's drift better, shorter runs are noisier)
#   PETREL_BENCH_CONNECTIONS, PETREL_BENCH_THREADS  wrk -c / -t (default 64 / 2)
#
# Builds build-release/ (Release) if needed. Listens on 127.0.0.1 only; every
# server is killed by PID when the script exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

WORKERS=${PETREL_BENCH_WORKERS:-2}
DURATION=${PETREL_BENCH_DURATION:-10s}
ROUNDS=${PETREL_BENCH_ROUNDS:-12}
CONNS=${PETREL_BENCH_CONNECTIONS:-64}
WRK_THREADS=${PETREL_BENCH_THREADS:-2}
BUILD=build-release
TARGET_RATIO=0.90

command -v wrk >/dev/null || {
    echo "bench_json: wrk not found (scripts/dev.sh deps installs it)" >&2
    exit 1
}

# ---- build ----
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPETREL_TESTS=ON >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target petrel-app bare_h2o >/dev/null

# ---- servers ----
PIDS=()
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/petrel-bench.XXXXXX")

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    if [ -n "${PG_STARTED:-}" ]; then pg_stop; fi
    rm -rf -- "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=scripts/pg.sh
. "$ROOT/scripts/pg.sh"

# petrel-app needs its database to start (the pool warms up in the lifespan);
# /json itself never touches it.
if [ -z "${PETREL_DATABASE_URL:-}" ]; then
    pg_start >/dev/null
    PG_STARTED=1
fi
export PETREL_DATABASE_URL
"$BUILD/petrel-app" migrate up --config config/default.yaml >/dev/null

free_port() {
    pg__free_port
}

# wait_ready PID PORT NAME: until GET /json answers 200 (10 s at most).
wait_ready() {
    local pid=$1 port=$2 name=$3 i
    for i in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "bench_json: $name exited during startup; its stderr:" >&2
            cat "$LOGDIR/$name.err" >&2 || true
            exit 1
        fi
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/json" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench_json: $name not ready on port $port after ${i}00 ms" >&2
    exit 1
}

BARE_PORT=$(free_port)
"$BUILD/tests/bench/bare_h2o" "$WORKERS" "$BARE_PORT" >/dev/null 2>"$LOGDIR/bare.err" &
PIDS+=($!)
wait_ready "$!" "$BARE_PORT" bare

# petrel: the default config; only workers/host/port are set from outside.
PETREL_PORT=$(free_port)
PETREL_SERVER_WORKERS=$WORKERS PETREL_SERVER_HOST=127.0.0.1 PETREL_SERVER_PORT=$PETREL_PORT \
    "$BUILD/petrel-app" serve --config config/default.yaml >/dev/null 2>"$LOGDIR/petrel.err" &
PIDS+=($!)
wait_ready "$!" "$PETREL_PORT" petrel

NOLOG_PORT=$(free_port)
PETREL_SERVER_WORKERS=$WORKERS PETREL_SERVER_HOST=127.0.0.1 PETREL_SERVER_PORT=$NOLOG_PORT \
    PETREL_LOG_ACCESS=false "$BUILD/petrel-app" serve --config config/default.yaml >/dev/null 2>"$LOGDIR/petrel-noaccess.err" &
PIDS+=($!)
wait_ready "$!" "$NOLOG_PORT" petrel-noaccess

# Same bytes on the wire from both (TechEmpower rules), or the comparison is moot.
bare_body=$(curl -fsS "http://127.0.0.1:$BARE_PORT/json")
petrel_body=$(curl -fsS "http://127.0.0.1:$PETREL_PORT/json")
if [ "$bare_body" != "$petrel_body" ]; then
    echo "bench_json: warning: bodies differ: bare '$bare_body' petrel '$petrel_body'" >&2
fi

# ---- measure ----

# to_ms VALUE: wrk latency ("603.00us", "6.72ms", "1.20s") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

RESULTS="$LOGDIR/results" # lines: round name rps p50_ms p99_ms errors
: >"$RESULTS"

# measure ROUND NAME PORT
measure() {
    local round=$1 name=$2 port=$3 out rps p50 p99 errs
    out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/json")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errs=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i } END {print n + 0}' <<<"$out")
    printf '%s %s %s %s %s %s\n' "$round" "$name" "${rps:-0}" "$p50" "$p99" "$errs" >>"$RESULTS"
    printf '  %-16s %10.0f req/s   p50 %7.3f ms   p99 %7.3f ms   errors %s\n' \
        "$name" "${rps:-0}" "$p50" "$p99" "$errs"
}

echo "bench_json: GET /json, $WORKERS worker(s) each, wrk -t$WRK_THREADS -c$CONNS -d$DURATION" \
    "--latency, $ROUNDS round(s), $(nproc) CPU(s) shared with wrk"
# Warm-up: first-touch page faults, fiber pools, connection setup.
for port in "$BARE_PORT" "$PETREL_PORT" "$NOLOG_PORT"; do
    wrk -t"$WRK_THREADS" -c"$CONNS" -d2s "http://127.0.0.1:$port/json" >/dev/null
done
# The rounds cycle through all six orders of the three servers, so over every six rounds
# each server runs first, second and third equally often: a box that is faster or slower
# at some position in a round (it happens here) favours no server.
ORDERS=("0 1 2" "1 2 0" "2 0 1" "2 1 0" "1 0 2" "0 2 1")
NAMES=(bare petrel petrel-noaccess)
PORTS=("$BARE_PORT" "$PETREL_PORT" "$NOLOG_PORT")
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round"
    for k in ${ORDERS[$(((round - 1) % 6))]}; do
        measure "$round" "${NAMES[$k]}" "${PORTS[$k]}"
    done
done

# ---- report ----
echo
awk -v target="$TARGET_RATIO" '
    { n[$2]++; rps[$2] += $3; p50[$2] += $4; p99[$2] += $5; err[$2] += $6; v[$1, $2] = $3 }
    $1 > nr { nr = $1 }
    END {
        for (i = 1; i <= nr; i++) {
            b = v[i, "bare"]
            r1[i] = b > 0 ? v[i, "petrel"] / b : 0
            r2[i] = b > 0 ? v[i, "petrel-noaccess"] / b : 0
        }
        printf "%-16s %12s %10s %10s %8s %14s\n", "server", "req/s (mean)", "p50 ms", "p99 ms",
            "errors", "vs bare"
        split("bare petrel petrel-noaccess", order, " ")
        base = rps["bare"] / n["bare"]
        for (k = 1; k <= 3; k++) {
            s = order[k]
            r = rps[s] / n[s]
            printf "%-16s %12.0f %10.3f %10.3f %8d %14.3f\n", s, r, p50[s] / n[s], p99[s] / n[s],
                err[s], r / base
        }
        ratio = (rps["petrel"] / n["petrel"]) / base
        ratio2 = (rps["petrel-noaccess"] / n["petrel-noaccess"]) / base
        printf "\nratio of mean req/s petrel/bare = %.3f (access log on), %.3f (access log off)\n",
            ratio, ratio2
        # Each round runs the three back to back: its ratios share that moment of the box.
        m1 = median(r1, nr)
        m2 = median(r2, nr)
        printf "per-round petrel/bare:"
        for (i = 1; i <= nr; i++)
            printf " %.3f", r1[i]
        printf "\nmedian of rounds petrel/bare = %.3f (access log on), %.3f (access log off); target >= %.2f: %s\n",
            m1, m2, target, (m1 >= target) ? "met" : "NOT met"
    }
    function median(a, k,    i, j, t, b) {
        for (i = 1; i <= k; i++)
            b[i] = a[i]
        for (i = 2; i <= k; i++)
            for (j = i; j > 1 && b[j - 1] > b[j]; j--) {
                t = b[j]; b[j] = b[j - 1]; b[j - 1] = t
            }
        return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
    }' "$RESULTS"
