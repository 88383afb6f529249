/*
 * test_tasks.c - child tasks seen from outside: concurrent children join in
 * the time of the slowest, gather keeps every result or error, a task group
 * cancels the siblings of a failing child at once, wait_for cancels at its
 * deadline, bounded fan-out never exceeds its limit, the per-request cap holds,
 * and a client that disconnects cancels the whole fan-out.
 *
 * Children report through atomics (the server runs in this process; criterion
 * runs each test in its own process).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/fiber.h>
#include <petrel/req.h>
#include <petrel/task.h>
#include <petrel/testclient.h>

#include "support.h"

static atomic_int in_flight, high_water, started_n, cancelled_n, finished_n;

static void enter(void)
{
    int now = atomic_fetch_add(&in_flight, 1) + 1;
    int hw = atomic_load(&high_water);
    while (now > hw && !atomic_compare_exchange_weak(&high_water, &hw, now))
        ;
    atomic_fetch_add(&started_n, 1);
}

static void leave(void *arg)
{
    (void)arg;
    atomic_fetch_sub(&in_flight, 1);
    atomic_fetch_add(&finished_n, 1);
}

/* Sleeps (intptr_t)arg ms; a negative arg fails after -arg ms. */
static json_t *child_sleep(petrel_task_t *t, void *arg)
{
    intptr_t ms = (intptr_t)arg;
    enter();
    petrel_defer(leave, NULL);
    int rc = petrel_sleep(ms < 0 ? -ms : ms);
    if (rc != 0) {
        atomic_fetch_add(&cancelled_n, 1);
        return petrel_task_fail(t, rc, "sleep: %s", petrel_err_name(rc));
    }
    if (ms < 0)
        return petrel_task_fail(t, PETREL_EUPSTREAM, "child %d failed", (int)-ms);
    return json_integer(ms);
}

static int h_gather(petrel_req_t *req)
{
    int64_t n = petrel_param_int(req, "n", 10), ms = petrel_param_int(req, "ms", 1000);
    int64_t fail = petrel_param_int(req, "fail", -1);
    petrel_task_t *t[64];
    for (int64_t i = 0; i < n; i++)
        t[i] = petrel_spawn(req, child_sleep, (void *)(intptr_t)(i == fail ? -ms / 2 : ms));
    int rc = petrel_gather(t, (size_t)n, petrel_param_int(req, "timeout", 5000));
    json_t *out = json_array();
    for (int64_t i = 0; i < n; i++)
        json_array_append_new(out, petrel_task_json_or_error(t[i]));
    return petrel_json(req, 200, json_pack("{s:i,s:o}", "rc", rc, "results", out));
}

static int h_group(petrel_req_t *req)
{
    int64_t n = petrel_param_int(req, "n", 5), ms = petrel_param_int(req, "ms", 2000);
    int64_t fail = petrel_param_int(req, "fail", -1);
    petrel_group_t *g = petrel_group_new(req);
    for (int64_t i = 0; i < n; i++)
        (void)petrel_group_spawn(g, child_sleep, (void *)(intptr_t)(i == fail ? -100 : ms));
    int64_t t0 = petrel_now_ms();
    int rc = petrel_group_wait(g, 5000);
    json_t *errs = json_array();
    for (size_t i = 0; i < petrel_group_size(g); i++)
        json_array_append_new(
            errs, json_string(petrel_err_name(petrel_task_error(petrel_group_task(g, i)))));
    return petrel_json(req, 200,
                       json_pack("{s:s,s:I,s:o}", "rc", petrel_err_name(rc), "ms",
                                 (json_int_t)(petrel_now_ms() - t0), "errors", errs));
}

