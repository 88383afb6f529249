/*
 * test_fibers.c - fibers seen from outside: one worker thread serves many
 * sleeping requests at once, a client disconnect cancels its handler, defers
 * run on every exit path in reverse order, petrel_wait_fd() wakes on I/O and
 * times out, and a cancelled fiber's later awaits fail at once.
 *
 * The handlers report what happened inside the server through atomics; the
 * server runs in this process, and criterion runs each test in its own
 * process, so these globals are per test.
 */
#include <fcntl.h>
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

/* ---- what the handlers observed ---- */

static atomic_int started;      /* the cancellable handler reached its first await */
static atomic_int defers_done;  /* the first-registered defer ran (so all did) */
static atomic_int sleep_rc = 1; /* what the cancelled petrel_sleep returned */
static atomic_int later_sleep_rc = 1, later_yield_rc = 1, later_wait_rc = 1;
static atomic_int later_cancelled;
static atomic_llong later_elapsed_ms = -1;
static int pipe_fds[2] = {-1, -1}; /* for /waitfd: the test writes, the handler waits */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char defer_log[64];

static char tag_a[] = "A", tag_b[] = "B", tag_c[] = "C";

static void log_append(const char *s)
{
    pthread_mutex_lock(&log_mu);
    size_t len = strlen(defer_log);
    snprintf(defer_log + len, sizeof(defer_log) - len, "%s", s);
    pthread_mutex_unlock(&log_mu);
}

static void log_read(char *out, size_t len)
{
    pthread_mutex_lock(&log_mu);
    snprintf(out, len, "%s", defer_log);
    pthread_mutex_unlock(&log_mu);
}

static void on_defer(void *arg)
{
    log_append(arg);
    if (arg == tag_a)
        atomic_store(&defers_done, 1);
}

/* Runs on a server thread, where criterion's asserts must not be used: a defer that
 * cannot be registered shows up as a wrong log ("X" instead of a letter). */
static void push_defers(void)
{
    if (petrel_defer(on_defer, tag_a) < 0 || petrel_defer(on_defer, tag_b) < 0 ||
        petrel_defer(on_defer, tag_c) < 0)
        log_append("X");
}

/* ---- handlers ---- */

static int h_sleep(petrel_req_t *req)
{
    int rc = petrel_sleep(petrel_param_int(req, "ms", 1000));
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_pack("{s:i}", "worker", petrel_req_worker(req)));
}

/* Sleeps 10 s unless cancelled, then checks that every later await fails at once. */
static int h_cancellable(petrel_req_t *req)
{
    push_defers();
    atomic_store(&started, 1);
    int rc = petrel_sleep(10000);
    atomic_store(&sleep_rc, rc);

    int64_t t0 = petrel_now_ms();
    atomic_store(&later_sleep_rc, petrel_sleep(1000));
    atomic_store(&later_yield_rc, petrel_yield());
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
        atomic_store(&later_wait_rc, petrel_wait_fd(p[0], PETREL_READABLE, 1000));
        close(p[0]);
        close(p[1]);
    }
    atomic_store(&later_cancelled, petrel_cancelled() ? 1 : 0);
    atomic_store(&later_elapsed_ms, (long long)(petrel_now_ms() - t0));
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_pack("{s:b}", "slept", 1));
}

static int h_defers(petrel_req_t *req)
{
    push_defers();
    const char *mode = petrel_param_str(req, "mode", "ok");
    int rc = petrel_sleep(10); /* defers must survive a suspension */
    if (rc != 0)
        return rc;
    if (strcmp(mode, "err") == 0)
        return PETREL_EINTERNAL;
    return petrel_json(req, 200, json_pack("{s:s}", "mode", mode));
}

static int h_waitfd(petrel_req_t *req)
{
    int64_t t0 = petrel_now_ms();
    int rc = petrel_wait_fd(pipe_fds[0], PETREL_READABLE, petrel_param_int(req, "t", 5000));
    int64_t elapsed = petrel_now_ms() - t0;
    char byte = 0;
    if (rc == 0 && read(pipe_fds[0], &byte, 1) != 1)
        byte = '?';
    return petrel_json(req, 200,
                       json_pack("{s:i,s:I,s:s#}", "rc", rc, "elapsed_ms", (json_int_t)elapsed,
                                 "byte", &byte, (int)(byte != 0)));
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/sleep", h_sleep, .query = {PETREL_Q_INT("ms", .dflt = "1000")}),
    PETREL_ROUTE(GET, "/cancellable", h_cancellable, .timeout_ms = -1),
    PETREL_ROUTE(GET, "/cancellable-timeout", h_cancellable, .timeout_ms = 200),
    PETREL_ROUTE(
        GET, "/defers", h_defers,
        .query = {PETREL_Q_STR("mode", .dflt = "\"ok\"", .enum_values = PETREL_ENUM("ok", "err"))}),
    PETREL_ROUTE(GET, "/waitfd", h_waitfd, .query = {PETREL_Q_INT("t", .dflt = "5000")}),
};

