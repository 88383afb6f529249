/*
 * test_http_client.c - the outbound HTTP client against real sockets: the
 * petrel-stub binary (started from PETREL_BINARY_DIR on a free port, stopped
 * by PID) as upstream, `openssl s_server` for TLS. The client runs inside an
 * in-process petrel server with two workers, so pool limits are exercised
 * across threads; handlers report what the client returned as JSON.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/fiber.h>
#include <petrel/http.h>
#include <petrel/limits.h>
#include <petrel/req.h>
#include <petrel/task.h>
#include <petrel/testclient.h>

#include "support.h"

static petrel_http_client_t *cli; /* the client the handlers use; set by each test */
static support_proc_t stub;
static int stub_port;
static petrel_app_t *app;
static petrel_testclient_t *tc;

/* ---- handlers ---- */

static json_t *call_json(const char *method, const char *path, int64_t timeout_ms)
{
    petrel_http_res_t res;
    petrel_http_req_t rq = {.method = method, .path = path, .timeout_ms = timeout_ms};
    int64_t t0 = petrel_now_ns();
    int rc = petrel_http_request(cli, &rq, &res);
    int64_t us = (petrel_now_ns() - t0) / 1000;
    json_t *body = petrel_http_res_json(&res);
    json_t *out = json_pack("{s:s,s:i,s:i,s:I,s:s,s:o*}", "rc", petrel_err_name(rc), "status",
                            res.status, "attempts", res.attempts, "us", (json_int_t)us, "message",
                            res.message, "body", body);
    petrel_http_res_dispose(&res);
    return out;
}

static int h_call(petrel_req_t *req)
{
    return petrel_json(req, 200,
                       call_json(petrel_param_str(req, "method", "GET"),
                                 petrel_param_str(req, "path", "/"),
                                 petrel_param_int(req, "timeout", 0)));
}

static json_t *child_call(petrel_task_t *t, void *arg)
{
    petrel_http_res_t res;
    int rc = petrel_http_get(cli, arg, &res);
    int status = res.status;
    petrel_http_res_dispose(&res);
    if (rc != 0)
        return petrel_task_fail(t, rc, "%s", res.message);
    if (status != 200)
        return petrel_task_fail(t, PETREL_EUPSTREAM, "status %d", status);
    return json_integer(status);
}

static int h_fan(petrel_req_t *req)
{
    size_t n = (size_t)petrel_param_int(req, "n", 10);
    const char *path = petrel_param_str(req, "path", "/");
    petrel_task_t **t = petrel_req_alloc(req, n * sizeof(*t));
    for (size_t i = 0; i < n; i++)
        t[i] = petrel_spawn(req, child_call, (void *)(uintptr_t)path);
    int rc = petrel_gather(t, n, 20000);
    json_t *errs = json_object();
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        int e = petrel_task_error(t[i]);
        if (e == 0) {
            ok++;
            continue;
        }
        json_t *c = json_object_get(errs, petrel_err_name(e));
        json_object_set_new(errs, petrel_err_name(e),
                            json_integer(c != NULL ? json_integer_value(c) + 1 : 1));
    }
    return petrel_json(req, 200,
                       json_pack("{s:i,s:I,s:o}", "rc", rc, "ok", (json_int_t)ok, "errors", errs));
}

static int h_group(petrel_req_t *req)
{
    petrel_group_t *g = petrel_group_new(req);
    (void)petrel_group_spawn(g, child_call, "/price/A?delay_ms=3000");
    (void)petrel_group_spawn(g, child_call, "/price/B?delay_ms=100&fail=500");
    (void)petrel_group_spawn(g, child_call, "/price/C?delay_ms=3000");
    int64_t t0 = petrel_now_ms();
    int rc = petrel_group_wait(g, 5000);
    return petrel_json(req, 200,
                       json_pack("{s:s,s:I}", "rc", petrel_err_name(rc), "ms",
                                 (json_int_t)(petrel_now_ms() - t0)));
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/call", h_call,
                 .query = {PETREL_Q_STR("path"), PETREL_Q_STR("method", .dflt = "\"GET\""),
                           PETREL_Q_INT("timeout", .dflt = "0")},
                 .timeout_ms = -1),
    PETREL_ROUTE(GET, "/fan", h_fan, .query = {PETREL_Q_INT("n"), PETREL_Q_STR("path")},
                 .timeout_ms = -1),
    PETREL_ROUTE(GET, "/group", h_group, .timeout_ms = -1),
};

