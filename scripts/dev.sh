#!/usr/bin/env bash
#
# scripts/dev.sh - the developer entry point (see README.md).
#
#   scripts/dev.sh run [--config FILE] [--reload]
#                                        install, build, throwaway PostgreSQL, migrate, serve;
#                                        --reload rebuilds and restarts on source changes
#   scripts/dev.sh test                  install, build normal + ASan/UBSan, run every test
#   scripts/dev.sh build [--sanitize]    configure + build into build/ (build-asan/)
#   scripts/dev.sh bench                 run tests/bench/*.sh in turn
#   scripts/dev.sh fmt                   clang-format -i the C sources
#   scripts/dev.sh lint                  banned-function grep + clang-format check
#   scripts/dev.sh banned                banned-function grep only (used by .ci/run)
#   scripts/dev.sh deps                  install missing apt packages only
#
# Runs as root on a fresh Debian 12 machine with no stdin (CI=true); as a
# normal user it uses sudo for apt-get when packages are missing. Everything
# it starts listens on 127.0.0.1 only and is stopped by PID when it exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/pg.sh
. "$ROOT/scripts/pg.sh"

# The one list of Debian packages petrel needs (README.md says why for each).
APT_PACKAGES=(
    build-essential cmake pkg-config                 # compiler, build system
    libh2o-evloop-dev libssl-dev                     # HTTP/1.1+2 server/client, TLS
    libjansson-dev libyaml-dev libpq-dev             # JSON, config files, PostgreSQL client
    libcriterion-dev                                 # unit + integration tests
    postgresql postgresql-contrib                    # throwaway server for run/test
    wrk nghttp2-client curl openssl                  # benchmarks, HTTP/2 and TLS checks
    clang libclang-rt-14-dev                         # fuzz targets (libFuzzer runtime is only
                                                     # a Recommends, which we do not install)
    clang-format                                     # fmt/lint
    chromium                                         # tests/integration/test_docs.c (headless)
    python3-yaml python3-pip                         # compose.yaml lint; OpenAPI validator
)

# The C sources fmt/lint cover.
FMT_DIRS=(framework app tests)

JOBS=$(nproc 2>/dev/null || echo 2)

log() {
    echo "dev.sh: $*" >&2
}

die() {
    log "error: $*"
    exit 1
}

# ---- packages ----

deps() {
    apt_deps
    web_assets
    test_tools
    openapi_validator
}

apt_deps() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "installing missing packages: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]} yourself"
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}" </dev/null
}

# The docs assets petrel serves at /docs and /redoc (npm packages pinned by
# web/package-lock.json), installed once and again when the lock file changes.
web_assets() {
    [ -f "$ROOT/web/package-lock.json" ] || return 0
    npm_ci "$ROOT/web" "the docs assets" || die "npm ci in web/ failed"
}

# The Node.js tools of the test suite (tests/tools/package-lock.json): the
# OpenAPI validator test_openapi falls back on without a Python one. A failure
# only warns: a Python openapi-spec-validator may still do.
test_tools() {
    [ -f "$ROOT/tests/tools/package-lock.json" ] || return 0
    npm_ci "$ROOT/tests/tools" "the test tools" ||
        log "warning: npm ci in tests/tools/ failed; test_openapi needs openapi-spec-validator"
}