static int h_map(petrel_req_t *req)
{
    size_t n = (size_t)petrel_param_int(req, "n", 100), k = (size_t)petrel_param_int(req, "k", 10);
    void **args = petrel_req_alloc(req, n * sizeof(*args));
    petrel_task_t **out = petrel_req_alloc(req, n * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        args[i] = (void *)(intptr_t)petrel_param_int(req, "ms", 50);
    int64_t t0 = petrel_now_ms();
    int rc = petrel_map_bounded(req, n, k, child_sleep, args, out, 10000);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += petrel_task_error(out[i]) == 0;
    return petrel_json(req, 200,
                       json_pack("{s:i,s:I,s:I}", "rc", rc, "ok", (json_int_t)ok, "ms",
                                 (json_int_t)(petrel_now_ms() - t0)));
}

static int h_wait_for(petrel_req_t *req)
{
    json_t *res = NULL;
    int64_t t0 = petrel_now_ms();
    int rc = petrel_wait_for(req, child_sleep, (void *)(intptr_t)petrel_param_int(req, "ms", 1000),
                             petrel_param_int(req, "timeout", 100), &res);
    json_t *body = json_pack("{s:s,s:I,s:o?}", "rc", petrel_err_name(rc), "ms",
                             (json_int_t)(petrel_now_ms() - t0), "result", res);
    return petrel_json(req, 200, body);
}

static int h_cap(petrel_req_t *req)
{
    petrel_task_limit(req, 3);
    petrel_task_t *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = petrel_spawn(req, child_sleep, (void *)(intptr_t)10);
    int rc = petrel_gather(t, 5, 2000);
    json_t *errs = json_array();
    for (int i = 0; i < 5; i++)
        json_array_append_new(errs, json_string(petrel_err_name(petrel_task_error(t[i]))));
    return petrel_json(req, 200, json_pack("{s:i,s:o}", "rc", rc, "errors", errs));
}

/* Returns without joining: the children must be cancelled when the handler ends. */
static int h_orphans(petrel_req_t *req)
{
    for (int i = 0; i < 4; i++)
        (void)petrel_spawn(req, child_sleep, (void *)(intptr_t)5000);
    (void)petrel_yield(); /* let them start */
    return petrel_json(req, 200, json_true());
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/gather", h_gather,
                 .query = {PETREL_Q_INT("n", .dflt = "10"), PETREL_Q_INT("ms", .dflt = "1000"),
                           PETREL_Q_INT("fail", .dflt = "-1"),
                           PETREL_Q_INT("timeout", .dflt = "5000")},
                 .timeout_ms = -1),
    PETREL_ROUTE(GET, "/group", h_group,
                 .query = {PETREL_Q_INT("n", .dflt = "5"), PETREL_Q_INT("ms", .dflt = "2000"),
                           PETREL_Q_INT("fail", .dflt = "-1")}),
    PETREL_ROUTE(GET, "/map", h_map,
                 .query = {PETREL_Q_INT("n", .dflt = "100"), PETREL_Q_INT("k", .dflt = "10"),
                           PETREL_Q_INT("ms", .dflt = "50")}),
    PETREL_ROUTE(
        GET, "/wait_for", h_wait_for,
        .query = {PETREL_Q_INT("ms", .dflt = "1000"), PETREL_Q_INT("timeout", .dflt = "100")}),
    PETREL_ROUTE(GET, "/cap", h_cap),
    PETREL_ROUTE(GET, "/orphans", h_orphans),
};

static petrel_app_t *app;
static petrel_testclient_t *tc;

static void start(void)
{
    app = petrel_app_new("test_tasks", "1.0");
    cr_assert_not_null(app);
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    static const char *const overrides[] = {"server.workers=1", NULL};
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc, "petrel_test_start failed");
}

static void stop(void)
{
    petrel_test_stop(tc);
    petrel_app_free(app);
}

TestSuite(tasks, .init = start, .fini = stop, .timeout = 30);

static int wait_value(atomic_int *v, int want, int timeout_ms)
{
    double t0 = support_now_ms();
    while (atomic_load(v) != want) {
        if (support_now_ms() - t0 > timeout_ms)
            return -1;
        support_sleep_ms(2);
    }
    return 0;
}

Test(tasks, ten_children_sleeping_one_second_join_in_under_1200_ms)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/gather?n=10&ms=1000");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert(r->elapsed_ms >= 990 && r->elapsed_ms < 1200, "took %.0f ms", r->elapsed_ms);
    cr_assert(support_json_eq(r->json,
                              "{\"rc\":0,\"results\":[1000,1000,1000,1000,1000,1000,"
                              "1000,1000,1000,1000]}",
                              "gather"));
    cr_assert_eq(atomic_load(&high_water), 10);
    petrel_test_res_free(r);
}

Test(tasks, gather_with_one_failing_child_keeps_the_others_results)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/gather?n=4&ms=200&fail=2");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert(support_json_eq(r->json,
                              "{\"rc\":0,\"results\":[200,200,{\"error\":\"child 100 failed\","
                              "\"code\":\"PETREL_EUPSTREAM\"},200]}",
                              "gather"));
    petrel_test_res_free(r);
}

