/*
 * test_db_restart.c - issue 3's restart acceptance test: PostgreSQL stopped with
 * `pg_ctl stop -m immediate` and started again while client threads keep requesting a route
 * that runs one query. Requests never hang and never fail at the socket level; while the
 * server is down they answer 503 quickly; a 200 arrives within 2 s of the server accepting
 * connections again, and it stays 200; the app's backends in pg_stat_activity never exceed
 * pool_size + max_overflow.
 *
 * The test starts its OWN throwaway PostgreSQL (scripts/pg.sh's pg_start) so it never restarts
 * the suite's shared server, and stops it by the PID in postmaster.pid in .fini (and from a
 * watchdog should the test process die without running .fini).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <petrel/app.h>
#include <petrel/db.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

#define POOL_SIZE 4
#define MAX_OVERFLOW 2
#define CLIENTS 6
#define MAX_RECORDS 200000

/* ---- the private PostgreSQL ---- */

static char pg_url[512];
static char pg_dir[256]; /* temp dir: data/, the unix socket, postgres.log */
static int pg_port;
static atomic_bool pg_restart_issued;

static const char *pg_bin(void)
{
    const char *b = getenv("PG_BIN");
    return b != NULL && *b != '\0' ? b : "/usr/lib/postgresql/15/bin";
}

/* initdb/postgres/pg_ctl refuse to run as root: run them as the data directory's owner. */
static const char *as_owner(void)
{
    return geteuid() == 0 ? "runuser -u postgres -- " : "";
}

static pid_t postmaster_pid(void)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg_dir);
    char *s = support_read_file(path);
    pid_t pid = s != NULL ? (pid_t)strtol(s, NULL, 10) : 0;
    free(s);
    return pid;
}

/* True while pid runs (a zombie counts as gone: its parent, not us, reaps it). */
static bool alive(pid_t pid)
{
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return false;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *s = support_read_file(path);
    if (s == NULL)
        return false;
    const char *p = strrchr(s, ')');
    bool zombie = p != NULL && p[1] == ' ' && p[2] == 'Z';
    free(s);
    return !zombie;
}

/* Stops the private server by PID (SIGINT = fast shutdown, then SIGKILL) and removes its
 * directory. Idempotent: called at the end of the test and again from .fini. */
static void pg_cleanup(void)
{
    if (pg_dir[0] == '\0')
        return;
    pid_t pid = postmaster_pid();
    /* A restart was issued but the postmaster has not written its PID file yet. */
    for (int i = 0; pid <= 0 && atomic_load(&pg_restart_issued) && i < 50; i++) {
        support_sleep_ms(100);
        pid = postmaster_pid();
    }
    if (alive(pid)) {
        kill(pid, SIGINT);
        for (int i = 0; i < 100 && alive(pid); i++)
            support_sleep_ms(100);
        if (alive(pid))
            kill(pid, SIGKILL);
        for (int i = 0; i < 50 && alive(pid); i++)
            support_sleep_ms(100);
    }
    support_rmtree(pg_dir);
    pg_dir[0] = '\0';
}

/* Should this process die without running .fini (crash, criterion's timeout), a detached
 * shell stops the server and removes the directory once the process is gone. */
static void pg_watchdog(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "setsid bash -c 'while kill -0 %d 2>/dev/null; do sleep 0.2; done; "
             "[ -d %s ] || exit 0; sleep 1; p=$(head -n 1 %s/data/postmaster.pid 2>/dev/null); "
             "if [ -n \"$p\" ]; then kill -INT \"$p\" 2>/dev/null; "
             "for i in $(seq 1 100); do kill -0 \"$p\" 2>/dev/null || break; sleep 0.1; done; "
             "kill -KILL \"$p\" 2>/dev/null; fi; rm -rf -- %s' >/dev/null 2>&1 </dev/null &",
             (int)getpid(), pg_dir, pg_dir, pg_dir);
    int st;
    free(support_run(cmd, &st));
}

