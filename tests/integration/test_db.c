/*
 * test_db.c - PostgreSQL against the real throwaway server (PETREL_TEST_DATABASE_URL, set by
 * scripts/dev.sh test): the pool's knobs (FIFO wait then 503, deadlines cancelled on the
 * server, client disconnects, rollback on failure, pre-ping, recycle, stats, the configured
 * total), results as typed JSON, pipelines with isolated errors, the reference app's
 * TechEmpower and CRUD routes, migrations (up/down/status, checksums, concurrent migrators)
 * and readiness while migrations are pending.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <petrel/app.h>
#include <petrel/db.h>
#include <petrel/fiber.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

/* The reference app's DB module (routes, readiness, migrate command) under test. */
#include "../../app/db_routes.c"

#define MIGRATIONS PETREL_SOURCE_DIR "/migrations"

static const char *db_url(void)
{
    const char *u = getenv("PETREL_TEST_DATABASE_URL");
    if (u == NULL || *u == '\0')
        cr_assert_fail("PETREL_TEST_DATABASE_URL is not set: run the database tests under "
                       "scripts/dev.sh test, which starts a throwaway PostgreSQL");
    return u;
}

/* ---- an admin connection for checks (blocking; tests only) ---- */

static PGconn *admin(void)
{
    const char *kw[] = {"dbname", NULL};
    const char *vals[] = {db_url(), NULL};
    PGconn *pg = PQconnectdbParams(kw, vals, 1);
    cr_assert(PQstatus(pg) == CONNECTION_OK, "admin connect: %s", PQerrorMessage(pg));
    return pg;
}

static long long admin_int(PGconn *pg, const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    PGresult *r = PQexecParams(pg, sql, p1 != NULL ? 1 : 0, NULL, v, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    long long x = PQntuples(r) > 0 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return x;
}

static void admin_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* application_name prefix unique to this test process: "t<pid>" -> backends "t<pid>-w0". */
static char appname[32];
static char appname_like[40];

static long long active_sleeps(PGconn *pg)
{
    return admin_int(pg,
                     "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1 "
                     "AND state = 'active' AND query LIKE '%pg_sleep%'",
                     appname_like);
}

static long long pool_backends(PGconn *pg)
{
    return admin_int(pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
                     appname_like);
}

static void migrate_standard(void)
{
    char err[512];
    int rc = petrel_db_migrate(db_url(), MIGRATIONS, PETREL_DB_MIGRATE_UP, 0, NULL, NULL, err,
                               sizeof(err));
    cr_assert_eq(rc, 0, "migrate up: %s", err);
}

/* ---- test routes ---- */

/* GET /t/sleep?s=&timeout= : SELECT pg_sleep(s) with an optional query deadline. */
static int t_sleep(petrel_req_t *req)
{
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    json_t *params = json_pack("[f]", petrel_param_float(req, "s", 0));
    rc = petrel_db_query(c, petrel_param_int(req, "timeout", PETREL_TIMEOUT_DEFAULT), NULL,
                         "SELECT pg_sleep($1::float8)", params);
    json_decref(params);
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_pack("{s:b}", "ok", 1));
}

/* GET /t/pid : the backend pid of the connection the request got. */
static int t_pid(petrel_req_t *req)
{
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    petrel_db_res_t *res = NULL;
    rc = petrel_db_query(c, PETREL_TIMEOUT_DEFAULT, &res, "SELECT pg_backend_pid()", NULL);
    if (rc != 0)
        return rc;
    json_t *out = json_pack("{s:I,s:i}", "pid", (json_int_t)petrel_db_res_int(res, 0, 0, 0),
                            "conn_pid", petrel_db_backend_pid(c));
    petrel_db_res_free(res);
    return petrel_json(req, 200, out);
}

/* GET /t/txfail?tag= : inserts inside a transaction, then fails the handler. */
static int t_txfail(petrel_req_t *req)
{
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc == 0)
        rc = petrel_db_begin(c, PETREL_TIMEOUT_DEFAULT);
    if (rc != 0)
        return rc;
    json_t *params = json_pack("[s]", petrel_param_str(req, "tag", "x"));
    rc = petrel_db_query(c, PETREL_TIMEOUT_DEFAULT, NULL, "INSERT INTO dbtest_tx VALUES ($1)",
                         params);
    json_decref(params);
    if (rc != 0)
        return rc;
    return petrel_set_error(req, PETREL_EINTERNAL, "handler failed on purpose");
}

/* GET /t/stats */
static int t_stats(petrel_req_t *req)
{
    petrel_db_stats_t s;
    petrel_db_stats(&s);
    return petrel_json(req, 200,
                       json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "size",
                                 (json_int_t)s.size, "idle", (json_int_t)s.idle, "checked_out",
                                 (json_int_t)s.checked_out, "overflow", (json_int_t)s.overflow,
                                 "waiting", (json_int_t)s.waiting, "timeouts",
                                 (json_int_t)s.timeouts, "connects", (json_int_t)s.connects,
                                 "invalidated", (json_int_t)s.invalidated, "cancels",
                                 (json_int_t)s.cancels, "capacity", (json_int_t)s.capacity));
}

