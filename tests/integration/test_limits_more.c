/*
 * test_limits_more.c - the rest of issue 5's acceptance for the process-wide
 * limits, on in-process apps (petrel_test_start) and the public API only:
 *
 *  - petrel_to_thread runs in parallel with the loop: a blocked thread leaves
 *    the worker serving, 4 calls on 4 threads overlap, and a call past its
 *    timeout answers 504 at the timeout while the function finishes behind;
 *  - petrel_queue_put waits for space (backpressure) while try_put answers
 *    503 at once, and a put whose timeout passes answers 503 at the timeout;
 *  - a rate limiter keyed by header gives each key its own bucket, and
 *    requests without the header share one (as limits.h documents);
 *  - the process pool: a caller cancelled while queued or mid-job frees its
 *    place or child, and the stats count exactly one replacement;
 *  - a semaphore stress over 3 workers with client disconnects leaves no slot
 *    held and no waiter queued.
 *
 * Each criterion test runs in its own process, so the process-wide objects
 * (queue, pools, registries) start fresh in every test. Handlers report
 * through atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/fiber.h>
#include <petrel/limits.h>
#include <petrel/queue.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

static petrel_app_t *app;
static petrel_testclient_t *tc;

static void start_app(const petrel_route_t *routes, size_t n, const char *const *overrides)
{
    app = petrel_app_new("test_limits_more", "1.0");
    cr_assert_not_null(app);
    cr_assert_eq(petrel_app_add_routes(app, routes, n), 0);
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc, "petrel_test_start failed");
}

static void stop_app(void)
{
    if (tc != NULL)
        petrel_test_stop(tc);
    if (app != NULL)
        petrel_app_free(app);
    tc = NULL;
    app = NULL;
}

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

static void note_max(atomic_int *now, atomic_int *max)
{
    int n = atomic_fetch_add(now, 1) + 1;
    int m = atomic_load(max);
    while (n > m && !atomic_compare_exchange_weak(max, &m, n))
        ;
}

/* A GET made from a background thread. */
struct bg_get {
    pthread_t tid;
    const char *target;
    int status;
    double elapsed_ms;
    json_t *json;
};

static void *bg_get_main(void *arg)
{
    struct bg_get *b = arg;
    petrel_test_res_t *r = petrel_test_get(tc, b->target);
    b->status = r->status;
    b->elapsed_ms = r->elapsed_ms;
    b->json = r->json != NULL ? json_incref(r->json) : NULL;
    petrel_test_res_free(r);
    return NULL;
}

static void bg_get_start(struct bg_get *b, const char *target)
{
    b->target = target;
    cr_assert_eq(pthread_create(&b->tid, NULL, bg_get_main, b), 0);
}

static void bg_get_join(struct bg_get *b)
{
    pthread_join(b->tid, NULL);
}

/* Sends a request on a raw connection and returns the fd (close it to disconnect). */
static int send_raw(const char *method, const char *target)
{
    int fd = petrel_test_connect(tc);
    cr_assert_geq(fd, 0);
    char rq[512];
    int n = snprintf(rq, sizeof(rq), "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                     method, target);
    cr_assert_eq(write(fd, rq, (size_t)n), (ssize_t)n);
    return fd;
}

/* ------------------------------------------------------------------ */
/* 1. petrel_to_thread runs in parallel with the loop                  */

static atomic_int blk_now, blk_max, blk_started, blk_finished;

/* Blocks its thread for (intptr_t)arg ms; returns ms + 1. */
static void *blocking_sleep(void *arg)
{
    int ms = (int)(intptr_t)arg;
    note_max(&blk_now, &blk_max);
    atomic_fetch_add(&blk_started, 1);
    support_sleep_ms(ms);
    atomic_fetch_sub(&blk_now, 1);
    atomic_fetch_add(&blk_finished, 1);
    return (void *)(intptr_t)(ms + 1);
}

static int h_block(petrel_req_t *req)
{
    int64_t ms = petrel_param_int(req, "ms", 500);
    void *res = NULL;
    int64_t t0 = petrel_now_ms();
    int rc = petrel_to_thread(blocking_sleep, (void *)(intptr_t)ms, &res,
                              petrel_param_int(req, "timeout", 5000));
    if (rc != 0)
        return rc; /* PETREL_ETIMEDOUT: 504 */
    return petrel_json(req, 200,
                       json_pack("{s:I,s:I,s:i}", "result", (json_int_t)(intptr_t)res, "ms",
                                 (json_int_t)(petrel_now_ms() - t0), "worker",
                                 petrel_req_worker(req)));
}

static int h_plain(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:i}", "worker", petrel_req_worker(req)));
}