# npm_ci DIR WHAT: `npm ci` in DIR unless its node_modules is newer than its lock.
npm_ci() {
    local dir=$1 what=$2
    # Node.js may come from elsewhere than Debian (the project machine has
    # NodeSource's nodejs, which conflicts with Debian's npm): install Debian's
    # only when there is no npm at all.
    if ! command -v npm >/dev/null; then
        APT_PACKAGES=(nodejs npm)
        apt_deps
    fi
    if [ -f "$dir/node_modules/.package-lock.json" ] &&
        [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        return 0
    fi
    log "installing $what (npm ci in ${dir#"$ROOT"/}/)"
    (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts </dev/null)
}

# openapi-spec-validator validates the OpenAPI document in the tests. Debian 12
# does not package it (python3-openapi-spec-validator exists from Debian 13 on)
# and PyPI may be out of reach, so the npm validator test_tools installs is
# enough (no pip then); else a python3 that has it; else pip, for the user.
openapi_validator() {
    local py
    if [ -f "$ROOT/tests/tools/node_modules/@seriousme/openapi-schema-validator/package.json" ]; then
        return 0
    fi
    for py in /usr/bin/python3 python3; do
        if "$py" -c 'import openapi_spec_validator' 2>/dev/null; then
            return 0
        fi
    done
    log "installing openapi-spec-validator (pip, user site)"
    /usr/bin/python3 -m pip install -q --user --break-system-packages \
        'openapi-spec-validator>=0.7,<0.8' </dev/null ||
        log "warning: no OpenAPI validator (neither npm's nor pip's); test_openapi will fail"
}

# ---- build ----

# build_dir [--sanitize] -> prints the build directory for that flavour
build_dir() {
    if [ "${1:-}" = "--sanitize" ]; then echo build-asan; else echo build; fi
}

build() {
    local sanitize=OFF dir
    case "${1:-}" in
    "") ;;
    --sanitize) sanitize=ON ;;
    *) die "build: unknown option '$1' (usage: dev.sh build [--sanitize])" ;;
    esac
    dir=$(build_dir "${1:-}")
    log "building $dir (sanitize=$sanitize, -j$JOBS)"
    cmake -S "$ROOT" -B "$ROOT/$dir" -DPETREL_WERROR=ON -DPETREL_SANITIZE="$sanitize" \
        -DPETREL_TESTS=ON || return 1
    cmake --build "$ROOT/$dir" -j"$JOBS" || return 1
}

# ---- cleanup of everything we start ----

CLEANUP_PIDS=() # extra servers (stubs) started by this script, stopped by PID
TEST_PGID=""    # process group of the test that is running, if any
LOGDIR=""       # per-test output copies

cleanup() {
    local pid
    if [ -n "$TEST_PGID" ]; then
        kill -TERM -- "-$TEST_PGID" 2>/dev/null || true
        sleep 0.2
        kill -KILL -- "-$TEST_PGID" 2>/dev/null || true
        TEST_PGID=""
    fi
    for pid in "${CLEANUP_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${CLEANUP_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    CLEANUP_PIDS=()
    pg_stop
    if [ -n "$LOGDIR" ]; then
        rm -rf -- "$LOGDIR"
        LOGDIR=""
    fi
}

on_signal() {
    cleanup
    trap - EXIT
    exit "$1"
}

install_traps() {
    trap cleanup EXIT
    trap 'on_signal 130' INT
    trap 'on_signal 143' TERM
}

# ---- database URL ----

# petrel rejects PETREL_* variables that match no declared configuration key
# (framework/src/config.c), so PETREL_DATABASE_URL may only be exported once
# some module declares "database.url"; until then it would make every server
# start fail. PETREL_TEST_DATABASE_URL is always allowed.
database_key_declared() {
    grep -rqF --include='*.c' '"database.url"' framework/src app 2>/dev/null
}

export_database_url() {
    if database_key_declared; then
        export PETREL_DATABASE_URL
    else
        log "no module declares database.url yet: PETREL_DATABASE_URL not exported"
        export -n PETREL_DATABASE_URL
    fi
}

# ---- run ----