/* GET /t/types : one row of every mapped type. */
static int t_types(petrel_req_t *req)
{
    json_t *rows = NULL;
    json_t *params = json_pack("[s]", "é\"'");
    int rc = petrel_db_fetch_json(
        PETREL_TIMEOUT_DEFAULT, &rows,
        "SELECT 1::int2 AS i2, 2::int4 AS i4, 9000000000::int8 AS i8, 1.5::float8 AS f8, "
        "2.25::numeric AS num, true AS b, '{\"a\":[1,2]}'::jsonb AS jb, 'x'::text AS t, "
        "NULL::text AS n, '2024-01-02 03:04:05+00'::timestamptz AS ts, "
        "ARRAY['a','b c']::text[] AS ta, ARRAY[1,NULL,3]::int[] AS ia, $1::text AS p, "
        "'Infinity'::float8 AS inf, 'NaN'::numeric AS nan",
        params);
    json_decref(params);
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, rows);
}

/* GET /t/pipeline : three statements, the middle one fails; the others succeed. */
static int t_pipeline(petrel_req_t *req)
{
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    json_t *p1 = json_pack("[i]", 1), *p3 = json_pack("[i]", 3);
    petrel_db_stmt_t st[3] = {
        {"SELECT $1::int AS v", p1}, {"SELECT 1/0 AS v", NULL}, {"SELECT $1::int AS v", p3}};
    petrel_db_res_t *res[3];
    int rcs[3];
    rc =
        petrel_db_pipeline(c, PETREL_TIMEOUT_DEFAULT, st, 3, PETREL_DB_PIPELINE_ISOLATED, res, rcs);
    json_decref(p1);
    json_decref(p3);
    if (rc != 0)
        return rc;
    json_t *out = json_array();
    for (int i = 0; i < 3; i++) {
        json_array_append_new(out, json_pack("{s:i,s:I}", "rc", rcs[i], "v",
                                             (json_int_t)petrel_db_res_int(res[i], 0, 0, -1)));
        petrel_db_res_free(res[i]);
    }
    /* The connection is still usable after the failed statement. */
    petrel_db_res_t *r = NULL;
    rc = petrel_db_query(c, PETREL_TIMEOUT_DEFAULT, &r, "SELECT 42", NULL);
    json_array_append_new(out, json_integer(rc == 0 ? petrel_db_res_int(r, 0, 0, -1) : rc));
    petrel_db_res_free(r);
    return petrel_json(req, 200, out);
}

static const petrel_route_t test_routes[] = {
    PETREL_ROUTE(GET, "/t/sleep", t_sleep,
                 .query = {PETREL_Q_FLOAT("s", .dflt = "0"), PETREL_Q_INT("timeout")}),
    PETREL_ROUTE(GET, "/t/pid", t_pid),
    PETREL_ROUTE(GET, "/t/txfail", t_txfail, .query = {PETREL_Q_STR("tag", .required = true)}),
    PETREL_ROUTE(GET, "/t/stats", t_stats),
    PETREL_ROUTE(GET, "/t/types", t_types),
    PETREL_ROUTE(GET, "/t/pipeline", t_pipeline),
};

/* Starts the app (reference DB module + test routes) with extra "key=value" overrides. */
static petrel_testclient_t *start(petrel_app_t **appp, const char *const *extra)
{
    snprintf(appname, sizeof(appname), "t%d", (int)getpid());
    snprintf(appname_like, sizeof(appname_like), "%s-%%", appname);
    petrel_app_t *app = petrel_app_new("test-db", "0");
    cr_assert_eq(app_db_init(app), 0);
    cr_assert_eq(
        petrel_app_add_routes(app, test_routes, sizeof(test_routes) / sizeof(*test_routes)), 0);
    static char url_kv[1024], name_kv[64];
    snprintf(url_kv, sizeof(url_kv), "database.url=%s", db_url());
    snprintf(name_kv, sizeof(name_kv), "database.application_name=%s", appname);
    const char *ov[32] = {"server.workers=1", url_kv, name_kv};
    size_t n = 3;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        ov[n++] = extra[i];
    ov[n] = NULL;
    petrel_testclient_t *tc = petrel_test_start(app, SUPPORT_TEST_CONFIG, ov);
    cr_assert_not_null(tc, "server did not start");
    *appp = app;
    return tc;
}

static void stop(petrel_testclient_t *tc, petrel_app_t *app)
{
    petrel_test_stop(tc);
    petrel_app_free(app);
}

static json_t *get_json(petrel_testclient_t *tc, const char *target, int want)
{
    petrel_test_res_t *r = petrel_test_get(tc, target);
    cr_assert_eq(r->status, want, "GET %s: %d %s", target, r->status, r->body);
    json_t *j = r->json != NULL ? json_incref(r->json) : NULL;
    petrel_test_res_free(r);
    return j;
}

static long long stat_of(petrel_testclient_t *tc, const char *key)
{
    json_t *s = get_json(tc, "/t/stats", 200);
    long long v = json_integer_value(json_object_get(s, key));
    json_decref(s);
    return v;
}

/* ---- pool: FIFO wait, 503 past pool_timeout_ms, never above the total ---- */

struct burst {
    petrel_testclient_t *tc;
    int status[10];
    double ms[10];
    char detail[10][64];
    int retry_after[10];
};

static void burst_one(int i, void *arg)
{
    struct burst *b = arg;
    double t0 = support_now_ms();
    petrel_test_res_t *r = support_get(petrel_test_port(b->tc), "/t/sleep?s=0.5", 10000);
    b->ms[i] = support_now_ms() - t0;
    b->status[i] = r->status;
    json_t *d = r->json != NULL ? json_object_get(r->json, "detail") : NULL;
    snprintf(b->detail[i], sizeof(b->detail[i]), "%s", d != NULL ? json_string_value(d) : "");
    b->retry_after[i] = petrel_test_res_header(r, "retry-after") != NULL;
    petrel_test_res_free(r);
}

static atomic_int sampler_stop;
static atomic_llong sampler_max;

