#!/usr/bin/env bash
#
# readme_config.sh - the README's configuration table must be exactly what
# `petrel-app config-keys` prints, so every declared key (framework and app)
# is documented with its real default and bounds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${PETREL_TEST_BUILD_DIR:-$ROOT/build}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/petrel-readme.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT

"$BUILD/petrel-app" config-keys >"$WORK/keys.md"
sed -n '/^<!-- CONFIG-KEYS/,/^<!-- \/CONFIG-KEYS -->/p' "$ROOT/README.md" | sed '1d;$d' >"$WORK/readme.md"
if diff -u "$WORK/readme.md" "$WORK/keys.md"; then
    echo "[PASS] readme: configuration table matches petrel-app config-keys ($(grep -c '^| `' "$WORK/keys.md") keys)"
    echo "[====] Synthesis: Tested: 1 | Passing: 1 | Failing: 0 | Crashing: 0 "
else
    echo "[FAIL] readme: configuration table differs from petrel-app config-keys (diff above);"
    echo "       regenerate it between the CONFIG-KEYS markers"
    echo "[====] Synthesis: Tested: 1 | Passing: 0 | Failing: 1 | Crashing: 0 "
    exit 1
fi
