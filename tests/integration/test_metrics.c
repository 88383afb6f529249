/*
 * test_metrics.c - GET /metrics seen from outside: the text is parsed with a
 * small Prometheus text-format parser and, after known traffic, the request
 * counters, histograms, in-flight gauge, app collectors and process metrics have
 * the expected values; a blocking handler trips the stall detector (log line +
 * counter); Server-Timing adds up to the request's duration; server.metrics=false
 * turns /metrics off.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/fiber.h>
#include <petrel/metrics.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

static int h_hello(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:s}", "message", "hi"));
}

static int h_sleep(petrel_req_t *req)
{
    int rc = petrel_sleep(petrel_param_int(req, "ms", 10));
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_pack("{s:b}", "ok", 1));
}

/* Runs without awaiting for ms milliseconds: what the stall detector exists for. */
static int h_block(petrel_req_t *req)
{
    int64_t until = petrel_now_ns() + petrel_param_int(req, "ms", 10) * 1000000;
    while (petrel_now_ns() < until)
        ;
    return petrel_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static atomic_int collector_calls;

static void demo_collect_cb(petrel_metrics_writer_t *w, void *arg)
{
    const char *a[] = {"pool", "a\"b", NULL};
    const char *b[] = {"pool", "main", NULL};
    atomic_fetch_add(&collector_calls, 1);
    petrel_metrics_gauge(w, "demo_pool_checked_out", "Connections in use", a, 3);
    petrel_metrics_counter(w, "demo_pool_timeouts_total", "Acquire timeouts", a, 7);
    petrel_metrics_gauge(w, "demo_pool_checked_out", "Connections in use", b, 1.5);
    (void)arg;
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/hello", h_hello),
    PETREL_ROUTE(GET, "/sleep", h_sleep, .query = {PETREL_Q_INT("ms", .dflt = "10")}),
    PETREL_ROUTE(GET, "/block", h_block, .query = {PETREL_Q_INT("ms", .dflt = "10")}),
    PETREL_ROUTE(GET, "/items/{item_id:int}", h_hello),
    PETREL_ROUTE(PUT, "/items/{item_id:int}", h_hello),
};

static petrel_app_t *app;
static petrel_testclient_t *tc;

static void start_with(const char *const *overrides)
{
    app = petrel_app_new("test_metrics", "1.0");
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    petrel_metrics_add_collector(app, demo_collect_cb, NULL);
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc);
}

static void start(void)
{
    static const char *const overrides[] = {"server.workers=2", "server.slow_callback_ms=50",
                                            "server.server_timing=true", NULL};
    start_with(overrides);
}

static void stop(void)
{
    petrel_test_stop(tc);
    petrel_app_free(app);
}

TestSuite(metrics, .timeout = 30);

/* ---- a Prometheus text-format 0.0.4 parser, enough for these checks ---- */

struct sample {
    char name[128];
    char labels[512]; /* canonical: k="v",k="v" as written */
    double value;
};

struct scrape {
    struct sample *s;
    size_t n;
    char types[64][2][128]; /* name, type */
    size_t ntypes;
};

static void parse(const char *text, struct scrape *out)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        cr_assert_not_null(eol, "every line ends with \\n");
        char line[1024];
        size_t len = (size_t)(eol - p);
        cr_assert(len < sizeof(line));
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol + 1;
        if (strncmp(line, "# TYPE ", 7) == 0) {
            cr_assert(out->ntypes < 64);
            cr_assert_eq(sscanf(line + 7, "%127s %127s", out->types[out->ntypes][0],
                                out->types[out->ntypes][1]),
                         2);
            out->ntypes++;
            continue;
        }
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 256;
            out->s = realloc(out->s, cap * sizeof(*out->s));
        }
        struct sample *s = &out->s[out->n++];
        memset(s, 0, sizeof(*s));
        size_t i = 0;
        while (line[i] && line[i] != '{' && line[i] != ' ')
            i++;
        cr_assert(i > 0 && i < sizeof(s->name));
        memcpy(s->name, line, i);
        if (line[i] == '{') {
            size_t j = i + 1;
            bool inq = false;
            while (line[j] && (inq || line[j] != '}')) {
                if (line[j] == '\\' && inq)
                    j++;
                else if (line[j] == '"')
                    inq = !inq;
                j++;
            }
            cr_assert_eq(line[j], '}', "unterminated labels: %s", line);
            memcpy(s->labels, line + i + 1, j - i - 1);
            i = j + 1;
        }
        cr_assert_eq(line[i], ' ', "value separator: %s", line);
        char *end;
        s->value = strtod(line + i + 1, &end);
        cr_assert(end != line + i + 1, "bad value: %s", line);
    }
}

