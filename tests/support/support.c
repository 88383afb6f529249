/*
 * support.c - helpers shared by the integration tests (see support.h).
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

extern char **environ;

double support_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void support_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int support_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    int port = -1;
    if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int support_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int support_wait_port(int port, int timeout_ms)
{
    double deadline = support_now_ms() + timeout_ms;
    do {
        int fd = support_connect(port);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        support_sleep_ms(20);
    } while (support_now_ms() < deadline);
    return -1;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

petrel_test_res_t *support_http(int port, const char *method, const char *target,
                                const char *const *headers, const char *body, size_t body_len,
                                int timeout_ms)
{
    double start = support_now_ms();
    size_t cap = 512 + body_len + strlen(target);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        cap += strlen(headers[i]) + 2;
    char *req = malloc(cap);
    if (req == NULL)
        abort();
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", method, target, port);
    size_t len = (size_t)n;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        len += (size_t)snprintf(req + len, cap - len, "%s\r\n", headers[i]);
    if (body != NULL)
        len += (size_t)snprintf(req + len, cap - len, "Content-Length: %zu\r\n", body_len);
    len += (size_t)snprintf(req + len, cap - len, "\r\n");
    if (body != NULL) {
        memcpy(req + len, body, body_len);
        len += body_len;
    }
    petrel_test_res_t *res = NULL;
    int fd = support_connect(port);
    if (fd >= 0 && send_all(fd, req, len) == 0)
        res = petrel_test_read_response(fd, timeout_ms);
    if (fd >= 0)
        close(fd);
    free(req);
    if (res == NULL) {
        res = calloc(1, sizeof(*res));
        if (res == NULL)
            abort();
        res->body = strdup("");
    }
    res->elapsed_ms = support_now_ms() - start;
    return res;
}

petrel_test_res_t *support_get(int port, const char *target, int timeout_ms)
{
    return support_http(port, "GET", target, NULL, NULL, 0, timeout_ms);
}

int support_wait_status(int port, const char *target, int status, int timeout_ms)
{
    double deadline = support_now_ms() + timeout_ms;
    do {
        petrel_test_res_t *res = support_get(port, target, 2000);
        int got = res->status;
        petrel_test_res_free(res);
        if (got == status)
            return 0;
        support_sleep_ms(25);
    } while (support_now_ms() < deadline);
    return -1;
}

int support_spawn(support_proc_t *p, const char *const *argv, const char *const *env)
{
    memset(p, 0, sizeof(*p));
    if (support_mkdtemp(p->dir, sizeof(p->dir)) != 0)
        return -1;
    (void)snprintf(p->out_path, sizeof(p->out_path), "%s/out.txt", p->dir);
    (void)snprintf(p->err_path, sizeof(p->err_path), "%s/err.txt", p->dir);

    size_t nenv = 0, nextra = 0;
    while (environ[nenv] != NULL)
        nenv++;
    while (env != NULL && env[nextra] != NULL)
        nextra++;
    char **envp = calloc(nenv + nextra + 1, sizeof(char *));
    if (envp == NULL)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++) {
        /* The child sees only the PETREL_* variables the test sets, whatever the runner has. */
        if (strncmp(environ[i], "PETREL_", 7) != 0)
            envp[k++] = environ[i];
    }
    for (size_t i = 0; i < nextra; i++)
        envp[k++] = (char *)(uintptr_t)env[i];

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    /* The child starts with default signal dispositions and an empty mask, whatever the test's. */
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    int rc = posix_spawn(&p->pid, argv[0], &fa, &attr, (char *const *)(uintptr_t)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(envp);
    if (rc != 0) {
        p->pid = 0;
        return -1;
    }
    return 0;
}

int support_wait_exit(support_proc_t *p, int timeout_ms)
{
    if (p->exited)
        return p->exit_status;
    if (p->pid <= 0)
        return -1;
    double deadline = support_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->exited = 1;
            p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return p->exit_status;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        if (support_now_ms() >= deadline)
            return -1;
        support_sleep_ms(10);
    }
}

void support_signal(support_proc_t *p, int sig)
{
    if (p->pid > 0 && !p->exited)
        kill(p->pid, sig);
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

void support_rmtree(const char *dir)
{
    if (dir != NULL && dir[0] != '\0')
        (void)nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void support_proc_cleanup(support_proc_t *p)
{
    if (p->pid > 0 && !p->exited) {
        kill(p->pid, SIGKILL);
        (void)support_wait_exit(p, 5000);
    }
    support_rmtree(p->dir);
    p->dir[0] = '\0';
}

char *support_proc_stdout(const support_proc_t *p)
{
    char *s = support_read_file(p->out_path);
    return s != NULL ? s : strdup("");
}

char *support_proc_stderr(const support_proc_t *p)
{
    char *s = support_read_file(p->err_path);
    return s != NULL ? s : strdup("");
}

struct par_ctx {
    void (*fn)(int i, void *arg);
    void *arg;
    pthread_barrier_t barrier;
};

struct par_thread {
    struct par_ctx *ctx;
    int i;
};

static void *par_main(void *p)
{
    struct par_thread *t = p;
    pthread_barrier_wait(&t->ctx->barrier);
    t->ctx->fn(t->i, t->ctx->arg);
    return NULL;
}

int support_parallel(int n, void (*fn)(int i, void *arg), void *arg)
{
    struct par_ctx ctx = {.fn = fn, .arg = arg};
    pthread_t *tids = calloc((size_t)n, sizeof(*tids));
    struct par_thread *ts = calloc((size_t)n, sizeof(*ts));
    if (tids == NULL || ts == NULL)
        abort();
    pthread_barrier_init(&ctx.barrier, NULL, (unsigned)n);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)256 * 1024);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        ts[i].ctx = &ctx;
        ts[i].i = i;
        if (pthread_create(&tids[i], &attr, par_main, &ts[i]) != 0) {
            /* A barrier cannot be shrunk: fail loudly rather than deadlock. */
            (void)fprintf(stderr, "support_parallel: pthread_create failed at %d\n", i);
            abort();
        }
    }
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&ctx.barrier);
    free(tids);
    free(ts);
    return rc;
}

