/*
 * petrel/db.h - PostgreSQL: a non-blocking connection pool per worker loop
 * (SQLAlchemy's knobs), parameterised queries with prepared statements cached
 * per connection, pipelined batches, transactions, JSON results, stats, and
 * the blocking migration runner used by the `migrate` command.
 *
 * One database per process. Every config knows the `database.*` keys;
 * petrel_db_setup() registers per-worker lifespan hooks that create each
 * worker's share of the pool. A connection belongs to the worker loop that
 * opened it and is only ever used by fibers of that worker.
 *
 * Process-wide totals are split across the server's N workers: worker i owns
 * floor(T/N) + (i < T % N ? 1 : 0) of `database.pool_size` and of
 * `database.max_overflow`, so the sums equal the configured totals (a worker
 * whose share is 0 of both cannot get a connection: keep pool_size >= workers).
 * `database.min_idle` is per worker (connections opened at startup).
 *
 * Every await takes a timeout; PETREL_TIMEOUT_DEFAULT means the configured
 * value (database.pool_timeout_ms for acquire, database.statement_timeout_ms
 * for queries). A query past its deadline, or whose fiber is cancelled, is
 * cancelled on the server (a helper thread sends the cancel request, so the
 * loop never blocks) and its connection is discarded: a connection that was
 * mid-query, broken or dirty is never pooled.
 */
#ifndef PETREL_DB_H
#define PETREL_DB_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "app.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A checked-out connection (opaque). */
typedef struct petrel_db_conn petrel_db_conn_t;
/** A query result (opaque). Owned: petrel_db_res_free(). */
typedef struct petrel_db_res petrel_db_res_t;

/**
 * Turns the database on for this app (the framework declares the database.* keys for every
 * app, so one config file serves apps with and without a database): registers the worker
 * start/stop hooks that create (and warm with database.min_idle connections) and close each
 * worker's pool. Call once, before the config is loaded. Startup fails with a clear message when
 * database.url is unset. Not an await. Returns 0, or PETREL_EINVAL when called twice.
 */
PETREL_API PETREL_NODISCARD int petrel_db_setup(petrel_app_t *app);

/**
 * Checks a connection out of the calling worker's pool: an idle one (recycled when older than
 * database.pool_recycle_s, pre-pinged when database.pre_ping), else a new one while the worker's
 * share of pool_size + max_overflow allows, else waits FIFO.
 * Ownership: *out is the caller's until petrel_db_release() or the end of the calling fiber (a
 * defer gives it back on every exit path, rolling back an open transaction).
 * Await: up to timeout_ms for a free connection (PETREL_TIMEOUT_DEFAULT:
 * database.pool_timeout_ms), plus database.connect_timeout_ms when it opens one.
 * Errors: PETREL_EPOOL (nothing free in time, or the database is unreachable: 503 with
 * "Database pool exhausted" / "Database unavailable" recorded on the request),
 * PETREL_ECANCELED, PETREL_EINVAL (not on a worker fiber, or no pool).
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_db_acquire(int64_t timeout_ms,
                                                               petrel_db_conn_t **out);

/**
 * Gives a connection back now (before the fiber ends). A clean connection goes to the next
 * waiter or the idle list; one inside a transaction is rolled back on a helper fiber first;
 * a broken or mid-query one is closed. Not an await; never fails. `c` is invalid afterwards.
 * Must be called on the fiber that acquired it.
 */
PETREL_API void petrel_db_release(petrel_db_conn_t *c);

/**
 * Runs one parameterised statement. `params` is a borrowed JSON array (or NULL for none):
 * null -> SQL NULL, strings as is, integers/reals/booleans as text, arrays/objects as JSON
 * text; use casts in SQL ($1::int) where PostgreSQL cannot infer a type. The statement is
 * prepared once per connection (cached by SQL text) and re-prepared after a reconnect.
 * Ownership: *res (may be NULL when not wanted) is owned: petrel_db_res_free().
 * Await: up to timeout_ms (PETREL_TIMEOUT_DEFAULT: database.statement_timeout_ms); past it the
 * query is cancelled on the server and the connection discarded.
 * Errors: PETREL_EDB (the server reported an error; petrel_db_errmsg()/petrel_db_sqlstate()
 * describe it, and the request's last error records it), PETREL_ETIMEDOUT, PETREL_ECANCELED,
 * PETREL_EIO (connection lost), PETREL_EINVAL (bad params).
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_db_query(petrel_db_conn_t *c,
                                                             int64_t timeout_ms,
                                                             petrel_db_res_t **res, const char *sql,
                                                             json_t *params);

/** Like petrel_db_query() with text parameters: `values[i]` (borrowed) NULL means SQL NULL. */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int
petrel_db_query_text(petrel_db_conn_t *c, int64_t timeout_ms, petrel_db_res_t **res,
                     const char *sql, int nparams, const char *const *values);