run() {
    local config=config/default.yaml reload=0
    while [ $# -gt 0 ]; do
        case "$1" in
        --reload)
            reload=1
            shift
            ;;
        --config)
            [ $# -ge 2 ] || die "run: --config needs a FILE"
            config=$2
            shift 2
            ;;
        --config=*)
            config=${1#--config=}
            shift
            ;;
        *) die "run: unknown option '$1' (usage: dev.sh run [--config FILE] [--reload])" ;;
        esac
    done
    [ -f "$config" ] || die "run: config file '$config' not found"

    deps
    build
    local app="$ROOT/build/petrel-app"
    [ -x "$app" ] || die "run: $app was not built"

    install_traps
    if [ -n "${PETREL_DATABASE_URL:-}" ]; then
        log "using PETREL_DATABASE_URL from the environment; not starting PostgreSQL"
    else
        pg_start
        export_database_url
    fi

    # Migrations: an app without a migrate command yet answers "unknown
    # command" with exit 2; that, and only that, means "nothing to migrate".
    local out rc=0
    out=$("$app" migrate up 2>&1) || rc=$?
    if [ "$rc" -eq 0 ]; then
        [ -z "$out" ] || printf '%s\n' "$out" >&2
    elif [ "$rc" -eq 2 ] && printf '%s' "$out" | grep -qi 'unknown command'; then
        log "petrel-app has no 'migrate' command yet: no migrations applied"
    else
        printf '%s\n' "$out" >&2
        die "run: 'petrel-app migrate up' failed (exit $rc)"
    fi

    if [ "$reload" -eq 1 ]; then
        serve_reload "$app" "$config"
        return
    fi
    log "serving with $config (Ctrl-C stops the server and PostgreSQL)"
    if [ -z "$PG_PID" ]; then
        trap - EXIT INT TERM
        exec "$app" serve --config "$config"
    fi
    # The app replaces this shell (exec), so it receives Ctrl-C/SIGTERM exactly
    # as if started by hand and shuts down gracefully; a trap here could not
    # outlive the exec. A small watcher stops PostgreSQL once the app's PID
    # (ours, after exec) is gone.
    local self=$$
    (
        trap '' INT TERM HUP
        while kill -0 "$self" 2>/dev/null; do sleep 0.5; done
        pg_stop
    ) </dev/null >/dev/null 2>&1 &
    disown
    trap - EXIT INT TERM
    exec "$app" serve --config "$config"
}

# What --reload watches: every source, header, build file and config.
reload_stamp() {
    find "$ROOT/framework" "$ROOT/app" "$ROOT/config" "$ROOT/CMakeLists.txt" -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.S' -o -name '*.yaml' -o -name '*.txt' \) \
        -printf '%T@ %p\n' 2>/dev/null | sort | md5sum
}

# serve_reload APP CONFIG: uvicorn --reload. Polls the sources' mtimes every
# second (no inotify dependency); on a change it rebuilds and, if the build
# succeeds, stops the server gracefully (SIGTERM) and starts the new binary. A
# failed build keeps the old server running; a server that exits (crash, port
# taken) is reported once and restarted on the next change. Ctrl-C stops both
# and PostgreSQL.
serve_reload() {
    local app=$1 config=$2 pid stamp now rc running=1
    log "serving with $config, reloading on source changes (Ctrl-C stops)"
    "$app" serve --config "$config" &
    pid=$!
    CLEANUP_PIDS+=("$pid")
    stamp=$(reload_stamp)
    while true; do
        sleep 1
        if [ "$running" -eq 1 ] && ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" 2>/dev/null || rc=$?
            forget_pid "$pid"
            running=0
            log "the server exited (status $rc); waiting for a source change to restart it"
        fi
        now=$(reload_stamp)
        [ "$now" != "$stamp" ] || continue
        stamp=$now
        log "change detected: rebuilding"
        if ! build >&2; then
            if [ "$running" -eq 1 ]; then
                log "build failed: keeping the running server"
            else
                log "build failed: no server until the next change builds"
            fi
            continue
        fi
        if [ "$running" -eq 1 ]; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            forget_pid "$pid"
        fi
        "$app" serve --config "$config" &
        pid=$!
        CLEANUP_PIDS+=("$pid")
        running=1
        log "restarted (pid $pid)"
    done
}