static const petrel_route_t thread_routes[] = {
    PETREL_ROUTE(
        GET, "/block", h_block,
        .query = {PETREL_Q_INT("ms", .dflt = "500"), PETREL_Q_INT("timeout", .dflt = "5000")}),
    PETREL_ROUTE(GET, "/plain", h_plain),
};

TestSuite(to_thread, .fini = stop_app, .timeout = 30);

Test(to_thread, a_blocked_thread_leaves_the_worker_serving)
{
    static const char *const ov[] = {"server.workers=1", "thread_pool.size=2", NULL};
    start_app(thread_routes, 2, ov);
    struct bg_get b = {0};
    bg_get_start(&b, "/block?ms=500");
    cr_assert_eq(wait_value(&blk_started, 1, 2000), 0, "the blocking call never started");
    int during = 0;
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        petrel_test_res_t *r = petrel_test_get(tc, "/plain");
        cr_assert_eq(r->status, 200, "%s", r->body);
        cr_assert_eq(json_integer_value(json_object_get(r->json, "worker")), 0);
        if (r->elapsed_ms > worst)
            worst = r->elapsed_ms;
        during += atomic_load(&blk_finished) == 0;
        petrel_test_res_free(r);
    }
    cr_expect(worst < 100, "a plain request took %.0f ms while a thread blocked", worst);
    cr_expect_eq(during, 20, "only %d of 20 answered while the thread was blocked", during);
    bg_get_join(&b);
    cr_assert_eq(b.status, 200);
    cr_expect(b.elapsed_ms >= 480 && b.elapsed_ms < 1500, "to_thread route took %.0f ms",
              b.elapsed_ms);
    cr_expect_eq(json_integer_value(json_object_get(b.json, "result")), 501, "fn's result");
    cr_expect_eq(json_integer_value(json_object_get(b.json, "worker")), 0);
    json_decref(b.json);
}

static void block_300(int i, void *arg)
{
    (void)i;
    (void)arg;
    petrel_test_res_t *r = petrel_test_get(tc, "/block?ms=300");
    cr_expect_eq(r->status, 200, "%s", r->body);
    petrel_test_res_free(r);
}

Test(to_thread, four_calls_on_four_threads_run_in_parallel)
{
    static const char *const ov[] = {"server.workers=1", "thread_pool.size=4", NULL};
    start_app(thread_routes, 2, ov);
    double t0 = support_now_ms();
    cr_assert_eq(support_parallel(4, block_300, NULL), 0);
    double dt = support_now_ms() - t0;
    cr_expect(dt >= 290 && dt < 600, "4 x 300 ms on 4 threads took %.0f ms", dt);
    cr_expect_eq(atomic_load(&blk_max), 4, "at most %d ran at once", atomic_load(&blk_max));
    petrel_threadpool_stats_t st;
    petrel_threadpool_stats(&st);
    cr_expect_eq(st.size, 4);
    cr_expect_eq(st.jobs, 4);
    cr_expect_eq(st.busy, 0);
    cr_expect_eq(st.queued, 0);
    cr_expect_eq(st.abandoned, 0);
}

