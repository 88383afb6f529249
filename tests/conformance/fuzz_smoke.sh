#!/usr/bin/env bash
#
# fuzz_smoke.sh - builds the libFuzzer targets of tests/fuzz/ with clang (ASan
# + UBSan + fuzzer) into build-fuzz/ and runs each for a bounded time
# (PETREL_FUZZ_SECONDS, default 10) from its seed corpus. Any crash, leak or
# sanitizer report fails the check. Longer campaigns: run the targets by hand
# with -max_total_time=N.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$ROOT/build-fuzz"
SECS=${PETREL_FUZZ_SECONDS:-10}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/petrel-fuzz.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT

command -v clang >/dev/null || { echo "fuzz_smoke: clang not found (scripts/dev.sh deps installs it)"; exit 1; }
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
mapfile -t targets < <(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" >/dev/null

tested=0
passed=0
for t in "${targets[@]}"; do
    tested=$((tested + 1))
    corpus="$WORK/$t"
    mkdir -p "$corpus"
    [ -d "$ROOT/tests/fuzz/corpus/$t" ] && cp -r "$ROOT/tests/fuzz/corpus/$t/." "$corpus/"
    if (cd "$WORK" && "$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -timeout=5 -rss_limit_mb=2048 \
        "$corpus" >"$WORK/$t.log" 2>&1); then
        passed=$((passed + 1))
        echo "[PASS] fuzz: $t ($(grep -o 'Done [0-9]* runs' "$WORK/$t.log" | tail -1))"
    else
        echo "[FAIL] fuzz: $t"
        tail -40 "$WORK/$t.log"
    fi
done
failed=$((tested - passed))
echo "[====] Synthesis: Tested: $tested | Passing: $passed | Failing: $failed | Crashing: 0 "
[ "$failed" -eq 0 ] && [ "$tested" -gt 0 ]