/** One statement of a pipeline: SQL and its borrowed JSON parameter array (or NULL). */
typedef struct petrel_db_stmt {
    const char *sql;
    json_t *params;
} petrel_db_stmt_t;

/** Pipeline flags. */
enum {
    /** Each statement is its own implicit transaction: an error fails only that statement. */
    PETREL_DB_PIPELINE_ISOLATED = 0,
    /** One implicit transaction for the batch: the first error aborts the rest (they fail with
     * PETREL_EDB "pipeline aborted") and nothing is committed. */
    PETREL_DB_PIPELINE_ATOMIC = 1,
};

/**
 * Sends `n` statements in one round trip (libpq pipeline mode) and collects their results.
 * res[i] (owned: petrel_db_res_free(); NULL on failure) and rcs[i] (0 or PETREL_EDB) describe
 * statement i. Returns 0 when the batch ran (check rcs), or a connection-level error
 * (PETREL_ETIMEDOUT, PETREL_ECANCELED, PETREL_EIO, PETREL_EINVAL) with every res[i] NULL.
 * Await: up to timeout_ms for the whole batch (PETREL_TIMEOUT_DEFAULT:
 * database.statement_timeout_ms).
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int
petrel_db_pipeline(petrel_db_conn_t *c, int64_t timeout_ms, const petrel_db_stmt_t *stmts, size_t n,
                   int flags, petrel_db_res_t **res, int *rcs);

/**
 * Transactions on a checked-out connection: BEGIN, COMMIT, ROLLBACK. A connection released (or
 * whose fiber ends, fails or is cancelled) inside a transaction is rolled back before it is
 * pooled again. Await and errors as petrel_db_query() (timeout: PETREL_TIMEOUT_DEFAULT ok).
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_db_begin(petrel_db_conn_t *c,
                                                             int64_t timeout_ms);
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_db_commit(petrel_db_conn_t *c,
                                                              int64_t timeout_ms);
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_db_rollback(petrel_db_conn_t *c,
                                                                int64_t timeout_ms);
/** True while the connection is inside a transaction block (also a failed one). */
PETREL_API bool petrel_db_in_transaction(const petrel_db_conn_t *c);
/** The server process id of the connection (pg_backend_pid()), 0 when not connected. */
PETREL_API int petrel_db_backend_pid(const petrel_db_conn_t *c);

/**
 * One-shot convenience: acquire (database.pool_timeout_ms), query, convert with
 * petrel_db_res_json(), release. *out (owned: json_decref) is the array of row objects.
 * Await: acquire wait plus timeout_ms for the query. Errors: those of petrel_db_acquire()
 * and petrel_db_query().
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_db_fetch_json(int64_t timeout_ms, json_t **out,
                                                                  const char *sql, json_t *params);

/* ---- results (none of these await) ---- */

/** Frees a result; NULL is fine. */
PETREL_API void petrel_db_res_free(petrel_db_res_t *res);
/** Rows and columns of a result. */
PETREL_API int petrel_db_res_nrows(const petrel_db_res_t *res);
PETREL_API int petrel_db_res_ncols(const petrel_db_res_t *res);
/** Rows affected by INSERT/UPDATE/DELETE (the command tag's count), 0 otherwise. */
PETREL_API int64_t petrel_db_res_affected(const petrel_db_res_t *res);
/** Column name (borrowed from res), or NULL out of range. */
PETREL_API const char *petrel_db_res_colname(const petrel_db_res_t *res, int col);
/** Value as text (borrowed from res), NULL for SQL NULL or out of range. */
PETREL_API const char *petrel_db_res_text(const petrel_db_res_t *res, int row, int col);
/** Value as an integer; `fallback` for NULL, out of range or non-numeric text. */
PETREL_API int64_t petrel_db_res_int(const petrel_db_res_t *res, int row, int col,
                                     int64_t fallback);