Test(to_thread, a_call_past_its_timeout_answers_504_at_the_timeout)
{
    static const char *const ov[] = {"server.workers=1", "thread_pool.size=2", NULL};
    start_app(thread_routes, 2, ov);
    petrel_test_res_t *r = petrel_test_get(tc, "/block?ms=1000&timeout=100");
    cr_expect_eq(r->status, 504, "%s", r->body);
    cr_expect(r->elapsed_ms >= 90 && r->elapsed_ms < 500, "timed out after %.0f ms", r->elapsed_ms);
    petrel_test_res_free(r);
    /* The server keeps serving while the abandoned function still runs. */
    cr_expect_eq(atomic_load(&blk_finished), 0);
    r = petrel_test_get(tc, "/plain");
    cr_expect_eq(r->status, 200);
    cr_expect(r->elapsed_ms < 100, "plain took %.0f ms", r->elapsed_ms);
    petrel_test_res_free(r);
    r = petrel_test_get(tc, "/block?ms=20&timeout=2000");
    cr_expect_eq(r->status, 200, "the pool's other thread serves: %s", r->body);
    petrel_test_res_free(r);
    cr_expect_eq(atomic_load(&blk_now), 1, "the abandoned function is still running");
    /* It runs to completion behind; the pool counts it as abandoned. */
    cr_assert_eq(wait_value(&blk_finished, 2, 3000), 0);
    petrel_threadpool_stats_t st;
    double t0 = support_now_ms();
    do {
        petrel_threadpool_stats(&st);
        if (st.jobs == 2)
            break;
        support_sleep_ms(5);
    } while (support_now_ms() - t0 < 1000);
    cr_expect_eq(st.jobs, 2);
    cr_expect_eq(st.abandoned, 1);
    cr_expect_eq(st.busy, 0);
}

/* ------------------------------------------------------------------ */
/* 2. queue put waits for space; try_put does not                      */

static atomic_int q_started, q_done;

static int slow_job(petrel_job_t *job, void *arg)
{
    (void)arg;
    json_int_t ms = json_integer_value(json_object_get(petrel_job_payload(job), "ms"));
    atomic_fetch_add(&q_started, 1);
    int rc = petrel_sleep(ms);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&q_done, 1);
    petrel_job_set_result(job, json_integer(ms));
    return 0;
}

static int answer_put(petrel_req_t *req, int rc, const char *id)
{
    if (rc == PETREL_EAGAIN || rc == PETREL_ETIMEDOUT || rc == PETREL_EOVERLOAD) {
        petrel_resp_header(req, "Retry-After", "1");
        return petrel_error(req, 503, "Job queue is full");
    }
    if (rc != 0)
        return rc;
    return petrel_json(req, 202, json_pack("{s:s}", "id", id));
}

static int h_put(petrel_req_t *req)
{
    char id[PETREL_JOB_ID_LEN];
    int rc = petrel_queue_put("slow", petrel_body(req), id, petrel_param_int(req, "timeout", 2000));
    return answer_put(req, rc, id);
}

static int h_try_put(petrel_req_t *req)
{
    char id[PETREL_JOB_ID_LEN];
    int rc = petrel_queue_try_put("slow", petrel_body(req), id);
    return answer_put(req, rc, id);
}

static const petrel_field_t slow_fields[] = {
    PETREL_F_INT("ms", .dflt = "0", .ge = "0", .le = "10000"),
    PETREL_F_END,
};

static const petrel_route_t queue_routes[] = {
    PETREL_ROUTE(POST, "/put", h_put, .body = PETREL_OBJECT("SlowJob", slow_fields),
                 .query = {PETREL_Q_INT("timeout", .dflt = "2000")}),
    PETREL_ROUTE(POST, "/try_put", h_try_put, .body = PETREL_OBJECT("SlowJob", slow_fields)),
};

static void start_queue_app(void)
{
    cr_assert_eq(petrel_queue_register("slow", slow_job, NULL), 0);
    static const char *const ov[] = {"server.workers=2", "queue.maxsize=1", "queue.workers=1",
                                     NULL};
    start_app(queue_routes, 2, ov);
}

struct bg_put {
    pthread_t tid;
    int status;
    double elapsed_ms;
};

static void *bg_put_main(void *arg)
{
    struct bg_put *b = arg;
    petrel_test_res_t *r = petrel_test_post_json(tc, "/put?timeout=2000", "{\"ms\":10}");
    b->status = r->status;
    b->elapsed_ms = r->elapsed_ms;
    petrel_test_res_free(r);
    return NULL;
}

static petrel_queue_stats_t queue_stats(void)
{
    petrel_queue_stats_t st;
    petrel_queue_stats(&st);
    return st;
}

