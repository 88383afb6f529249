/*
 * test_debug.c - the task monitor (debug: true only): /debug/tasks lists a request
 * parked on a semaphore with its await kind and source line, /debug/tasks/{id}
 * shows one, and cancelling the slot holder answers its client 503 and gives the
 * slot back, so the parked request gets it. Without debug the routes are 404.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/fiber.h>
#include <petrel/limits.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

static petrel_sem_t *sem;
static int waiter_line;

static int h_hold(petrel_req_t *req)
{
    int rc = petrel_sem_acquire(sem, 5000);
    if (rc != 0)
        return rc;
    rc = petrel_sleep(8000); /* holds the slot until cancelled */
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_pack("{s:s}", "held", "done"));
}

static int h_waiter(petrel_req_t *req)
{
    /* clang-format off */
    waiter_line = __LINE__ + 1;
    PETREL_AWAIT_HERE(); int rc = petrel_sem_acquire(sem, 8000);
    /* clang-format on */
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_pack("{s:s}", "got", "slot"));
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/hold", h_hold, .timeout_ms = 10000),
    PETREL_ROUTE(GET, "/waiter", h_waiter, .timeout_ms = 10000),
};

static petrel_app_t *app;
static petrel_testclient_t *tc;

static void start_debug(bool debug)
{
    sem = petrel_sem_declare("test_debug_one", 1, 5000);
    cr_assert_not_null(sem);
    app = petrel_app_new("test_debug", "1.0");
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    const char *const on[] = {"server.workers=2", "debug=true", NULL};
    const char *const off[] = {"server.workers=1", "debug=false", NULL};
    tc = petrel_test_start(app, NULL, debug ? on : off);
    cr_assert_not_null(tc);
}

static void stop(void)
{
    petrel_test_stop(tc);
    petrel_app_free(app);
}

TestSuite(debug, .timeout = 30, .fini = stop);

struct call {
    const char *target;
    int status;
    pthread_t t;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    petrel_test_res_t *res = petrel_test_get(tc, c->target);
    c->status = res->status;
    petrel_test_res_free(res);
    return NULL;
}

static json_t *find_task(json_t *tasks, const char *route)
{
    size_t i;
    json_t *t;
    json_array_foreach (tasks, i, t) {
        if (strcmp(json_string_value(json_object_get(t, "route")), route) == 0)
            return t;
    }
    return NULL;
}

Test(debug, lists_cancels_and_frees_the_slot)
{
    start_debug(true);
    struct call hold = {.target = "/hold"}, waiter = {.target = "/waiter"};
    pthread_create(&hold.t, NULL, call_main, &hold);
    petrel_sem_stats_t st;
    for (int i = 0; i < 200; i++) {
        petrel_sem_stats(sem, &st);
        if (st.in_use == 1)
            break;
        support_sleep_ms(10);
    }
    cr_assert_eq(st.in_use, 1);
    pthread_create(&waiter.t, NULL, call_main, &waiter);

    json_t *w = NULL, *h = NULL;
    petrel_test_res_t *res = NULL;
    for (int i = 0; i < 200 && w == NULL; i++) {
        petrel_test_res_free(res);
        res = petrel_test_get(tc, "/debug/tasks");
        cr_assert_eq(res->status, 200);
        json_t *tasks = json_object_get(res->json, "tasks");
        w = find_task(tasks, "/waiter");
        h = find_task(tasks, "/hold");
        if (w != NULL && json_object_get(w, "await") == NULL)
            w = NULL;
        if (w == NULL)
            support_sleep_ms(10);
    }
    cr_assert_not_null(w, "the waiter never showed up parked");
    /* /metrics shows the held slot and the queued waiter. */
    petrel_test_res_t *m = petrel_test_get(tc, "/metrics");
    cr_assert_eq(m->status, 200);
    cr_assert(strstr(m->body, "petrel_semaphore_in_use{name=\"test_debug_one\"} 1\n") != NULL, "%s",
              m->body);
    cr_assert(strstr(m->body, "petrel_semaphore_waiting{name=\"test_debug_one\"} 1\n") != NULL);
    petrel_test_res_free(m);
    cr_assert_not_null(h);
    json_t *aw = json_object_get(w, "await");
    cr_assert_str_eq(json_string_value(json_object_get(aw, "kind")), "semaphore");
    char site[64];
    snprintf(site, sizeof(site), "test_debug.c:%d", waiter_line);
    const char *got = json_string_value(json_object_get(aw, "site"));
    cr_assert(got != NULL && strstr(got, site) != NULL, "site %s, want %s", got, site);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "await"), "kind")),
                     "sleep");
    cr_assert(json_real_value(json_object_get(h, "age_ms")) > 0);
    cr_assert_not_null(json_object_get(h, "request_id"));
    cr_assert_not_null(json_object_get(h, "worker"));

    char target[128];
    snprintf(target, sizeof(target), "/debug/tasks/%s",
             json_string_value(json_object_get(h, "id")));
    petrel_test_res_t *one = petrel_test_get(tc, target);
    cr_assert_eq(one->status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(one->json, "route")), "/hold");
    petrel_test_res_free(one);

    snprintf(target, sizeof(target), "/debug/tasks/%s/cancel",
             json_string_value(json_object_get(h, "id")));
    one = petrel_test_request(tc, "POST", target, NULL, NULL, 0);
    cr_assert_eq(one->status, 200);
    cr_assert(json_is_true(json_object_get(one->json, "cancelled")));
    petrel_test_res_free(one);
    petrel_test_res_free(res);

    pthread_join(hold.t, NULL);
    cr_assert_eq(hold.status, 503);
    pthread_join(waiter.t, NULL);
    cr_assert_eq(waiter.status, 200, "the freed slot went to the waiter");
    for (int i = 0; i < 100; i++) {
        petrel_sem_stats(sem, &st);
        if (st.in_use == 0)
            break;
        support_sleep_ms(10);
    }
    cr_assert_eq(st.in_use, 0);

    res = petrel_test_get(tc, "/debug/tasks/0-999999");
    cr_assert_eq(res->status, 404);
    petrel_test_res_free(res);
}

Test(debug, routes_are_404_without_debug)
{
    start_debug(false);
    petrel_test_res_t *res = petrel_test_get(tc, "/debug/tasks");
    cr_assert_eq(res->status, 404);
    petrel_test_res_free(res);
}
