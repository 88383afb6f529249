/*
 * db.c - PostgreSQL on the worker loops: the per-worker connection pool
 * (checkout, FIFO waiters, overflow, recycle, pre-ping, reconnect backoff),
 * the non-blocking query engine (every statement goes through libpq's
 * pipeline mode, prepared once per connection), transactions, server-side
 * cancellation through a helper thread, result conversion to JSON, and the
 * process-wide stats. Migrations live in migrate.c.
 *
 * Threading: a pool belongs to one worker thread and is only touched from
 * that thread (fibers and loop callbacks); only the stats are shared, as
 * relaxed atomics. The cancel thread only ever sees PGcancel objects.
 */
#include "petrel/db.h"

#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db_int.h"
#include "log_int.h"
#include "petrel/log.h"
#include "server_int.h"

/* An idle connection unused for longer than this gets a real round-trip ping
 * at checkout when database.pre_ping is on; younger ones only get the cheap
 * socket check (a peer that closed, or sent anything, makes it readable). */
#define DB_PING_IDLE_MS 5000
/* Prepared statements cached per connection; beyond this, statements run unnamed. */
#define DB_STMT_CACHE 64
/* Reconnect backoff after a failed connect: 50 ms doubling up to 1 s, so a
 * restarted server is noticed within about a second. */
#define DB_BACKOFF_MIN_MS 50
#define DB_BACKOFF_MAX_MS 1000
/* A rollback on release (handler ended inside a transaction) gets this long. */
#define DB_ROLLBACK_TIMEOUT_MS 2000
/* Server-side statement_timeout enforces the default deadline; the client's own
 * deadline for default-timeout queries is this much later, as a backstop. */
#define DB_CLIENT_GRACE_MS 1000
/* Upper bound of parameters per statement (PostgreSQL's protocol limit is 65535). */
#define DB_MAX_PARAMS 1024

/* ------------------------------------------------------------------ */
/* process-wide state                                                  */

static struct {
    _Atomic int64_t size, idle, checked_out, overflow, waiting, timeouts, connects, errors,
        invalidated, cancels, capacity;
} stats;

static petrel_app_t *db_app;

static const petrel_cfg_key_t db_keys[] = {
    {"database.url", PETREL_CFG_STR, NULL,
     "PostgreSQL URL (postgresql://user:pass@host:port/db); env PETREL_DATABASE_URL", 0, 0, NULL},
    {"database.pool_size", PETREL_CFG_INT, "10",
     "pooled connections, process-wide (split across workers)", 0, 10000, NULL},
    {"database.max_overflow", PETREL_CFG_INT, "5",
     "extra connections beyond pool_size under load, process-wide (split across workers)", 0, 10000,
     NULL},
    {"database.pool_timeout_ms", PETREL_CFG_INT, "1000",
     "max wait for a free connection before 503", 0, 3600000, NULL},
    {"database.pool_recycle_s", PETREL_CFG_INT, "1800",
     "connections older than this are replaced at checkout (0: never)", 0, 1e9, NULL},
    {"database.pre_ping", PETREL_CFG_BOOL, "true",
     "check a connection at checkout (socket check; round trip when idle > 5 s)", 0, 0, NULL},
    {"database.connect_timeout_ms", PETREL_CFG_INT, "3000", "max time to open a connection", 1,
     3600000, NULL},
    {"database.statement_timeout_ms", PETREL_CFG_INT, "5000",
     "default query deadline (also the server's statement_timeout)", 1, 3600000, NULL},
    {"database.overflow_idle_ms", PETREL_CFG_INT, "2000",
     "an overflow connection (beyond pool_size) idle this long is closed", 0, 3600000, NULL},
    {"database.min_idle", PETREL_CFG_INT, "1",
     "connections opened per worker at startup (bounded by the worker's share)", 0, 1000, NULL},
    {"database.application_name", PETREL_CFG_STR, "petrel",
     "application_name of pooled connections (suffixed -w<worker>; see pg_stat_activity)", 0, 0,
     NULL},
};

/* ------------------------------------------------------------------ */
/* per-worker pool                                                     */

struct stmt_entry {
    char *sql;
    char name[16];
};

struct petrel_db_conn {
    PGconn *pg;
    struct db_pool *pool;
    struct petrel_db_conn *next_idle;
    int64_t created_ms, idle_since_ms;
    petrel_fiber_t *owner;
    int defer;
    bool busy;   /* a statement is in flight: its results were not all read */
    bool broken; /* unusable: close it instead of pooling it */
    struct stmt_entry stmts[DB_STMT_CACHE];
    int nstmts;
    unsigned stmt_seq;
};

struct waiter {
    struct waiter *next;
    petrel_fiber_t *fiber;
    petrel_db_conn_t *conn; /* handed over by a release */
    bool slot;              /* a connection closed: the waiter may open one */
};

struct db_pool {
    petrel__sched_t *sched;
    int worker;
    /* configuration snapshot (this worker's shares) */
    const char **kw, **vals;
    int size_cap, overflow_cap, min_idle;
    int64_t pool_timeout_ms, recycle_ms, connect_timeout_ms, statement_timeout_ms;
    int64_t overflow_idle_ms;
    bool pre_ping;
    /* state */
    petrel_db_conn_t *idle; /* LIFO: the warmest connection first */
    int nidle;
    int open; /* every connection this worker owns, including ones being opened */
    int busy; /* checked out or being rolled back */
    struct waiter *whead, *wtail;
    int fail_count;
    int64_t retry_at_ms;
    bool closing;
    petrel_fiber_t *refill; /* brings the pool back up to min_idle, while it runs */
    petrel__timer_t reap;   /* closes overflow connections once idle overflow_idle_ms */
};

static __thread struct db_pool *tl_pool;
static __thread char tl_errmsg[512];
static __thread char tl_sqlstate[6];

/* The request the calling fiber serves, or NULL (hooks, helper fibers). */
static petrel_req_t *current_req(void)
{
    return petrel__current_req();
}

static void db_set_err(const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void db_set_err(const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_errmsg, sizeof(tl_errmsg), fmt, ap);
    va_end(ap);
    /* libpq messages end with a newline; log lines should not. */
    size_t n = strlen(tl_errmsg);
    while (n > 0 && (tl_errmsg[n - 1] == '\n' || tl_errmsg[n - 1] == ' '))
        tl_errmsg[--n] = '\0';
    snprintf(tl_sqlstate, sizeof(tl_sqlstate), "%s", sqlstate != NULL ? sqlstate : "");
}

/* A connection died under a query: the log gets libpq's words, the client a
 * plain "Database unavailable" (libpq's text names hosts and sockets). */
static void db_conn_lost(petrel_db_conn_t *c)
{
    petrel_log(PETREL_LOG_WARN, "database connection lost: %s", PQerrorMessage(c->pg));
    db_set_err("08006", "Database unavailable");
}

/* Records the thread's last error on the current request (if any) and returns code. */
static int db_fail(int code)
{
    petrel_req_t *req = current_req();
    if (req != NULL)
        (void)petrel_set_error(req, code, "%s", tl_errmsg);
    return code;
}

const char *petrel_db_errmsg(void)
{
    return tl_errmsg;
}