static void pg_start_private(void)
{
    char bin[300];
    snprintf(bin, sizeof(bin), "%s/postgres", pg_bin());
    cr_assert(access(bin, X_OK) == 0, "%s not found: the restart test needs PostgreSQL 15", bin);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "bash -c '. %s/scripts/pg.sh && e=$(mktemp) && "
             "if pg_start >/dev/null 2>\"$e\"; then rm -f \"$e\"; "
             "echo \"$PETREL_DATABASE_URL $PG_DIR $PG_PORT\"; "
             "else cat \"$e\" >&2; rm -f \"$e\"; exit 1; fi'",
             PETREL_SOURCE_DIR);
    int st;
    char *out = support_run(cmd, &st);
    int n = sscanf(out, "%511s %255s %d", pg_url, pg_dir, &pg_port);
    free(out);
    if (n != 3)
        pg_dir[0] = '\0';
    cr_assert(st == 0 && n == 3, "pg_start failed (status %d)", st);
    pg_watchdog();
}

static int pg_stop_immediate(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd / && %s%s/pg_ctl -D %s/data stop -m immediate >/dev/null",
             as_owner(), pg_bin(), pg_dir);
    int st;
    free(support_run(cmd, &st));
    return st;
}

/* The same command line as scripts/pg.sh's pg_start: same port, same socket dir. */
static int pg_restart(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd / && setsid %s%s/postgres -D %s/data -h 127.0.0.1 -p %d -k %s -c fsync=off "
             "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
             ">>%s/postgres.log 2>&1 </dev/null &",
             as_owner(), pg_bin(), pg_dir, pg_port, pg_dir, pg_dir);
    atomic_store(&pg_restart_issued, true);
    int st;
    free(support_run(cmd, &st));
    return st;
}

static bool pg_accepting(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", pg_port);
    /* No GSSAPI negotiation from the test's own helpers: a plain TCP probe. */
    const char *kw[] = {"host", "port", "connect_timeout", "gssencmode", NULL};
    const char *vals[] = {"127.0.0.1", port, "1", "disable", NULL};
    return PQpingParams(kw, vals, 0) == PQPING_OK;
}

static void fini(void)
{
    pg_cleanup();
}

/* ---- the app: one route, one query ---- */

static int q_route(petrel_req_t *req)
{
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    petrel_db_res_t *res = NULL;
    rc = petrel_db_query(c, PETREL_TIMEOUT_DEFAULT, &res, "SELECT 1 AS one, pg_sleep(0.005)", NULL);
    if (rc != 0)
        return rc;
    json_t *out = json_pack("{s:I}", "one", (json_int_t)petrel_db_res_int(res, 0, 0, 0));
    petrel_db_res_free(res);
    return petrel_json(req, 200, out);
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/q", q_route),
};

static char appname[32];

/* ---- load: client threads looping GETs, every request recorded ---- */

struct rec {
    double t0, t1; /* ms, support_now_ms() */
    int status;
    bool detail_ok;   /* 503 body with a {"detail": "..."} */
    bool retry_after; /* 503 with Retry-After */
    char detail[96];
};

static struct rec *recs;
static atomic_int nrecs;
static atomic_bool load_stop;
static int app_port;

static void *client(void *arg)
{
    (void)arg;
    while (!atomic_load(&load_stop)) {
        double t0 = support_now_ms();
        petrel_test_res_t *r = support_get(app_port, "/q", 5000);
        double t1 = support_now_ms();
        int i = atomic_fetch_add(&nrecs, 1);
        if (i < MAX_RECORDS) {
            struct rec *x = &recs[i];
            x->t0 = t0;
            x->t1 = t1;
            x->status = r->status;
            if (r->status == 503) {
                json_t *d = r->json != NULL ? json_object_get(r->json, "detail") : NULL;
                const char *ds = d != NULL ? json_string_value(d) : NULL;
                snprintf(x->detail, sizeof(x->detail), "%s", ds != NULL ? ds : r->body);
                /* Acquire fails with "Database unavailable" (or "... pool exhausted"); a
                 * query whose connection died says "database connection lost: ...". */
                x->detail_ok = ds != NULL && *ds != '\0';
                x->retry_after = petrel_test_res_header(r, "retry-after") != NULL;
            }
        }
        petrel_test_res_free(r);
        support_sleep_ms(3);
    }
    return NULL;
}

/* ---- pg_stat_activity sampler on its own (blocking) connection ---- */

static atomic_bool sampler_stop;
static atomic_llong sampler_max, sampler_samples, sampler_samples_after_ready;
static _Atomic double ready_ms; /* 0 until the restarted server accepts connections */

