/*
 * test_lifespan.c - startup and shutdown hooks (order, awaiting inside them,
 * failure), graceful drain on stop, and the built-in /healthz and /readyz.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/fiber.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char hook_log[128];
static atomic_int sleep_hook_rc = 1;
static atomic_llong sleep_hook_ms = -1;

static void log_append(const char *s)
{
    pthread_mutex_lock(&log_mu);
    size_t len = strlen(hook_log);
    snprintf(hook_log + len, sizeof(hook_log) - len, "%s", s);
    pthread_mutex_unlock(&log_mu);
}

static void log_read(char *out, size_t len)
{
    pthread_mutex_lock(&log_mu);
    snprintf(out, len, "%s", hook_log);
    pthread_mutex_unlock(&log_mu);
}

/* A hook that appends its argument (a string) to the log. */
static int hook_log_cb(petrel_app_t *a, void *arg)
{
    (void)a;
    log_append(arg);
    return 0;
}

/* A startup hook that awaits: sleeps `*(int *)arg` ms on its fiber, then logs "S". */
static int hook_sleep_cb(petrel_app_t *a, void *arg)
{
    (void)a;
    int ms = *(const int *)arg;
    int64_t t0 = petrel_now_ms();
    int rc = petrel_sleep(ms);
    atomic_store(&sleep_hook_ms, (long long)(petrel_now_ms() - t0));
    atomic_store(&sleep_hook_rc, rc);
    log_append("S");
    return rc;
}

static int hook_fail_cb(petrel_app_t *a, void *arg)
{
    (void)a;
    (void)arg;
    log_append("F");
    return PETREL_EIO;
}

static int h_sleep(petrel_req_t *req)
{
    int rc = petrel_sleep(petrel_param_int(req, "ms", 500));
    log_append("r");
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_pack("{s:b}", "slept", 1));
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/sleep", h_sleep, .query = {PETREL_Q_INT("ms", .dflt = "500")}),
};

static char s1[] = "1", s2[] = "2", s3[] = "3", d1[] = "a", d2[] = "b", d3[] = "c";
static int ms_50 = 50, ms_1000 = 1000;

static petrel_app_t *new_app(void)
{
    petrel_app_t *app = petrel_app_new("test_lifespan", "1.0");
    cr_assert_not_null(app);
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    return app;
}

static const char *const one_worker[] = {"server.workers=1", NULL};

Test(lifespan, startup_hooks_run_in_order_and_may_await, .timeout = 30)
{
    petrel_app_t *app = new_app();
    petrel_app_on_startup(app, hook_log_cb, s1);
    petrel_app_on_startup(app, hook_sleep_cb, &ms_50);
    petrel_app_on_startup(app, hook_log_cb, s2);
    petrel_app_on_startup(app, hook_log_cb, s3);
    double t0 = support_now_ms();
    petrel_testclient_t *tc = petrel_test_start(app, NULL, one_worker);
    double took = support_now_ms() - t0;
    cr_assert_not_null(tc);
    char log[128];
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "1S23", "startup hooks ran as %s", log);
    cr_assert_eq(atomic_load(&sleep_hook_rc), 0, "petrel_sleep in a hook returned %d",
                 atomic_load(&sleep_hook_rc));
    long long slept = atomic_load(&sleep_hook_ms);
    cr_assert(slept >= 45 && slept < 1000, "hook slept %lld ms for 50", slept);
    cr_assert(took >= 45, "petrel_test_start returned after %.0f ms, before startup ended", took);
    petrel_test_stop(tc);
    petrel_app_free(app);
}

Test(lifespan, shutdown_hooks_run_in_reverse_order_after_stop, .timeout = 30)
{
    petrel_app_t *app = new_app();
    petrel_app_on_startup(app, hook_log_cb, s1);
    petrel_app_on_shutdown(app, hook_log_cb, d1);
    petrel_app_on_shutdown(app, hook_log_cb, d2);
    petrel_app_on_shutdown(app, hook_log_cb, d3);
    petrel_testclient_t *tc = petrel_test_start(app, NULL, one_worker);
    cr_assert_not_null(tc);
    char log[128];
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "1", "shutdown hooks ran early: %s", log);
    petrel_test_stop(tc);
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "1cba", "lifespan ran as %s", log);
    petrel_app_free(app);
}

Test(lifespan, failing_startup_hook_makes_start_fail, .timeout = 30)
{
    petrel_app_t *app = new_app();
    petrel_app_on_startup(app, hook_log_cb, s1);
    petrel_app_on_startup(app, hook_fail_cb, NULL);
    petrel_app_on_startup(app, hook_log_cb, s2);
    petrel_testclient_t *tc = petrel_test_start(app, NULL, one_worker);
    cr_assert_null(tc, "start succeeded although a startup hook failed");
    char log[128];
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "1F", "hooks after the failing one ran: %s", log);

    /* The lower-level call says why in one line. */
    char err[256] = "";
    petrel_server_t *srv = petrel_server_start(app, err, sizeof(err));
    cr_assert_null(srv);
    cr_assert(err[0] != '\0' && strchr(err, '\n') == NULL, "reason: \"%s\"", err);
    petrel_app_free(app);
}

