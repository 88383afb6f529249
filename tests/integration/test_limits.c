/*
 * test_limits.c - process-wide semaphores and rate limits through the real
 * petrel-app binary (2 workers): a semaphore of 3 never admits a 4th under
 * 200 concurrent requests, acquire timeout answers 503, a disconnected client
 * gives its slot back, and the token bucket admits burst + rate x t and
 * answers 429 with a Retry-After that is honoured.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/common.h>
#include <petrel/testclient.h>

#include "support.h"

struct burst {
    int port;
    _Atomic int ok, other, max_seen;
};

static void limited_one(int i, void *arg)
{
    struct burst *b = arg;
    (void)i;
    petrel_test_res_t *r = support_get(b->port, "/api/limited?ms=20", 30000);
    if (r->status == 200) {
        atomic_fetch_add(&b->ok, 1);
        int seen = (int)json_integer_value(json_object_get(r->json, "max_concurrent_seen"));
        int cur = atomic_load(&b->max_seen);
        while (seen > cur && !atomic_compare_exchange_weak(&b->max_seen, &cur, seen))
            ;
    } else {
        atomic_fetch_add(&b->other, 1);
    }
    petrel_test_res_free(r);
}

Test(limits, semaphore_of_3_never_admits_a_4th_across_workers, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_SEMAPHORES_LIMITED_ACQUIRE_TIMEOUT_MS=30000",
                         "PETREL_SERVER_REQUEST_TIMEOUT_MS=30000", NULL};
    struct burst b = {.port = support_start_app(&p, 2, env)};
    cr_assert_eq(support_parallel(200, limited_one, &b), 0);
    cr_expect_eq(atomic_load(&b.ok), 200, "ok %d, other %d", atomic_load(&b.ok),
                 atomic_load(&b.other));
    cr_expect_eq(atomic_load(&b.max_seen), 3, "the handler saw %d at once",
                 atomic_load(&b.max_seen));
    support_stop_app(&p);
}

static void slow_limited(int i, void *arg)
{
    (void)i;
    petrel_test_res_free(support_get(*(int *)arg, "/api/limited?ms=1500", 10000));
}

Test(limits, acquire_timeout_answers_503_with_retry_after, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_SEMAPHORES_LIMITED_ACQUIRE_TIMEOUT_MS=200", NULL};
    int port = support_start_app(&p, 2, env);
    /* Hold the 3 slots from background threads. */
    pid_t kid = fork();
    if (kid == 0) {
        support_parallel(3, slow_limited, &port);
        _exit(0);
    }
    support_sleep_ms(300);
    double t0 = support_now_ms();
    petrel_test_res_t *r = support_get(port, "/api/limited?ms=10", 5000);
    double dt = support_now_ms() - t0;
    cr_expect_eq(r->status, 503);
    cr_expect(support_json_eq(r->json, "{\"detail\":\"Too many concurrent requests\"}", "503"));
    cr_expect_not_null(petrel_test_res_header(r, "retry-after"));
    cr_expect(dt >= 150 && dt < 1200, "waited %.0f ms for a 200 ms acquire timeout", dt);
    petrel_test_res_free(r);
    int st;
    waitpid(kid, &st, 0);
    /* Slots are back once the holders finish. */
    r = support_get(port, "/api/limited?ms=10", 5000);
    cr_expect_eq(r->status, 200);
    petrel_test_res_free(r);
    support_stop_app(&p);
}

Test(limits, a_disconnected_client_releases_its_slot, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_SEMAPHORES_LIMITED_ACQUIRE_TIMEOUT_MS=300", NULL};
    int port = support_start_app(&p, 2, env);
    int fds[3];
    static const char req[] = "GET /api/limited?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        fds[i] = support_connect(port);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(write(fds[i], req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    }
    support_sleep_ms(300);
    petrel_test_res_t *r = support_get(port, "/api/limited?ms=10", 5000);
    cr_expect_eq(r->status, 503, "the 3 slots should be held");
    petrel_test_res_free(r);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    support_sleep_ms(200);
    r = support_get(port, "/api/limited?ms=10", 5000);
    cr_expect_eq(r->status, 200, "cancelled handlers must give their slots back");
    petrel_test_res_free(r);
    support_stop_app(&p);
}

Test(limits, token_bucket_admits_burst_plus_rate_and_honours_retry_after, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_RATE_LIMITS_THROTTLED_RATE=5",
                         "PETREL_RATE_LIMITS_THROTTLED_BURST=10", NULL};
    int port = support_start_app(&p, 2, env);
    /* Hammer for 1 s: burst (10) + rate x 1 s (5) get through. */
    double t0 = support_now_ms();
    int ok = 0, limited = 0;
    petrel_test_res_t *last429 = NULL;
    while (support_now_ms() - t0 < 1000) {
        petrel_test_res_t *r = support_get(port, "/api/throttled", 5000);
        if (r->status == 200) {
            ok++;
            petrel_test_res_free(r);
        } else {
            cr_assert_eq(r->status, 429);
            limited++;
            petrel_test_res_free(last429);
            last429 = r;
        }
        support_sleep_ms(5);
    }
    cr_expect(ok >= 14 && ok <= 16, "admitted %d in 1 s (burst 10 + 5/s)", ok);
    cr_assert_not_null(last429);
    cr_expect(support_json_eq(last429->json, "{\"detail\":\"Rate limit exceeded\"}", "429"));
    const char *ra = petrel_test_res_header(last429, "retry-after");
    cr_assert_not_null(ra);
    int secs = (int)strtol(ra, NULL, 10);
    cr_expect(secs >= 1 && secs <= 1, "Retry-After %s for a 5/s bucket", ra);
    petrel_test_res_free(last429);
    /* Honouring it finds a token. */
    support_sleep_ms(secs * 1000);
    petrel_test_res_t *r = support_get(port, "/api/throttled", 5000);
    cr_expect_eq(r->status, 200);
    petrel_test_res_free(r);
    support_stop_app(&p);
}
