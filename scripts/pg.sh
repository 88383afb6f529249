# shellcheck shell=bash disable=SC2034
#
# scripts/pg.sh - a throwaway PostgreSQL 15 for development and tests.
# Sourced by scripts/dev.sh; it defines functions only and runs nothing.
#
#   pg_start   initdb into a fresh temp dir, start postgres on 127.0.0.1 on a
#              free port (plus a unix socket in the temp dir), create role and
#              database "petrel" (password "petrel"), export
#              PETREL_DATABASE_URL; PG_PORT and PG_DIR (socket dir) are set
#              but not exported: petrel rejects unknown PETREL_* variables.
#   pg_stop    stop that server by PID (SIGINT = fast shutdown, then SIGKILL)
#              and remove the temp dir. Idempotent and quiet: safe in traps.
#
# initdb and postgres refuse to run as root, so when we are root they run as
# the "postgres" user through runuser, on a directory that user owns.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=""  # temp dir: data/, the unix socket, postgres.log
PG_PID=""  # the postmaster's own PID (not runuser's)
PG_PORT="" # read by the scripts that source this file
PG_WRAPPER_PID=""
PG_AS_OWNER=()

# The command prefix that runs a program as the data directory's owner.
pg__owner_prefix() {
    PG_AS_OWNER=()
    if [ "$(id -u)" -eq 0 ]; then
        PG_AS_OWNER=(runuser -u postgres --)
    fi
}

# True while PID runs (a zombie waiting for its parent to reap it counts as gone).
pg__alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}

# Prints a port that nothing listens on right now. postgres may still lose a
# race for it, so pg_start retries with another one.
pg__free_port() {
    local py
    for py in /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1; then
            "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' &&
                return 0
        fi
    done
    local p
    for p in $(seq $((55432 + RANDOM % 500)) 56432); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

pg__fail() {
    echo "pg.sh: $*" >&2
    if [ -n "$PG_DIR" ] && [ -f "$PG_DIR/postgres.log" ]; then
        echo "pg.sh: last lines of $PG_DIR/postgres.log:" >&2
        tail -n 20 "$PG_DIR/postgres.log" >&2 || true
    fi
    pg_stop
    return 1
}

pg_start() {
    if [ ! -x "$PG_BIN/postgres" ]; then
        echo "pg.sh: $PG_BIN/postgres not found (is the postgresql package installed?)" >&2
        return 1
    fi
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/petrel-pg.XXXXXX")
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$PG_DIR"
    fi
    chmod 700 "$PG_DIR"

    # Local (socket) connections are trusted, for the admin steps below; TCP
    # connections need the password, as a real deployment would.
    pg__owner_prefix
    if ! "${PG_AS_OWNER[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --no-sync -E UTF8 \
        --locale=C --auth-local=trust --auth-host=scram-sha-256 \
        >"$PG_DIR/initdb.log" 2>&1; then
        cat "$PG_DIR/initdb.log" >&2
        pg__fail "initdb failed"
        return 1
    fi

    local attempt port ok
    for attempt in 1 2 3 4 5; do
        port=$(pg__free_port) || {
            pg__fail "no free port"
            return 1
        }
        # Durability is worthless for a throwaway database; speed is not.
        # setsid: a Ctrl-C meant for the app must not fast-stop the database
        # under it; pg_stop stops it by PID instead.
        setsid "${PG_AS_OWNER[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -h 127.0.0.1 -p "$port" \
            -k "$PG_DIR" -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
            -c max_connections=200 >>"$PG_DIR/postgres.log" 2>&1 </dev/null &
        PG_WRAPPER_PID=$!
        ok=0
        local _
        for _ in $(seq 1 300); do # up to 30 s
            if ! pg__alive "$PG_WRAPPER_PID"; then
                break # exited: most likely lost the port race
            fi
            if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1; then
                ok=1
                break
            fi
            sleep 0.1
        done
        if [ "$ok" -eq 1 ]; then
            break
        fi
        wait "$PG_WRAPPER_PID" 2>/dev/null || true
        PG_WRAPPER_PID=""
        echo "pg.sh: postgres did not come up on port $port (attempt $attempt)" >&2
    done
    if [ "$ok" -ne 1 ]; then
        pg__fail "could not start postgres"
        return 1
    fi
    # runuser forks, so $! is runuser; the postmaster writes its PID first.
    PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid")

    if ! psql -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE petrel LOGIN PASSWORD 'petrel'" \
        -c "CREATE DATABASE petrel OWNER petrel" >/dev/null; then
        pg__fail "could not create role/database petrel"
        return 1
    fi

    PG_PORT="$port"
    export PETREL_DATABASE_URL="postgresql://petrel:petrel@127.0.0.1:$port/petrel"
    echo "pg.sh: PostgreSQL (pid $PG_PID) at $PETREL_DATABASE_URL" >&2
}

pg_stop() {
    local _
    if [ -z "$PG_PID" ] && [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ]; then
        PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)
    fi
    if [ -n "$PG_PID" ] && pg__alive "$PG_PID"; then
        kill -INT "$PG_PID" 2>/dev/null || true # fast shutdown: abort sessions, no checkpoint wait
        for _ in $(seq 1 100); do # up to 10 s
            pg__alive "$PG_PID" || break
            sleep 0.1
        done
        if pg__alive "$PG_PID"; then
            kill -KILL "$PG_PID" 2>/dev/null || true
        fi
    fi
    if [ -n "$PG_WRAPPER_PID" ]; then
        # The postmaster is gone, so runuser exits; kill it only if it lingers.
        for _ in $(seq 1 50); do
            pg__alive "$PG_WRAPPER_PID" || break
            sleep 0.1
        done
        kill -KILL "$PG_WRAPPER_PID" 2>/dev/null || true
        wait "$PG_WRAPPER_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
        rm -rf -- "$PG_DIR"
    fi
    PG_PID=""
    PG_WRAPPER_PID=""
    PG_DIR=""
    PG_PORT=""
}