static void *sampler(void *arg)
{
    (void)arg;
    PGconn *pg = admin();
    while (!atomic_load(&sampler_stop)) {
        long long n = pool_backends(pg);
        if (n > atomic_load(&sampler_max))
            atomic_store(&sampler_max, n);
        support_sleep_ms(10);
    }
    PQfinish(pg);
    return NULL;
}

Test(db, pool_of_two_queues_ten_requests_and_503s_those_past_pool_timeout, .timeout = 30)
{
    petrel_app_t *app;
    const char *ov[] = {"database.pool_size=2", "database.max_overflow=0",
                        "database.pool_timeout_ms=800", "database.min_idle=2", NULL};
    petrel_testclient_t *tc = start(&app, ov);
    pthread_t th;
    atomic_store(&sampler_stop, 0);
    atomic_store(&sampler_max, 0);
    cr_assert_eq(pthread_create(&th, NULL, sampler, NULL), 0);
    struct burst b = {.tc = tc};
    cr_assert_eq(support_parallel(10, burst_one, &b), 0);
    atomic_store(&sampler_stop, 1);
    pthread_join(th, NULL);
    int ok = 0, busy = 0;
    for (int i = 0; i < 10; i++) {
        if (b.status[i] == 200) {
            ok++;
        } else {
            cr_expect_eq(b.status[i], 503, "request %d: %d", i, b.status[i]);
            cr_expect_str_eq(b.detail[i], "Database pool exhausted");
            cr_expect(b.retry_after[i], "503 without Retry-After");
            /* Gave up after pool_timeout_ms (800), not after the queries ahead of it. */
            cr_expect(b.ms[i] >= 700 && b.ms[i] < 1400, "503 after %.0f ms", b.ms[i]);
            busy++;
        }
    }
    /* Two at a time for 0.5 s each: the first two, then the two that waited ~500 ms < 800. */
    cr_expect_eq(ok, 4, "200s: %d", ok);
    cr_expect_eq(busy, 6, "503s: %d", busy);
    cr_expect_leq(atomic_load(&sampler_max), 2, "backends seen: %lld",
                  (long long)atomic_load(&sampler_max));
    cr_expect_eq(stat_of(tc, "timeouts"), 6);
    cr_expect_eq(stat_of(tc, "capacity"), 2);
    cr_expect_leq(stat_of(tc, "size"), 2);
    cr_expect_eq(stat_of(tc, "waiting"), 0);
    stop(tc, app);
}

Test(db, overflow_connections_open_under_load_and_close_after, .timeout = 30)
{
    petrel_app_t *app;
    const char *ov[] = {"database.pool_size=1", "database.max_overflow=2",
                        "database.pool_timeout_ms=2000", "database.overflow_idle_ms=1500", NULL};
    petrel_testclient_t *tc = start(&app, ov);
    /* Bursts one after the other reuse the overflow connections: no reconnect per burst. */
    for (int round = 0; round < 3; round++) {
        struct burst b = {.tc = tc};
        cr_assert_eq(support_parallel(3, burst_one, &b), 0);
        for (int i = 0; i < 3; i++) {
            cr_expect_eq(b.status[i], 200);
            cr_expect_lt(b.ms[i], 1000, "waited %.0f ms: overflow not used", b.ms[i]);
        }
    }
    cr_expect_leq(stat_of(tc, "connects"), 3, "%lld connections opened for 3 bursts of 3",
                  (long long)stat_of(tc, "connects"));
    cr_expect_eq(stat_of(tc, "overflow"), 2, "overflow connections idle a while");
    /* Once idle for overflow_idle_ms they are closed; the pool keeps pool_size. */
    double t0 = support_now_ms();
    while (stat_of(tc, "overflow") > 0 && support_now_ms() - t0 < 5000)
        support_sleep_ms(50);
    double took = support_now_ms() - t0;
    cr_expect_eq(stat_of(tc, "size"), 1);
    cr_expect_eq(stat_of(tc, "overflow"), 0);
    cr_expect(took >= 1000 && took < 3500, "overflow closed after %.0f ms of idleness", took);
    stop(tc, app);
}

/* Sends GET /t/sleep?s=5 on a connection of its own and returns that connection once
 * PostgreSQL runs the query. */
static int start_sleep_query(petrel_testclient_t *tc, PGconn *pg)
{
    int fd = petrel_test_connect(tc);
    cr_assert_geq(fd, 0);
    static const char req[] = "GET /t/sleep?s=5 HTTP/1.1\r\nHost: t\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    double t0 = support_now_ms();
    while (active_sleeps(pg) == 0 && support_now_ms() - t0 < 3000)
        support_sleep_ms(10);
    cr_assert_eq(active_sleeps(pg), 1, "query did not start");
    return fd;
}

Test(db, the_pool_refills_min_idle_after_connections_are_lost, .timeout = 30)
{
    petrel_app_t *app;
    const char *ov[] = {"server.workers=1", "database.pool_size=2", "database.max_overflow=0",
                        "database.min_idle=2", NULL};
    petrel_testclient_t *tc = start(&app, ov);
    cr_expect_eq(stat_of(tc, "size"), 2);
    /* A client that leaves mid-query: its connection is cancelled and closed. */
    PGconn *pg = admin();
    int fd = start_sleep_query(tc, pg);
    long long connects = stat_of(tc, "connects");
    close(fd);
    /* The pool is back at min_idle without waiting for the next request to need it. */
    double t0 = support_now_ms();
    while (stat_of(tc, "connects") == connects && support_now_ms() - t0 < 3000)
        support_sleep_ms(20);
    while (stat_of(tc, "idle") < 2 && support_now_ms() - t0 < 3000)
        support_sleep_ms(20);
    cr_expect_eq(stat_of(tc, "connects"), connects + 1, "the lost connection was not replaced");
    cr_expect_eq(stat_of(tc, "size"), 2);
    cr_expect_eq(stat_of(tc, "idle"), 2);
    PQfinish(pg);
    stop(tc, app);
}

