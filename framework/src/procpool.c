/*
 * procpool.c - the process pool for CPU-bound jobs: a zygote process forked
 * at server start (before any thread, connection or TLS state exists) forks
 * the pool's children, at start and whenever one must be replaced; each child
 * loops reading length-prefixed requests from its socketpair, runs the
 * registered function by name and writes the result back.
 *
 * A caller's fiber owns one child at a time: it writes the request and awaits
 * the answer with petrel_wait_fd on the child's socket, on its own loop.
 * Callers that find every child busy wait in FIFO order (petrel__waitq) up to
 * process_pool.backlog of them. A job past its timeout, or whose caller was
 * cancelled, gets its child SIGKILLed and replaced; a child that dies mid-job
 * (EOF on its socket) is replaced and the job fails with PETREL_EIO. See
 * docs/internals/procpool.md for why replacements come from a zygote.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "limits_int.h"
#include "petrel/fiber.h"
#include "petrel/limits.h"
#include "petrel/log.h"

#define PP_MAX_FNS 64

struct pp_fn {
    char *name;
    petrel_proc_fn fn;
};

struct pp_child {
    int pid;
    int fd;    /* parent's end of the socketpair, non-blocking; -1 when dead */
    bool busy; /* owned by a caller */
};

static struct pp_fn pp_fns[PP_MAX_FNS];
static size_t pp_nfns;

static pthread_mutex_t pp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pp_zygote_mu = PTHREAD_MUTEX_INITIALIZER; /* one fork request at a time */
static bool pp_started;
static int pp_zfd = -1; /* control socket to the zygote */
static int pp_zpid = -1;
static struct pp_child *pp_children;
static int64_t pp_size, pp_backlog = 64, pp_job_timeout_ms = 10000, pp_max_msg = 1 << 20;
static struct petrel__waitq pp_waiters;
static uint64_t pp_jobs, pp_failed, pp_timeouts, pp_crashes, pp_restarts, pp_rejected, pp_job_ns;

/* ------------------------------------------------------------------ */
/* child side (single-threaded processes; only _exit, never exit)      */

static int io_read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int io_write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Request: u32 name_len, u32 in_len, name, in. Response: i32 rc, u32 out_len, out. */
static _Noreturn void child_main(int fd)
{
    for (;;) {
        uint32_t hdr[2];
        if (io_read_full(fd, hdr, sizeof(hdr)) != 0)
            _exit(0); /* the parent closed our socket */
        if (hdr[0] > 4096 || hdr[1] > (uint64_t)pp_max_msg)
            _exit(3);
        char *msg = malloc((size_t)hdr[0] + hdr[1] + 1);
        if (msg == NULL || io_read_full(fd, msg, (size_t)hdr[0] + hdr[1]) != 0)
            _exit(3);
        char name[4097];
        memcpy(name, msg, hdr[0]);
        name[hdr[0]] = '\0';
        petrel_proc_fn fn = NULL;
        for (size_t i = 0; i < pp_nfns; i++)
            if (strcmp(pp_fns[i].name, name) == 0)
                fn = pp_fns[i].fn;
        void *out = NULL;
        size_t out_len = 0;
        int32_t rc = fn != NULL ? fn(msg + hdr[0], hdr[1], &out, &out_len) : PETREL_ENOENT;
        free(msg);
        if (rc != 0 || out_len > (uint64_t)pp_max_msg) {
            free(out);
            out = NULL;
            out_len = 0;
            if (rc == 0)
                rc = PETREL_ETOOBIG;
        }
        int32_t rhdr[2] = {rc, (int32_t)out_len};
        if (io_write_full(fd, rhdr, sizeof(rhdr)) != 0 ||
            (out_len > 0 && io_write_full(fd, out, out_len) != 0))
            _exit(0);
        free(out);
    }
}