Test(tasks, gather_timeout_cancels_the_unfinished_and_keeps_the_finished)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/gather?n=3&ms=400&fail=0&timeout=300");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert(r->elapsed_ms < 600, "took %.0f ms", r->elapsed_ms);
    json_t *res = json_object_get(r->json, "results");
    cr_assert_eq(json_integer_value(json_object_get(r->json, "rc")), PETREL_ETIMEDOUT);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 0), "code")),
                     "PETREL_EUPSTREAM");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 1), "code")),
                     "PETREL_ETIMEDOUT");
    cr_assert_eq(wait_value(&in_flight, 0, 1000), 0, "children still running");
    petrel_test_res_free(r);
}

Test(tasks, group_failure_cancels_the_siblings_at_once)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/group?n=5&ms=2000&fail=3");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "rc")), "PETREL_EUPSTREAM");
    /* At once: the siblings would sleep 2000 ms; the bound leaves room for a loaded run. */
    cr_assert(json_integer_value(json_object_get(r->json, "ms")) < 500, "group took %lld ms",
              (long long)json_integer_value(json_object_get(r->json, "ms")));
    json_t *errs = json_object_get(r->json, "errors");
    for (size_t i = 0; i < 5; i++)
        cr_assert_str_eq(json_string_value(json_array_get(errs, i)),
                         i == 3 ? "PETREL_EUPSTREAM" : "PETREL_ECANCELED");
    /* The siblings' awaits really returned cancelled and their defers ran. */
    cr_assert_eq(wait_value(&cancelled_n, 4, 1000), 0, "cancelled=%d", atomic_load(&cancelled_n));
    cr_assert_eq(wait_value(&in_flight, 0, 1000), 0);
    petrel_test_res_free(r);
}

Test(tasks, group_with_no_failure_returns_zero)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/group?n=3&ms=50");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "rc")), "PETREL_OK");
    petrel_test_res_free(r);
}

Test(tasks, map_bounded_100_children_at_most_10_in_flight_in_about_10_rounds)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/map?n=100&k=10&ms=50");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "ok")), 100);
    cr_assert_eq(atomic_load(&high_water), 10, "high water %d", atomic_load(&high_water));
    json_int_t ms = json_integer_value(json_object_get(r->json, "ms"));
    cr_assert(ms >= 500 && ms < 800, "100 x 50 ms with 10 in flight took %lld ms", (long long)ms);
    petrel_test_res_free(r);
}

Test(tasks, wait_for_cancels_the_block_at_its_deadline)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/wait_for?ms=1000&timeout=100");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "rc")), "PETREL_ETIMEDOUT");
    /* The block would take 1000 ms; its 100 ms deadline ends it, give or take a busy box. */
    cr_assert(json_integer_value(json_object_get(r->json, "ms")) < 300, "took %lld ms",
              (long long)json_integer_value(json_object_get(r->json, "ms")));
    cr_assert_eq(wait_value(&cancelled_n, 1, 1000), 0);
    petrel_test_res_free(r);
    r = petrel_test_get(tc, "/wait_for?ms=20&timeout=1000");
    cr_assert(support_json_eq(json_object_get(r->json, "result"), "20", "result"));
    petrel_test_res_free(r);
}

Test(tasks, per_request_cap_fails_extra_children_with_eoverload)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/cap");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert(support_json_eq(json_object_get(r->json, "errors"),
                              "[\"PETREL_OK\",\"PETREL_OK\",\"PETREL_OK\",\"PETREL_EOVERLOAD\","
                              "\"PETREL_EOVERLOAD\"]",
                              "errors"));
    petrel_test_res_free(r);
}

Test(tasks, children_never_outlive_the_handler)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/orphans");
    cr_assert_eq(r->status, 200);
    cr_assert_eq(wait_value(&cancelled_n, 4, 1000), 0, "orphans not cancelled (%d)",
                 atomic_load(&cancelled_n));
    cr_assert_eq(wait_value(&in_flight, 0, 1000), 0);
    petrel_test_res_free(r);
}

Test(tasks, a_disconnecting_client_cancels_the_fan_out)
{
    int fd = petrel_test_connect(tc);
    cr_assert(fd >= 0);
    const char *rq = "GET /gather?n=8&ms=5000&timeout=10000 HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, rq, strlen(rq)), (ssize_t)strlen(rq));
    cr_assert_eq(wait_value(&in_flight, 8, 2000), 0, "children did not start");
    double t0 = support_now_ms();
    close(fd);
    cr_assert_eq(wait_value(&cancelled_n, 8, 1000), 0, "fan-out not cancelled (%d)",
                 atomic_load(&cancelled_n));
    cr_assert_eq(wait_value(&in_flight, 0, 1000), 0);
    cr_assert(support_now_ms() - t0 < 500);
}