const char *petrel_db_sqlstate(void)
{
    return tl_sqlstate;
}

/* ------------------------------------------------------------------ */
/* the cancel thread: PQcancel opens a connection and blocks, so it never
 * runs on a loop. One thread per process, started on first use.       */

struct cancel_item {
    struct cancel_item *next;
    PGcancel *cancel;
};

static pthread_once_t cancel_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t cancel_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cancel_cv = PTHREAD_COND_INITIALIZER;
static struct cancel_item *cancel_head, *cancel_tail;
static bool cancel_thread_ok;

static void *cancel_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&cancel_mu);
        while (cancel_head == NULL)
            pthread_cond_wait(&cancel_cv, &cancel_mu);
        struct cancel_item *it = cancel_head;
        cancel_head = it->next;
        if (cancel_head == NULL)
            cancel_tail = NULL;
        pthread_mutex_unlock(&cancel_mu);
        char buf[256];
        if (!PQcancel(it->cancel, buf, sizeof(buf)))
            petrel_log(PETREL_LOG_WARN, "db: cancel request failed: %s", buf);
        PQfreeCancel(it->cancel);
        free(it);
    }
    return NULL;
}

static void cancel_start(void)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    cancel_thread_ok = pthread_create(&t, &attr, cancel_main, NULL) == 0;
    pthread_attr_destroy(&attr);
}

/* Asks the server to cancel whatever `pg` runs, without blocking the caller. */
static void cancel_send(PGconn *pg)
{
    PGcancel *cn = PQgetCancel(pg);
    if (cn == NULL)
        return;
    pthread_once(&cancel_once, cancel_start);
    if (!cancel_thread_ok) {
        PQfreeCancel(cn);
        return;
    }
    struct cancel_item *it = petrel_xcalloc(1, sizeof(*it));
    it->cancel = cn;
    pthread_mutex_lock(&cancel_mu);
    if (cancel_tail != NULL)
        cancel_tail->next = it;
    else
        cancel_head = it;
    cancel_tail = it;
    pthread_cond_signal(&cancel_cv);
    pthread_mutex_unlock(&cancel_mu);
    atomic_fetch_add_explicit(&stats.cancels, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* connection open / close                                             */

static int64_t remaining_ms(int64_t deadline_ms)
{
    int64_t r = deadline_ms - petrel_now_ms();
    return r > 0 ? r : 0;
}

/* Opens a connection driven by fd readiness (PQconnectStartParams + PQconnectPoll).
 * Host names are resolved by libpq (getaddrinfo); use addresses or /etc/hosts names. */
static int conn_connect(struct db_pool *p, PGconn **out)
{
    int64_t deadline = petrel_now_ms() + p->connect_timeout_ms;
    PGconn *pg = PQconnectStartParams(p->kw, p->vals, 1);
    if (pg == NULL) {
        db_set_err(NULL, "out of memory opening a database connection");
        return PETREL_ENOMEM;
    }
    int rc = 0;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    if (PQstatus(pg) == CONNECTION_BAD)
        st = PGRES_POLLING_FAILED;
    petrel_fiber_set_await_kind("db.connect");
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            db_set_err(NULL, "database connect failed: %s", PQerrorMessage(pg));
            rc = PETREL_EIO;
            goto out;
        }
        int ev = st == PGRES_POLLING_READING ? PETREL_READABLE : PETREL_WRITABLE;
        int64_t left = remaining_ms(deadline);
        rc = left > 0 ? petrel_wait_fd(PQsocket(pg), ev, left) : PETREL_ETIMEDOUT;
        if (rc != 0) {
            db_set_err(NULL, "database connect: %s",
                       rc == PETREL_ETIMEDOUT ? "timed out" : petrel_strerror(rc));
            goto out;
        }
        st = PQconnectPoll(pg);
    }
    if (PQsetnonblocking(pg, 1) != 0 || PQenterPipelineMode(pg) != 1) {
        db_set_err(NULL, "database connect: cannot enter pipeline mode: %s", PQerrorMessage(pg));
        rc = PETREL_EIO;
    }
out:
    if (rc != 0) {
        PQfinish(pg);
        return rc;
    }
    *out = pg;
    return 0;
}

static void stmt_cache_clear(petrel_db_conn_t *c)
{
    for (int i = 0; i < c->nstmts; i++)
        free(c->stmts[i].sql);
    c->nstmts = 0;
}

/* Changes the worker's open count, keeping the overflow gauge (open beyond the
 * worker's pool_size share) in step. */
static void pool_open_add(struct db_pool *p, int delta)
{
    int before = p->open > p->size_cap ? p->open - p->size_cap : 0;
    p->open += delta;
    int after = p->open > p->size_cap ? p->open - p->size_cap : 0;
    atomic_fetch_add_explicit(&stats.size, delta, memory_order_relaxed);
    if (after != before)
        atomic_fetch_add_explicit(&stats.overflow, after - before, memory_order_relaxed);
}

static void pool_refill(struct db_pool *p);
static void pool_put(struct db_pool *p, petrel_db_conn_t *c);

/* Closes a connection the pool owns (idle or just checked in). A connection
 * that was mid-statement gets a server-side cancel first: closing the socket
 * alone leaves a running query until the server next talks to the client. */
static void conn_close(petrel_db_conn_t *c, bool invalidated)
{
    struct db_pool *p = c->pool;
    if (c->pg != NULL) {
        if (c->busy || PQtransactionStatus(c->pg) == PQTRANS_ACTIVE)
            cancel_send(c->pg);
        PQfinish(c->pg);
    }
    stmt_cache_clear(c);
    pool_open_add(p, -1);
    if (invalidated)
        atomic_fetch_add_explicit(&stats.invalidated, 1, memory_order_relaxed);
    free(c);
    /* A slot opened up: the first waiter may connect instead of waiting for a release. */
    if (p->whead != NULL && !p->closing) {
        struct waiter *w = p->whead;
        p->whead = w->next;
        if (p->whead == NULL)
            p->wtail = NULL;
        w->slot = true;
        petrel__fiber_wake(w->fiber, 0);
    }
    pool_refill(p);
}

static int conn_open(struct db_pool *p, petrel_db_conn_t **out);

/* Opens connections until min_idle are open again (after cancelled queries, dead or
 * recycled connections closed them), honouring the reconnect backoff. */
static void refill_main(void *arg)
{
    struct db_pool *p = arg;
    while (!p->closing && p->open < p->min_idle) {
        int64_t wait = p->retry_at_ms - petrel_now_ms();
        if (p->fail_count > 0 && wait > 0) {
            if (petrel_sleep(wait) != 0)
                break;
            continue;
        }
        petrel_db_conn_t *c;
        int rc = conn_open(p, &c);
        if (rc == PETREL_ECANCELED)
            break;
        if (rc != 0)
            continue; /* conn_open set the backoff */
        p->busy++;
        atomic_fetch_add_explicit(&stats.checked_out, 1, memory_order_relaxed);
        pool_put(p, c); /* to the first waiter, or idle */
    }
    p->refill = NULL;
}

static void pool_refill(struct db_pool *p)
{
    if (p->closing || p->refill != NULL || p->open >= p->min_idle)
        return;
    p->refill = petrel__fiber_new(p->sched, refill_main, p);
    petrel__fiber_schedule(p->refill);
}