/* Sends pid + fd to the parent over the control socket. */
static int zygote_send(int zfd, int pid, int fd)
{
    char ctl[CMSG_SPACE(sizeof(int))];
    memset(ctl, 0, sizeof(ctl));
    struct iovec iov = {.iov_base = &pid, .iov_len = sizeof(pid)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof(ctl);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    return sendmsg(zfd, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(pid) ? 0 : -1;
}

/* The zygote: forks a child for every byte the parent sends and reaps dead
 * children. It exits when the parent goes away. */
static _Noreturn void zygote_main(int zfd, int nice_incr)
{
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    /* CPU jobs yield to the latency-critical loops: children inherit this niceness. */
    if (nice_incr > 0) {
        errno = 0;
        int cur = getpriority(PRIO_PROCESS, 0);
        if (errno == 0)
            (void)setpriority(PRIO_PROCESS, 0, cur + nice_incr > 19 ? 19 : cur + nice_incr);
    }
    for (;;) {
        struct pollfd pfd = {.fd = zfd, .events = POLLIN};
        int n = poll(&pfd, 1, 200);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (n <= 0)
            continue;
        char c;
        ssize_t r = read(zfd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            _exit(0);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            (void)zygote_send(zfd, -1, -1);
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(zfd);
            close(sv[0]);
            (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
            child_main(sv[1]);
        }
        close(sv[1]);
        (void)zygote_send(zfd, pid > 0 ? (int)pid : -1, pid > 0 ? sv[0] : -1);
        close(sv[0]);
    }
}

/* ------------------------------------------------------------------ */
/* parent side                                                         */

/* Asks the zygote for a new child. A blocking round trip of well under a
 * millisecond (one fork of a small single-threaded process); it happens only
 * at start and when a child is replaced. */
static int pp_spawn(int *pid_out, int *fd_out)
{
    pthread_mutex_lock(&pp_zygote_mu);
    int rc = -1;
    char c = 'F';
    if (pp_zfd < 0 || write(pp_zfd, &c, 1) != 1)
        goto out;
    int pid = -1;
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &pid, .iov_len = sizeof(pid)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
    ssize_t n;
    do
        n = recvmsg(pp_zfd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(pid) || pid <= 0)
        goto out;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm == NULL || cm->cmsg_type != SCM_RIGHTS)
        goto out;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    *pid_out = pid;
    *fd_out = fd;
    rc = 0;
out:
    pthread_mutex_unlock(&pp_zygote_mu);
    return rc;
}

int petrel_procpool_register(const char *name, petrel_proc_fn fn)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > 4096 || fn == NULL)
        return PETREL_EINVAL;
    pthread_mutex_lock(&pp_mu);
    int rc = 0;
    if (pp_started)
        rc = PETREL_EPERM;
    for (size_t i = 0; rc == 0 && i < pp_nfns; i++)
        if (strcmp(pp_fns[i].name, name) == 0)
            rc = PETREL_EINVAL;
    if (rc == 0 && pp_nfns == PP_MAX_FNS)
        rc = PETREL_EINVAL;
    if (rc == 0) {
        pp_fns[pp_nfns].name = petrel_xstrdup(name);
        pp_fns[pp_nfns].fn = fn;
        pp_nfns++;
    }
    pthread_mutex_unlock(&pp_mu);
    return rc;
}

int petrel__procpool_start(const petrel_config_t *cfg, char *err, size_t errlen)
{
    int64_t size = petrel_config_int(cfg, "process_pool.size");
    int nice_incr = (int)petrel_config_int(cfg, "process_pool.nice");
    pthread_mutex_lock(&pp_mu);
    pp_backlog = petrel_config_int(cfg, "process_pool.backlog");
    pp_job_timeout_ms = petrel_config_int(cfg, "process_pool.job_timeout_ms");
    pp_max_msg = petrel_config_int(cfg, "process_pool.max_msg_bytes");
    bool started = pp_started;
    pthread_mutex_unlock(&pp_mu);
    /* The pool lives for the process: a second server start reuses it. */
    if (size == 0 || started)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "process_pool: socketpair failed");
        return -1;
    }
    pid_t z = fork();
    if (z < 0) {
        close(sv[0]);
        close(sv[1]);
        snprintf(err, errlen, "process_pool: fork failed");
        return -1;
    }
    if (z == 0) {
        close(sv[0]);
        zygote_main(sv[1], nice_incr);
    }
    close(sv[1]);
    pp_zfd = sv[0];
    pp_zpid = (int)z;
    struct pp_child *ch = petrel_xcalloc((size_t)size, sizeof(*ch));
    for (int64_t i = 0; i < size; i++) {
        ch[i].fd = -1;
        if (pp_spawn(&ch[i].pid, &ch[i].fd) != 0) {
            snprintf(err, errlen, "process_pool: cannot start child %lld", (long long)i + 1);
            for (int64_t k = 0; k < i; k++)
                close(ch[k].fd);
            free(ch);
            return -1;
        }
    }
    pthread_mutex_lock(&pp_mu);
    pp_children = ch;
    pp_size = size;
    pp_started = true;
    pthread_mutex_unlock(&pp_mu);
    petrel_logj(PETREL_LOG_INFO, "process pool started",
                json_pack("{s:I,s:i}", "size", (json_int_t)size, "zygote_pid", (int)z));
    return 0;
}

/* With pp_mu held: a free slot, one with a live child first; NULL when all are busy. A
 * slot whose replacement could not be started (fd < 0) is handed out too: its new owner
 * tries again, so a passing failure (EMFILE, EAGAIN) does not shrink the pool for good. */