Test(lifespan, healthz_and_readyz_are_served_for_every_app, .timeout = 30)
{
    petrel_app_t *app = new_app();
    petrel_testclient_t *tc = petrel_test_start(app, NULL, one_worker);
    cr_assert_not_null(tc);
    petrel_test_res_t *r = petrel_test_get(tc, "/healthz");
    cr_assert_eq(r->status, 200);
    cr_assert(support_json_eq(r->json, "{\"status\":\"ok\"}", "healthz"));
    petrel_test_res_free(r);
    r = petrel_test_get(tc, "/readyz");
    cr_assert_eq(r->status, 200);
    cr_assert(support_json_eq(r->json, "{\"status\":\"ready\"}", "readyz"));
    petrel_test_res_free(r);
    petrel_test_stop(tc);
    petrel_app_free(app);
}

struct starter {
    petrel_app_t *app;
    const char *const *overrides;
    petrel_testclient_t *tc;
    atomic_int done;
};

static void *start_thread(void *p)
{
    struct starter *s = p;
    s->tc = petrel_test_start(s->app, NULL, s->overrides);
    atomic_store(&s->done, 1);
    return NULL;
}

Test(lifespan, readyz_is_never_ready_while_startup_runs, .timeout = 30)
{
    atomic_store(&sleep_hook_ms, -1); /* set by the hook once it has slept */
    petrel_app_t *app = new_app();
    petrel_app_on_startup(app, hook_sleep_cb, &ms_1000);
    int port = support_free_port();
    char port_kv[64];
    snprintf(port_kv, sizeof(port_kv), "server.port=%d", port);
    const char *overrides[] = {"server.workers=1", port_kv, NULL};
    struct starter s = {.app = app, .overrides = overrides};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, start_thread, &s), 0);

    /* While the 1 s startup hook sleeps, /readyz must never claim to be ready. */
    int saw_starting = 0;
    while (!atomic_load(&s.done)) {
        petrel_test_res_t *r = support_get(port, "/readyz", 2000);
        if (atomic_load(&s.done)) {
            petrel_test_res_free(r);
            break;
        }
        if (r->status == 200) {
            /* The server goes ready just before petrel_test_start returns and the starter
             * thread sets done: a 200 is only wrong while the startup hook still runs. */
            cr_assert(atomic_load(&sleep_hook_ms) >= 0, "readyz answered 200 during startup");
            petrel_test_res_free(r);
            break;
        }
        cr_assert(r->status == 0 || r->status == 503, "readyz answered %d during startup",
                  r->status);
        if (r->status == 503) {
            cr_assert(support_json_eq(r->json, "{\"status\":\"starting\"}", "readyz starting"));
            saw_starting = 1;
        }
        petrel_test_res_free(r);
        support_sleep_ms(50);
    }
    pthread_join(th, NULL);
    cr_assert_not_null(s.tc);
    /* petrel binds before running the startup hooks, so the probe must have seen it. */
    cr_assert(saw_starting, "readyz never answered 503 starting during a 1 s startup");
    petrel_test_res_t *r = support_get(port, "/readyz", 5000);
    cr_assert_eq(r->status, 200, "readyz after start: %d", r->status);
    petrel_test_res_free(r);
    petrel_test_stop(s.tc);
    petrel_app_free(app);
}

struct stopper {
    petrel_testclient_t *tc;
    atomic_int done;
};

static void *stop_thread(void *p)
{
    struct stopper *s = p;
    petrel_test_stop(s->tc);
    atomic_store(&s->done, 1);
    return NULL;
}

Test(lifespan, stop_drains_in_flight_requests_before_shutdown_hooks, .timeout = 30)
{
    petrel_app_t *app = new_app();
    petrel_app_on_shutdown(app, hook_log_cb, d1);
    int port = support_free_port();
    char port_kv[64];
    snprintf(port_kv, sizeof(port_kv), "server.port=%d", port);
    const char *overrides[] = {"server.workers=1", port_kv, NULL};
    petrel_testclient_t *tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc);

    int fd = petrel_test_connect(tc);
    static const char req[] = "GET /sleep?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    support_sleep_ms(100);

    /* Static: the thread outlives this frame if an assertion below fails. */
    static struct stopper st;
    st.tc = tc;
    atomic_store(&st.done, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, stop_thread, &st), 0);

    /* Draining: not ready (or no longer accepting at all) once the stop is under way,
     * while the 2 s request is still in flight. How soon the stopper thread runs is up
     * to the scheduler of a loaded box: look for up to 1.5 s. */
    double until = support_now_ms() + 1500;
    int readyz = 200;
    while (readyz == 200 && support_now_ms() < until) {
        petrel_test_res_t *rz = support_get(port, "/readyz", 1000);
        readyz = rz->status;
        if (rz->status == 503)
            cr_assert(support_json_eq(rz->json, "{\"status\":\"draining\"}", "readyz draining"));
        petrel_test_res_free(rz);
        if (readyz == 200)
            support_sleep_ms(20);
    }
    cr_assert(readyz == 0 || readyz == 503, "readyz while draining: %d", readyz);

    petrel_test_res_t *r = petrel_test_read_response(fd, 5000);
    cr_assert_eq(r->status, 200, "in-flight request got %d during stop", r->status);
    petrel_test_res_free(r);
    close(fd);
    pthread_join(th, NULL);
    char log[128];
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "ra", "request and shutdown hook ran as %s", log);
    petrel_app_free(app);
}

