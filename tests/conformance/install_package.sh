#!/usr/bin/env bash
#
# install_package.sh - black-box check of the installed package: `cmake
# --install` into a temporary prefix, then build two tiny consumer programs
# against it as another project would, one with find_package(petrel) and one
# with pkg-config, and run them. Uses the normal build (build/), since an
# ASan-instrumented library cannot be linked by a plain consumer.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$ROOT/build"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/petrel-install.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT

tested=0
passed=0
check() {
    local what=$1
    shift
    tested=$((tested + 1))
    if "$@" >"$WORK/last.log" 2>&1; then
        passed=$((passed + 1))
        echo "[PASS] install: $what"
    else
        echo "[FAIL] install: $what"
        sed 's/^/    /' "$WORK/last.log" | tail -20
    fi
}

[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target petrel_static petrel_shared petrel-app >/dev/null

PREFIX="$WORK/prefix"
check "cmake --install puts headers, libraries, petrel.pc and the CMake package in place" \
    bash -c "cmake --install '$BUILD' --prefix '$PREFIX' >/dev/null &&
             test -f '$PREFIX/include/petrel/petrel.h' &&
             test -f '$PREFIX/include/petrel/route.h' &&
             ls '$PREFIX'/lib*/libpetrel.a '$PREFIX'/lib*/libpetrel.so >/dev/null &&
             ls '$PREFIX'/lib*/pkgconfig/petrel.pc '$PREFIX'/lib*/cmake/petrel/petrelConfig.cmake >/dev/null &&
             test ! -e '$PREFIX/include/petrel/server_int.h'"

mkdir -p "$WORK/consumer"
cat >"$WORK/consumer/main.c" <<'C'
#include <petrel/petrel.h>

static int hello(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:s}", "hello", "world"));
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/hello", hello, .summary = "Hello"),
};

int main(int argc, char **argv)
{
    petrel_app_t *app = petrel_app_new("consumer", "9.9.9");
    if (petrel_app_add_routes(app, routes, 1) != 0)
        return 2;
    int rc = petrel_app_main(app, argc, argv, NULL);
    petrel_app_free(app);
    return rc;
}
C
cat >"$WORK/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(petrel 0.1 REQUIRED)
add_executable(consumer_static main.c)
target_link_libraries(consumer_static PRIVATE petrel::petrel_static)
add_executable(consumer_shared main.c)
target_link_libraries(consumer_shared PRIVATE petrel::petrel)
CM

check "find_package(petrel) builds a static and a shared consumer" \
    bash -c "cmake -S '$WORK/consumer' -B '$WORK/consumer/build' -DCMAKE_PREFIX_PATH='$PREFIX' >/dev/null &&
             cmake --build '$WORK/consumer/build' >/dev/null"
check "the static consumer runs (routes lists /hello)" \
    bash -c "'$WORK/consumer/build/consumer_static' routes --config /dev/null | grep -q '/hello'"
check "the shared consumer runs (--version)" \
    bash -c "LD_LIBRARY_PATH=\$(echo '$PREFIX'/lib*) '$WORK/consumer/build/consumer_shared' --version | grep -q 'consumer 9.9.9'"
check "pkg-config --cflags --libs petrel builds a consumer" \
    bash -c "export PKG_CONFIG_PATH=\$(echo '$PREFIX'/lib*/pkgconfig) &&
             cc -std=c11 -o '$WORK/pc_consumer' '$WORK/consumer/main.c' \$(pkg-config --cflags --libs petrel) &&
             LD_LIBRARY_PATH=\$(echo '$PREFIX'/lib*) '$WORK/pc_consumer' --version | grep -q '9.9.9'"

failed=$((tested - passed))
echo "[====] Synthesis: Tested: $tested | Passing: $passed | Failing: $failed | Crashing: 0 "
[ "$failed" -eq 0 ]