/* Opens a new connection counted against this worker's share. */
static int conn_open(struct db_pool *p, petrel_db_conn_t **out)
{
    petrel_db_conn_t *c = petrel_xcalloc(1, sizeof(*c));
    c->pool = p;
    c->defer = -1;
    pool_open_add(p, 1);
    int rc = conn_connect(p, &c->pg);
    if (rc == PETREL_ECANCELED) {
        /* The caller went away: says nothing about the server, so no backoff. */
        conn_close(c, false);
        return rc;
    }
    if (rc != 0) {
        atomic_fetch_add_explicit(&stats.errors, 1, memory_order_relaxed);
        p->fail_count++;
        int64_t backoff = DB_BACKOFF_MIN_MS << (p->fail_count < 6 ? p->fail_count - 1 : 5);
        p->retry_at_ms =
            petrel_now_ms() + (backoff < DB_BACKOFF_MAX_MS ? backoff : DB_BACKOFF_MAX_MS);
        if (p->fail_count == 1 || p->fail_count % 50 == 0)
            petrel_log(PETREL_LOG_WARN, "db: worker %d: %s (attempt %d)", p->worker, tl_errmsg,
                       p->fail_count);
        conn_close(c, false);
        return rc;
    }
    if (p->fail_count > 0)
        petrel_log(PETREL_LOG_INFO, "db: worker %d: connected again after %d failures", p->worker,
                   p->fail_count);
    p->fail_count = 0;
    p->retry_at_ms = 0;
    c->created_ms = petrel_now_ms();
    atomic_fetch_add_explicit(&stats.connects, 1, memory_order_relaxed);
    *out = c;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the query engine                                                    */

/* JSON parameters as text. Strings live in `bufs` (free each). */
static int params_to_text(json_t *params, int *n, const char **vals, char **bufs)
{
    *n = 0;
    if (params == NULL || json_is_null(params))
        return 0;
    if (!json_is_array(params) || json_array_size(params) > DB_MAX_PARAMS) {
        db_set_err(NULL, "query parameters must be a JSON array of at most %d values",
                   DB_MAX_PARAMS);
        return PETREL_EINVAL;
    }
    size_t i;
    json_t *v;
    json_array_foreach (params, i, v) {
        char tmp[64];
        bufs[i] = NULL;
        switch (json_typeof(v)) {
        case JSON_NULL:
            vals[i] = NULL;
            break;
        case JSON_STRING:
            vals[i] = json_string_value(v);
            break;
        case JSON_INTEGER:
            snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            vals[i] = bufs[i] = petrel_xstrdup(tmp);
            break;
        case JSON_REAL:
            snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(v));
            vals[i] = bufs[i] = petrel_xstrdup(tmp);
            break;
        case JSON_TRUE:
            vals[i] = "true";
            break;
        case JSON_FALSE:
            vals[i] = "false";
            break;
        default:
            bufs[i] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (bufs[i] == NULL)
                return PETREL_ENOMEM;
            vals[i] = bufs[i];
            break;
        }
        (*n)++;
    }
    return 0;
}

enum item_kind { ITEM_PREP, ITEM_QUERY, ITEM_SYNC };

struct item {
    enum item_kind kind;
    size_t stmt;
    int cache_idx; /* ITEM_PREP: the cache entry to drop if preparing fails */
    bool failed;   /* ITEM_PREP: preparing failed (error already recorded) */
};

struct run_stmt {
    const char *sql;
    json_t *params; /* JSON parameters, or NULL */
    int ntext;      /* text parameters when textv != NULL */
    const char *const *textv;
};

static int stmt_lookup(petrel_db_conn_t *c, const char *sql)
{
    for (int i = 0; i < c->nstmts; i++)
        if (strcmp(c->stmts[i].sql, sql) == 0)
            return i;
    return -1;
}

/* Queues one statement (Parse when new to this connection, then Bind/Execute). */
static int send_stmt(petrel_db_conn_t *c, const struct run_stmt *s, size_t idx, struct item *items,
                     size_t *nitems)
{
    const char *vals_st[16];
    char *bufs_st[16];
    const char **vals = vals_st;
    char **bufs = bufs_st;
    int n = 0, rc = 0;
    size_t want = s->textv != NULL ? (size_t)s->ntext
                                   : (json_is_array(s->params) ? json_array_size(s->params) : 0);
    if (want > DB_MAX_PARAMS) {
        db_set_err(NULL, "too many query parameters (%zu)", want);
        return PETREL_EINVAL;
    }
    if (want > 16) {
        vals = petrel_xcalloc(want, sizeof(*vals));
        bufs = petrel_xcalloc(want, sizeof(*bufs));
    }
    memset(bufs, 0, (want > 16 ? want : 16) * sizeof(*bufs));
    if (s->textv != NULL) {
        n = s->ntext;
        for (int i = 0; i < n; i++)
            vals[i] = s->textv[i];
    } else {
        rc = params_to_text(s->params, &n, vals, bufs);
        if (rc != 0)
            goto out;
    }
    int ci = stmt_lookup(c, s->sql);
    int ok;
    if (ci < 0 && c->nstmts < DB_STMT_CACHE) {
        ci = c->nstmts++;
        c->stmts[ci].sql = petrel_xstrdup(s->sql);
        snprintf(c->stmts[ci].name, sizeof(c->stmts[ci].name), "p%u", ++c->stmt_seq);
        if (!PQsendPrepare(c->pg, c->stmts[ci].name, s->sql, 0, NULL)) {
            rc = PETREL_EIO;
            goto out;
        }
        items[(*nitems)++] = (struct item){ITEM_PREP, idx, ci, false};
    }
    if (ci >= 0)
        ok = PQsendQueryPrepared(c->pg, c->stmts[ci].name, n, vals, NULL, NULL, 0);
    else
        ok = PQsendQueryParams(c->pg, s->sql, n, NULL, vals, NULL, NULL, 0);
    if (!ok) {
        rc = PETREL_EIO;
        goto out;
    }
    items[(*nitems)++] = (struct item){ITEM_QUERY, idx, -1, false};
out:
    if (rc == PETREL_EIO)
        db_set_err(NULL, "database send failed: %s", PQerrorMessage(c->pg));
    for (size_t i = 0; i < want; i++)
        free(bufs[i]);
    if (vals != vals_st) {
        free(vals);
        free(bufs);
    }
    return rc;
}

/* Waits until libpq can hand out the next result without blocking. */
static int wait_result(petrel_db_conn_t *c, int64_t deadline)
{
    while (PQisBusy(c->pg)) {
        int64_t left = remaining_ms(deadline);
        int rc =
            left > 0 ? petrel_wait_fd(PQsocket(c->pg), PETREL_READABLE, left) : PETREL_ETIMEDOUT;
        if (rc != 0)
            return rc;
        if (!PQconsumeInput(c->pg)) {
            db_conn_lost(c);
            return PETREL_EPOOL;
        }
    }
    return 0;
}