/* ---- fixtures ---- */

static void start(void)
{
    stub_port = support_free_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", stub_port);
    const char *const argv[] = {PETREL_BINARY_DIR "/petrel-stub", "--port", port, NULL};
    cr_assert_eq(support_spawn(&stub, argv, NULL), 0, "cannot start petrel-stub");
    cr_assert_eq(support_wait_port(stub_port, 5000), 0, "petrel-stub did not listen");
    app = petrel_app_new("test_http_client", "1.0");
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    static const char *const overrides[] = {"server.workers=2", NULL};
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc);
}

static void stop(void)
{
    petrel_test_stop(tc);
    petrel_app_free(app);
    petrel_http_client_free(cli);
    cli = NULL;
    support_proc_cleanup(&stub); /* SIGKILL by PID, reap, remove temp files */
}

TestSuite(http_client, .init = start, .fini = stop, .timeout = 30);

/* A client for the stub with `o` tweaked by the caller. */
static void use_client(petrel_http_opts_t *o)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", stub_port);
    if (o->base_url == NULL)
        o->base_url = url;
    petrel_http_client_free(cli);
    cli = NULL;
    cr_assert_eq(petrel_http_client_new(o, &cli), 0);
}

static json_t *stub_stats(void)
{
    petrel_test_res_t *r = support_get(stub_port, "/stats", 2000);
    cr_assert_eq(r->status, 200);
    json_t *j = json_incref(r->json);
    petrel_test_res_free(r);
    return j;
}

/* A stub counter, minus the connection that asked for the stats (accepted, current and
 * high_water all include it). */
static long stat_of(json_t *j, const char *k)
{
    long v = (long)json_integer_value(json_object_get(j, k));
    return strcmp(k, "accepted") == 0 || strcmp(k, "high_water") == 0 ? v - 1 : v;
}

static void stub_reset(void)
{
    petrel_test_res_t *r = support_get(stub_port, "/reset", 2000);
    petrel_test_res_free(r);
    support_sleep_ms(20); /* let the /reset connection's close be counted first */
    r = support_get(stub_port, "/reset", 2000);
    petrel_test_res_free(r);
}

/* GET /call?path=... and returns the handler's JSON (owned). */
static json_t *call(const char *path, const char *extra)
{
    char esc[1024], target[1200];
    cr_assert(petrel_http_escape(path, esc, sizeof(esc)) > 0);
    snprintf(target, sizeof(target), "/call?path=%s%s", esc, extra ? extra : "");
    petrel_test_res_t *r = petrel_test_get(tc, target);
    cr_assert_eq(r->status, 200, "%s -> %d %s", target, r->status, r->body);
    json_t *j = json_incref(r->json);
    petrel_test_res_free(r);
    return j;
}

static const char *rc_of(json_t *j)
{
    return json_string_value(json_object_get(j, "rc"));
}

static long us_of(json_t *j)
{
    return (long)json_integer_value(json_object_get(j, "us"));
}

/* ---- keep-alive and limits ---- */

Test(http_client, keepalive_connections_are_reused)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    use_client(&o);
    stub_reset();
    for (int i = 0; i < 5; i++) {
        json_t *j = call("/price/AAPL", NULL);
        cr_assert_str_eq(rc_of(j), "PETREL_OK", "%s", json_dumps(j, 0));
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "body"), "ticker")),
                         "AAPL");
        json_decref(j);
    }
    json_t *s = stub_stats();
    cr_assert_eq(stat_of(s, "accepted"), 1, "stub accepted %ld connections for 5 calls",
                 stat_of(s, "accepted"));
    json_decref(s);
    petrel_http_stats_t st;
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.connects_total, 1);
    cr_assert_eq(st.reused_total, 4);
    cr_assert_eq(st.idle, 1);
    cr_assert_eq(st.in_use, 0);
}