/* ---- deadlines and cancellation reach the server ---- */

Test(db, query_past_its_deadline_is_cancelled_on_the_server, .timeout = 30)
{
    petrel_app_t *app;
    petrel_testclient_t *tc = start(&app, NULL);
    PGconn *pg = admin();
    double t0 = support_now_ms();
    json_t *j = get_json(tc, "/t/sleep?s=5&timeout=300", 504);
    json_decref(j);
    double took = support_now_ms() - t0;
    cr_expect(took < 1500, "deadline answered after %.0f ms", took);
    double t1 = support_now_ms();
    while (active_sleeps(pg) > 0 && support_now_ms() - t1 < 3000)
        support_sleep_ms(20);
    double gone = support_now_ms() - t1;
    cr_expect(gone < 1000, "query still running %.0f ms after the deadline", gone);
    cr_expect_geq(stat_of(tc, "cancels"), 1);
    /* The pool keeps working. */
    json_decref(get_json(tc, "/t/sleep?s=0", 200));
    json_decref(get_json(tc, "/t/sleep?s=0.01", 200));
    PQfinish(pg);
    stop(tc, app);
}

Test(db, server_statement_timeout_answers_504_and_keeps_the_connection, .timeout = 30)
{
    petrel_app_t *app;
    const char *ov[] = {"database.statement_timeout_ms=300", NULL};
    petrel_testclient_t *tc = start(&app, ov);
    json_t *p1 = get_json(tc, "/t/pid", 200);
    json_decref(get_json(tc, "/t/sleep?s=3", 504));
    json_t *p2 = get_json(tc, "/t/pid", 200);
    /* The server cancelled the statement itself: the connection stayed clean and pooled. */
    cr_expect_eq(json_integer_value(json_object_get(p1, "pid")),
                 json_integer_value(json_object_get(p2, "pid")));
    json_decref(p1);
    json_decref(p2);
    stop(tc, app);
}

Test(db, client_disconnect_mid_query_cancels_it_on_the_server, .timeout = 30)
{
    petrel_app_t *app;
    petrel_testclient_t *tc = start(&app, NULL);
    PGconn *pg = admin();
    int fd = start_sleep_query(tc, pg);
    close(fd);
    double t1 = support_now_ms();
    while (active_sleeps(pg) > 0 && support_now_ms() - t1 < 3000)
        support_sleep_ms(20);
    double gone = support_now_ms() - t1;
    cr_expect(gone < 1000, "query still running %.0f ms after the client left", gone);
    json_decref(get_json(tc, "/t/sleep?s=0", 200));
    PQfinish(pg);
    stop(tc, app);
}

/* ---- transactions ---- */

Test(db, failing_handler_rolls_back_and_the_connection_is_pooled_again, .timeout = 30)
{
    petrel_app_t *app;
    petrel_testclient_t *tc = start(&app, NULL);
    PGconn *pg = admin();
    admin_exec(pg, "CREATE TABLE IF NOT EXISTS dbtest_tx (tag text)");
    json_t *p1 = get_json(tc, "/t/pid", 200);
    char target[96], tag[32];
    snprintf(tag, sizeof(tag), "tag-%d", (int)getpid());
    snprintf(target, sizeof(target), "/t/txfail?tag=%s", tag);
    json_decref(get_json(tc, target, 500));
    cr_expect_eq(admin_int(pg, "SELECT count(*) FROM dbtest_tx WHERE tag = $1", tag), 0);
    /* The rollback runs on a helper fiber right after the response. */
    double t0 = support_now_ms();
    while (stat_of(tc, "checked_out") != 0 && support_now_ms() - t0 < 2000)
        support_sleep_ms(5);
    cr_expect_eq(stat_of(tc, "checked_out"), 0);
    json_t *p2 = get_json(tc, "/t/pid", 200);
    cr_expect_eq(json_integer_value(json_object_get(p1, "pid")),
                 json_integer_value(json_object_get(p2, "pid")),
                 "rolled-back connection was not reused");
    cr_expect_eq(admin_int(pg,
                           "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1 "
                           "AND state LIKE 'idle in transaction%'",
                           appname_like),
                 0);
    json_decref(p1);
    json_decref(p2);
    PQfinish(pg);
    stop(tc, app);
}

/* ---- pre-ping and recycle ---- */