/* Sends libpq's output buffer, reading input meanwhile so neither side stalls. */
static int flush_out(petrel_db_conn_t *c, int64_t deadline)
{
    for (;;) {
        int r = PQflush(c->pg);
        if (r == 0)
            return 0;
        if (r < 0) {
            db_conn_lost(c);
            return PETREL_EPOOL;
        }
        int64_t left = remaining_ms(deadline);
        int rc = left > 0 ? petrel_wait_fd(PQsocket(c->pg), PETREL_READABLE | PETREL_WRITABLE, left)
                          : PETREL_ETIMEDOUT;
        if (rc != 0)
            return rc;
        if (!PQconsumeInput(c->pg)) {
            db_conn_lost(c);
            return PETREL_EPOOL;
        }
    }
}

/* Next non-NULL result (NULL separators between queries are skipped). */
static int next_result(petrel_db_conn_t *c, int64_t deadline, PGresult **out)
{
    for (int guard = 0; guard < 4; guard++) {
        int rc = wait_result(c, deadline);
        if (rc != 0)
            return rc;
        PGresult *r = PQgetResult(c->pg);
        if (r != NULL) {
            *out = r;
            return 0;
        }
    }
    db_set_err(NULL, "database protocol error: result expected");
    return PETREL_EIO;
}

/* Reads up to the NULL that ends one query's results, dropping extra results. */
static int end_of_query(petrel_db_conn_t *c, int64_t deadline)
{
    for (;;) {
        int rc = wait_result(c, deadline);
        if (rc != 0)
            return rc;
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL)
            return 0;
        PQclear(r);
    }
}

struct petrel_db_res {
    PGresult *pg;
};

static petrel_db_res_t *res_wrap(PGresult *r)
{
    petrel_db_res_t *res = petrel_xmalloc(sizeof(*res));
    res->pg = r;
    return res;
}

/* Converts a statement's result status to a code, recording server errors. */
static int result_code(PGresult *r)
{
    switch (PQresultStatus(r)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
        return 0;
    case PGRES_PIPELINE_ABORTED:
        db_set_err(NULL, "pipeline aborted by an earlier error");
        return PETREL_EDB;
    default: {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        db_set_err(state, "%s", PQresultErrorMessage(r));
        atomic_fetch_add_explicit(&stats.errors, 1, memory_order_relaxed);
        /* 57014 query_canceled: statement_timeout (or our own cancel) fired. */
        if (state != NULL && strcmp(state, "57014") == 0)
            return PETREL_ETIMEDOUT;
        return PETREL_EDB;
    }
    }
}

/*
 * Runs `n` statements in one round trip. Every statement is followed by a
 * Sync unless `atomic` (one Sync at the end). On a connection-level failure
 * (deadline, cancellation, lost connection) the connection is marked broken
 * and every result is dropped.
 */
static int run_batch(petrel_db_conn_t *c, int64_t timeout_ms, bool dflt_timeout,
                     const struct run_stmt *stmts, size_t n, bool atomic, PGresult **res, int *rcs)
{
    struct db_pool *p = c->pool;
    PETREL_ASSERT(p == tl_pool);
    for (size_t i = 0; i < n; i++) {
        res[i] = NULL;
        rcs[i] = PETREL_EDB;
    }
    if (c->broken || c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = true;
        db_set_err(NULL, "database connection is broken");
        return PETREL_EPOOL;
    }
    if (petrel_cancelled())
        return PETREL_ECANCELED;
    int64_t deadline = petrel_now_ms() + timeout_ms + (dflt_timeout ? DB_CLIENT_GRACE_MS : 0);
    struct item items_st[24];
    struct item *items = 3 * n <= 24 ? items_st : petrel_xcalloc(3 * n, sizeof(*items));
    size_t nitems = 0;
    int rc = 0;
    c->busy = true;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = send_stmt(c, &stmts[i], i, items, &nitems);
        if (rc == 0 && (!atomic || i + 1 == n)) {
            if (!PQpipelineSync(c->pg)) {
                db_set_err(NULL, "database send failed: %s", PQerrorMessage(c->pg));
                rc = PETREL_EIO;
            }
            items[nitems++] = (struct item){ITEM_SYNC, i, -1, false};
        }
    }
    if (rc != 0) {
        /* Half a batch may sit in libpq's buffer: the connection is unusable. */
        goto fail;
    }
    petrel_fiber_set_await_kind("db.query");
    rc = flush_out(c, deadline);
    for (size_t k = 0; k < nitems && rc == 0; k++) {
        struct item *it = &items[k];
        PGresult *r = NULL;
        rc = next_result(c, deadline, &r);
        if (rc != 0)
            break;
        if (it->kind == ITEM_SYNC) {
            int st = PQresultStatus(r);
            PQclear(r);
            if (st != PGRES_PIPELINE_SYNC) {
                db_set_err(NULL, "database protocol error: sync expected");
                rc = PETREL_EIO;
            }
            continue;
        }
        if (it->kind == ITEM_QUERY && k > 0 && items[k - 1].kind == ITEM_PREP &&
            items[k - 1].failed) {
            /* Aborted because its Parse failed: the error is already recorded. */
            PQclear(r);
            rc = end_of_query(c, deadline);
            continue;
        }
        int code = result_code(r);
        if (it->kind == ITEM_PREP) {
            PQclear(r);
            if (code != 0) {
                /* Forget the name so the next use prepares it again; the error
                 * is the statement's (its execute comes back aborted). */
                int ci = it->cache_idx;
                free(c->stmts[ci].sql);
                c->stmts[ci] = c->stmts[--c->nstmts];
                for (size_t j = k + 1; j < nitems; j++)
                    if (items[j].kind == ITEM_PREP && items[j].cache_idx == c->nstmts)
                        items[j].cache_idx = ci;
                rcs[it->stmt] = code;
                it->failed = true;
            }
            rc = end_of_query(c, deadline);
            continue;
        }
        rcs[it->stmt] = code;
        if (code == 0)
            res[it->stmt] = r;
        else
            PQclear(r);
        rc = end_of_query(c, deadline);
    }
    if (rc != 0)
        goto fail;
    c->busy = false;
    if (items != items_st)
        free(items);
    return 0;
fail:
    if (rc == PETREL_ETIMEDOUT)
        db_set_err("57014", "query timed out after %lld ms", (long long)timeout_ms);
    else if (rc == PETREL_ECANCELED)
        db_set_err(NULL, "query cancelled");
    c->broken = true;
    atomic_fetch_add_explicit(&stats.errors, 1, memory_order_relaxed);
    /* Cancel now rather than at checkin: the fiber may hold the connection a while. */
    if (c->pg != NULL && c->busy) {
        cancel_send(c->pg);
        c->busy = false;
        PQfinish(c->pg);
        c->pg = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
    if (items != items_st)
        free(items);
    return rc == PETREL_EIO ? PETREL_EPOOL : rc;
}

static int64_t query_timeout(const petrel_db_conn_t *c, int64_t timeout_ms, bool *dflt)
{
    *dflt = timeout_ms == PETREL_TIMEOUT_DEFAULT || timeout_ms < 0;
    return *dflt ? c->pool->statement_timeout_ms : timeout_ms;
}