# forget_pid PID: drops an exited (and reaped) child from CLEANUP_PIDS, so that
# cleanup never signals a PID the system may have given to another process.
forget_pid() {
    local p keep=()
    for p in "${CLEANUP_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    CLEANUP_PIDS=("${keep[@]}")
}

# ---- test ----

T_TESTED=0
T_PASSING=0
T_FAILING=0
T_CRASHING=0
T_BAD=0 # binaries or scripts that failed in any way
T_SUMMARY=()

# Adds one criterion synthesis line (from file $2, binary name $1, exit status $3) to the totals.
tally() {
    local name=$1 logfile=$2 rc=$3 line t p f c
    line=$(sed 's/\x1b\[[0-9;]*m//g' "$logfile" | grep -E 'Synthesis: Tested: [0-9]+' | tail -n 1 || true)
    if [ -n "$line" ]; then
        t=$(sed -E 's/.*Tested: ([0-9]+).*/\1/' <<<"$line")
        p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
        f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
        c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
        # Our per-binary summary must not look like a synthesis line itself.
        line="tested $t, passing $p, failing $f, crashing $c"
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            # E.g. a leak report from the runner itself after its last test:
            # count the binary as one failed test so the totals show it.
            t=$((t + 1))
            f=$((f + 1))
            line="$line (exit status $rc: counted as 1 failure)"
        fi
    else
        # No synthesis at all: the binary crashed, hung, or is not criterion.
        # A plain script that exits 0 counts as one passing test.
        if [ "$rc" -eq 0 ]; then
            t=1 p=1 f=0 c=0
            line="no criterion synthesis; exit status 0: counted as 1 passing"
        else
            t=1 p=0 f=1 c=1
            line="no criterion synthesis; exit status $rc: counted as 1 crash"
        fi
    fi
    T_TESTED=$((T_TESTED + t))
    T_PASSING=$((T_PASSING + p))
    T_FAILING=$((T_FAILING + f))
    T_CRASHING=$((T_CRASHING + c))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$c" -ne 0 ]; then
        T_BAD=$((T_BAD + 1))
        T_SUMMARY+=("[FAIL] $name: $line")
        # Repeat criterion's own failure lines (which test, which assertion,
        # sanitizer verdicts) under the summary: CI may keep only the tail.
        local detail
        while IFS= read -r detail; do
            T_SUMMARY+=("       $detail")
        done < <(sed 's/\x1b\[[0-9;]*m//g' "$logfile" |
            grep -E '^\[(----|FAIL)\]|ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|CRASH' |
            grep -v '"level"' | head -n 20 || true)
    else
        T_SUMMARY+=("[ OK ] $name: $line")
    fi
}

# run_one NAME LOGFILE CMD... : runs a test command with a hard wall-clock cap,
# streaming its output and keeping a copy for tally. The command runs in its
# own session (process group) in the background, so that a signal to this
# script is handled at once and cleanup can stop the whole group: the test,
# criterion's workers and anything the test started.
run_one() {
    local name=$1 logfile=$2 rc=0
    shift 2
    echo "==== $name"
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'cap=$1 log=$2; shift 2
        timeout --foreground -k 10 "$cap" "$@" </dev/null 2>&1 | tee "$log"
        exit "${PIPESTATUS[0]}"' run_one "${PETREL_TEST_BINARY_TIMEOUT:-600}" "$logfile" "$@" &
    TEST_PGID=$!
    wait "$TEST_PGID" || rc=$?
    kill -KILL -- "-$TEST_PGID" 2>/dev/null || true # stragglers
    TEST_PGID=""
    tally "$name" "$logfile" "$rc"
}