Test(db, terminated_pooled_connection_is_replaced_by_pre_ping, .timeout = 30)
{
    petrel_app_t *app;
    petrel_testclient_t *tc = start(&app, NULL);
    PGconn *pg = admin();
    json_t *p1 = get_json(tc, "/t/pid", 200);
    char pid[24];
    snprintf(pid, sizeof(pid), "%lld", (long long)json_integer_value(json_object_get(p1, "pid")));
    admin_int(pg, "SELECT pg_terminate_backend($1::int)::int", pid);
    double t0 = support_now_ms();
    while (admin_int(pg, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", pid) > 0 &&
           support_now_ms() - t0 < 2000)
        support_sleep_ms(10);
    json_t *p2 = get_json(tc, "/t/pid", 200);
    cr_expect_neq(json_integer_value(json_object_get(p1, "pid")),
                  json_integer_value(json_object_get(p2, "pid")));
    cr_expect_geq(stat_of(tc, "invalidated"), 1);
    json_decref(p1);
    json_decref(p2);
    PQfinish(pg);
    stop(tc, app);
}

Test(db, connections_older_than_pool_recycle_are_replaced, .timeout = 30)
{
    petrel_app_t *app;
    const char *ov[] = {"database.pool_recycle_s=1", NULL};
    petrel_testclient_t *tc = start(&app, ov);
    json_t *p1 = get_json(tc, "/t/pid", 200);
    json_t *p2 = get_json(tc, "/t/pid", 200);
    cr_expect_eq(json_integer_value(json_object_get(p1, "pid")),
                 json_integer_value(json_object_get(p2, "pid")), "not reused within recycle");
    support_sleep_ms(1100);
    json_t *p3 = get_json(tc, "/t/pid", 200);
    cr_expect_neq(json_integer_value(json_object_get(p1, "pid")),
                  json_integer_value(json_object_get(p3, "pid")), "not recycled");
    json_decref(p1);
    json_decref(p2);
    json_decref(p3);
    stop(tc, app);
}

Test(db, unreachable_database_fails_fast_with_503, .timeout = 30)
{
    petrel_app_t *app = petrel_app_new("test-db", "0");
    cr_assert_eq(app_db_init(app), 0);
    cr_assert_eq(
        petrel_app_add_routes(app, test_routes, sizeof(test_routes) / sizeof(*test_routes)), 0);
    char url[128];
    snprintf(url, sizeof(url), "database.url=postgresql://petrel:petrel@127.0.0.1:%d/petrel",
             support_free_port());
    const char *ov[] = {"server.workers=1", url, NULL};
    petrel_testclient_t *tc = petrel_test_start(app, SUPPORT_TEST_CONFIG, ov);
    cr_assert_not_null(tc, "a database that is down must not stop the server from starting");
    for (int i = 0; i < 3; i++) {
        double t0 = support_now_ms();
        petrel_test_res_t *r = petrel_test_get(tc, "/t/sleep?s=0");
        cr_expect_eq(r->status, 503);
        cr_expect_str_eq(json_string_value(json_object_get(r->json, "detail")),
                         "Database unavailable");
        cr_expect_lt(support_now_ms() - t0, 500);
        petrel_test_res_free(r);
    }
    petrel_test_res_t *r = petrel_test_get(tc, "/readyz");
    cr_expect_eq(r->status, 503);
    petrel_test_res_free(r);
    stop(tc, app);
}

Test(db, missing_database_url_fails_startup, .timeout = 30)
{
    petrel_app_t *app = petrel_app_new("test-db", "0");
    cr_assert_eq(app_db_init(app), 0);
    unsetenv("PETREL_DATABASE_URL");
    const char *ov[] = {"server.workers=1", NULL};
    petrel_testclient_t *tc = petrel_test_start(app, SUPPORT_TEST_CONFIG, ov);
    cr_expect_null(tc);
    if (tc != NULL)
        petrel_test_stop(tc);
    petrel_app_free(app);
}

/* ---- results and pipelines ---- */

Test(db, results_convert_to_typed_json_and_pipeline_errors_are_isolated, .timeout = 30)
{
    petrel_app_t *app;
    petrel_testclient_t *tc = start(&app, NULL);
    json_t *rows = get_json(tc, "/t/types", 200);
    /* Non-finite numbers have no JSON form: null (as JavaScript's JSON.stringify). */
    cr_expect(support_json_eq(json_array_get(rows, 0),
                              "{\"i2\":1,\"i4\":2,\"i8\":9000000000,\"f8\":1.5,\"num\":2.25,"
                              "\"b\":true,\"jb\":{\"a\":[1,2]},\"t\":\"x\",\"n\":null,"
                              "\"ts\":\"2024-01-02T03:04:05+00:00\",\"ta\":[\"a\",\"b c\"],"
                              "\"ia\":[1,null,3],\"p\":\"é\\\"'\",\"inf\":null,\"nan\":null}",
                              "types"));
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(rows, 0), "i8")), 9000000000);
    json_decref(rows);
    json_t *p = get_json(tc, "/t/pipeline", 200);
    char want[160];
    snprintf(want, sizeof(want), "[{\"rc\":0,\"v\":1},{\"rc\":%d,\"v\":-1},{\"rc\":0,\"v\":3},42]",
             PETREL_EDB);
    cr_expect(support_json_eq(p, want, "pipeline"));
    json_decref(p);
    stop(tc, app);
}

/* ---- the reference app: TechEmpower ---- */

static int queries_len(petrel_testclient_t *tc, const char *target)
{
    json_t *j = get_json(tc, target, 200);
    cr_assert(json_is_array(j), "%s: not an array", target);
    size_t i;
    json_t *v;
    json_array_foreach (j, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        cr_expect(id >= 1 && id <= 10000);
        cr_expect(json_is_integer(json_object_get(v, "randomNumber")));
    }
    int n = (int)json_array_size(j);
    json_decref(j);
    return n;
}