static double value_of(const struct scrape *sc, const char *name, const char *labels)
{
    for (size_t i = 0; i < sc->n; i++)
        if (strcmp(sc->s[i].name, name) == 0 && strcmp(sc->s[i].labels, labels) == 0)
            return sc->s[i].value;
    return NAN;
}

static const char *type_of(const struct scrape *sc, const char *name)
{
    for (size_t i = 0; i < sc->ntypes; i++)
        if (strcmp(sc->types[i][0], name) == 0)
            return sc->types[i][1];
    return NULL;
}

static void scrape(struct scrape *sc)
{
    petrel_test_res_t *res = petrel_test_get(tc, "/metrics");
    cr_assert_eq(res->status, 200);
    const char *ct = petrel_test_res_header(res, "content-type");
    cr_assert(ct != NULL && strstr(ct, "text/plain; version=0.0.4") != NULL);
    parse(res->body, sc);
    petrel_test_res_free(res);
}

static void get_status(const char *target, int status)
{
    petrel_test_res_t *res = petrel_test_get(tc, target);
    cr_assert_eq(res->status, status, "%s: %d", target, res->status);
    petrel_test_res_free(res);
}

Test(metrics, counters_and_histograms_after_known_traffic, .init = start, .fini = stop)
{
    for (int i = 0; i < 7; i++)
        get_status("/hello", 200);
    for (int i = 0; i < 3; i++)
        get_status("/items/abc", 422);
    get_status("/items/5", 200);
    petrel_test_res_t *put = petrel_test_request(tc, "PUT", "/items/5", NULL, NULL, 0);
    cr_assert_eq(put->status, 200);
    petrel_test_res_free(put);
    get_status("/nowhere", 404);
    petrel_test_res_t *post = petrel_test_request(tc, "POST", "/nowhere", NULL, "{}", 2);
    cr_assert_eq(post->status, 404);
    petrel_test_res_free(post);
    get_status("/sleep?ms=20", 200);
    struct scrape sc;
    scrape(&sc);
    cr_assert_eq(value_of(&sc, "petrel_http_requests_total",
                          "route=\"/hello\",method=\"GET\",status=\"200\""),
                 7);
    cr_assert_eq(value_of(&sc, "petrel_http_requests_total",
                          "route=\"/items/{item_id:int}\",method=\"GET\",status=\"422\""),
                 3);
    cr_assert_eq(value_of(&sc, "petrel_http_requests_total",
                          "route=\"/items/{item_id:int}\",method=\"GET\",status=\"200\""),
                 1);
    cr_assert_eq(value_of(&sc, "petrel_http_requests_total",
                          "route=\"<unmatched>\",method=\"GET\",status=\"404\""),
                 1);
    /* No route, so the request's own method labels it. */
    cr_assert_eq(value_of(&sc, "petrel_http_requests_total",
                          "route=\"<unmatched>\",method=\"POST\",status=\"404\""),
                 1);
    cr_assert_str_eq(type_of(&sc, "petrel_http_requests_total"), "counter");
    cr_assert_str_eq(type_of(&sc, "petrel_http_request_duration_seconds"), "histogram");
    cr_assert_eq(value_of(&sc, "petrel_http_request_duration_seconds_count",
                          "route=\"/hello\",method=\"GET\""),
                 7);
    cr_assert_eq(value_of(&sc, "petrel_http_request_duration_seconds_bucket",
                          "route=\"/hello\",method=\"GET\",le=\"+Inf\""),
                 7);
    /* Routes sharing a template are separate series, one per method. */
    cr_assert_eq(value_of(&sc, "petrel_http_request_duration_seconds_count",
                          "route=\"/items/{item_id:int}\",method=\"GET\""),
                 4);
    cr_assert_eq(value_of(&sc, "petrel_http_request_duration_seconds_count",
                          "route=\"/items/{item_id:int}\",method=\"PUT\""),
                 1);
    /* Prometheus drops a series written twice: every name + label set is unique. */
    for (size_t i = 0; i < sc.n; i++)
        for (size_t j = i + 1; j < sc.n; j++)
            cr_assert(strcmp(sc.s[i].name, sc.s[j].name) != 0 ||
                          strcmp(sc.s[i].labels, sc.s[j].labels) != 0,
                      "duplicate series %s{%s}", sc.s[i].name, sc.s[i].labels);
    /* The 20 ms sleep: above the 10 ms bound, within 250 ms (loaded CI boxes). */
    cr_assert_eq(value_of(&sc, "petrel_http_request_duration_seconds_bucket",
                          "route=\"/sleep\",method=\"GET\",le=\"0.01\""),
                 0);
    cr_assert_eq(value_of(&sc, "petrel_http_request_duration_seconds_bucket",
                          "route=\"/sleep\",method=\"GET\",le=\"0.25\""),
                 1);
    double sleep_wait = value_of(&sc, "petrel_http_request_wait_seconds_sum", "kind=\"sleep\"");
    cr_assert(sleep_wait >= 0.019 && sleep_wait < 0.25, "sleep wait %f", sleep_wait);
    /* This scrape is in flight; the /sleep request before it may still be
     * (its fiber ends just after its response goes out), checked below. */
    cr_assert(value_of(&sc, "petrel_http_requests_in_flight", "") >= 1);
    cr_assert(value_of(&sc, "petrel_http_connections", "") >= 1);
    cr_assert(value_of(&sc, "process_resident_memory_bytes", "") > 1e6);
    cr_assert(value_of(&sc, "process_open_fds", "") > 3);
    cr_assert(!isnan(value_of(&sc, "petrel_fibers", "worker=\"1\"")));
    cr_assert(!isnan(value_of(&sc, "petrel_fiber_stacks_pooled", "worker=\"0\"")));
    cr_assert(value_of(&sc, "petrel_loop_stall_seconds_count", "worker=\"0\"") +
                  value_of(&sc, "petrel_loop_stall_seconds_count", "worker=\"1\"") >=
              1);
    /* The app's collector: one family per name, label values escaped. */
    cr_assert_eq(value_of(&sc, "demo_pool_checked_out", "pool=\"a\\\"b\""), 3);
    cr_assert_eq(value_of(&sc, "demo_pool_checked_out", "pool=\"main\""), 1.5);
    cr_assert_eq(value_of(&sc, "demo_pool_timeouts_total", "pool=\"a\\\"b\""), 7);
    cr_assert_str_eq(type_of(&sc, "demo_pool_timeouts_total"), "counter");
    size_t families = 0;
    for (size_t i = 0; i < sc.ntypes; i++)
        if (strcmp(sc.types[i][0], "demo_pool_checked_out") == 0)
            families++;
    cr_assert_eq(families, 1);
    free(sc.s);
    /* Counters only grow: a second scrape sees the first one counted. */
    scrape(&sc);
    cr_assert_eq(value_of(&sc, "petrel_http_requests_total",
                          "route=\"/metrics\",method=\"GET\",status=\"200\""),
                 1);
    free(sc.s);
    /* Once every earlier fiber has ended, the scrape is the one request in flight. */
    double inflight = NAN;
    for (int i = 0; i < 100 && inflight != 1; i++) {
        scrape(&sc);
        inflight = value_of(&sc, "petrel_http_requests_in_flight", "");
        free(sc.s);
        if (inflight != 1)
            usleep(10000);
    }
    cr_assert_eq(inflight, 1);
}