/* The server's "terminating connection due to immediate shutdown" is expected here. */
static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void *sampler(void *arg)
{
    (void)arg;
    char port[16], like[48];
    snprintf(port, sizeof(port), "%d", pg_port);
    snprintf(like, sizeof(like), "%s-w%%", appname);
    /* The unix socket as the superuser (trust): sees every session's application_name. */
    const char *kw[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *vals[] = {pg_dir, port, "postgres", "postgres", "1", NULL};
    PGconn *pg = NULL;
    while (!atomic_load(&sampler_stop)) {
        if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            pg = PQconnectdbParams(kw, vals, 0);
            if (PQstatus(pg) != CONNECTION_OK) {
                support_sleep_ms(10);
                continue;
            }
            PQsetNoticeProcessor(pg, quiet_notice, NULL);
        }
        const char *p[1] = {like};
        PGresult *r =
            PQexecParams(pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
                         1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            if (n > atomic_load(&sampler_max))
                atomic_store(&sampler_max, n);
            atomic_fetch_add(&sampler_samples, 1);
            if (atomic_load(&ready_ms) > 0)
                atomic_fetch_add(&sampler_samples_after_ready, 1);
        }
        PQclear(r);
        support_sleep_ms(5);
    }
    PQfinish(pg);
    return NULL;
}