Test(http_client, max_connections_holds_under_200_concurrent_calls)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.max_connections = 10;
    o.max_keepalive = 10;
    use_client(&o);
    stub_reset();
    char target[256];
    snprintf(target, sizeof(target), "/fan?n=200&path=%s", "%2Fprice%2FX%3Fdelay_ms%3D20");
    petrel_test_res_t *r = petrel_test_get(tc, target);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "ok")), 200, "%s", r->body);
    petrel_test_res_free(r);
    json_t *s = stub_stats();
    cr_assert(stat_of(s, "accepted") <= 10, "stub accepted %ld connections (limit 10)",
              stat_of(s, "accepted"));
    cr_assert(stat_of(s, "high_water") <= 10, "stub saw %ld concurrent connections",
              stat_of(s, "high_water"));
    json_decref(s);
    petrel_http_stats_t st;
    petrel_http_stats(cli, &st);
    cr_assert(st.open <= 10 && st.waiting == 0 && st.in_use == 0);
}

Test(http_client, a_semaphore_bound_to_the_client_caps_calls_in_flight)
{
    cr_assert_not_null(petrel_sem_declare("hc_up3", 3, 1000));
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", stub_port);
    o.base_url = url;
    o.semaphore = "hc_nope";
    petrel_http_client_t *bad = NULL;
    cr_assert_eq(petrel_http_client_new(&o, &bad), PETREL_EINVAL, "an undeclared semaphore");
    o.semaphore = "hc_up3";
    o.pool_ms = 10000;
    use_client(&o); /* max_connections stays 100: the semaphore is the cap */
    stub_reset();
    int64_t t0 = petrel_now_ms();
    petrel_test_res_t *r = petrel_test_get(tc, "/fan?n=30&path=%2Fprice%2FX%3Fdelay_ms%3D50");
    int64_t ms = petrel_now_ms() - t0;
    cr_assert_eq(r->status, 200);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "ok")), 30, "%s", r->body);
    petrel_test_res_free(r);
    json_t *s = stub_stats();
    cr_assert(stat_of(s, "high_water") <= 3, "the stub saw %ld calls at once (cap 3)",
              stat_of(s, "high_water"));
    cr_assert(stat_of(s, "accepted") <= 3, "the stub accepted %ld connections",
              stat_of(s, "accepted"));
    json_decref(s);
    /* 30 calls, 3 at a time, 50 ms each: about 10 rounds. */
    cr_assert(ms >= 480 && ms < 3000, "30 calls took %lld ms", (long long)ms);
    petrel_sem_stats_t ss;
    petrel_sem_stats(petrel_sem_find("hc_up3"), &ss);
    cr_assert_eq(ss.in_use, 0, "a slot leaked");
}

Test(http_client, pool_timeout_fails_with_epool)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.max_connections = 1;
    o.pool_ms = 100;
    use_client(&o);
    petrel_test_res_t *r = petrel_test_get(tc, "/fan?n=2&path=%2Fprice%2FX%3Fdelay_ms%3D500");
    cr_assert(support_json_eq(json_object_get(r->json, "errors"), "{\"PETREL_EPOOL\":1}", "pool"));
    petrel_test_res_free(r);
}

/* ---- timeouts and broken responses ---- */

Test(http_client, connection_refused_fails_fast)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", support_free_port());
    o.base_url = url;
    use_client(&o);
    json_t *j = call("/price/X", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_ECONNREFUSED");
    json_decref(j);
    petrel_http_stats_t st;
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.connects_total, 0, "a refused connect is not a connection made");
    cr_assert_eq(st.errors, 1);
}

Test(http_client, connect_timeout)
{
    /* A listener that never accepts, with its backlog full: further SYNs are dropped. */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(ls, 0), 0);
    socklen_t sl = sizeof(sa);
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    support_sleep_ms(50);
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    o.base_url = url;
    o.connect_ms = 200;
    use_client(&o);
    json_t *j = call("/price/X", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_ETIMEDOUT", "%s", json_dumps(j, 0));
    cr_assert(us_of(j) >= 190000 && us_of(j) < 400000, "connect timeout after %ld us", us_of(j));
    cr_assert_not_null(strstr(json_string_value(json_object_get(j, "message")), "connect"));
    json_decref(j);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(ls);
}