static struct pp_child *pp_free_child_locked(void)
{
    struct pp_child *childless = NULL;
    for (int64_t i = 0; i < pp_size; i++) {
        if (pp_children[i].busy)
            continue;
        if (pp_children[i].fd >= 0)
            return &pp_children[i];
        if (childless == NULL)
            childless = &pp_children[i];
    }
    return childless;
}

/* Gives an owned slot back: to the oldest waiter, or to the free set. */
static void pp_release(struct pp_child *c)
{
    pthread_mutex_lock(&pp_mu);
    struct petrel__waiter *w = petrel__waitq_pop(&pp_waiters, c);
    if (w == NULL)
        c->busy = false;
    pthread_mutex_unlock(&pp_mu);
    if (w != NULL)
        petrel__waiter_notify(w);
}

/* Starts a new child in owned slot c, SIGKILLing its old one when asked. 0 or -1. */
static int pp_respawn(struct pp_child *c, bool kill_old)
{
    if (kill_old && c->pid > 0)
        (void)kill(c->pid, SIGKILL);
    if (c->fd >= 0)
        close(c->fd);
    int pid = -1, fd = -1;
    int rc = pp_spawn(&pid, &fd);
    if (rc != 0)
        petrel_log(PETREL_LOG_ERROR, "process pool: cannot start a replacement child");
    /* Under the lock only because the stats read these fields. */
    pthread_mutex_lock(&pp_mu);
    c->pid = pid;
    c->fd = fd;
    if (rc == 0)
        pp_restarts++;
    pthread_mutex_unlock(&pp_mu);
    return rc;
}

/* Kills (when asked) and replaces an owned child, then releases it. */
static void pp_replace(struct pp_child *c, bool kill_it)
{
    (void)pp_respawn(c, kill_it);
    pp_release(c);
}

