/*
 * test_procpool.c - the process pool through the real petrel-app binary:
 * POST /api/score runs in a child; a job past its timeout and a child
 * SIGKILLed mid-job each fail only that job, the child is replaced and the
 * next job succeeds, and /json keeps answering meanwhile.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
    /* CPU workers run niced (process_pool.nice, default 10) so the loops win the CPU. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ps -o ni= -p $(pgrep -P $(pgrep -P %d | head -1) | head -1)",
             (int)p.pid);
    int st = 0;
    char *ni = support_run(cmd, &st);
    cr_expect_geq(strtol(ni, NULL, 10), 10, "pool child niceness: %s", ni);
    free(ni);
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

/* The pid of the pool's one child: the zygote is the app's child, the pool child the
 * zygote's. */
static int pool_child(pid_t app)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "pgrep -P $(pgrep -P %d | head -1)", (int)app);
    int st = 0;
    char *pids = support_run(cmd, &st);
    int child = (int)strtol(pids, NULL, 10);
    free(pids);
    cr_assert_gt(child, 0, "no pool child found");
    return child;
}

Test(procpool, a_child_killed_mid_job_fails_only_that_job, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_PROCESS_POOL_SIZE=1", "PETREL_PROCESS_POOL_JOB_TIMEOUT_MS=20000",
                         NULL};
    int port = support_start_app(&p, 2, env);
    int child = pool_child(p.pid);
    int st = 0;
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

/* One request on an open keep-alive connection; returns the status (0 on error). */
static int raw_exchange(int fd, const char *method, const char *target, const char *body)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, target, strlen(body), body);
    if (write(fd, req, (size_t)n) != n)
        return 0;
    char buf[8192];
    size_t len = 0;
    for (;;) {
        ssize_t k = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (k <= 0)
            return 0;
        len += (size_t)k;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (end != NULL && cl != NULL && cl < end &&
            len >= (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10))
            return (int)strtol(buf + 9, NULL, 10);
    }
}

Test(procpool, a_replacement_that_could_not_start_is_started_by_the_next_job, .timeout = 60)
{
    support_proc_t p;
    const char *env[] = {"PETREL_PROCESS_POOL_SIZE=1", "PETREL_PROCESS_POOL_JOB_TIMEOUT_MS=20000",
                         NULL};
    int port = support_start_app(&p, 1, env);
    int child = pool_child(p.pid);
    int fd = support_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_exchange(fd, "GET", "/json", ""), 200);
    /* The server may open no new file descriptor now, so the replacement of the child
     * killed below cannot be received from the zygote. */
    struct rlimit lim, old;
    cr_assert_eq(prlimit(p.pid, RLIMIT_NOFILE, NULL, &old), 0);
    lim.rlim_cur = 3;
    lim.rlim_max = old.rlim_max;
    cr_assert_eq(prlimit(p.pid, RLIMIT_NOFILE, &lim, NULL), 0);
    kill(child, SIGKILL);
    support_sleep_ms(100);
    const char *job = "{\"data\":\"abc\",\"rounds\":1000}";
    int s1 = raw_exchange(fd, "POST", "/api/score", job);
    cr_assert_eq(prlimit(p.pid, RLIMIT_NOFILE, &old, NULL), 0);
    cr_expect_eq(s1, 500, "no child could be started: the job fails at once (got %d)", s1);
    /* Descriptors are back: the childless slot gets a child for the next job. */
    int s2 = raw_exchange(fd, "POST", "/api/score", job);
    cr_expect_eq(s2, 200, "the pool must not stay without a child (got %d)", s2);
    close(fd);
    support_stop_app(&p);
}