run_build_tests() {
    local dir=$1 logdir=$2 name found=0
    # The test list comes from CMake (add_test), not from the directory, so a
    # stale binary of a deleted test is never run.
    while IFS= read -r name; do
        [ -x "$ROOT/$dir/$name" ] || continue
        found=1
        run_one "$dir/$name" "$logdir/$dir-$name.log" "$ROOT/$dir/$name" --timeout 120 --jobs 2
    done < <(cd "$ROOT/$dir" && ctest -N | sed -n 's/^ *Test *#[0-9]*: *//p' | grep '^test_' | sort)
    [ "$found" -eq 1 ] || log "no test executables in $dir"

    # Black-box checks (FastAPI 422 shape, TFB rules): scripts that get the
    # build to test in PETREL_TEST_BUILD_DIR and report by exit status or by a
    # criterion-style synthesis line.
    local script
    for script in "$ROOT"/tests/conformance/*.sh "$ROOT"/tests/conformance/*.py; do
        [ -f "$script" ] || continue
        local runner=(bash)
        case "$script" in *.py) runner=(/usr/bin/python3) ;; esac
        PETREL_TEST_BUILD_DIR="$ROOT/$dir" run_one "$dir:conformance/$(basename "$script")" \
            "$logdir/$dir-$(basename "$script").log" "${runner[@]}" "$script"
    done
}

print_synthesis() {
    local s
    echo
    for s in "${T_SUMMARY[@]}"; do
        echo "$s"
    done
    echo "[====] Synthesis: Tested: $T_TESTED | Passing: $T_PASSING | Failing: $T_FAILING | Crashing: $T_CRASHING "
}

test_all() {
    [ $# -eq 0 ] || die "test: takes no arguments"
    deps
    local flavour dirs=() dir
    for flavour in "" --sanitize; do
        dir=$(build_dir "$flavour")
        # shellcheck disable=SC2086 # $flavour is empty or one word on purpose
        if build $flavour; then
            dirs+=("$dir")
        else
            # Never run stale binaries left over from an earlier build.
            T_BAD=$((T_BAD + 1))
            T_TESTED=$((T_TESTED + 1))
            T_FAILING=$((T_FAILING + 1))
            T_SUMMARY+=("[FAIL] $dir: build failed; its tests were not run")
        fi
    done

    install_traps
    LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/petrel-test.XXXXXX")
    if [ "${#dirs[@]}" -gt 0 ]; then
        pg_start
        export PETREL_TEST_DATABASE_URL="$PETREL_DATABASE_URL"
        export_database_url
        export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
        export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0}"
        export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
        for dir in "${dirs[@]}"; do
            run_build_tests "$dir" "$LOGDIR"
        done
    fi

    # Stop everything before the summary so that the synthesis line is the
    # last line of output (the EXIT trap is then a quiet no-op).
    cleanup >/dev/null 2>&1
    print_synthesis
    if [ "$T_BAD" -ne 0 ] || [ "$T_TESTED" -eq 0 ]; then
        exit 1
    fi
}

# ---- bench, fmt, lint ----

bench() {
    local script found=0
    for script in "$ROOT"/tests/bench/*.sh; do
        [ -f "$script" ] || continue
        found=1
        log "bench: $script"
        bash "$script"
    done
    [ "$found" -eq 1 ] || log "no benchmarks in tests/bench/"
}

c_sources() {
    find "${FMT_DIRS[@]}" -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null | sort
}

fmt() {
    local files
    mapfile -t files < <(c_sources)
    [ "${#files[@]}" -eq 0 ] || clang-format -i "${files[@]}"
}

# Banned functions (STYLE.md): grep framework/ and app/, report file:line.
# Comments are ignored (a line starting with "*", and // or /* */ parts), so
# prose may name a banned function. A code line may opt out with the comment
# "petrel-lint: allow" and a reason.
banned() {
    local rc=0 all=() d
    for d in framework app; do
        if [ -d "$d" ]; then all+=("$d"); fi
    done
    [ "${#all[@]}" -gt 0 ] || return 0
    # Word start, portable to both grep -E and awk (neither \b nor \< in awk).
    local w='(^|[^A-Za-z0-9_])'
    banned_check "${all[@]}" -- "${w}v?sprintf[[:space:]]*\\(" 'sprintf (use snprintf)' || rc=1
    banned_check "${all[@]}" -- "${w}strcpy[[:space:]]*\\(" 'strcpy' || rc=1
    banned_check "${all[@]}" -- "${w}strcat[[:space:]]*\\(" 'strcat' || rc=1
    banned_check "${all[@]}" -- "${w}strtok[[:space:]]*\\(" 'strtok (use strtok_r)' || rc=1
    banned_check "${all[@]}" -- "${w}ato(i|l|ll)[[:space:]]*\\(" 'atoi/atol (use strtol)' || rc=1
    banned_check "${all[@]}" -- "${w}gets[[:space:]]*\\(" 'gets' || rc=1
    banned_check "${all[@]}" -- "${w}gmtime[[:space:]]*\\(" 'gmtime (use gmtime_r)' || rc=1
    banned_check "${all[@]}" -- "${w}localtime[[:space:]]*\\(" 'localtime (use localtime_r)' || rc=1
    banned_check "${all[@]}" -- "${w}strerror[[:space:]]*\\(" 'strerror (use strerror_r)' || rc=1
    banned_check "${all[@]}" -- "${w}rand[[:space:]]*\\(" 'rand' || rc=1
    banned_check "${all[@]}" -- "${w}PQexec[[:space:]]*\\(" 'blocking PQexec outside tests' || rc=1
    banned_check "${all[@]}" -- "${w}PQconnectdb[[:space:]]*\\(" 'blocking PQconnectdb outside tests' ||
        rc=1
    if [ -d framework ]; then
        banned_check framework -- "${w}u?sleep[[:space:]]*\\(" \
            'sleep/usleep in the framework (use petrel_sleep)' || rc=1
    fi
    if [ "$rc" -ne 0 ]; then
        log "banned functions found (see STYLE.md)"
        return 1
    fi
    log "banned-function check: clean"
}

