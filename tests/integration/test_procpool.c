/*
 * test_procpool.c - the process pool through the real petrel-app binary:
 * POST /api/score runs in a child; a job past its timeout and a child
 * SIGKILLed mid-job each fail only that job, the child is replaced and the
 * next job succeeds, and /json keeps answering meanwhile.
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

static petrel_test_res_t *score(int port, int rounds)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    char body[128];
    snprintf(body, sizeof(body), "{\"data\":\"abc\",\"rounds\":%d}", rounds);
    return support_http(port, "POST", "/api/score", h, body, strlen(body), 15000);
}

Test(procpool, score_runs_in_a_child, .timeout = 60)
{
    support_proc_t p;
    int port = support_start_app(&p, 2, NULL);
    petrel_test_res_t *r = score(port, 1000);
    cr_expect_eq(r->status, 200, "%s", r->body);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "digest")),
                     "fc8a6b86a13f71cd9a67f558ab6fd82a3dd89186163a017ed8051acf6d3f8f99");
    petrel_test_res_free(r);
    support_stop_app(&p);
}

Test(procpool, job_timeout_kills_only_that_job_and_the_child_is_replaced, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_PROCESS_POOL_SIZE=1", "PETREL_PROCESS_POOL_JOB_TIMEOUT_MS=150",
                         NULL};
    int port = support_start_app(&p, 2, env);
    petrel_test_res_t *r = score(port, 1000000);
    cr_expect_eq(r->status, 504, "%s", r->body);
    petrel_test_res_free(r);
    r = score(port, 1000);
    cr_expect_eq(r->status, 200, "the replacement child must serve: %s", r->body);
    petrel_test_res_free(r);
    support_stop_app(&p);
}

struct bg {
    int port;
    int status;
};

static void bg_score(int i, void *arg)
{
    (void)i;
    struct bg *b = arg;
    petrel_test_res_t *r = score(b->port, 1000000);
    b->status = r->status;
    petrel_test_res_free(r);
}

Test(procpool, a_child_killed_mid_job_fails_only_that_job, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_PROCESS_POOL_SIZE=1", "PETREL_PROCESS_POOL_JOB_TIMEOUT_MS=20000",
                         NULL};
    int port = support_start_app(&p, 2, env);
    /* The zygote is the app's child; the pool child is the zygote's. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "pgrep -P $(pgrep -P %d | head -1)", (int)p.pid);
    int st = 0;
    char *pids = support_run(cmd, &st);
    int child = (int)strtol(pids, NULL, 10);
    free(pids);
    cr_assert_gt(child, 0, "no pool child found");
    struct bg b = {.port = port};
    pid_t kid = fork();
    if (kid == 0) {
        support_sleep_ms(150);
        kill(child, SIGKILL);
        _exit(0);
    }
    bg_score(0, &b);
    waitpid(kid, &st, 0);
    cr_expect_eq(b.status, 500, "the killed job fails");
    petrel_test_res_t *r = support_get(port, "/json", 5000);
    cr_expect_eq(r->status, 200, "the server keeps serving");
    petrel_test_res_free(r);
    r = score(port, 1000);
    cr_expect_eq(r->status, 200, "the next job succeeds on a replacement: %s", r->body);
    petrel_test_res_free(r);
    support_stop_app(&p);
}