Test(http_client, read_timeout_closes_the_connection)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.read_ms = 100;
    use_client(&o);
    json_t *j = call("/price/X?delay_ms=500", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_ETIMEDOUT");
    cr_assert(us_of(j) >= 95000 && us_of(j) < 300000, "read timeout after %ld us", us_of(j));
    json_decref(j);
    petrel_http_stats_t st;
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.open, 0, "a timed-out connection was kept");
    cr_assert_eq(st.timeouts, 1);
    cr_assert_eq(st.closed[PETREL_HTTP_CLOSE_TIMEOUT], 1);
    j = petrel_http_stats_json(cli);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "closed"), "timeout")), 1);
    json_decref(j);
}

Test(http_client, total_timeout_bounds_the_call)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.read_ms = 5000;
    use_client(&o);
    json_t *j = call("/price/X?delay_ms=1000", "&timeout=150");
    cr_assert_str_eq(rc_of(j), "PETREL_ETIMEDOUT");
    cr_assert(us_of(j) >= 145000 && us_of(j) < 400000, "total timeout after %ld us", us_of(j));
    json_decref(j);
}

Test(http_client, response_cut_mid_body_fails_and_is_not_pooled)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    use_client(&o);
    json_t *j = call("/price/X?cut=1&size=2000", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_EIO", "%s", json_dumps(j, 0));
    cr_assert_not_null(strstr(json_string_value(json_object_get(j, "message")), "mid-body"));
    json_decref(j);
    petrel_http_stats_t st;
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.open, 0);
}

Test(http_client, oversize_response_fails_with_etoobig)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.max_response_bytes = 1000;
    use_client(&o);
    json_t *j = call("/price/X?size=5000", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_ETOOBIG");
    json_decref(j);
    j = call("/price/X?size=5000&chunked=1", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_ETOOBIG");
    json_decref(j);
    j = call("/price/X?size=900", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_OK");
    json_decref(j);
    petrel_http_stats_t st;
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.open, 1, "oversize connections must be closed (open=%lld)", (long long)st.open);
}

Test(http_client, chunked_response_is_decoded_and_reused)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    use_client(&o);
    stub_reset();
    for (int i = 0; i < 2; i++) {
        json_t *j = call("/weather/paris?chunked=1&size=300", NULL);
        cr_assert_str_eq(rc_of(j), "PETREL_OK", "%s", json_dumps(j, 0));
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "body"), "city")),
                         "paris");
        json_decref(j);
    }
    json_t *s = stub_stats();
    cr_assert_eq(stat_of(s, "accepted"), 1);
    json_decref(s);
}

/* ---- retries and the breaker ---- */

Test(http_client, retries_back_off_exponentially_for_idempotent_methods_only)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    static const int statuses[] = {503, 0};
    o.retries = 2;
    o.backoff_base_ms = 100;
    o.retry_statuses = statuses;
    use_client(&o);
    stub_reset();
    json_t *j = call("/price/X?fail=503", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_OK");
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 503);
    cr_assert_eq(json_integer_value(json_object_get(j, "attempts")), 3);
    /* Backoffs: [50,100] then [100,200] ms. */
    cr_assert(us_of(j) >= 150000 && us_of(j) < 400000, "retries took %ld us", us_of(j));
    json_decref(j);
    json_t *s = stub_stats();
    cr_assert_eq(stat_of(s, "requests"), 4, "3 attempts + this /stats, got %ld",
                 stat_of(s, "requests"));
    json_decref(s);
    j = call("/price/X?fail=503", "&method=POST");
    cr_assert_eq(json_integer_value(json_object_get(j, "attempts")), 1, "POST was retried");
    json_decref(j);
    /* Never past the deadline: a 120 ms budget leaves room for one retry at most. Sleeping
     * the second backoff too would take at least 50 + 100 ms, so 150 ms tells them apart
     * and leaves slack for a loaded machine. */
    j = call("/price/X?fail=503", "&timeout=120");
    cr_assert(json_integer_value(json_object_get(j, "attempts")) <= 2);
    cr_assert(us_of(j) < 150000, "retries ran past the deadline: %ld us", us_of(j));
    json_decref(j);
}