/**
 * Value as JSON typed by the column's type: int2/int4/int8/oid -> integer, float4/float8/numeric
 * -> real, bool -> true/false, json/jsonb -> parsed, timestamptz/timestamp/date -> ISO 8601
 * string, text[]/int[] -> arrays, NULL -> null, anything else -> its text. Owned (new ref).
 */
PETREL_API json_t *petrel_db_res_value_json(const petrel_db_res_t *res, int row, int col);
/** Row `row` as an object {column: value}. Owned. NULL out of range. */
PETREL_API json_t *petrel_db_res_row_json(const petrel_db_res_t *res, int row);
/** Every row as an array of objects. Owned. */
PETREL_API json_t *petrel_db_res_json(const petrel_db_res_t *res);

/**
 * The last database error on this worker thread: the server's message and SQLSTATE ("23505"),
 * or a client-side description. Borrowed; valid until the calling fiber awaits again.
 */
PETREL_API const char *petrel_db_errmsg(void);
PETREL_API const char *petrel_db_sqlstate(void);

/* ---- stats ---- */

/** Process-wide pool figures (sums over workers). */
typedef struct petrel_db_stats {
    int64_t size;        /**< open connections (idle + checked out + connecting) */
    int64_t idle;        /**< idle in the pools */
    int64_t checked_out; /**< held by fibers */
    int64_t overflow;    /**< open beyond the workers' pool_size shares */
    int64_t waiting;     /**< fibers waiting in acquire */
    int64_t timeouts;    /**< acquires that failed with PETREL_EPOOL (waited too long) */
    int64_t connects;    /**< successful connects since start */
    int64_t errors;      /**< failed connects, lost connections, query errors */
    int64_t invalidated; /**< connections discarded (broken, recycled, cancelled, dirty) */
    int64_t cancels;     /**< server-side cancel requests sent */
    int64_t capacity;    /**< pool_size + max_overflow (the configured total) */
} petrel_db_stats_t;

/** Fills *out with the current figures (relaxed atomic reads). Never fails; not an await. */
PETREL_API void petrel_db_stats(petrel_db_stats_t *out);

/* ---- migrations (blocking; for the command line, never on a worker loop) ---- */

typedef enum petrel_db_migrate_op {
    PETREL_DB_MIGRATE_UP = 1, /**< apply up to n pending migrations (n <= 0: all) */
    PETREL_DB_MIGRATE_DOWN,   /**< revert the last n applied (n <= 0: 1) */
    PETREL_DB_MIGRATE_STATUS, /**< list applied / pending, nothing changes */
} petrel_db_migrate_op_t;

/**
 * Runs migrations from `dir` (files NNNN_name.up.sql / NNNN_name.down.sql) against `url`:
 * a schema_migrations table records version, name and the up file's SHA-256; each migration
 * runs in one transaction; a session advisory lock makes concurrent migrators run one after
 * the other. An applied migration whose file changed is an error (nothing runs).
 * Progress lines go to `out` (borrowed; may be NULL). On failure one line goes into err.
 * Blocking (plain libpq connection): command-line tools only. If `pending` is not NULL it
 * receives the number of migrations still pending afterwards.
 * Returns 0, PETREL_ECONFIG (bad dir/files, checksum mismatch), PETREL_EIO (cannot connect),
 * PETREL_EDB (a statement failed; its migration is rolled back).
 */
PETREL_API PETREL_NODISCARD int petrel_db_migrate(const char *url, const char *dir,
                                                  petrel_db_migrate_op_t op, int n, FILE *out,
                                                  int *pending, char *err, size_t errlen);

/**
 * Counts pending migrations in `dir` using a pooled connection (for readiness checks): reads the
 * versions in schema_migrations (absent table: all pending). Await: acquire + query, bounded
 * by timeout_ms. Returns 0 with *pending set, or the errors of petrel_db_acquire/_query.
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int
petrel_db_migrations_pending(int64_t timeout_ms, const char *dir, int *pending);

#ifdef __cplusplus
}
#endif
#endif