static const char fortunes_html[] =
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th>"
    "<th>message</th></tr><tr><td>11</td><td>&lt;script&gt;alert(&quot;This should not be "
    "displayed in a browser alert box.&quot;);&lt;/script&gt;</td></tr><tr><td>4</td><td>A bad "
    "random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1</td></tr><tr><td>5</td><td>A "
    "computer program does what you tell it to do, not what you want it to do.</td></tr><tr>"
    "<td>2</td><td>A computer scientist is someone who fixes things that aren&#39;t broken."
    "</td></tr><tr><td>8</td><td>A list is only as strong as its weakest link. — Donald Knuth"
    "</td></tr><tr><td>0</td><td>Additional fortune added at request time.</td></tr><tr><td>3"
    "</td><td>After enough decimal places, nobody gives a damn.</td></tr><tr><td>7</td><td>Any "
    "program that runs right is obsolete.</td></tr><tr><td>10</td><td>Computers make very fast, "
    "very accurate mistakes.</td></tr><tr><td>6</td><td>Emacs is a nice operating system, but I "
    "prefer UNIX. — Tom Christaensen</td></tr><tr><td>9</td><td>Feature: A bug with seniority."
    "</td></tr><tr><td>1</td><td>fortune: No such file or directory</td></tr><tr><td>12</td>"
    "<td>フレームワークのベンチマーク</td></tr></table></body></html>";

static void techempower_checks(petrel_testclient_t *tc)
{
    /* Other tests (and the other build's) update world too: the lock keeps them out
     * between an /updates and the check of what it wrote. */
    int lk = open("/tmp/petrel-test-world.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0666);
    cr_assert(lk >= 0 && flock(lk, LOCK_EX) == 0);
    json_t *w = get_json(tc, "/db", 200);
    cr_expect(json_is_integer(json_object_get(w, "id")));
    cr_expect(json_is_integer(json_object_get(w, "randomNumber")));
    json_decref(w);
    cr_expect_eq(queries_len(tc, "/queries?queries=2"), 2);
    cr_expect_eq(queries_len(tc, "/queries?queries=0"), 1);
    cr_expect_eq(queries_len(tc, "/queries?queries=foo"), 1);
    cr_expect_eq(queries_len(tc, "/queries?queries="), 1);
    cr_expect_eq(queries_len(tc, "/queries"), 1);
    cr_expect_eq(queries_len(tc, "/queries?queries=501"), 500);
    cr_expect_eq(queries_len(tc, "/queries?queries=-3"), 1);
    cr_expect_eq(queries_len(tc, "/updates?queries=501"), 500);
    cr_expect_eq(queries_len(tc, "/updates?queries=bar"), 1);
    /* /updates writes what it answers, also for an id drawn twice: 500 draws of 10000 ids
     * repeat one about 12 times on average. */
    json_t *u = get_json(tc, "/updates?queries=500", 200);
    cr_assert_eq(json_array_size(u), 500);
    PGconn *pg = admin();
    size_t i, repeated = 0;
    json_t *v;
    json_array_foreach (u, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        char ids[16];
        snprintf(ids, sizeof(ids), "%lld", (long long)id);
        long long db = admin_int(pg, "SELECT randomnumber FROM world WHERE id = $1::int", ids);
        cr_expect_eq(db, json_integer_value(json_object_get(v, "randomNumber")),
                     "id %lld: database %lld, response %lld", (long long)id, db,
                     (long long)json_integer_value(json_object_get(v, "randomNumber")));
        for (size_t k = 0; k < i; k++)
            if (json_integer_value(json_object_get(json_array_get(u, k), "id")) == id) {
                repeated++;
                break;
            }
    }
    PQfinish(pg);
    json_decref(u);
    /* The repeated-id path ran (500 draws without a repeat: p < 1e-5). */
    cr_expect_gt(repeated, 0, "/updates?queries=500 drew no id twice");
    petrel_test_res_t *r = petrel_test_get(tc, "/fortunes");
    cr_expect_eq(r->status, 200);
    cr_expect_str_eq(petrel_test_res_header(r, "content-type"), "text/html; charset=utf-8");
    cr_expect_str_eq(r->body, fortunes_html);
    petrel_test_res_free(r);
    close(lk); /* releases the lock */
}

Test(db, techempower_routes_clamp_queries_and_render_fortunes, .timeout = 30)
{
    migrate_standard();
    petrel_app_t *app;
    petrel_testclient_t *tc = start(&app, NULL);
    techempower_checks(tc);
    stop(tc, app);
}

Test(db, techempower_routes_without_pipelining, .timeout = 30)
{
    migrate_standard();
    petrel_app_t *app;
    const char *ov[] = {"database.pipeline=false", NULL};
    petrel_testclient_t *tc = start(&app, ov);
    techempower_checks(tc);
    stop(tc, app);
}

/* ---- the reference app: items CRUD ---- */

static petrel_test_res_t *send_json(petrel_testclient_t *tc, const char *method, const char *target,
                                    const char *body)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    return petrel_test_request(tc, method, target, h, body, strlen(body));
}