static int query_one(petrel_db_conn_t *c, int64_t timeout_ms, petrel_db_res_t **res,
                     const struct run_stmt *s)
{
    if (c == NULL || s->sql == NULL)
        return PETREL_EINVAL;
    bool dflt;
    int64_t t = query_timeout(c, timeout_ms, &dflt);
    PGresult *r = NULL;
    int rcs = 0;
    int rc = run_batch(c, t, dflt, s, 1, false, &r, &rcs);
    if (rc == 0)
        rc = rcs;
    if (rc != 0)
        return db_fail(rc);
    if (res != NULL)
        *res = res_wrap(r);
    else
        PQclear(r);
    return 0;
}

int petrel_db_query(petrel_db_conn_t *c, int64_t timeout_ms, petrel_db_res_t **res, const char *sql,
                    json_t *params)
{
    struct run_stmt s = {.sql = sql, .params = params};
    return query_one(c, timeout_ms, res, &s);
}

int petrel_db_query_text(petrel_db_conn_t *c, int64_t timeout_ms, petrel_db_res_t **res,
                         const char *sql, int nparams, const char *const *values)
{
    if (nparams < 0 || nparams > DB_MAX_PARAMS || (nparams > 0 && values == NULL))
        return PETREL_EINVAL;
    static const char *const none[1] = {NULL};
    struct run_stmt s = {.sql = sql, .ntext = nparams, .textv = nparams > 0 ? values : none};
    return query_one(c, timeout_ms, res, &s);
}

int petrel_db_pipeline(petrel_db_conn_t *c, int64_t timeout_ms, const petrel_db_stmt_t *stmts,
                       size_t n, int flags, petrel_db_res_t **res, int *rcs)
{
    if (c == NULL || (n > 0 && (stmts == NULL || res == NULL || rcs == NULL)))
        return PETREL_EINVAL;
    if (n == 0)
        return 0;
    struct run_stmt *rs = petrel_xcalloc(n, sizeof(*rs));
    PGresult **pr = petrel_xcalloc(n, sizeof(*pr));
    for (size_t i = 0; i < n; i++) {
        rs[i].sql = stmts[i].sql;
        rs[i].params = stmts[i].params;
        res[i] = NULL;
    }
    bool dflt;
    int64_t t = query_timeout(c, timeout_ms, &dflt);
    int rc = run_batch(c, t, dflt, rs, n, (flags & PETREL_DB_PIPELINE_ATOMIC) != 0, pr, rcs);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            res[i] = pr[i] != NULL ? res_wrap(pr[i]) : NULL;
    }
    free(rs);
    free(pr);
    return rc != 0 ? db_fail(rc) : 0;
}

static int tx_cmd(petrel_db_conn_t *c, int64_t timeout_ms, const char *sql)
{
    if (c == NULL)
        return PETREL_EINVAL;
    /* Sent unnamed (never prepared): transaction control needs no plan. */
    static const char *const none[1] = {NULL};
    struct run_stmt s = {.sql = sql, .ntext = 0, .textv = none};
    bool dflt;
    int64_t t = query_timeout(c, timeout_ms, &dflt);
    PGresult *r = NULL;
    int rcs = 0;
    int rc = run_batch(c, t, dflt, &s, 1, false, &r, &rcs);
    PQclear(r);
    if (rc == 0)
        rc = rcs;
    return rc != 0 ? db_fail(rc) : 0;
}

int petrel_db_begin(petrel_db_conn_t *c, int64_t timeout_ms)
{
    return tx_cmd(c, timeout_ms, "BEGIN");
}

int petrel_db_commit(petrel_db_conn_t *c, int64_t timeout_ms)
{
    return tx_cmd(c, timeout_ms, "COMMIT");
}

int petrel_db_rollback(petrel_db_conn_t *c, int64_t timeout_ms)
{
    return tx_cmd(c, timeout_ms, "ROLLBACK");
}

bool petrel_db_in_transaction(const petrel_db_conn_t *c)
{
    if (c == NULL || c->pg == NULL)
        return false;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
}

int petrel_db_backend_pid(const petrel_db_conn_t *c)
{
    return c != NULL && c->pg != NULL ? PQbackendPID(c->pg) : 0;
}

/* ------------------------------------------------------------------ */
/* checkout / checkin                                                  */

static void pool_put(struct db_pool *p, petrel_db_conn_t *c);

static void checkin_defer_cb(void *arg);

static void checkout_register(petrel_db_conn_t *c)
{
    c->owner = petrel_fiber_current();
    c->defer = petrel_defer(checkin_defer_cb, c);
}

/* Hands a clean connection to the first waiter, else idles or closes it. */
static void pool_put(struct db_pool *p, petrel_db_conn_t *c)
{
    if (p->whead != NULL && !p->closing) {
        struct waiter *w = p->whead;
        p->whead = w->next;
        if (p->whead == NULL)
            p->wtail = NULL;
        w->conn = c; /* stays checked out: ownership moves to the waiter */
        petrel__fiber_wake(w->fiber, 0);
        return;
    }
    p->busy--;
    atomic_fetch_sub_explicit(&stats.checked_out, 1, memory_order_relaxed);
    if (p->closing) {
        conn_close(c, false);
        return;
    }
    /* Overflow connections (beyond pool_size) idle too, and are closed only once idle for
     * overflow_idle_ms: closing them on release (SQLAlchemy's QueuePool) made a worker that
     * runs a few more queries than its share reconnect on nearly every request, at a
     * connection set-up (SCRAM included) each. */
    c->idle_since_ms = petrel_now_ms();
    c->next_idle = p->idle;
    p->idle = c;
    p->nidle++;
    atomic_fetch_add_explicit(&stats.idle, 1, memory_order_relaxed);
    if (p->open > p->size_cap && p->reap.idx == SIZE_MAX)
        petrel__timer_start(p->sched, &p->reap, p->overflow_idle_ms);
}

/* Closes idle connections beyond pool_size that sat idle overflow_idle_ms or more, the
 * coldest first (the idle list is LIFO: they are at its end); re-arms while overflow
 * remains. */
static void pool_reap_cb(petrel__timer_t *t)
{
    struct db_pool *p = t->data;
    int64_t now = petrel_now_ms();
    while (!p->closing && p->open > p->size_cap && p->idle != NULL) {
        petrel_db_conn_t **pp = &p->idle;
        while ((*pp)->next_idle != NULL)
            pp = &(*pp)->next_idle;
        petrel_db_conn_t *c = *pp;
        if (now - c->idle_since_ms < p->overflow_idle_ms)
            break;
        *pp = NULL;
        p->nidle--;
        atomic_fetch_sub_explicit(&stats.idle, 1, memory_order_relaxed);
        conn_close(c, false);
    }
    /* Again when the coldest idle one comes due; with none idle, the next check-in re-arms. */
    if (!p->closing && p->open > p->size_cap && p->idle != NULL) {
        petrel_db_conn_t *c = p->idle;
        while (c->next_idle != NULL)
            c = c->next_idle;
        int64_t due = c->idle_since_ms + p->overflow_idle_ms - now;
        petrel__timer_start(p->sched, &p->reap, due > 1 ? due : 1);
    }
}

/* Checked-out connection that must not be pooled: close it and free the slot. */
static void checkin_discard(struct db_pool *p, petrel_db_conn_t *c)
{
    p->busy--;
    atomic_fetch_sub_explicit(&stats.checked_out, 1, memory_order_relaxed);
    conn_close(c, true);
}

