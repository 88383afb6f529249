/*
 * threadpool.c - the thread pool behind petrel_to_thread(): thread_pool.size
 * detached threads taking jobs from one FIFO, each job's completion posted
 * back to the waiting fiber's own loop.
 *
 * A job is shared by the caller's fiber and the thread that runs it. The
 * caller may stop waiting (timeout, cancellation) at any time; the thread
 * then frees the job itself when fn returns. A job that completed but whose
 * wake-up post has not run yet is freed by that post (see
 * docs/internals/limits.md, "thread pool").
 */
#include <stdlib.h>

#include "limits_int.h"
#include "petrel/limits.h"

struct tp_job {
    struct tp_job *next;
    petrel_thread_fn fn;
    void *arg;
    void *result;
    petrel_fiber_t *fiber;
    petrel__sched_t *sched;
    bool done;      /* under tp_mu */
    bool abandoned; /* under tp_mu: the caller left; the thread frees the job */
    bool delivered; /* caller's thread only */
    bool orphan;    /* caller's thread only: the post frees the job */
};

static pthread_mutex_t tp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tp_cv = PTHREAD_COND_INITIALIZER;
static struct tp_job *tp_head, *tp_tail;
static int64_t tp_want = 4, tp_threads, tp_busy, tp_queued;
static uint64_t tp_jobs, tp_abandoned, tp_job_ns;

static void tp_deliver(void *arg)
{
    struct tp_job *j = arg;
    j->delivered = true;
    if (j->orphan) {
        free(j);
        return;
    }
    petrel__fiber_wake(j->fiber, 0);
}

static void *tp_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&tp_mu);
    for (;;) {
        while (tp_head == NULL)
            pthread_cond_wait(&tp_cv, &tp_mu);
        struct tp_job *j = tp_head;
        tp_head = j->next;
        if (tp_head == NULL)
            tp_tail = NULL;
        tp_queued--;
        tp_busy++;
        pthread_mutex_unlock(&tp_mu);

        int64_t t0 = petrel_now_ns();
        void *res = j->fn(j->arg);
        int64_t dt = petrel_now_ns() - t0;

        pthread_mutex_lock(&tp_mu);
        tp_busy--;
        tp_jobs++;
        tp_job_ns += (uint64_t)dt;
        if (j->abandoned) {
            free(j);
            continue;
        }
        j->result = res;
        j->done = true;
        /* Posting never blocks, so doing it under the lock is fine; the job
         * stays alive until tp_deliver has run on the caller's loop. */
        petrel__sched_post(j->sched, tp_deliver, j);
    }
    return NULL;
}

/* With tp_mu held: grow the pool to tp_want threads. */
static void tp_spawn_locked(void)
{
    while (tp_threads < tp_want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, tp_main, NULL);
        pthread_attr_destroy(&attr);
        if (rc != 0)
            break;
        tp_threads++;
    }
}

void petrel__threadpool_configure(const petrel_config_t *cfg)
{
    pthread_mutex_lock(&tp_mu);
    tp_want = petrel_config_int(cfg, "thread_pool.size");
    /* Threads start on first use: petrel__limits_start runs before the
     * process pool forks, and a fork must not copy a running pool. */
    pthread_mutex_unlock(&tp_mu);
}

int petrel_to_thread(petrel_thread_fn fn, void *arg, void **result, int64_t timeout_ms)
{
    petrel_fiber_t *f = petrel_fiber_current();
    PETREL_ASSERT(f != NULL); /* awaiting outside a fiber */
    if (f->cancelled)
        return PETREL_ECANCELED;
    if (timeout_ms == PETREL_TIMEOUT_DEFAULT)
        timeout_ms = petrel__io_timeout_ms;
    struct tp_job *j = petrel_xcalloc(1, sizeof(*j));
    j->fn = fn;
    j->arg = arg;
    j->fiber = f;
    j->sched = petrel__sched_current();

    pthread_mutex_lock(&tp_mu);
    tp_spawn_locked();
    if (tp_tail != NULL)
        tp_tail->next = j;
    else
        tp_head = j;
    tp_tail = j;
    tp_queued++;
    pthread_cond_signal(&tp_cv);
    pthread_mutex_unlock(&tp_mu);

    petrel_fiber_set_await_kind("thread");
    int64_t deadline = petrel_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int64_t left = deadline - petrel_now_ms();
        int rc = petrel__fiber_park(left < 0 ? 0 : left);
        pthread_mutex_lock(&tp_mu);
        if (j->done) {
            pthread_mutex_unlock(&tp_mu);
            /* Done, perhaps at the same moment as our timeout: keep the result. */
            if (result != NULL)
                *result = j->result;
            if (j->delivered)
                free(j);
            else
                j->orphan = true;
            return 0;
        }
        if (rc == PETREL_ETIMEDOUT || rc == PETREL_ECANCELED || f->cancelled) {
            j->abandoned = true;
            tp_abandoned++;
            pthread_mutex_unlock(&tp_mu);
            return rc == PETREL_ETIMEDOUT ? PETREL_ETIMEDOUT : PETREL_ECANCELED;
        }
        pthread_mutex_unlock(&tp_mu);
    }
}

void petrel_threadpool_stats(petrel_threadpool_stats_t *out)
{
    pthread_mutex_lock(&tp_mu);
    out->size = tp_threads > 0 ? tp_threads : tp_want;
    out->busy = tp_busy;
    out->queued = tp_queued;
    out->jobs = tp_jobs;
    out->abandoned = tp_abandoned;
    out->job_ns_total = tp_job_ns;
    pthread_mutex_unlock(&tp_mu);
}