/* Writes or reads all of buf on the owned non-blocking fd, awaiting until deadline. */
static int pp_io(int fd, void *buf, size_t len, bool writing, int64_t deadline)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return PETREL_EIO; /* EOF: the child died */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return PETREL_EIO;
        int64_t left = deadline - petrel_now_ms();
        if (left <= 0)
            return PETREL_ETIMEDOUT;
        int rc = petrel_wait_fd(fd, writing ? PETREL_WRITABLE : PETREL_READABLE, left);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int petrel_procpool_call(const char *name, const void *in, size_t in_len, void **out,
                         size_t *out_len, int64_t timeout_ms)
{
    petrel_fiber_t *f = petrel_fiber_current();
    PETREL_ASSERT(f != NULL); /* awaiting outside a fiber */
    if (f->cancelled)
        return PETREL_ECANCELED;
    size_t nlen = strlen(name);
    bool known = false;
    for (size_t i = 0; i < pp_nfns; i++)
        known = known || strcmp(pp_fns[i].name, name) == 0;
    if (!known)
        return PETREL_ENOENT;
    pthread_mutex_lock(&pp_mu);
    if (timeout_ms == PETREL_TIMEOUT_DEFAULT)
        timeout_ms = pp_job_timeout_ms;
    if (in_len > (uint64_t)pp_max_msg) {
        pthread_mutex_unlock(&pp_mu);
        return PETREL_ETOOBIG;
    }
    int64_t t0 = petrel_now_ms();
    int64_t deadline = t0 + (timeout_ms < 0 ? 0 : timeout_ms);
    struct pp_child *c = pp_started ? pp_free_child_locked() : NULL;
    if (c != NULL) {
        c->busy = true;
        pthread_mutex_unlock(&pp_mu);
    } else if (!pp_started || (int64_t)pp_waiters.n >= pp_backlog) {
        pp_rejected++;
        pthread_mutex_unlock(&pp_mu);
        return PETREL_EOVERLOAD;
    } else {
        void *got = NULL;
        petrel_fiber_set_await_kind("procpool_queue");
        int rc = petrel__waitq_wait(&pp_waiters, &pp_mu, timeout_ms, &got);
        if (rc != 0)
            return rc;
        c = got;
        if (f->cancelled) {
            pp_release(c);
            return PETREL_ECANCELED;
        }
    }

    /* We own slot c until pp_release / pp_replace. A child that died while idle
     * shows as readable (EOF), and a slot may have no child when its replacement
     * failed to start: start one now rather than fail this job. */
    bool dead = c->fd < 0;
    if (!dead) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
        if (poll(&pfd, 1, 0) > 0) {
            pthread_mutex_lock(&pp_mu);
            pp_crashes++;
            pthread_mutex_unlock(&pp_mu);
            dead = true;
        }
    }
    if (dead && pp_respawn(c, true) != 0) {
        pp_release(c);
        return PETREL_EIO;
    }
    int64_t s0 = petrel_now_ns();
    uint32_t hdr[2] = {(uint32_t)nlen, (uint32_t)in_len};
    int rc;
    petrel_fiber_set_await_kind("procpool");
    if ((rc = pp_io(c->fd, hdr, sizeof(hdr), true, deadline)) == 0 &&
        (rc = pp_io(c->fd, (void *)(uintptr_t)name, nlen, true, deadline)) == 0 &&
        (in_len == 0 || (rc = pp_io(c->fd, (void *)(uintptr_t)in, in_len, true, deadline)) == 0)) {
        int32_t rhdr[2];
        rc = pp_io(c->fd, rhdr, sizeof(rhdr), false, deadline);
        if (rc == 0 && (rhdr[1] < 0 || (int64_t)rhdr[1] > pp_max_msg))
            rc = PETREL_EIO;
        if (rc == 0) {
            char *buf = petrel_xmalloc((size_t)rhdr[1] + 1);
            rc = pp_io(c->fd, buf, (size_t)rhdr[1], false, deadline);
            if (rc == 0 && rhdr[0] != 0) {
                free(buf);
                pthread_mutex_lock(&pp_mu);
                pp_jobs++;
                pp_failed++;
                pthread_mutex_unlock(&pp_mu);
                pp_release(c);
                return rhdr[0] == PETREL_ENOENT || rhdr[0] == PETREL_ETOOBIG ? rhdr[0] : PETREL_EIO;
            }
            if (rc == 0) {
                buf[rhdr[1]] = '\0'; /* convenient for text results */
                *out = buf;
                *out_len = (size_t)rhdr[1];
                pthread_mutex_lock(&pp_mu);
                pp_jobs++;
                pp_job_ns += (uint64_t)(petrel_now_ns() - s0);
                pthread_mutex_unlock(&pp_mu);
                pp_release(c);
                return 0;
            }
            free(buf);
        }
    }
    /* The child is in an unknown state (mid-job, dead or overrunning): kill
     * and replace it; only this job fails. */
    pthread_mutex_lock(&pp_mu);
    pp_jobs++;
    pp_failed++;
    if (rc == PETREL_ETIMEDOUT)
        pp_timeouts++;
    else if (rc == PETREL_EIO)
        pp_crashes++;
    pthread_mutex_unlock(&pp_mu);
    petrel_logj(PETREL_LOG_WARN, "process pool job failed; replacing its child",
                json_pack("{s:s,s:i,s:s}", "function", name, "pid", c->pid, "reason",
                          rc == PETREL_ETIMEDOUT   ? "timeout"
                          : rc == PETREL_ECANCELED ? "cancelled"
                                                   : "child crashed"));
    pp_replace(c, true);
    return rc == PETREL_ETIMEDOUT || rc == PETREL_ECANCELED ? rc : PETREL_EIO;
}

int petrel_procpool_call_json(const char *name, const json_t *in, json_t **out, int64_t timeout_ms)
{
    char *text = json_dumps(in, JSON_COMPACT);
    if (text == NULL)
        return PETREL_EINVAL;
    void *res = NULL;
    size_t len = 0;
    int rc = petrel_procpool_call(name, text, strlen(text), &res, &len, timeout_ms);
    free(text);
    if (rc != 0)
        return rc;
    json_t *j = json_loadb(res, len, JSON_DECODE_ANY, NULL);
    free(res);
    if (j == NULL)
        return PETREL_EIO;
    *out = j;
    return 0;
}

void petrel_procpool_stats(petrel_procpool_stats_t *out)
{
    pthread_mutex_lock(&pp_mu);
    out->size = pp_size;
    out->alive = 0;
    out->busy = 0;
    for (int64_t i = 0; i < pp_size; i++) {
        out->alive += pp_children[i].fd >= 0;
        out->busy += pp_children[i].busy;
    }
    out->waiting = (int64_t)pp_waiters.n;
    out->jobs = pp_jobs;
    out->failed = pp_failed;
    out->timeouts = pp_timeouts;
    out->crashes = pp_crashes;
    out->restarts = pp_restarts;
    out->rejected = pp_rejected;
    out->job_ns_total = pp_job_ns;
    pthread_mutex_unlock(&pp_mu);
}

size_t petrel_procpool_pids(int *pids, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&pp_mu);
    for (int64_t i = 0; i < pp_size && n < max; i++)
        if (pp_children[i].fd >= 0)
            pids[n++] = pp_children[i].pid;
    pthread_mutex_unlock(&pp_mu);
    return n;
}