static void rollback_fiber(void *arg)
{
    petrel_db_conn_t *c = arg;
    struct db_pool *p = c->pool;
    int rc = tx_cmd(c, DB_ROLLBACK_TIMEOUT_MS, "ROLLBACK");
    if (rc == 0 && !c->broken && !petrel_db_in_transaction(c))
        pool_put(p, c);
    else
        checkin_discard(p, c);
}

static void checkin(petrel_db_conn_t *c)
{
    struct db_pool *p = c->pool;
    c->owner = NULL;
    c->defer = -1;
    if (c->broken || c->busy || c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) == PQTRANS_ACTIVE ||
        PQtransactionStatus(c->pg) == PQTRANS_UNKNOWN) {
        checkin_discard(p, c);
        return;
    }
    if (petrel_db_in_transaction(c)) {
        /* Defers must not await: a fresh fiber rolls back, then pools it. */
        petrel_fiber_t *f = petrel__fiber_new(p->sched, rollback_fiber, c);
        petrel__fiber_schedule(f);
        return;
    }
    pool_put(p, c);
}

static void checkin_defer_cb(void *arg)
{
    checkin(arg);
}

void petrel_db_release(petrel_db_conn_t *c)
{
    if (c == NULL)
        return;
    PETREL_ASSERT(c->owner == petrel_fiber_current());
    if (c->defer >= 0)
        (void)petrel_defer_pop(c->defer, false);
    checkin(c);
}

/* Cheap health check of an idle connection (no round trip): an idle
 * connection has nothing to read unless the server closed it or sent an error
 * (terminated backend, server shutdown). */
static bool idle_conn_ok(struct db_pool *p, petrel_db_conn_t *c, int64_t now)
{
    if (p->recycle_ms > 0 && now - c->created_ms > p->recycle_ms)
        return false;
    if (PQstatus(c->pg) != CONNECTION_OK)
        return false;
    if (!p->pre_ping)
        return true;
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
    int r = poll(&pfd, 1, 0);
    return r == 0;
}

static int ping(petrel_db_conn_t *c)
{
    static const char *const none[1] = {NULL};
    struct run_stmt s = {.sql = "", .ntext = 0, .textv = none};
    PGresult *r = NULL;
    int rcs = 0;
    int64_t t = c->pool->connect_timeout_ms < 1000 ? c->pool->connect_timeout_ms : 1000;
    int rc = run_batch(c, t, false, &s, 1, false, &r, &rcs);
    PQclear(r);
    return rc != 0 ? rc : rcs;
}

static petrel_db_conn_t *idle_pop(struct db_pool *p)
{
    petrel_db_conn_t *c = p->idle;
    if (c == NULL)
        return NULL;
    p->idle = c->next_idle;
    c->next_idle = NULL;
    p->nidle--;
    atomic_fetch_sub_explicit(&stats.idle, 1, memory_order_relaxed);
    return c;
}