Test(http_client, breaker_opens_fails_fast_and_closes_after_a_good_probe)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.breaker_failures = 3;
    o.breaker_cooldown_ms = 300;
    use_client(&o);
    for (int i = 0; i < 3; i++) {
        json_t *j = call("/price/X?fail=500", NULL);
        cr_assert_eq(json_integer_value(json_object_get(j, "status")), 500);
        json_decref(j);
    }
    petrel_http_stats_t st;
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.breaker, PETREL_BREAKER_OPEN);
    /* The median of five, so that one preemption of a loaded (sanitizer) test machine
     * does not read as a slow breaker. */
    long us[5];
    for (int i = 0; i < 5; i++) {
        json_t *f = call("/price/X", NULL);
        cr_assert_str_eq(rc_of(f), "PETREL_EBREAKER");
        us[i] = us_of(f);
        json_decref(f);
    }
    for (int i = 1; i < 5; i++)
        for (int k = i; k > 0 && us[k - 1] > us[k]; k--) {
            long t = us[k];
            us[k] = us[k - 1];
            us[k - 1] = t;
        }
    cr_assert(us[2] < 1000, "open breaker took %ld us (median) to fail", us[2]);
    support_sleep_ms(350);
    json_t *j = call("/price/X", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_OK", "probe: %s", json_dumps(j, 0));
    json_decref(j);
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.breaker, PETREL_BREAKER_CLOSED);
}

Test(http_client, breaker_opens_on_the_failure_ratio_over_a_sliding_window)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.breaker_failures = 0; /* the ratio alone */
    o.breaker_ratio = 0.5;
    o.breaker_window = 4;
    o.breaker_cooldown_ms = 300;
    use_client(&o);
    petrel_http_stats_t st;
    /* 1 failure in 4: under the ratio. Failures never consecutive here, so only the ratio
     * can open it. */
    static const char *const seq[] = {"/price/X?fail=500", "/price/X", "/price/X", "/price/X",
                                      "/price/X?fail=503", "/price/X", NULL};
    for (int i = 0; seq[i] != NULL; i++) {
        json_t *j = call(seq[i], NULL);
        cr_assert_str_eq(rc_of(j), "PETREL_OK", "call %d: %s", i, json_dumps(j, 0));
        json_decref(j);
        petrel_http_stats(cli, &st);
        cr_assert_eq(st.breaker, PETREL_BREAKER_CLOSED, "opened after call %d", i);
    }
    /* The window now holds ok ok fail ok; one more failure slides it to ok fail ok fail:
     * 2 of 4 = 0.5. */
    json_t *j = call("/price/X?fail=502", NULL);
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 502);
    json_decref(j);
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.breaker, PETREL_BREAKER_OPEN);
    j = call("/price/X", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_EBREAKER");
    cr_assert(us_of(j) < 1000, "open breaker took %ld us to fail", us_of(j));
    json_decref(j);
    support_sleep_ms(350);
    j = call("/price/X", NULL);
    cr_assert_str_eq(rc_of(j), "PETREL_OK", "probe: %s", json_dumps(j, 0));
    json_decref(j);
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.breaker, PETREL_BREAKER_CLOSED);
    /* The window restarted when it closed: one failure is not judged yet (1 of 1 seen). */
    j = call("/price/X?fail=500", NULL);
    json_decref(j);
    petrel_http_stats(cli, &st);
    cr_assert_eq(st.breaker, PETREL_BREAKER_CLOSED);
}

Test(http_client, breaker_ratio_options_are_validated)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.base_url = "http://127.0.0.1:1";
    petrel_http_client_t *c = NULL;
    o.breaker_ratio = 1.5;
    cr_assert_eq(petrel_http_client_new(&o, &c), PETREL_EINVAL);
    o.breaker_ratio = -0.1;
    cr_assert_eq(petrel_http_client_new(&o, &c), PETREL_EINVAL);
    o.breaker_ratio = 0.5;
    o.breaker_window = 0;
    cr_assert_eq(petrel_http_client_new(&o, &c), PETREL_EINVAL);
    cr_assert_null(c);
}