Test(db_restart, immediate_stop_and_restart_under_load, .fini = fini, .timeout = 60)
{
    pg_start_private();
    recs = calloc(MAX_RECORDS, sizeof(*recs));
    cr_assert_not_null(recs);

    snprintf(appname, sizeof(appname), "dbr%d", (int)getpid());
    petrel_app_t *app = petrel_app_new("test-db-restart", "0");
    cr_assert_not_null(app);
    cr_assert_eq(petrel_db_setup(app), 0);
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(*routes)), 0);
    char url_kv[600], name_kv[64], size_kv[64], over_kv[64];
    snprintf(url_kv, sizeof(url_kv), "database.url=%s", pg_url);
    snprintf(name_kv, sizeof(name_kv), "database.application_name=%s", appname);
    snprintf(size_kv, sizeof(size_kv), "database.pool_size=%d", POOL_SIZE);
    snprintf(over_kv, sizeof(over_kv), "database.max_overflow=%d", MAX_OVERFLOW);
    const char *ov[] = {"server.workers=2",
                        url_kv,
                        name_kv,
                        size_kv,
                        over_kv,
                        "database.pool_timeout_ms=500",
                        "database.min_idle=2",
                        "database.pre_ping=true",
                        NULL};
    petrel_testclient_t *tc = petrel_test_start(app, SUPPORT_TEST_CONFIG, ov);
    cr_assert_not_null(tc, "server did not start");
    app_port = petrel_test_port(tc);

    pthread_t smp, cl[CLIENTS];
    cr_assert_eq(pthread_create(&smp, NULL, sampler, NULL), 0);
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_eq(pthread_create(&cl[i], NULL, client, NULL), 0);

    /* Steady state, then the crash. */
    support_sleep_ms(800);
    double t_stop = support_now_ms();
    int st = pg_stop_immediate();
    double t_down = support_now_ms();
    /* Down for a while: long enough for the pool's backoff to reach its cap. */
    support_sleep_ms(1500);
    double t_restart = support_now_ms();
    int st2 = pg_restart();
    double t_ready = 0;
    while (support_now_ms() - t_restart < 15000) {
        if (pg_accepting()) {
            t_ready = support_now_ms();
            break;
        }
        support_sleep_ms(5);
    }
    atomic_store(&ready_ms, t_ready);
    /* Load keeps going 3 s after the server is back. */
    while (t_ready > 0 && support_now_ms() - t_ready < 3000)
        support_sleep_ms(20);
    double t_end = support_now_ms();
    atomic_store(&load_stop, true);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(cl[i], NULL);
    atomic_store(&sampler_stop, true);
    pthread_join(smp, NULL);
    petrel_test_stop(tc);
    petrel_app_free(app);

    cr_assert_eq(st, 0, "pg_ctl stop -m immediate failed (status %d)", st);
    cr_assert_eq(st2, 0, "restarting postgres failed (status %d)", st2);
    cr_assert_gt(t_ready, 0, "the restarted PostgreSQL never accepted connections");

    int n = atomic_load(&nrecs);
    if (n > MAX_RECORDS)
        n = MAX_RECORDS;
    int before_ok = 0, outage = 0, outage_503 = 0, sock_err = 0, slow = 0, other = 0;
    int late = 0, late_ok = 0, bad_503 = 0;
    double worst_ms = 0, worst_outage_ms = 0, first_ok_after = -1;
    for (int i = 0; i < n; i++) {
        const struct rec *x = &recs[i];
        double took = x->t1 - x->t0;
        if (took > worst_ms)
            worst_ms = took;
        if (x->status == 0)
            sock_err++;
        else if (x->status != 200 && x->status != 503)
            other++;
        if (x->status == 503 && (!x->detail_ok || !x->retry_after) && bad_503++ < 5)
            fprintf(stderr, "db_restart: 503 %s Retry-After: %s\n",
                    x->retry_after ? "with" : "without", x->detail);
        if (took >= 1000)
            slow++;
        if (x->t1 < t_stop && x->status == 200)
            before_ok++;
        /* Entirely inside the outage: must be a 503. */
        if (x->t0 >= t_down && x->t1 <= t_restart) {
            outage++;
            if (x->status == 503)
                outage_503++;
            if (took > worst_outage_ms)
                worst_outage_ms = took;
        }
        if (x->t0 >= t_down && x->status == 200 && (first_ok_after < 0 || x->t1 < first_ok_after))
            first_ok_after = x->t1;
        /* Well after recovery: must stay 200. */
        if (x->t0 >= t_ready + 2000) {
            late++;
            if (x->status == 200)
                late_ok++;
            else if (late - late_ok <= 5)
                fprintf(stderr, "db_restart: %d after recovery (+%.0f ms, took %.0f ms): %s\n",
                        x->status, x->t0 - t_ready, took, x->detail);
        }
    }
    double recovery = first_ok_after >= 0 ? first_ok_after - t_ready : -1;
    fprintf(stderr,
            "db_restart: %d requests; pg_ctl stop took %.0f ms; outage %.0f ms with %d "
            "requests (%d x 503, slowest %.0f ms); restart accepted connections %.0f ms after "
            "the start command; first 200 %.0f ms after that; slowest request %.0f ms; "
            "max backends %lld of %d (%lld samples, %lld after the restart)\n",
            n, t_down - t_stop, t_restart - t_down, outage, outage_503, worst_outage_ms,
            t_ready - t_restart, recovery, worst_ms, (long long)atomic_load(&sampler_max),
            POOL_SIZE + MAX_OVERFLOW, (long long)atomic_load(&sampler_samples),
            (long long)atomic_load(&sampler_samples_after_ready));
    (void)t_end;

    cr_expect_gt(before_ok, 0, "no 200 before the stop: the app never worked");
    cr_expect_eq(sock_err, 0, "%d requests failed at the socket level (or hung 5 s)", sock_err);
    cr_expect_eq(other, 0, "%d requests answered neither 200 nor 503", other);
    cr_expect_eq(bad_503, 0, "%d 503s without a detail or Retry-After", bad_503);
    cr_expect_eq(slow, 0, "%d requests took 1 s or more (slowest %.0f ms)", slow, worst_ms);
    cr_expect_geq(outage, 10, "only %d requests ran during the outage", outage);
    cr_expect_eq(outage_503, outage, "%d of %d requests during the outage were not 503",
                 outage - outage_503, outage);
    cr_expect_geq(first_ok_after, 0, "no 200 after the restart");
    /* The readiness probe can itself be slow on a loaded box, and the pool may reconnect
     * before it returns: a first 200 is only impossible before the start command. */
    cr_expect(first_ok_after >= t_restart, "a 200 %.0f ms before PostgreSQL was even started again",
              t_restart - first_ok_after);
    cr_expect(recovery <= 2000,
              "first 200 %.0f ms after PostgreSQL accepted connections again (limit 2000)",
              recovery);
    cr_expect_gt(late, 0, "no requests after recovery");
    cr_expect_eq(late_ok, late, "%d of %d requests after recovery were not 200", late - late_ok,
                 late);
    cr_expect_gt(atomic_load(&sampler_samples_after_ready), 10, "pg_stat_activity not sampled");
    cr_expect_leq(atomic_load(&sampler_max), POOL_SIZE + MAX_OVERFLOW,
                  "%lld backends in pg_stat_activity, above the configured total %d",
                  (long long)atomic_load(&sampler_max), POOL_SIZE + MAX_OVERFLOW);
    free(recs);
    recs = NULL;
    pg_cleanup();
}