TestSuite(queue_put, .fini = stop_app, .timeout = 30);

Test(queue_put, put_waits_for_space_while_try_put_fails_at_once)
{
    start_queue_app();
    /* Job 1 runs 400 ms on the one consumer; job 2 fills the queue of 1. */
    petrel_test_res_t *r = petrel_test_post_json(tc, "/try_put", "{\"ms\":400}");
    cr_assert_eq(r->status, 202, "%s", r->body);
    petrel_test_res_free(r);
    cr_assert_eq(wait_value(&q_started, 1, 2000), 0, "job 1 never started");
    r = petrel_test_post_json(tc, "/try_put", "{\"ms\":800}");
    cr_assert_eq(r->status, 202, "%s", r->body);
    petrel_test_res_free(r);
    cr_assert_eq(queue_stats().depth, 1);

    /* A put with a 2 s timeout waits for job 1 to finish. */
    struct bg_put b = {0};
    cr_assert_eq(pthread_create(&b.tid, NULL, bg_put_main, &b), 0);
    double t0 = support_now_ms();
    while (queue_stats().put_waiting != 1 && support_now_ms() - t0 < 2000)
        support_sleep_ms(2);
    cr_assert_eq(queue_stats().put_waiting, 1, "the put is not waiting");
    /* Meanwhile try_put answers 503 at once (and does not overtake the waiting put). */
    r = petrel_test_post_json(tc, "/try_put", "{\"ms\":10}");
    cr_expect_eq(r->status, 503, "%s", r->body);
    cr_expect_not_null(petrel_test_res_header(r, "retry-after"));
    cr_expect(r->elapsed_ms < 100, "try_put took %.0f ms", r->elapsed_ms);
    petrel_test_res_free(r);
    pthread_join(b.tid, NULL);
    cr_expect_eq(b.status, 202, "the waiting put was not admitted");
    cr_expect(b.elapsed_ms >= 200 && b.elapsed_ms < 2000, "put waited %.0f ms for space",
              b.elapsed_ms);
    cr_expect_eq(atomic_load(&q_done), 1, "space came when job 1 finished");
    petrel_queue_stats_t st = queue_stats();
    cr_expect_eq(st.put_waiting, 0);
    cr_expect_eq(st.depth, 1, "job 3 queued behind the running job 2");
    cr_expect_eq(st.rejected, 1);

    /* Job 2 runs 800 ms: a put with a 100 ms timeout gives up at its timeout. */
    r = petrel_test_post_json(tc, "/put?timeout=100", "{\"ms\":10}");
    cr_expect_eq(r->status, 503, "%s", r->body);
    cr_expect(r->elapsed_ms >= 90 && r->elapsed_ms < 600, "timed-out put took %.0f ms",
              r->elapsed_ms);
    petrel_test_res_free(r);
    st = queue_stats();
    cr_expect_eq(st.rejected, 2);
    cr_expect_eq(st.put_waiting, 0, "the timed-out producer left the wait queue");

    /* Everything admitted runs; nothing is left counted. */
    cr_assert_eq(wait_value(&q_done, 3, 3000), 0, "done %d of 3", atomic_load(&q_done));
    t0 = support_now_ms();
    while ((st = queue_stats()).succeeded != 3 && support_now_ms() - t0 < 1000)
        support_sleep_ms(2);
    cr_expect_eq(st.succeeded, 3);
    cr_expect_eq(st.enqueued, 3);
    cr_expect_eq(st.depth, 0);
    cr_expect_eq(st.running, 0);
    r = petrel_test_post_json(tc, "/try_put", "{\"ms\":0}");
    cr_expect_eq(r->status, 202, "the queue has room again: %s", r->body);
    petrel_test_res_free(r);
}

/* ------------------------------------------------------------------ */
/* 3. rate limiter keyed by header                                     */

static int h_keyed(petrel_req_t *req)
{
    return petrel_json(req, 200, json_true());
}

static const petrel_route_t rate_routes[] = {
    PETREL_ROUTE(GET, "/keyed", h_keyed, .rate_limit = "keyed"),
};

