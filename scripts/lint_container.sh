#!/usr/bin/env bash
#
# scripts/lint_container.sh - checks the Dockerfile and compose.yaml without a
# Docker engine: the instructions petrel's image relies on are present (a
# Debian 12 build stage running the CI build script, a slim runtime stage, a
# non-root user, a HEALTHCHECK on /healthz, configuration by environment), and
# compose.yaml parses and runs PostgreSQL, then migrations, then the app.
# Prints one line per problem; exit status 1 when there is any.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
fail=0
problem() {
    echo "lint_container: $*" >&2
    fail=1
}

df=Dockerfile
[ -f "$df" ] || { echo "lint_container: no Dockerfile" >&2; exit 1; }
# Instruction lines, continuation lines joined.
inst=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$df" | grep -Ev '^\s*(#|$)')
grep -Eq '^FROM debian:12 AS build$' <<<"$inst" || problem "no 'FROM debian:12 AS build' stage"
grep -Eq '^FROM debian:12-slim( AS [a-z]+)?$' <<<"$inst" || problem "no debian:12-slim runtime stage"
[ "$(grep -c '^FROM ' <<<"$inst")" -ge 2 ] || problem "not multi-stage"
grep -Eq '^RUN .*scripts/dev\.sh build' <<<"$inst" || problem "build stage does not run scripts/dev.sh build"
grep -Eq '^COPY --from=build ' <<<"$inst" || problem "runtime stage copies nothing from the build stage"
user=$(awk '$1 == "USER" {u = $2} END {print u}' <<<"$inst")
case "$user" in
"" | root | 0 | 0:*) problem "the image runs as root (USER '$user')" ;;
esac
grep -Eq '^HEALTHCHECK .*CMD .*/healthz' <<<"$inst" || problem "no HEALTHCHECK on /healthz"
grep -Eq '^ENV .*PETREL_SERVER_HOST=0\.0\.0\.0' <<<"$inst" || problem "server does not listen on 0.0.0.0"
grep -Eq '^EXPOSE [0-9]+' <<<"$inst" || problem "no EXPOSE"
grep -Eq '^ENTRYPOINT \["petrel-app"\]' <<<"$inst" || problem "ENTRYPOINT is not petrel-app (exec form)"
while read -r word; do
    case "$word" in
    FROM | RUN | COPY | ENV | WORKDIR | USER | EXPOSE | HEALTHCHECK | ENTRYPOINT | CMD | STOPSIGNAL | \
        ARG | LABEL) ;;
    *) problem "unknown instruction '$word'" ;;
    esac
done < <(awk '{print $1}' <<<"$inst")
# Files the Dockerfile copies from the context must exist.
for f in scripts config migrations web/package.json web/package-lock.json; do
    [ -e "$f" ] || problem "the build needs $f"
done

PY=/usr/bin/python3
"$PY" -c 'import yaml' 2>/dev/null || PY=python3
"$PY" - compose.yaml <<'PYEOF' || fail=1
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
errs = []
svc = doc.get("services", {})
for name in ("db", "migrate", "app"):
    if name not in svc:
        errs.append(f"compose: no service {name}")
if not errs:
    if not str(svc["db"].get("image", "")).startswith("postgres"):
        errs.append("compose: db is not a postgres image")
    if "healthcheck" not in svc["db"]:
        errs.append("compose: db has no healthcheck")
    if svc["migrate"].get("command") != ["migrate", "up"]:
        errs.append("compose: migrate does not run 'migrate up'")
    dep = svc["app"].get("depends_on", {})
    if dep.get("migrate", {}).get("condition") != "service_completed_successfully":
        errs.append("compose: app does not wait for migrations to complete")
    if dep.get("db", {}).get("condition") != "service_healthy":
        errs.append("compose: app does not wait for a healthy db")
    for name in ("migrate", "app"):
        env = svc[name].get("environment", {})
        if "PETREL_DATABASE_URL" not in env:
            errs.append(f"compose: {name} has no PETREL_DATABASE_URL")
for e in errs:
    print("lint_container: " + e, file=sys.stderr)
sys.exit(1 if errs else 0)
PYEOF
exit $fail