static void block_req(int i, void *arg)
{
    (void)i;
    (void)arg;
    petrel_test_res_t *res = petrel_test_get(tc, "/block?ms=120");
    petrel_test_res_free(res);
}

Test(metrics, blocking_handler_trips_the_stall_detector, .init = start, .fini = stop)
{
    char dir[256], path[300];
    cr_assert_eq(support_mkdtemp(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/log.txt", dir);
    /* The server logs to stdout; capture it for this test. */
    fflush(stdout);
    int saved = dup(1);
    FILE *fp = freopen(path, "w", stdout);
    cr_assert_not_null(fp);
    block_req(0, NULL);
    get_status("/hello", 200);
    /* The slice ends (and is counted) just after the handler's response went out: on a
     * loaded machine a scrape can get there first, so look again for a moment. */
    struct scrape sc;
    scrape(&sc);
    for (int i = 0; i < 40 && !(value_of(&sc, "petrel_slow_callbacks_total", "") >= 1); i++) {
        free(sc.s);
        support_sleep_ms(50);
        scrape(&sc);
    }
    support_sleep_ms(50); /* loop threads flush their log buffers once per iteration */
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    /* At least the blocking handler; on a loaded box the OS may stretch another slice too. */
    cr_assert_geq(value_of(&sc, "petrel_slow_callbacks_total", ""), 1);
    free(sc.s);
    char *log = support_read_file(path);
    cr_assert_not_null(log);
    char *line = strstr(log, "slow callback");
    cr_assert_not_null(line, "no stall log line in: %s", log);
    char *eol = strchr(line, '\n');
    if (eol != NULL)
        *eol = '\0';
    cr_assert(strstr(line, "\"route\":\"/block\"") != NULL, "%s", line);
    cr_assert(strstr(line, "\"request_id\":") != NULL, "%s", line);
    char *dm = strstr(line, "\"duration_ms\":");
    cr_assert_not_null(dm);
    double ms = strtod(dm + 14, NULL);
    cr_assert(ms >= 119 && ms < 1000, "duration_ms %f", ms);
    free(log);
    support_rmtree(dir);
}

/* Parses "run;dur=0.1, sleep;dur=30.2, total;dur=30.4" */
static void check_timing(const char *st, double client_ms, const char *kind, double min_kind)
{
    cr_assert_not_null(st, "no Server-Timing header");
    double sum = 0, total = -1, kind_ms = -1;
    const char *p = st;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *semi = strchr(p, ';');
        cr_assert_not_null(semi, "%s", st);
        const char *d = strstr(semi, "dur=");
        cr_assert_not_null(d);
        double v = strtod(d + 4, NULL);
        size_t nlen = (size_t)(semi - p);
        if (nlen == 5 && strncmp(p, "total", 5) == 0)
            total = v;
        else
            sum += v;
        if (strlen(kind) == nlen && strncmp(p, kind, nlen) == 0)
            kind_ms = v;
        const char *comma = strchr(d, ',');
        if (comma == NULL)
            break;
        p = comma;
    }
    cr_assert(total >= 0, "%s", st);
    cr_assert(fabs(sum - total) <= 1.0, "parts %f vs total %f (%s)", sum, total, st);
    cr_assert(total <= client_ms + 1.0, "total %f > client %f", total, client_ms);
    cr_assert(kind_ms >= min_kind, "%s: %f < %f (%s)", kind, kind_ms, min_kind, st);
}

Test(metrics, server_timing_adds_up_to_the_duration, .init = start, .fini = stop)
{
    petrel_test_res_t *res = petrel_test_get(tc, "/sleep?ms=30");
    cr_assert_eq(res->status, 200);
    check_timing(petrel_test_res_header(res, "server-timing"), res->elapsed_ms, "sleep", 29.0);
    petrel_test_res_free(res);
    res = petrel_test_get(tc, "/block?ms=20");
    const char *st = petrel_test_res_header(res, "server-timing");
    check_timing(st, res->elapsed_ms, "run", 19.0);
    /* Its handler ran the moment the request arrived: no (zero) queued entry. */
    cr_assert_null(strstr(st, "queued"), "%s", st);
    petrel_test_res_free(res);
}

Test(metrics, metrics_can_be_turned_off, .fini = stop)
{
    static const char *const overrides[] = {"server.workers=1", "server.metrics=false", NULL};
    start_with(overrides);
    get_status("/hello", 200);
    get_status("/metrics", 404);
    petrel_test_res_t *res = petrel_test_get(tc, "/hello");
    cr_assert_null(petrel_test_res_header(res, "server-timing"));
    petrel_test_res_free(res);
}