static petrel_app_t *app;
static petrel_testclient_t *tc;

static void start(void)
{
    cr_assert_eq(pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK), 0);
    app = petrel_app_new("test_fibers", "1.0");
    cr_assert_not_null(app);
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    static const char *const overrides[] = {"server.workers=1", NULL};
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc, "petrel_test_start failed");
}

static void stop(void)
{
    petrel_test_stop(tc); /* NULL when a test already stopped it */
    petrel_app_free(app);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

TestSuite(fibers, .init = start, .fini = stop, .timeout = 60);

static void send_str(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        cr_assert(n > 0, "write failed");
        s += n;
        len -= (size_t)n;
    }
}

/* Waits up to timeout_ms for *flag to become nonzero; returns the ms waited, or -1. */
static double wait_flag(atomic_int *flag, int timeout_ms)
{
    double t0 = support_now_ms();
    while (!atomic_load(flag)) {
        if (support_now_ms() - t0 > timeout_ms)
            return -1;
        support_sleep_ms(2);
    }
    return support_now_ms() - t0;
}

/* ---- concurrency ---- */

#define NCONC 200

struct conc {
    petrel_testclient_t *tc;
    int status[NCONC];
    double elapsed[NCONC];
};

static void conc_one(int i, void *arg)
{
    struct conc *c = arg;
    petrel_test_res_t *r = petrel_test_get(c->tc, "/sleep?ms=1000");
    c->status[i] = r->status;
    c->elapsed[i] = r->elapsed_ms;
    petrel_test_res_free(r);
}

Test(fibers, two_hundred_one_second_sleeps_finish_together_on_one_worker)
{
    struct conc *c = calloc(1, sizeof(*c));
    c->tc = tc;
    double t0 = support_now_ms();
    cr_assert_eq(support_parallel(NCONC, conc_one, c), 0);
    double total = support_now_ms() - t0;
    int ok = 0;
    double max_one = 0;
    for (int i = 0; i < NCONC; i++) {
        ok += c->status[i] == 200;
        if (c->elapsed[i] > max_one)
            max_one = c->elapsed[i];
    }
    cr_assert_eq(ok, NCONC, "only %d of %d requests answered 200", ok, NCONC);
    /* Serially this would take 200 s; concurrently just over 1 s. */
    cr_assert(total < 2000, "200 concurrent 1 s sleeps took %.0f ms on one worker", total);
    cr_assert(max_one >= 990, "a 1 s sleep answered after %.0f ms", max_one);
    free(c);
}

/* ---- cancellation ---- */

Test(fibers, client_disconnect_cancels_a_sleeping_handler)
{
    int fd = petrel_test_connect(tc);
    cr_assert(fd >= 0);
    send_str(fd, "GET /cancellable HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(wait_flag(&started, 5000) >= 0, "handler never started");
    support_sleep_ms(50);
    cr_assert_eq(atomic_load(&defers_done), 0, "defers ran before the handler ended");
    close(fd);

    double waited = wait_flag(&defers_done, 1000);
    cr_assert(waited >= 0,
              "handler not cancelled within 1 s of the client leaving "
              "(sleep_rc=%d)",
              atomic_load(&sleep_rc));
    cr_assert_eq(atomic_load(&sleep_rc), PETREL_ECANCELED, "petrel_sleep returned %d",
                 atomic_load(&sleep_rc));
    char log[64];
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "CBA", "defers ran as %s on cancellation", log);
}