/* ---- per-worker hooks ---- */
static atomic_int wstart_mask, wstop_mask, wstart_wrong_thread, wstart_after_app;
static atomic_int app_started_flag;

static int app_start_flag_cb(petrel_app_t *a, void *arg)
{
    (void)a;
    (void)arg;
    atomic_store(&app_started_flag, 1);
    return 0;
}

static int wstart_cb(petrel_app_t *a, int worker, void *arg)
{
    (void)a;
    (void)arg;
    if (petrel_worker_index() != worker)
        atomic_fetch_add(&wstart_wrong_thread, 1);
    if (!atomic_load(&app_started_flag))
        atomic_fetch_add(&wstart_after_app, 1);
    /* may await, on the worker's own loop */
    if (petrel_sleep(20) != 0)
        return PETREL_ECANCELED;
    atomic_fetch_or(&wstart_mask, 1 << worker);
    return 0;
}

static int wstop_cb(petrel_app_t *a, int worker, void *arg)
{
    (void)a;
    (void)arg;
    if (petrel_worker_index() == worker)
        atomic_fetch_or(&wstop_mask, 1 << worker);
    return 0;
}

Test(lifespan, worker_hooks_run_once_per_worker_on_its_own_loop, .timeout = 30)
{
    petrel_app_t *app = new_app();
    petrel_app_on_startup(app, app_start_flag_cb, NULL);
    petrel_app_on_worker_start(app, wstart_cb, NULL);
    petrel_app_on_worker_stop(app, wstop_cb, NULL);
    const char *const three[] = {"server.workers=3", NULL};
    petrel_testclient_t *tc = petrel_test_start(app, NULL, three);
    cr_assert_not_null(tc);
    cr_assert_eq(petrel_app_workers(app), 3);
    cr_assert_eq(atomic_load(&wstart_mask), 7, "start hooks ran on workers mask %d",
                 atomic_load(&wstart_mask));
    cr_assert_eq(atomic_load(&wstart_wrong_thread), 0);
    cr_assert_eq(atomic_load(&wstart_after_app), 0, "a worker hook ran before app startup");
    cr_assert_eq(atomic_load(&wstop_mask), 0);
    cr_assert_eq(petrel_worker_index(), -1);
    petrel_test_stop(tc);
    cr_assert_eq(atomic_load(&wstop_mask), 7, "stop hooks ran on workers mask %d",
                 atomic_load(&wstop_mask));
    petrel_app_free(app);
}

static int wstart_fail_cb(petrel_app_t *a, int worker, void *arg)
{
    (void)a;
    (void)arg;
    return worker == 1 ? PETREL_ECONNREFUSED : 0;
}

Test(lifespan, failing_worker_start_hook_makes_start_fail, .timeout = 30)
{
    petrel_app_t *app = new_app();
    petrel_app_on_worker_start(app, wstart_fail_cb, NULL);
    const char *const two[] = {"server.workers=2", NULL};
    petrel_testclient_t *tc = petrel_test_start(app, NULL, two);
    cr_assert_null(tc);
    petrel_app_free(app);
}

static atomic_int slow_hook_rc = 1;

static int hook_very_slow_cb(petrel_app_t *a, void *arg)
{
    (void)a;
    (void)arg;
    int rc = petrel_sleep(5000);
    atomic_store(&slow_hook_rc, rc);
    return rc;
}

Test(lifespan, startup_past_its_deadline_is_cancelled_and_fails, .timeout = 30)
{
    petrel_app_t *app = new_app();
    petrel_app_on_startup(app, hook_very_slow_cb, NULL);
    const char *const ov[] = {"server.workers=1", "server.startup_timeout_s=0.3", NULL};
    double t0 = support_now_ms();
    petrel_testclient_t *tc = petrel_test_start(app, NULL, ov);
    double took = support_now_ms() - t0;
    cr_assert_null(tc);
    cr_assert(took < 2000, "a 0.3 s startup deadline failed after %.0f ms", took);
    cr_assert_eq(atomic_load(&slow_hook_rc), PETREL_ECANCELED, "the hook's sleep returned %d",
                 atomic_load(&slow_hook_rc));
    petrel_app_free(app);
}
