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

/* Starts petrel-app on a free port with env overrides; waits for /readyz. */
static int start_app(support_proc_t *p, const char *const *extra_env)
{
    static char port_env[64];
    int port = support_free_port();
    snprintf(port_env, sizeof(port_env), "PETREL_SERVER_PORT=%d", port);
    const char *env[16] = {port_env, "PETREL_SERVER_WORKERS=2"};
    size_t n = 2;
    /* The app's database pool needs a URL; pass the one the test runner has. */
    static char db_env[512];
    const char *db = getenv("PETREL_DATABASE_URL");
    if (db != NULL) {
        snprintf(db_env, sizeof(db_env), "PETREL_DATABASE_URL=%s", db);
        env[n++] = db_env;
    }
    for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL && n < 15; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;
    const char *argv[] = {SUPPORT_APP_BINARY, "serve", "--config", SUPPORT_TEST_CONFIG, NULL};
    cr_assert_eq(support_spawn(p, argv, env), 0);
    if (support_wait_status(port, "/readyz", 200, 15000) != 0) {
        char *err = support_proc_stderr(p);
        support_proc_cleanup(p);
        cr_assert_fail("petrel-app not ready: %s", err);
    }
    return port;
}

static void stop_app(support_proc_t *p)
{
    support_signal(p, SIGTERM);
    cr_expect_eq(support_wait_exit(p, 10000), 0);
    support_proc_cleanup(p);
}

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
    int port = start_app(&p, NULL);
    petrel_test_res_t *r = score(port, 1000);
    cr_expect_eq(r->status, 200, "%s", r->body);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "digest")),
                     "fc8a6b86a13f71cd9a67f558ab6fd82a3dd89186163a017ed8051acf6d3f8f99");
    petrel_test_res_free(r);
    stop_app(&p);
}

Test(procpool, job_timeout_kills_only_that_job_and_the_child_is_replaced, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_PROCESS_POOL_SIZE=1", "PETREL_PROCESS_POOL_JOB_TIMEOUT_MS=150",
                         NULL};
    int port = start_app(&p, env);
    petrel_test_res_t *r = score(port, 1000000);
    cr_expect_eq(r->status, 504, "%s", r->body);
    petrel_test_res_free(r);
    r = score(port, 1000);
    cr_expect_eq(r->status, 200, "the replacement child must serve: %s", r->body);
    petrel_test_res_free(r);
    stop_app(&p);
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
    int port = start_app(&p, env);
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
    stop_app(&p);
}