Test(fibers, every_await_after_cancellation_fails_at_once)
{
    int fd = petrel_test_connect(tc);
    cr_assert(fd >= 0);
    send_str(fd, "GET /cancellable HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(wait_flag(&started, 5000) >= 0, "handler never started");
    close(fd);
    cr_assert(wait_flag(&defers_done, 2000) >= 0, "handler was not cancelled");
    cr_assert_eq(atomic_load(&later_sleep_rc), PETREL_ECANCELED, "later sleep: %d",
                 atomic_load(&later_sleep_rc));
    cr_assert_eq(atomic_load(&later_yield_rc), PETREL_ECANCELED, "later yield: %d",
                 atomic_load(&later_yield_rc));
    cr_assert_eq(atomic_load(&later_wait_rc), PETREL_ECANCELED, "later wait_fd: %d",
                 atomic_load(&later_wait_rc));
    cr_assert_eq(atomic_load(&later_cancelled), 1, "petrel_cancelled() was false");
    long long el = atomic_load(&later_elapsed_ms);
    cr_assert(el >= 0 && el < 100, "three awaits after cancellation took %lld ms", el);

    /* The worker is still healthy. */
    petrel_test_res_t *r = petrel_test_get(tc, "/sleep?ms=1");
    cr_assert_eq(r->status, 200);
    petrel_test_res_free(r);
}

Test(fibers, route_timeout_cancels_the_handler_and_runs_its_defers)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/cancellable-timeout");
    cr_assert_eq(r->status, 504, "status %d", r->status);
    cr_assert(r->elapsed_ms < 1500, "504 after %.0f ms for a 200 ms timeout", r->elapsed_ms);
    petrel_test_res_free(r);
    cr_assert(wait_flag(&defers_done, 1000) >= 0, "defers did not run after the timeout");
    int rc = atomic_load(&sleep_rc);
    cr_assert(rc == PETREL_ECANCELED || rc == PETREL_ETIMEDOUT, "sleep returned %d", rc);
    char log[64];
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "CBA");
}

/* ---- defers ---- */

Test(fibers, defers_run_in_reverse_order_on_normal_return)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/defers?mode=ok");
    cr_assert_eq(r->status, 200);
    petrel_test_res_free(r);
    cr_assert(wait_flag(&defers_done, 1000) >= 0, "defers did not run");
    char log[64];
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "CBA");
}

Test(fibers, defers_run_in_reverse_order_on_error_return)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/defers?mode=err");
    cr_assert_eq(r->status, 500);
    cr_assert(support_json_eq(r->json, "{\"detail\":\"Internal Server Error\"}", "500"));
    petrel_test_res_free(r);
    cr_assert(wait_flag(&defers_done, 1000) >= 0, "defers did not run");
    char log[64];
    log_read(log, sizeof(log));
    cr_assert_str_eq(log, "CBA");
}

/* ---- waiting on file descriptors ---- */

Test(fibers, wait_fd_wakes_when_the_pipe_is_written)
{
    int fd = petrel_test_connect(tc);
    cr_assert(fd >= 0);
    send_str(fd, "GET /waitfd?t=5000 HTTP/1.1\r\nHost: x\r\n\r\n");
    support_sleep_ms(200);
    cr_assert_eq(write(pipe_fds[1], "x", 1), 1);
    petrel_test_res_t *r = petrel_test_read_response(fd, 10000);
    close(fd);
    cr_assert_eq(r->status, 200, "status %d", r->status);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "rc")), 0, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "byte")), "x");
    json_int_t el = json_integer_value(json_object_get(r->json, "elapsed_ms"));
    cr_assert(el >= 150 && el < 2000, "woke after %lld ms (written after 200 ms)", (long long)el);
    petrel_test_res_free(r);
}

Test(fibers, wait_fd_times_out_when_nothing_arrives)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/waitfd?t=200");
    cr_assert_eq(r->status, 200, "status %d", r->status);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "rc")), PETREL_ETIMEDOUT, "%s",
                 r->body);
    json_int_t el = json_integer_value(json_object_get(r->json, "elapsed_ms"));
    cr_assert(el >= 190 && el < 1200, "timed out after %lld ms (asked 200)", (long long)el);
    petrel_test_res_free(r);
}

Test(fibers, a_sleeping_request_does_not_delay_others_on_the_same_worker)
{
    int fd = petrel_test_connect(tc);
    send_str(fd, "GET /sleep?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n");
    support_sleep_ms(50);
    petrel_test_res_t *r = petrel_test_get(tc, "/sleep?ms=1");
    cr_assert_eq(r->status, 200);
    cr_assert(r->elapsed_ms < 500, "a 1 ms request took %.0f ms next to a sleeper", r->elapsed_ms);
    petrel_test_res_free(r);
    close(fd);
}

Test(fibers, stop_waits_for_a_sleeping_request_then_returns)
{
    int fd = petrel_test_connect(tc);
    send_str(fd, "GET /sleep?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n");
    support_sleep_ms(50);
    double t0 = support_now_ms();
    petrel_test_stop(tc);
    tc = NULL;
    double took = support_now_ms() - t0;
    petrel_test_res_t *r = petrel_test_read_response(fd, 2000);
    cr_assert_eq(r->status, 200, "in-flight request answered %d during stop", r->status);
    petrel_test_res_free(r);
    close(fd);
    cr_assert(took >= 200 && took < 3000, "stop returned after %.0f ms with a 300 ms request",
              took);
}