int support_mkdtemp(char *buf, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    if ((size_t)snprintf(buf, len, "%s/petrel-test-XXXXXX", tmp) >= len)
        return -1;
    return mkdtemp(buf) != NULL ? 0 : -1;
}

int support_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    size_t len = strlen(text);
    int rc = fwrite(text, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* Reads a stream to its end into a NUL-terminated malloc'd string. */
static char *read_stream(FILE *f)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    if (s == NULL)
        abort();
    size_t n;
    while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
            if (s == NULL)
                abort();
        }
    }
    s[len] = '\0';
    return s;
}

char *support_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *s = read_stream(f);
    (void)fclose(f);
    return s;
}

char *support_run(const char *cmd, int *status)
{
    *status = -1;
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return strdup("");
    char *s = read_stream(f);
    int st = pclose(f);
    if (st != -1 && WIFEXITED(st))
        *status = WEXITSTATUS(st);
    return s;
}

int support_have_command(const char *name)
{
    char cmd[256];
    (void)snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    int st;
    free(support_run(cmd, &st));
    return st == 0;
}

int support_json_eq(const json_t *got, const char *expected, const char *what)
{
    json_error_t jerr;
    json_t *want = json_loads(expected, JSON_DECODE_ANY, &jerr);
    if (want == NULL) {
        (void)fprintf(stderr, "%s: bad expected JSON literal (%s): %s\n", what, jerr.text,
                      expected);
        return 0;
    }
    int eq = got != NULL && json_equal(got, want);
    if (!eq) {
        char *g = got != NULL ? json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        (void)fprintf(stderr, "%s: JSON mismatch\n  got:  %s\n  want: %s\n", what,
                      g != NULL ? g : "(null)", expected);
        free(g);
    }
    json_decref(want);
    return eq;
}

/* ---- the reference app as a child process ---- */

int support_start_app(support_proc_t *p, int workers, const char *const *extra_env)
{
    static char port_env[64], workers_env[64], db_env[1024];
    const char *db = getenv("PETREL_TEST_DATABASE_URL");
    if (db == NULL || *db == '\0')
        db = getenv("PETREL_DATABASE_URL");
    cr_assert(db != NULL && *db != '\0',
              "PETREL_TEST_DATABASE_URL is not set (scripts/dev.sh test starts a PostgreSQL)");
    int port = support_free_port();
    snprintf(port_env, sizeof(port_env), "PETREL_SERVER_PORT=%d", port);
    snprintf(workers_env, sizeof(workers_env), "PETREL_SERVER_WORKERS=%d", workers);
    snprintf(db_env, sizeof(db_env), "PETREL_DATABASE_URL=%s", db);
    const char *env[32] = {port_env, workers_env, db_env};
    size_t n = 3;
    for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL && n < 31; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;

    /* /readyz stays 503 while migrations are pending. */
    support_proc_t m;
    const char *margv[] = {SUPPORT_APP_BINARY, "migrate",           "up",
                           "--config",         SUPPORT_TEST_CONFIG, NULL};
    cr_assert_eq(support_spawn(&m, margv, env), 0, "cannot start %s", SUPPORT_APP_BINARY);
    int mst = support_wait_exit(&m, 30000);
    char *merr = support_proc_stderr(&m);
    support_proc_cleanup(&m);
    cr_assert_eq(mst, 0, "petrel-app migrate up exited %d: %s", mst, merr);
    free(merr);

    const char *argv[] = {SUPPORT_APP_BINARY, "serve", "--config", SUPPORT_TEST_CONFIG, NULL};
    cr_assert_eq(support_spawn(p, argv, env), 0, "cannot start %s", SUPPORT_APP_BINARY);
    if (support_wait_status(port, "/readyz", 200, 15000) != 0) {
        char *err = support_proc_stderr(p);
        char *out = support_proc_stdout(p);
        int st = support_wait_exit(p, 0);
        support_proc_cleanup(p);
        cr_assert_fail("petrel-app did not become ready on port %d (exit %d)\nstderr: %s\n"
                       "stdout: %.2000s",
                       port, st, err, out);
    }
    return port;
}

void support_stop_app(support_proc_t *p)
{
    support_signal(p, SIGTERM);
    int st = support_wait_exit(p, 10000);
    cr_expect_eq(st, 0, "petrel-app exited %d after SIGTERM: %s", st, support_proc_stderr(p));
    support_proc_cleanup(p);
}