/* GET /keyed with an optional header line; returns the status, *ra the Retry-After or 0. */
static int keyed_get(const char *header, int *ra)
{
    const char *h[] = {header, NULL};
    petrel_test_res_t *r =
        petrel_test_request(tc, "GET", "/keyed", header != NULL ? h : NULL, NULL, 0);
    int status = r->status;
    const char *v = petrel_test_res_header(r, "retry-after");
    if (ra != NULL)
        *ra = v != NULL ? atoi(v) : 0;
    if (status == 429)
        cr_expect(support_json_eq(r->json, "{\"detail\":\"Rate limit exceeded\"}", "429"));
    petrel_test_res_free(r);
    return status;
}

TestSuite(rate_by_header, .fini = stop_app, .timeout = 30);

Test(rate_by_header, each_key_has_its_own_bucket_and_no_header_shares_one)
{
    /* 3 tokens, refilled at 0.5/s: the refill during the test is negligible. */
    cr_assert_not_null(petrel_rate_declare("keyed", 0.5, 3, "header:X-API-Key", 100));
    static const char *const ov[] = {"server.workers=2", NULL};
    start_app(rate_routes, 1, ov);
    int ra = 0;
    for (int i = 0; i < 3; i++)
        cr_expect_eq(keyed_get("X-API-Key: alpha", NULL), 200, "alpha request %d", i + 1);
    cr_expect_eq(keyed_get("X-API-Key: alpha", &ra), 429, "alpha's bucket is empty");
    cr_expect_eq(ra, 2, "Retry-After %d for a 0.5/s bucket", ra);
    /* Header names are case-insensitive: the same key, the same empty bucket. */
    cr_expect_eq(keyed_get("x-api-key: alpha", NULL), 429);
    /* Another key is untouched by alpha's requests. */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(keyed_get("X-API-Key: beta", NULL), 200, "beta request %d", i + 1);
    cr_expect_eq(keyed_get("X-API-Key: beta", NULL), 429);
    /* Values are keys as sent: "Alpha" is not "alpha". */
    cr_expect_eq(keyed_get("X-API-Key: Alpha", NULL), 200);
    /* Without the header, requests share one bucket of their own (limits.h: "requests
     * without it share one"), independent of the keyed ones. */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(keyed_get(NULL, NULL), 200, "header-less request %d", i + 1);
    cr_expect_eq(keyed_get(NULL, &ra), 429, "header-less requests share one bucket");
    cr_expect_eq(ra, 2);
    /* Another header does not select a bucket. */
    cr_expect_eq(keyed_get("X-Other: alpha", NULL), 429);

    petrel_rate_stats_t st;
    petrel_rate_stats(petrel_rate_find("keyed"), &st);
    cr_expect_eq(st.keys, 4, "buckets: alpha, beta, Alpha and the header-less one");
    cr_expect_eq(st.allowed, 10);
    cr_expect_eq(st.limited, 5);
    cr_expect_eq(st.evictions, 0);
}

/* ------------------------------------------------------------------ */
/* 4. process pool: a cancelled caller frees its place or child        */

/* Sleeps the number of ms given as text, answers "done". */
static int sleepy_fn(const void *in, size_t in_len, void **out, size_t *out_len)
{
    char buf[32];
    size_t n = in_len < sizeof(buf) - 1 ? in_len : sizeof(buf) - 1;
    memcpy(buf, in, n);
    buf[n] = '\0';
    support_sleep_ms(atoi(buf));
    *out = strdup("done");
    *out_len = 4;
    return *out != NULL ? 0 : PETREL_ENOMEM;
}

static atomic_int pp_cancelled;

static int h_pp(petrel_req_t *req)
{
    const char *ms = petrel_req_sprintf(req, "%lld", (long long)petrel_param_int(req, "ms", 10));
    void *out = NULL;
    size_t len = 0;
    int rc = petrel_procpool_call("sleepy", ms, strlen(ms), &out, &len, 10000);
    if (rc == PETREL_ECANCELED)
        atomic_fetch_add(&pp_cancelled, 1);
    if (rc != 0)
        return rc;
    json_t *body = json_pack("{s:s%}", "out", (const char *)out, len);
    free(out);
    return petrel_json(req, 200, body);
}