static void waiter_remove(struct db_pool *p, struct waiter *w)
{
    struct waiter **pp = &p->whead, *prev = NULL;
    while (*pp != NULL && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = w->next;
    if (p->wtail == w)
        p->wtail = prev;
}

/* Wakes the first waiter when it can make progress now: an idle connection, or room to open
 * one (while the database is down it then fails fast on the reconnect backoff and kicks the
 * next). Every acquire calls it on its way out, so the queue never sits parked until its
 * timeouts while connections idle or slots are free: new arrivals queue behind a non-empty
 * queue, so a waiter nobody wakes would otherwise turn every request into a
 * pool_timeout_ms 503 ("pool exhausted") long after the database came back. */
static void pool_kick(struct db_pool *p)
{
    if (p->whead == NULL || p->closing)
        return;
    if (p->idle == NULL && p->open >= p->size_cap + p->overflow_cap)
        return;
    struct waiter *w = p->whead;
    p->whead = w->next;
    if (p->whead == NULL)
        p->wtail = NULL;
    w->slot = true;
    petrel__fiber_wake(w->fiber, 0);
}

static int acquire_fail(int code, const char *msg)
{
    db_set_err(NULL, "%s", msg);
    return db_fail(code);
}

int petrel_db_acquire(int64_t timeout_ms, petrel_db_conn_t **out)
{
    struct db_pool *p = tl_pool;
    if (p == NULL || petrel_fiber_current() == NULL) {
        db_set_err(NULL, "no database pool on this thread (petrel_db_setup, worker fiber)");
        return PETREL_EINVAL;
    }
    if (petrel_cancelled())
        return PETREL_ECANCELED;
    if (p->closing)
        return acquire_fail(PETREL_EPOOL, "Database unavailable");
    if (timeout_ms == PETREL_TIMEOUT_DEFAULT || timeout_ms < 0)
        timeout_ms = p->pool_timeout_ms;
    int64_t deadline = petrel_now_ms() + timeout_ms;
    bool queued_before = false;
    for (;;) {
        /* 1. an idle connection (the waiters queue is empty or we are first) */
        if (p->whead == NULL || queued_before) {
            petrel_db_conn_t *c;
            while ((c = idle_pop(p)) != NULL) {
                int64_t now = petrel_now_ms();
                p->busy++;
                atomic_fetch_add_explicit(&stats.checked_out, 1, memory_order_relaxed);
                if (!idle_conn_ok(p, c, now) ||
                    (p->pre_ping && now - c->idle_since_ms > DB_PING_IDLE_MS && ping(c) != 0)) {
                    if (petrel_cancelled()) {
                        checkin_discard(p, c);
                        return PETREL_ECANCELED;
                    }
                    checkin_discard(p, c);
                    continue;
                }
                checkout_register(c);
                *out = c;
                pool_kick(p);
                return 0;
            }
            /* 2. a new connection while this worker's share allows */
            if (p->open < p->size_cap + p->overflow_cap) {
                if (p->fail_count > 0 && petrel_now_ms() < p->retry_at_ms) {
                    pool_kick(p);
                    return acquire_fail(PETREL_EPOOL, "Database unavailable");
                }
                int rc = conn_open(p, &c);
                if (rc == PETREL_ECANCELED)
                    return rc;
                if (rc != 0)
                    return acquire_fail(PETREL_EPOOL, "Database unavailable");
                p->busy++;
                atomic_fetch_add_explicit(&stats.checked_out, 1, memory_order_relaxed);
                checkout_register(c);
                *out = c;
                pool_kick(p);
                return 0;
            }
        }
        /* 3. wait in line for a release (or a closed slot) */
        int64_t left = remaining_ms(deadline);
        if (left <= 0)
            break;
        struct waiter w = {.fiber = petrel_fiber_current()};
        if (p->wtail != NULL)
            p->wtail->next = &w;
        else
            p->whead = &w;
        p->wtail = &w;
        atomic_fetch_add_explicit(&stats.waiting, 1, memory_order_relaxed);
        petrel_fiber_set_await_kind("db.acquire");
        int rc = petrel__fiber_park(left);
        atomic_fetch_sub_explicit(&stats.waiting, 1, memory_order_relaxed);
        if (w.conn != NULL) {
            if (rc == PETREL_ECANCELED) {
                /* Handed over just as we were cancelled: pass it on. */
                pool_put(p, w.conn);
                return PETREL_ECANCELED;
            }
            checkout_register(w.conn);
            *out = w.conn;
            pool_kick(p);
            return 0;
        }
        if (!w.slot)
            waiter_remove(p, &w);
        if (rc == PETREL_ECANCELED || rc == PETREL_ETIMEDOUT) {
            /* A wake that raced the timeout must not be lost. */
            pool_kick(p);
            if (rc == PETREL_ECANCELED)
                return rc;
            break;
        }
        queued_before = true;
    }
    atomic_fetch_add_explicit(&stats.timeouts, 1, memory_order_relaxed);
    return acquire_fail(PETREL_EPOOL, "Database pool exhausted");
}

int petrel_db_fetch_json(int64_t timeout_ms, json_t **out, const char *sql, json_t *params)
{
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    petrel_db_res_t *res = NULL;
    rc = petrel_db_query(c, timeout_ms, &res, sql, params);
    petrel_db_release(c);
    if (rc != 0)
        return rc;
    *out = petrel_db_res_json(res);
    petrel_db_res_free(res);
    return 0;
}

/* ------------------------------------------------------------------ */
/* lifespan: per-worker pools                                          */

static int share(int64_t total, int n, int i)
{
    return (int)(total / n + (i < total % n ? 1 : 0));
}

static void pool_free(struct db_pool *p)
{
    if (p->kw != NULL) {
        for (size_t i = 0; p->vals[i] != NULL || p->kw[i] != NULL; i++)
            free((void *)(uintptr_t)p->vals[i]);
    }
    free(p->kw);
    free(p->vals);
    free(p);
}

static int db_worker_start(petrel_app_t *app, int worker, void *arg)
{
    (void)arg;
    const petrel_config_t *cfg = petrel_app_config(app);
    const char *url = petrel_config_str(cfg, "database.url");
    if (url == NULL || *url == '\0') {
        petrel_log(PETREL_LOG_ERROR, "database.url is not set: set PETREL_DATABASE_URL (or "
                                     "database.url in the config file)");
        return PETREL_ECONFIG;
    }
    int nw = petrel_app_workers(app);
    if (nw <= 0)
        nw = 1;
    struct db_pool *p = petrel_xcalloc(1, sizeof(*p));
    p->sched = petrel__sched_current();
    p->worker = worker;
    int64_t size = petrel_config_int(cfg, "database.pool_size");
    int64_t over = petrel_config_int(cfg, "database.max_overflow");
    p->size_cap = share(size, nw, worker);
    p->overflow_cap = share(over, nw, worker);
    p->min_idle = (int)petrel_config_int(cfg, "database.min_idle");
    if (p->min_idle > p->size_cap)
        p->min_idle = p->size_cap;
    p->pool_timeout_ms = petrel_config_int(cfg, "database.pool_timeout_ms");
    p->recycle_ms = petrel_config_int(cfg, "database.pool_recycle_s") * 1000;
    p->connect_timeout_ms = petrel_config_int(cfg, "database.connect_timeout_ms");
    p->statement_timeout_ms = petrel_config_int(cfg, "database.statement_timeout_ms");
    p->pre_ping = petrel_config_bool(cfg, "database.pre_ping");
    p->overflow_idle_ms = petrel_config_int(cfg, "database.overflow_idle_ms");
    petrel__timer_init(&p->reap, pool_reap_cb, p);
    if (worker == 0) {
        atomic_store(&stats.capacity, size + over);
        if (size + over < nw)
            petrel_log(PETREL_LOG_WARN,
                       "database.pool_size + max_overflow (%lld) < workers (%d): some workers "
                       "have no database connection",
                       (long long)(size + over), nw);
    }
    /* The startup packet carries the session settings: no extra round trip.
     * client_connection_check_interval makes the server notice a client that
     * vanished mid-query even if our cancel request is lost. Options given in
     * the URL (?options=-csearch_path%3Dx) are kept. */
    char *url_opts = NULL;
    PQconninfoOption *ci = PQconninfoParse(url, NULL);
    for (PQconninfoOption *o = ci; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, "options") == 0 && o->val != NULL)
            url_opts = petrel_xstrdup(o->val);
    PQconninfoFree(ci);
    char opts[1024];
    snprintf(opts, sizeof(opts),
             "%s%s-c statement_timeout=%lld -c client_connection_check_interval=1000",
             url_opts != NULL ? url_opts : "", url_opts != NULL ? " " : "",
             (long long)p->statement_timeout_ms);
    free(url_opts);
    char appname[96];
    const char *an = petrel_config_str(cfg, "database.application_name");
    snprintf(appname, sizeof(appname), "%s-w%d", an != NULL ? an : "petrel", worker);
    /* gssencmode comes before dbname so a URL can still turn it on: by default
     * libpq would try GSSAPI first, whose Kerberos setup reads files on the loop
     * and was seen corrupting memory when worker threads connect at once. */
    const char *kw[] = {"gssencmode",       "dbname",          "options",
                        "application_name", "client_encoding", NULL};
    const char *vals[] = {"disable", url, opts, appname, "UTF8", NULL};
    p->kw = petrel_xcalloc(6, sizeof(*p->kw));
    p->vals = petrel_xcalloc(6, sizeof(*p->vals));
    for (int i = 0; i < 5; i++) {
        p->kw[i] = kw[i];
        p->vals[i] = petrel_xstrdup(vals[i]);
    }
    tl_pool = p;
    /* Warm up: a database that is down now is not fatal; the pool reconnects
     * with backoff and requests get 503 meanwhile. */
    for (int i = 0; i < p->min_idle; i++) {
        petrel_db_conn_t *c;
        if (conn_open(p, &c) != 0)
            break;
        p->busy++;
        atomic_fetch_add_explicit(&stats.checked_out, 1, memory_order_relaxed);
        pool_put(p, c);
    }
    return 0;
}

static int db_worker_stop(petrel_app_t *app, int worker, void *arg)
{
    (void)app;
    (void)worker;
    (void)arg;
    struct db_pool *p = tl_pool;
    if (p == NULL)
        return 0;
    p->closing = true;
    petrel__timer_stop(p->sched, &p->reap);
    if (p->refill != NULL)
        petrel_fiber_cancel(p->refill);
    /* Rollback fibers may still hold connections for a moment. */
    int64_t until = petrel_now_ms() + DB_ROLLBACK_TIMEOUT_MS;
    while ((p->busy > 0 || p->refill != NULL) && petrel_now_ms() < until)
        if (petrel_sleep(5) != 0)
            break;
    petrel_db_conn_t *c;
    while ((c = idle_pop(p)) != NULL)
        conn_close(c, false);
    if (p->busy > 0 || p->open > 0)
        petrel_log(PETREL_LOG_WARN, "db: worker %d: %d connections still in use at shutdown",
                   p->worker, p->open);
    tl_pool = NULL;
    if (p->open == 0)
        pool_free(p);
    return 0;
}

int petrel__db_declare(petrel_config_t *cfg)
{
    return petrel_config_declare(cfg, db_keys, sizeof(db_keys) / sizeof(db_keys[0]));
}