Test(db, items_crud_answers_every_status, .timeout = 30)
{
    migrate_standard();
    petrel_app_t *app;
    petrel_testclient_t *tc = start(&app, NULL);
    petrel_test_res_t *r = send_json(tc, "POST", "/api/items",
                                     "{\"name\":\"Widget\",\"price\":9.5,\"tags\":[\"a\",\"b\"]}");
    cr_assert_eq(r->status, 201, "%s", r->body);
    json_int_t id = json_integer_value(json_object_get(r->json, "id"));
    char loc[64];
    snprintf(loc, sizeof(loc), "/api/items/%lld", (long long)id);
    cr_expect_str_eq(petrel_test_res_header(r, "location"), loc);
    cr_expect(json_is_null(json_object_get(r->json, "description")));
    cr_expect(json_is_string(json_object_get(r->json, "created_at")));
    cr_expect_eq(json_real_value(json_object_get(r->json, "price")), 9.5);
    petrel_test_res_free(r);

    json_t *got = get_json(tc, loc, 200);
    cr_expect_str_eq(json_string_value(json_object_get(got, "name")), "Widget");
    cr_expect(support_json_eq(json_object_get(got, "tags"), "[\"a\",\"b\"]", "tags"));
    json_decref(got);

    r = send_json(tc, "PUT", loc, "{\"name\":\"Gadget\",\"price\":3,\"description\":\"d\"}");
    cr_expect_eq(r->status, 200, "%s", r->body);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "name")), "Gadget");
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "description")), "d");
    petrel_test_res_free(r);

    json_t *list = get_json(tc, "/api/items?limit=100&offset=0", 200);
    cr_expect_geq(json_array_size(list), 1);
    json_decref(list);
    json_decref(get_json(tc, "/api/items?limit=101", 422));
    json_decref(get_json(tc, "/api/items?offset=-1", 422));

    /* validation */
    const char *bad[] = {"{\"price\":1}",
                         "{\"name\":\"\",\"price\":1}",
                         "{\"name\":\"x\"}",
                         "{\"name\":\"x\",\"price\":0}",
                         "{\"name\":\"x\",\"price\":\"abc\"}",
                         "{\"name\":\"x\",\"price\":\"inf\"}",
                         "{\"name\":\"x\",\"price\":\"Infinity\"}",
                         "{\"name\":\"x\",\"price\":1,\"tags\":[1]}",
                         "{\"name\":\"x\",\"price\":1,\"tags\":[\"1\",\"2\",\"3\",\"4\",\"5\","
                         "\"6\",\"7\",\"8\",\"9\",\"10\",\"11\"]}",
                         "{not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        r = send_json(tc, "POST", "/api/items", bad[i]);
        cr_expect_eq(r->status, 422, "%s -> %d %s", bad[i], r->status, r->body);
        petrel_test_res_free(r);
    }

    r = petrel_test_request(tc, "DELETE", loc, NULL, NULL, 0);
    cr_expect_eq(r->status, 204);
    cr_expect_null(petrel_test_res_header(r, "content-length"), "a 204 has no Content-Length");
    cr_expect_eq(r->body_len, 0);
    petrel_test_res_free(r);
    r = petrel_test_request(tc, "DELETE", loc, NULL, NULL, 0);
    cr_expect_eq(r->status, 404);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "detail")), "Item not found");
    petrel_test_res_free(r);
    json_decref(get_json(tc, loc, 404));
    r = send_json(tc, "PUT", loc, "{\"name\":\"x\",\"price\":1}");
    cr_expect_eq(r->status, 404);
    petrel_test_res_free(r);
    json_decref(get_json(tc, "/api/items/abc", 422));
    stop(tc, app);
}

/* ---- migrations ---- */

/* A private schema (search_path through the URL) and migrations directory. */
struct mig_env {
    char dir[256];
    char schema[64];
    char url[1200];
};

static void mig_setup(struct mig_env *e, const char *tag)
{
    cr_assert_eq(support_mkdtemp(e->dir, sizeof(e->dir)), 0);
    snprintf(e->schema, sizeof(e->schema), "mt_%s_%d", tag, (int)getpid());
    PGconn *pg = admin();
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", e->schema);
    admin_exec(pg, sql);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", e->schema);
    admin_exec(pg, sql);
    PQfinish(pg);
    const char *u = db_url();
    snprintf(e->url, sizeof(e->url), "%s%soptions=-csearch_path%%3D%s", u,
             strchr(u, '?') != NULL ? "&" : "?", e->schema);
}

static void mig_file(const struct mig_env *e, const char *name, const char *sql)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", e->dir, name);
    cr_assert_eq(support_write_file(path, sql), 0);
}

static void mig_teardown(struct mig_env *e)
{
    PGconn *pg = admin();
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", e->schema);
    admin_exec(pg, sql);
    PQfinish(pg);
    support_rmtree(e->dir);
}

static int mig(const struct mig_env *e, petrel_db_migrate_op_t op, int n, int *pending, char *out,
               size_t outlen, char *err, size_t errlen)
{
    FILE *f = fmemopen(out, outlen, "w");
    int rc = petrel_db_migrate(e->url, e->dir, op, n, f, pending, err, errlen);
    (void)fclose(f);
    return rc;
}