static const petrel_route_t pp_routes[] = {
    PETREL_ROUTE(GET, "/pp", h_pp, .query = {PETREL_Q_INT("ms", .dflt = "10")}),
};

static petrel_procpool_stats_t pp_stats(void)
{
    petrel_procpool_stats_t st;
    petrel_procpool_stats(&st);
    return st;
}

TestSuite(procpool_cancel, .fini = stop_app, .timeout = 30);

Test(procpool_cancel, a_cancelled_caller_frees_its_child_and_the_next_job_runs_promptly)
{
    cr_assert_eq(petrel_procpool_register("sleepy", sleepy_fn), 0);
    static const char *const ov[] = {"server.workers=2", "process_pool.size=1", NULL};
    start_app(pp_routes, 1, ov);
    int pid0 = 0;
    cr_assert_eq(petrel_procpool_pids(&pid0, 1), 1);
    petrel_procpool_stats_t st = pp_stats();
    cr_assert_eq(st.alive, 1);
    cr_assert_eq(st.restarts, 0);

    /* Caller A holds the only child with a 2 s job; caller B queues behind it. */
    int fa = send_raw("GET", "/pp?ms=2000");
    double t0 = support_now_ms();
    while (pp_stats().busy != 1 && support_now_ms() - t0 < 2000)
        support_sleep_ms(2);
    cr_assert_eq(pp_stats().busy, 1, "job A never took the child");
    double a_started = support_now_ms();
    int fb = send_raw("GET", "/pp?ms=2000");
    t0 = support_now_ms();
    while (pp_stats().waiting != 1 && support_now_ms() - t0 < 2000)
        support_sleep_ms(2);
    cr_assert_eq(pp_stats().waiting, 1, "caller B is not queued");

    /* B leaves the queue: its place is freed and A's child is left alone. */
    close(fb);
    cr_assert_eq(wait_value(&pp_cancelled, 1, 2000), 0, "B was not cancelled");
    st = pp_stats();
    cr_expect_eq(st.waiting, 0);
    cr_expect_eq(st.busy, 1, "A still runs");
    cr_expect_eq(st.restarts, 0, "a queued caller has no child to kill");

    /* A leaves mid-job: its child is killed and replaced at once. */
    support_sleep_ms(100);
    close(fa);
    cr_assert_eq(wait_value(&pp_cancelled, 2, 2000), 0, "A was not cancelled");
    petrel_test_res_t *r = petrel_test_get(tc, "/pp?ms=10");
    cr_expect_eq(r->status, 200, "%s", r->body);
    cr_expect(support_json_eq(r->json, "{\"out\":\"done\"}", "pp"));
    cr_expect(r->elapsed_ms < 1000, "the next job took %.0f ms", r->elapsed_ms);
    petrel_test_res_free(r);
    cr_expect(support_now_ms() - a_started < 1900, "the next job finished before A's would have");

    int pid1 = 0;
    cr_assert_eq(petrel_procpool_pids(&pid1, 1), 1);
    cr_expect_neq(pid1, pid0, "the child was replaced");
    t0 = support_now_ms();
    while (kill(pid0, 0) == 0 && support_now_ms() - t0 < 3000)
        support_sleep_ms(10);
    cr_expect(kill(pid0, 0) != 0 && errno == ESRCH, "the old child %d still exists", pid0);
    st = pp_stats();
    cr_expect_eq(st.size, 1);
    cr_expect_eq(st.alive, 1);
    cr_expect_eq(st.busy, 0);
    cr_expect_eq(st.waiting, 0);
    cr_expect_eq(st.restarts, 1, "one replacement (A's child)");
    cr_expect_eq(st.jobs, 2, "A (cancelled) and the next job");
    cr_expect_eq(st.failed, 1);
    cr_expect_eq(st.crashes, 0, "a cancellation is not a crash");
    cr_expect_eq(st.timeouts, 0);
    cr_expect_eq(st.rejected, 0);
}

/* ------------------------------------------------------------------ */
/* 5. semaphore stress                                                 */

static atomic_int sem_now, sem_max, route_entries, manual_granted, manual_eoverload,
    manual_ecanceled, release_failed;