/* ---- /metrics ---- */

static char *scrape(void)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/metrics");
    cr_assert_eq(r->status, 200);
    char *text = strdup(r->body);
    petrel_test_res_free(r);
    return text;
}

static void expect_sample(const char *text, const char *line)
{
    char want[256];
    snprintf(want, sizeof(want), "\n%s\n", line);
    cr_assert_not_null(strstr(text, want), "no sample \"%s\" in:\n%s", line, text);
}

Test(http_client, stats_are_exported_in_metrics_per_upstream)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.name = "mt";
    o.read_ms = 200;
    o.breaker_failures = 2;
    o.max_connections = 7;
    use_client(&o);
    for (int i = 0; i < 3; i++) {
        json_t *j = call("/price/X", NULL); /* 1 connect, then 2 reuses */
        json_decref(j);
    }
    json_t *j = call("/price/X?delay_ms=600", NULL); /* reused; read timeout closes it */
    cr_assert_str_eq(rc_of(j), "PETREL_ETIMEDOUT");
    json_decref(j);
    j = call("/price/X?fail=500", NULL); /* a new connection, kept; 2nd failure: open */
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 500);
    json_decref(j);
    char *text = scrape();
    expect_sample(text, "# TYPE petrel_http_client_connections gauge");
    expect_sample(text, "petrel_http_client_connections{upstream=\"mt\",state=\"open\"} 1");
    expect_sample(text, "petrel_http_client_connections{upstream=\"mt\",state=\"idle\"} 1");
    expect_sample(text, "petrel_http_client_connections{upstream=\"mt\",state=\"in_use\"} 0");
    expect_sample(text, "petrel_http_client_max_connections{upstream=\"mt\"} 7");
    expect_sample(text, "petrel_http_client_waiting{upstream=\"mt\"} 0");
    expect_sample(text, "petrel_http_client_breaker_open{upstream=\"mt\"} 1");
    expect_sample(text, "# TYPE petrel_http_client_connects_total counter");
    expect_sample(text, "petrel_http_client_connects_total{upstream=\"mt\"} 2");
    expect_sample(text, "petrel_http_client_reused_total{upstream=\"mt\"} 3");
    expect_sample(text, "petrel_http_client_requests_total{upstream=\"mt\"} 5");
    expect_sample(text, "petrel_http_client_timeouts_total{upstream=\"mt\"} 1");
    expect_sample(text, "petrel_http_client_errors_total{upstream=\"mt\"} 0");
    expect_sample(text, "# TYPE petrel_http_client_closed_total counter");
    expect_sample(text, "petrel_http_client_closed_total{upstream=\"mt\",reason=\"timeout\"} 1");
    expect_sample(text, "petrel_http_client_closed_total{upstream=\"mt\",reason=\"peer\"} 0");
    free(text);
    /* A freed client leaves the registry, and /metrics with it. */
    petrel_http_client_free(cli);
    cli = NULL;
    text = scrape();
    cr_assert_null(strstr(text, "upstream=\"mt\""), "freed client still exported");
    free(text);
}

Test(http_client, task_group_failure_cancels_sibling_calls_and_closes_their_connections)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    use_client(&o);
    stub_reset();
    petrel_test_res_t *r = petrel_test_get(tc, "/group");
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "rc")), "PETREL_EUPSTREAM");
    cr_assert(json_integer_value(json_object_get(r->json, "ms")) < 500, "%s", r->body);
    petrel_test_res_free(r);
    /* The failing call's connection is pooled; the two cancelled ones are closed as the
     * siblings unwind (at once; up to a second on a loaded machine). */
    petrel_http_stats_t st;
    for (int i = 0; i < 100; i++) {
        petrel_http_stats(cli, &st);
        if (st.open == 1 && st.in_use == 0)
            break;
        support_sleep_ms(10);
    }
    cr_assert_eq(st.in_use, 0);
    cr_assert_eq(st.open, 1, "open=%lld", (long long)st.open);
    cr_assert_eq(st.closed[PETREL_HTTP_CLOSE_CANCELLED], 2);
    /* ... and the stub saw both hang up in the middle of their 3 s answers. */
    json_t *s = NULL;
    for (int i = 0; i < 100; i++) {
        json_decref(s);
        s = stub_stats();
        if (stat_of(s, "aborted") == 2)
            break;
        support_sleep_ms(10);
    }
    cr_assert_eq(stat_of(s, "aborted"), 2, "the stub saw %ld calls abandoned",
                 stat_of(s, "aborted"));
    json_decref(s);
}