# banned_check DIR... -- REGEX WHY : prints "file:line: code  <- banned: WHY" per hit.
banned_check() {
    local dirs=() re why hits
    while [ "$1" != "--" ]; do
        dirs+=("$1")
        shift
    done
    re=$2 why=$3
    hits=$(grep -rnE --include='*.c' --include='*.h' "$re" "${dirs[@]}" 2>/dev/null |
        grep -v 'petrel-lint: allow' |
        awk -v re="$re" '{
            rest = $0
            i = index(rest, ":"); rest = substr(rest, i + 1)
            j = index(rest, ":"); code = substr(rest, j + 1)
            gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, "", code)
            sub(/\/\/.*$/, "", code)
            sub(/\/\*.*$/, "", code)
            if (code ~ /^[ \t]*\*/) next
            if (code ~ re) print
        }' || true)
    if [ -n "$hits" ]; then
        printf '%s\n' "$hits" | sed "s|\$|    <- banned: $why|" >&2
        return 1
    fi
}

lint() {
    local rc=0 files
    banned || rc=1
    mapfile -t files < <(c_sources)
    if [ "${#files[@]}" -gt 0 ]; then
        clang-format --dry-run --Werror "${files[@]}" || rc=1
    fi
    if command -v shellcheck >/dev/null; then
        mapfile -t files < <(ls scripts/*.sh tests/bench/*.sh .ci/run 2>/dev/null)
        shellcheck -x "${files[@]}" || rc=1
    fi
    return "$rc"
}

usage() {
    sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd=${1:-}
    [ $# -eq 0 ] || shift
    case "$cmd" in
    run) run "$@" ;;
    test) test_all "$@" ;;
    build)
        [ $# -le 1 ] || die "build: too many arguments"
        deps
        build "$@"
        ;;
    bench) bench ;;
    fmt) fmt ;;
    lint) lint ;;
    banned) banned ;;
    deps) deps ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