static int h_sem_route(petrel_req_t *req)
{
    atomic_fetch_add(&route_entries, 1);
    note_max(&sem_now, &sem_max);
    int rc = petrel_sleep(petrel_param_int(req, "ms", 1));
    atomic_fetch_sub(&sem_now, 1);
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_true());
}

/* Acquires in the handler with its own timeout; `early` releases before the end. */
static int h_sem_manual(petrel_req_t *req)
{
    petrel_sem_t *sem = petrel_sem_find("stress");
    int64_t ms = petrel_param_int(req, "ms", 1);
    int rc = petrel_sem_acquire(sem, petrel_param_int(req, "tmo", 1000));
    if (rc == PETREL_EOVERLOAD)
        atomic_fetch_add(&manual_eoverload, 1);
    if (rc == PETREL_ECANCELED)
        atomic_fetch_add(&manual_ecanceled, 1);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&manual_granted, 1);
    note_max(&sem_now, &sem_max);
    rc = petrel_sleep(ms);
    atomic_fetch_sub(&sem_now, 1);
    if (petrel_param_bool(req, "early", false)) {
        if (petrel_sem_release(sem) != 0)
            atomic_fetch_add(&release_failed, 1);
        if (petrel_sem_release(sem) != PETREL_EINVAL) /* nothing left to release */
            atomic_fetch_add(&release_failed, 1);
        if (rc == 0)
            rc = petrel_sleep(ms); /* runs on without the slot */
    }
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_true());
}

static const petrel_route_t sem_routes[] = {
    PETREL_ROUTE(GET, "/sem_route", h_sem_route, .max_concurrent = "stress",
                 .query = {PETREL_Q_INT("ms", .dflt = "1")}),
    PETREL_ROUTE(GET, "/sem_manual", h_sem_manual,
                 .query = {PETREL_Q_INT("ms", .dflt = "1"), PETREL_Q_INT("tmo", .dflt = "1000"),
                           PETREL_Q_BOOL("early", .dflt = "false")}),
};

struct stress {
    int port;
    atomic_int ok, busy, disconnects, bad;
};