/* ---- TLS ---- */

static char tls_dir[256];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = -1;
    char *out = support_run(cmd, &st);
    cr_assert_eq(st, 0, "%s failed: %s", cmd, out);
    free(out);
}

/* A CA, a server certificate for `name` signed by it, and a second, unrelated CA. */
static void make_certs(void)
{
    cr_assert_eq(support_mkdtemp(tls_dir, sizeof(tls_dir)), 0);
    const char *d = tls_dir;
    sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
       "-subj /CN=petrel-test-ca 2>&1",
       d);
    sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem "
       "-days 2 -subj /CN=other-ca 2>&1",
       d);
    sh("cd %s && openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
       "-subj /CN=localhost 2>&1 && printf 'subjectAltName=DNS:localhost\\n' > ext.cnf && "
       "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem "
       "-days 2 -extfile ext.cnf 2>&1",
       d);
}

static support_proc_t tls_srv;

static int start_s_server(const char *version)
{
    int port = support_free_port();
    char p[16], cert[300], key[300];
    snprintf(p, sizeof(p), "%d", port);
    snprintf(cert, sizeof(cert), "%s/srv.pem", tls_dir);
    snprintf(key, sizeof(key), "%s/srv.key", tls_dir);
    const char *const argv[] = {
        "/usr/bin/openssl", "s_server", "-accept", p, "-cert", cert, "-key", key, "-www", version,
        "-quiet",           NULL};
    cr_assert_eq(support_spawn(&tls_srv, argv, NULL), 0);
    cr_assert_eq(support_wait_port(port, 5000), 0, "openssl s_server did not start");
    return port;
}

static const char *tls_call(const char *host, int port, const char *ca)
{
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    char url[128], caf[300];
    snprintf(url, sizeof(url), "https://%s:%d", host, port);
    snprintf(caf, sizeof(caf), "%s/%s", tls_dir, ca);
    o.base_url = url;
    o.ca_file = caf;
    use_client(&o);
    json_t *j = call("/", NULL);
    static char out[256];
    snprintf(out, sizeof(out), "%s %d %s", rc_of(j),
             (int)json_integer_value(json_object_get(j, "status")),
             json_string_value(json_object_get(j, "message")));
    json_decref(j);
    return out;
}

static void tls_cases(const char *version)
{
    if (!support_have_command("openssl"))
        cr_assert_fail("the openssl CLI is needed (scripts/dev.sh deps)");
    make_certs();
    int port = start_s_server(version);
    const char *r = tls_call("localhost", port, "ca.pem");
    cr_assert(strncmp(r, "PETREL_OK 200", 13) == 0, "verify ok (%s): %s", version, r);
    r = tls_call("localhost", port, "other.pem");
    cr_assert(strncmp(r, "PETREL_EIO", 10) == 0 && strstr(r, "verify") != NULL,
              "untrusted CA (%s): %s", version, r);
    /* The certificate names localhost only; 127.0.0.1 is a different identity. */
    r = tls_call("127.0.0.1", port, "ca.pem");
    cr_assert(strncmp(r, "PETREL_EIO", 10) == 0 && strstr(r, "verify") != NULL,
              "name mismatch (%s): %s", version, r);
    support_proc_cleanup(&tls_srv);
    support_rmtree(tls_dir);
}

Test(http_client, tls12_verify_ok_untrusted_ca_and_name_mismatch)
{
    tls_cases("-tls1_2");
}

Test(http_client, tls13_verify_ok_untrusted_ca_and_name_mismatch)
{
    tls_cases("-tls1_3");
}
