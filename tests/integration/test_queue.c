/*
 * test_queue.c - the bounded work queue through the real petrel-app binary:
 * 503 + Retry-After at once when full, retries with exponential backoff
 * within tolerance, dead letter after max_attempts, and SIGTERM letting a
 * running job finish.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/common.h>
#include <petrel/testclient.h>

#include "support.h"

static const char *post_job(int port, const char *body, int *status)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    petrel_test_res_t *r = support_http(port, "POST", "/api/jobs", h, body, strlen(body), 5000);
    *status = r->status;
    static char id[64];
    id[0] = '\0';
    const char *s = json_string_value(json_object_get(r->json, "id"));
    if (s != NULL)
        snprintf(id, sizeof(id), "%s", s);
    if (r->status == 503)
        cr_expect_not_null(petrel_test_res_header(r, "retry-after"));
    petrel_test_res_free(r);
    return id;
}

/* Polls the job until its status is `want`; returns elapsed ms or -1. */
static double wait_job(int port, const char *id, const char *want, int timeout_ms, json_t **out)
{
    double t0 = support_now_ms();
    char target[128];
    snprintf(target, sizeof(target), "/api/jobs/%s", id);
    while (support_now_ms() - t0 < timeout_ms) {
        petrel_test_res_t *r = support_get(port, target, 5000);
        const char *st = json_string_value(json_object_get(r->json, "status"));
        if (st != NULL && strcmp(st, want) == 0) {
            if (out != NULL)
                *out = json_incref(r->json);
            petrel_test_res_free(r);
            return support_now_ms() - t0;
        }
        petrel_test_res_free(r);
        support_sleep_ms(10);
    }
    return -1;
}

Test(queue, full_queue_answers_503_at_once, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_QUEUE_MAXSIZE=2", "PETREL_QUEUE_WORKERS=1", NULL};
    int port = support_start_app(&p, 2, env);
    int st;
    post_job(port, "{\"sleep_ms\":1500}", &st); /* running */
    cr_expect_eq(st, 202);
    support_sleep_ms(100);
    post_job(port, "{\"sleep_ms\":10}", &st);
    cr_expect_eq(st, 202);
    post_job(port, "{\"sleep_ms\":10}", &st);
    cr_expect_eq(st, 202);
    double t0 = support_now_ms();
    post_job(port, "{\"sleep_ms\":10}", &st);
    cr_expect_eq(st, 503, "queue of 2 is full");
    cr_expect(support_now_ms() - t0 < 200, "try_put must not wait");
    petrel_test_res_t *r =
        support_get(port, "/api/jobs/00000000-0000-4000-8000-000000000000", 5000);
    cr_expect_eq(r->status, 404);
    petrel_test_res_free(r);
    support_stop_app(&p);
}

Test(queue, retries_back_off_exponentially_then_succeed, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_QUEUE_RETRY_BASE_MS=200", "PETREL_QUEUE_RETRY_MAX_ATTEMPTS=4",
                         NULL};
    int port = support_start_app(&p, 2, env);
    int st;
    const char *id = post_job(port, "{\"fail_times\":2,\"data\":\"x\"}", &st);
    cr_assert_eq(st, 202);
    json_t *j = NULL;
    /* Delays 200 and 400 ms, each x [0.8, 1.2): 480..720 ms in total. */
    double ms = wait_job(port, id, "succeeded", 5000, &j);
    cr_assert(ms >= 0, "job never succeeded");
    cr_expect(ms >= 450 && ms < 1100, "succeeded after %.0f ms", ms);
    cr_expect_eq(json_integer_value(json_object_get(j, "attempts")), 3);
    cr_expect(
        support_json_eq(json_object_get(json_object_get(j, "result"), "echo"), "\"x\"", "result"));
    json_decref(j);
    support_stop_app(&p);
}

Test(queue, dead_letter_after_max_attempts, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_QUEUE_RETRY_BASE_MS=20", "PETREL_QUEUE_RETRY_MAX_ATTEMPTS=3",
                         NULL};
    int port = support_start_app(&p, 2, env);
    int st;
    const char *id = post_job(port, "{\"fail_times\":100}", &st);
    cr_assert_eq(st, 202);
    json_t *j = NULL;
    cr_assert(wait_job(port, id, "failed", 5000, &j) >= 0, "job never dead-lettered");
    cr_expect_eq(json_integer_value(json_object_get(j, "attempts")), 3);
    cr_expect_str_eq(json_string_value(json_object_get(j, "error")),
                     "simulated failure on attempt 3");
    json_decref(j);
    support_stop_app(&p);
}

Test(queue, sigterm_lets_running_jobs_finish, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_QUEUE_WORKERS=1", NULL};
    int port = support_start_app(&p, 2, env);
    int st;
    post_job(port, "{\"sleep_ms\":800}", &st);
    cr_assert_eq(st, 202);
    post_job(port, "{\"sleep_ms\":800}", &st); /* queued behind it: abandoned */
    support_sleep_ms(100);
    double t0 = support_now_ms();
    support_signal(&p, SIGTERM);
    cr_expect_eq(support_wait_exit(&p, 10000), 0);
    double dt = support_now_ms() - t0;
    cr_expect(dt >= 500, "exited after %.0f ms, before the running job finished", dt);
    char *out = support_proc_stdout(&p);
    char *err = support_proc_stderr(&p);
    cr_expect(strstr(out, "abandoned_queued_jobs\":1") != NULL ||
                  strstr(err, "abandoned_queued_jobs\":1") != NULL,
              "no abandoned-jobs log line: %s %s", out, err);
    free(out);
    free(err);
    support_proc_cleanup(&p);
}