static void stress_client(int i, void *arg)
{
    struct stress *s = arg;
    unsigned seed = (unsigned)i * 7919u + 17u;
    static const int tmos[] = {0, 2, 20, 5000};
    for (int k = 0; k < 10; k++) {
        char target[128];
        int ms = rand_r(&seed) % 8;
        if (rand_r(&seed) % 2 == 0)
            snprintf(target, sizeof(target), "/sem_route?ms=%d", ms);
        else
            snprintf(target, sizeof(target), "/sem_manual?ms=%d&tmo=%d&early=%s", ms,
                     tmos[rand_r(&seed) % 4], rand_r(&seed) % 3 == 0 ? "true" : "false");
        if (rand_r(&seed) % 5 == 0) {
            /* Disconnect before, while or after the request waits or holds a slot. */
            int fd = support_connect(s->port);
            if (fd < 0) {
                atomic_fetch_add(&s->bad, 1);
                continue;
            }
            char rq[256];
            int n = snprintf(rq, sizeof(rq), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
            if (write(fd, rq, (size_t)n) != n)
                atomic_fetch_add(&s->bad, 1);
            support_sleep_ms(rand_r(&seed) % 6);
            close(fd);
            atomic_fetch_add(&s->disconnects, 1);
            continue;
        }
        petrel_test_res_t *r = support_http(s->port, "GET", target, NULL, NULL, 0, 20000);
        if (r->status == 200)
            atomic_fetch_add(&s->ok, 1);
        else if (r->status == 503)
            atomic_fetch_add(&s->busy, 1);
        else {
            atomic_fetch_add(&s->bad, 1);
            fprintf(stderr, "stress: %s answered %d: %s\n", target, r->status, r->body);
        }
        petrel_test_res_free(r);
    }
}

/* Waits up to 5 s for the semaphore to be idle (no slot held, nobody queued, no handler
 * inside); returns the last snapshot. */
static petrel_sem_stats_t sem_settle(petrel_sem_t *sem)
{
    petrel_sem_stats_t st;
    double t0 = support_now_ms();
    do {
        petrel_sem_stats(sem, &st);
        if (st.in_use == 0 && st.waiting == 0 && atomic_load(&sem_now) == 0)
            break;
        support_sleep_ms(10);
    } while (support_now_ms() - t0 < 5000);
    return st;
}

TestSuite(sem_stress, .fini = stop_app, .timeout = 60);

Test(sem_stress, three_workers_with_disconnects_leave_no_slot_held)
{
    petrel_sem_t *sem = petrel_sem_declare("stress", 2, 2000);
    cr_assert_not_null(sem);
    static const char *const ov[] = {"server.workers=3", NULL};
    start_app(sem_routes, 2, ov);
    struct stress s = {.port = petrel_test_port(tc)};
    cr_assert_eq(support_parallel(30, stress_client, &s), 0);
    int total = atomic_load(&s.ok) + atomic_load(&s.busy) + atomic_load(&s.disconnects);
    cr_expect_eq(total, 300, "ok %d, 503 %d, disconnects %d, bad %d", atomic_load(&s.ok),
                 atomic_load(&s.busy), atomic_load(&s.disconnects), atomic_load(&s.bad));
    cr_expect_eq(atomic_load(&s.bad), 0);
    cr_expect_gt(atomic_load(&s.disconnects), 30);

    /* Handlers of disconnected clients are cancelled asynchronously: let them finish. */
    petrel_sem_stats_t st = sem_settle(sem);
    cr_expect_eq(st.in_use, 0, "a slot was lost");
    cr_expect_eq(st.waiting, 0, "a waiter was left queued");
    cr_expect_eq(st.limit, 2);
    cr_expect(atomic_load(&sem_max) >= 1 && atomic_load(&sem_max) <= 2,
              "%d handlers held the semaphore of 2 at once", atomic_load(&sem_max));
    cr_expect_eq(atomic_load(&release_failed), 0);
    /* Every grant is one a handler saw, or one that raced with a cancellation and was
     * passed straight on (counted in `cancelled` too). */
    uint64_t seen = (uint64_t)atomic_load(&route_entries) + (uint64_t)atomic_load(&manual_granted);
    cr_expect(st.acquired >= seen && st.acquired <= seen + st.cancelled,
              "acquired %llu, handlers saw %llu, cancelled %llu", (unsigned long long)st.acquired,
              (unsigned long long)seen, (unsigned long long)st.cancelled);
    cr_expect_geq(st.rejected, (uint64_t)atomic_load(&s.busy), "every 503 is a rejected acquire");
    cr_expect_geq(st.cancelled, (uint64_t)atomic_load(&manual_ecanceled));
    fprintf(stderr,
            "sem stress: ok %d, 503 %d, disconnects %d; acquired %llu, rejected %llu, "
            "cancelled %llu, max %d\n",
            atomic_load(&s.ok), atomic_load(&s.busy), atomic_load(&s.disconnects),
            (unsigned long long)st.acquired, (unsigned long long)st.rejected,
            (unsigned long long)st.cancelled, atomic_load(&sem_max));

    /* Both slots are still there, and only two. */
    struct bg_get a = {0}, b = {0};
    bg_get_start(&a, "/sem_route?ms=400");
    bg_get_start(&b, "/sem_route?ms=400");
    double t0 = support_now_ms();
    do {
        petrel_sem_stats(sem, &st);
        if (st.in_use == 2)
            break;
        support_sleep_ms(2);
    } while (support_now_ms() - t0 < 2000);
    cr_expect_eq(st.in_use, 2);
    petrel_test_res_t *r = petrel_test_get(tc, "/sem_manual?ms=1&tmo=0");
    cr_expect_eq(r->status, 503, "a third holder got in: %s", r->body);
    petrel_test_res_free(r);
    bg_get_join(&a);
    bg_get_join(&b);
    cr_expect_eq(a.status, 200);
    cr_expect_eq(b.status, 200);
    json_decref(a.json);
    json_decref(b.json);
    /* A slot goes back when the request's fiber ends, just after its response. */
    st = sem_settle(sem);
    cr_expect_eq(st.in_use, 0);
    cr_expect_eq(st.waiting, 0);
}