Test(db, migrations_up_status_down_and_checksum_mismatch, .timeout = 30)
{
    struct mig_env e;
    mig_setup(&e, "a");
    mig_file(&e, "0001_a.up.sql", "CREATE TABLE a (x int); INSERT INTO a VALUES (1);");
    mig_file(&e, "0001_a.down.sql", "DROP TABLE a;");
    mig_file(&e, "0002_b.up.sql", "CREATE TABLE b (y int);");
    mig_file(&e, "0002_b.down.sql", "DROP TABLE b;");
    mig_file(&e, "0003_bad.up.sql", "CREATE TABLE c (z int); SELECT * FROM no_such_table;");
    mig_file(&e, "0003_bad.down.sql", "DROP TABLE c;");
    char out[2048], err[512];
    int pending = -1;
    cr_assert_eq(mig(&e, PETREL_DB_MIGRATE_STATUS, 0, &pending, out, sizeof(out), err, sizeof(err)),
                 0, "%s", err);
    cr_expect_eq(pending, 3);
    cr_expect(strstr(out, "pending  0001_a") != NULL, "%s", out);

    /* up 2, then up: the failing third is rolled back entirely (table c absent). */
    cr_assert_eq(mig(&e, PETREL_DB_MIGRATE_UP, 2, &pending, out, sizeof(out), err, sizeof(err)), 0,
                 "%s", err);
    cr_expect_eq(pending, 1);
    int rc = mig(&e, PETREL_DB_MIGRATE_UP, 0, &pending, out, sizeof(out), err, sizeof(err));
    cr_expect_eq(rc, PETREL_EDB);
    cr_expect(strstr(err, "no_such_table") != NULL, "%s", err);
    PGconn *pg = admin();
    char q[200];
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'c'");
    cr_expect_eq(admin_int(pg, q, e.schema), 0);
    mig_file(&e, "0003_bad.up.sql", "CREATE TABLE c (z int);");
    cr_assert_eq(mig(&e, PETREL_DB_MIGRATE_UP, 0, &pending, out, sizeof(out), err, sizeof(err)), 0,
                 "%s", err);
    cr_expect_eq(pending, 0);
    cr_expect(strstr(out, "applied  0003_bad") != NULL, "%s", out);

    /* down 2 reverts the last two, newest first */
    cr_assert_eq(mig(&e, PETREL_DB_MIGRATE_DOWN, 2, &pending, out, sizeof(out), err, sizeof(err)),
                 0, "%s", err);
    cr_expect_eq(pending, 2);
    cr_expect(strstr(out, "reverted 0003_bad\nreverted 0002_b") != NULL, "%s", out);
    cr_expect_eq(admin_int(pg, q, e.schema), 0);

    /* an applied file edited afterwards is an error, and nothing runs */
    mig_file(&e, "0001_a.up.sql", "CREATE TABLE a (x bigint);");
    rc = mig(&e, PETREL_DB_MIGRATE_UP, 0, &pending, out, sizeof(out), err, sizeof(err));
    cr_expect_eq(rc, PETREL_ECONFIG);
    cr_expect(strstr(err, "checksum mismatch") != NULL && strstr(err, "0001_a") != NULL, "%s", err);
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'b'");
    cr_expect_eq(admin_int(pg, q, e.schema), 0);
    PQfinish(pg);
    mig_teardown(&e);
}

Test(db, two_concurrent_migrators_apply_each_migration_once, .timeout = 30)
{
    struct mig_env e;
    mig_setup(&e, "c");
    mig_file(&e, "0001_slow.up.sql",
             "CREATE TABLE slow (x int); SELECT pg_sleep(0.5); INSERT INTO slow VALUES (1);");
    mig_file(&e, "0001_slow.down.sql", "DROP TABLE slow;");
    char env_url[1300], env_dir[300];
    snprintf(env_url, sizeof(env_url), "PETREL_DATABASE_URL=%s", e.url);
    snprintf(env_dir, sizeof(env_dir), "PETREL_DATABASE_MIGRATIONS_DIR=%s", e.dir);
    const char *env[] = {env_url, env_dir, NULL};
    const char *argv[] = {SUPPORT_APP_BINARY, "migrate",           "up",
                          "--config",         SUPPORT_TEST_CONFIG, NULL};
    support_proc_t a, b;
    cr_assert_eq(support_spawn(&a, argv, env), 0);
    cr_assert_eq(support_spawn(&b, argv, env), 0);
    int ra = support_wait_exit(&a, 20000), rb = support_wait_exit(&b, 20000);
    char *ea = support_proc_stderr(&a), *eb = support_proc_stderr(&b);
    cr_expect_eq(ra, 0, "first migrator: %s", ea);
    cr_expect_eq(rb, 0, "second migrator: %s", eb);
    free(ea);
    free(eb);
    char *oa = support_proc_stdout(&a), *ob = support_proc_stdout(&b);
    /* Exactly one of them applied it; the other waited for the lock and found it done. */
    int applied =
        (strstr(oa, "applied  0001_slow") != NULL) + (strstr(ob, "applied  0001_slow") != NULL);
    cr_expect_eq(applied, 1, "a: %s\nb: %s", oa, ob);
    free(oa);
    free(ob);
    PGconn *pg = admin();
    char q[160];
    snprintf(q, sizeof(q), "SELECT count(*) FROM %s.slow", e.schema);
    cr_expect_eq(admin_int(pg, q, NULL), 1);
    PQfinish(pg);
    support_proc_cleanup(&a);
    support_proc_cleanup(&b);
    mig_teardown(&e);
}

Test(db, readyz_is_not_ready_while_migrations_are_pending, .timeout = 30)
{
    struct mig_env e;
    mig_setup(&e, "r");
    mig_file(&e, "0001_r.up.sql", "CREATE TABLE r (x int);");
    mig_file(&e, "0001_r.down.sql", "DROP TABLE r;");
    petrel_app_t *app = petrel_app_new("test-db", "0");
    cr_assert_eq(app_db_init(app), 0);
    char url_kv[1300], dir_kv[300];
    snprintf(url_kv, sizeof(url_kv), "database.url=%s", e.url);
    snprintf(dir_kv, sizeof(dir_kv), "database.migrations_dir=%s", e.dir);
    const char *ov[] = {"server.workers=1", url_kv, dir_kv, NULL};
    petrel_testclient_t *tc = petrel_test_start(app, SUPPORT_TEST_CONFIG, ov);
    cr_assert_not_null(tc);
    petrel_test_res_t *r = petrel_test_get(tc, "/readyz");
    cr_expect_eq(r->status, 503, "%s", r->body);
    cr_expect(strstr(r->body, "1 migration pending") != NULL, "%s", r->body);
    petrel_test_res_free(r);
    char out[512], err[512];
    cr_assert_eq(mig(&e, PETREL_DB_MIGRATE_UP, 0, NULL, out, sizeof(out), err, sizeof(err)), 0,
                 "%s", err);
    r = petrel_test_get(tc, "/readyz");
    cr_expect_eq(r->status, 200, "%s", r->body);
    petrel_test_res_free(r);
    stop(tc, app);
    mig_teardown(&e);
}