int petrel_db_setup(petrel_app_t *app)
{
    if (db_app != NULL)
        return PETREL_EINVAL;
    db_app = app;
    petrel_app_on_worker_start(app, db_worker_start, NULL);
    petrel_app_on_worker_stop(app, db_worker_stop, NULL);
    return 0;
}

void petrel_db_stats(petrel_db_stats_t *out)
{
    out->size = atomic_load_explicit(&stats.size, memory_order_relaxed);
    out->idle = atomic_load_explicit(&stats.idle, memory_order_relaxed);
    out->checked_out = atomic_load_explicit(&stats.checked_out, memory_order_relaxed);
    out->overflow = atomic_load_explicit(&stats.overflow, memory_order_relaxed);
    out->waiting = atomic_load_explicit(&stats.waiting, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&stats.timeouts, memory_order_relaxed);
    out->connects = atomic_load_explicit(&stats.connects, memory_order_relaxed);
    out->errors = atomic_load_explicit(&stats.errors, memory_order_relaxed);
    out->invalidated = atomic_load_explicit(&stats.invalidated, memory_order_relaxed);
    out->cancels = atomic_load_explicit(&stats.cancels, memory_order_relaxed);
    out->capacity = atomic_load_explicit(&stats.capacity, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* results                                                             */

void petrel_db_res_free(petrel_db_res_t *res)
{
    if (res == NULL)
        return;
    PQclear(res->pg);
    free(res);
}

int petrel_db_res_nrows(const petrel_db_res_t *res)
{
    return res != NULL ? PQntuples(res->pg) : 0;
}

int petrel_db_res_ncols(const petrel_db_res_t *res)
{
    return res != NULL ? PQnfields(res->pg) : 0;
}

int64_t petrel_db_res_affected(const petrel_db_res_t *res)
{
    if (res == NULL)
        return 0;
    const char *s = PQcmdTuples(res->pg);
    return s != NULL && *s != '\0' ? strtoll(s, NULL, 10) : 0;
}

const char *petrel_db_res_colname(const petrel_db_res_t *res, int col)
{
    if (res == NULL || col < 0 || col >= PQnfields(res->pg))
        return NULL;
    return PQfname(res->pg, col);
}

static bool in_range(const petrel_db_res_t *res, int row, int col)
{
    return res != NULL && row >= 0 && col >= 0 && row < PQntuples(res->pg) &&
           col < PQnfields(res->pg);
}

const char *petrel_db_res_text(const petrel_db_res_t *res, int row, int col)
{
    if (!in_range(res, row, col) || PQgetisnull(res->pg, row, col))
        return NULL;
    return PQgetvalue(res->pg, row, col);
}

int64_t petrel_db_res_int(const petrel_db_res_t *res, int row, int col, int64_t fallback)
{
    const char *s = petrel_db_res_text(res, row, col);
    if (s == NULL || *s == '\0')
        return fallback;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return fallback;
    return v;
}

/* Type OIDs from pg_type.h (stable across PostgreSQL versions). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_BOOLARR = 1000,
    OID_INT2ARR = 1005,
    OID_INT4ARR = 1007,
    OID_TEXTARR = 1009,
    OID_VARCHARARR = 1015,
    OID_INT8ARR = 1016,
    OID_FLOAT8ARR = 1022,
    OID_DATE = 1082,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

/* "2024-01-02 03:04:05.123+00" -> "2024-01-02T03:04:05.123+00:00" */
static json_t *iso8601(const char *s)
{
    char buf[64];
    size_t n = 0;
    for (const char *q = s; *q != '\0' && n + 4 < sizeof(buf); q++) {
        char ch = *q;
        if (ch == ' ' && n == 10)
            ch = 'T';
        buf[n++] = ch;
    }
    buf[n] = '\0';
    /* A zone written "+HH" gets its minutes so every parser accepts it. */
    if (n >= 3 && (buf[n - 3] == '+' || buf[n - 3] == '-') && n > 19) {
        buf[n++] = ':';
        buf[n++] = '0';
        buf[n++] = '0';
        buf[n] = '\0';
    }
    return json_string(buf);
}

/* Scalar text of an element type as JSON. */
static json_t *scalar_json(unsigned oid, const char *s)
{
    char *end;
    switch (oid) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return json_integer(strtoll(s, &end, 10));
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC: {
        double d = strtod(s, &end);
        if (*end != '\0' || !isfinite(d)) /* NaN, Infinity: JSON has none (JS: null) */
            return json_null();
        return json_real(d);
    }
    case OID_BOOL:
        return json_boolean(s[0] == 't');
    case OID_JSON:
    case OID_JSONB: {
        json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        return v != NULL ? v : json_string(s);
    }
    case OID_TIMESTAMPTZ:
    case OID_TIMESTAMP:
    case OID_DATE:
        return iso8601(s);
    default:
        return json_string(s);
    }
}

/* Parses a one-dimensional array literal {a,"b c",NULL}. */
static json_t *array_json(unsigned elem, const char *s)
{
    json_t *arr = json_array();
    if (*s != '{')
        return arr;
    s++;
    size_t cap = strlen(s) + 1;
    char *tok = petrel_xmalloc(cap);
    while (*s != '\0' && *s != '}') {
        size_t n = 0;
        bool quoted = false;
        if (*s == '"') {
            quoted = true;
            s++;
            while (*s != '\0' && *s != '"') {
                if (*s == '\\' && s[1] != '\0')
                    s++;
                tok[n++] = *s++;
            }
            if (*s == '"')
                s++;
        } else {
            while (*s != '\0' && *s != ',' && *s != '}')
                tok[n++] = *s++;
        }
        tok[n] = '\0';
        if (!quoted && strcmp(tok, "NULL") == 0)
            json_array_append_new(arr, json_null());
        else
            json_array_append_new(arr, scalar_json(elem, tok));
        if (*s == ',')
            s++;
    }
    free(tok);
    return arr;
}

json_t *petrel_db_res_value_json(const petrel_db_res_t *res, int row, int col)
{
    if (!in_range(res, row, col) || PQgetisnull(res->pg, row, col))
        return json_null();
    const char *s = PQgetvalue(res->pg, row, col);
    unsigned oid = PQftype(res->pg, col);
    switch (oid) {
    case OID_BOOLARR:
        return array_json(OID_BOOL, s);
    case OID_INT2ARR:
    case OID_INT4ARR:
    case OID_INT8ARR:
        return array_json(OID_INT8, s);
    case OID_FLOAT8ARR:
        return array_json(OID_FLOAT8, s);
    case OID_TEXTARR:
    case OID_VARCHARARR:
        return array_json(0, s);
    default:
        return scalar_json(oid, s);
    }
}

json_t *petrel_db_res_row_json(const petrel_db_res_t *res, int row)
{
    if (res == NULL || row < 0 || row >= PQntuples(res->pg))
        return NULL;
    json_t *o = json_object();
    int nf = PQnfields(res->pg);
    for (int j = 0; j < nf; j++)
        json_object_set_new(o, PQfname(res->pg, j), petrel_db_res_value_json(res, row, j));
    return o;
}

json_t *petrel_db_res_json(const petrel_db_res_t *res)
{
    json_t *arr = json_array();
    int n = petrel_db_res_nrows(res);
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, petrel_db_res_row_json(res, i));
    return arr;
}
