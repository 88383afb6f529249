/*
 * queue.c - the process-wide bounded work queue: producers (try_put / put
 * with backpressure), consumer fibers spread over the workers' loops, retries
 * with exponential backoff and jitter, dead letters, and a bounded table of
 * job statuses.
 *
 * All queue state sits behind one mutex. Producers and consumers that must
 * wait use the cross-worker wait queue (petrel__waitq), so a put on worker A
 * hands its job straight to a consumer parked on worker B. Consumers start
 * and stop with per-worker hooks the queue registers on the app, so each
 * consumer lives, runs and is cancelled on its own loop thread only.
 */
#include "petrel/queue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "limits_int.h"
#include "petrel/app.h"
#include "petrel/log.h"
#include "server_int.h"

#define QUEUE_TABLE_BUCKETS 4096
#define QUEUE_MAX_WORKERS 256
#define QUEUE_MAX_HANDLERS 64

enum job_status { JOB_QUEUED = 0, JOB_RUNNING, JOB_RETRYING, JOB_SUCCEEDED, JOB_FAILED };
static const char *const job_status_names[] = {"queued", "running", "retrying", "succeeded",
                                               "failed"};

struct handler {
    char *type;
    petrel_job_cb cb;
    void *arg;
};

struct petrel_job {
    char id[PETREL_JOB_ID_LEN];
    const struct handler *h;
    json_t *payload;
    json_t *result;           /* set by the handler; kept once succeeded */
    char *error;              /* last error message */
    int status;               /* enum job_status */
    int attempt;              /* attempts started */
    int64_t next_at_ms;       /* JOB_RETRYING: monotonic time of the next attempt */
    struct petrel_job *qnext; /* ready or delayed list */
    struct petrel_job *hnext; /* id table chain */
    struct petrel_job *fnext; /* finished FIFO, oldest first */
};

struct consumer {
    struct consumer *next;
    petrel_fiber_t *fiber;
    bool done;
};

static struct {
    pthread_mutex_t mu;
    /* config */
    int nworkers;
    int64_t maxsize, workers, base_ms, max_ms, max_attempts, max_kept;
    /* state */
    bool stopping;
    int64_t stop_deadline_ms;
    struct petrel_job *ready_head, *ready_tail;
    struct petrel_job *delayed; /* sorted by next_at_ms */
    int64_t depth;              /* queued + retrying (+ slots reserved for granted producers) */
    int64_t running;
    struct petrel__waitq get_waiters, put_waiters;
    struct petrel_job *table[QUEUE_TABLE_BUCKETS];
    size_t ntable;
    struct petrel_job *fin_head, *fin_tail;
    uint64_t rng;
    int64_t consumers;
    /* stats */
    uint64_t enqueued, rejected, succeeded, retries, dead_letters, job_ns_total;
} Q = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .maxsize = 1000,
       .base_ms = 100,
       .max_ms = 10000,
       .max_attempts = 5,
       .max_kept = 10000};

static struct handler handlers[QUEUE_MAX_HANDLERS];
static size_t nhandlers;

/* Consumers of each worker; touched only on that worker's thread. */
static struct consumer *worker_consumers[QUEUE_MAX_WORKERS];

/* ------------------------------------------------------------------ */
/* helpers (all with Q.mu held unless said otherwise)                  */

static uint64_t queue_rand_locked(void)
{
    /* splitmix64: jitter needs spread, not secrecy. */
    uint64_t x = (Q.rng += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void job_make_id(char out[PETREL_JOB_ID_LEN])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        uint64_t a = queue_rand_locked(), c = queue_rand_locked();
        memcpy(b, &a, 8);
        memcpy(b + 8, &c, 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

static size_t job_bucket(const char *id)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    return (size_t)(h % QUEUE_TABLE_BUCKETS);
}

static struct petrel_job *table_find_locked(const char *id)
{
    for (struct petrel_job *j = Q.table[job_bucket(id)]; j != NULL; j = j->hnext)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static void job_free(struct petrel_job *j)
{
    json_decref(j->payload);
    json_decref(j->result);
    free(j->error);
    free(j);
}

/* Keeps the status table bounded: the oldest finished jobs go first. Jobs
 * not finished yet are bounded by maxsize and the consumer count. */
static void table_insert_locked(struct petrel_job *j)
{
    while (Q.ntable >= (size_t)Q.max_kept && Q.fin_head != NULL) {
        struct petrel_job *old = Q.fin_head;
        Q.fin_head = old->fnext;
        if (Q.fin_head == NULL)
            Q.fin_tail = NULL;
        struct petrel_job **pp = &Q.table[job_bucket(old->id)];
        while (*pp != old)
            pp = &(*pp)->hnext;
        *pp = old->hnext;
        Q.ntable--;
        job_free(old);
    }
    size_t b = job_bucket(j->id);
    j->hnext = Q.table[b];
    Q.table[b] = j;
    Q.ntable++;
}

static void finished_push_locked(struct petrel_job *j)
{
    j->fnext = NULL;
    if (Q.fin_tail != NULL)
        Q.fin_tail->fnext = j;
    else
        Q.fin_head = j;
    Q.fin_tail = j;
}

static void job_start_locked(struct petrel_job *j)
{
    j->status = JOB_RUNNING;
    j->attempt++;
    Q.running++;
}

/* A queued slot was freed: reserve it for the oldest waiting producer. */
static struct petrel__waiter *space_freed_locked(void)
{
    if (Q.put_waiters.head == NULL || Q.depth >= Q.maxsize)
        return NULL;
    Q.depth++;
    return petrel__waitq_pop(&Q.put_waiters, &Q);
}

/* Queues j (depth already counts it when `reserved`); hands it straight to a
 * parked consumer when there is one. Returns a waiter to notify, or NULL. */
static struct petrel__waiter *enqueue_locked(struct petrel_job *j, bool reserved,
                                             struct petrel__waiter **also)
{
    *also = NULL;
    if (!reserved)
        Q.depth++;
    table_insert_locked(j);
    Q.enqueued++;
    if (Q.get_waiters.head != NULL) {
        Q.depth--;
        job_start_locked(j);
        if (reserved)
            *also = space_freed_locked();
        return petrel__waitq_pop(&Q.get_waiters, j);
    }
    j->qnext = NULL;
    if (Q.ready_tail != NULL)
        Q.ready_tail->qnext = j;
    else
        Q.ready_head = j;
    Q.ready_tail = j;
    return NULL;
}

static const struct handler *handler_find(const char *type)
{
    for (size_t i = 0; i < nhandlers; i++)
        if (strcmp(handlers[i].type, type) == 0)
            return &handlers[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* producers                                                           */

int petrel_queue_register(const char *type, petrel_job_cb cb, void *arg)
{
    if (type == NULL || type[0] == '\0' || cb == NULL || nhandlers == QUEUE_MAX_HANDLERS ||
        handler_find(type) != NULL)
        return PETREL_EINVAL;
    handlers[nhandlers].type = petrel_xstrdup(type);
    handlers[nhandlers].cb = cb;
    handlers[nhandlers].arg = arg;
    nhandlers++;
    return 0;
}

static struct petrel_job *job_new(const struct handler *h, const json_t *payload)
{
    struct petrel_job *j = petrel_xcalloc(1, sizeof(*j));
    j->h = h;
    /* A deep copy: the producer's JSON may be shared with its request. */
    j->payload = payload != NULL ? json_deep_copy(payload) : json_null();
    j->status = JOB_QUEUED;
    return j;
}

static int queue_put(const char *type, const json_t *payload, char id[PETREL_JOB_ID_LEN],
                     int64_t timeout_ms, bool wait)
{
    const struct handler *h = handler_find(type);
    if (h == NULL)
        return PETREL_ENOENT;
    bool reserved = false;
    pthread_mutex_lock(&Q.mu);
    if (Q.stopping) {
        pthread_mutex_unlock(&Q.mu);
        return PETREL_EOVERLOAD;
    }
    if (Q.depth >= Q.maxsize || Q.put_waiters.head != NULL) {
        if (!wait || timeout_ms == 0) {
            Q.rejected++;
            pthread_mutex_unlock(&Q.mu);
            return PETREL_EAGAIN;
        }
        void *grant = NULL;
        petrel_fiber_set_await_kind("queue_put");
        int rc = petrel__waitq_wait(&Q.put_waiters, &Q.mu, timeout_ms, &grant);
        pthread_mutex_lock(&Q.mu);
        if (rc != 0 || grant == NULL) {
            /* grant NULL: the queue is stopping. */
            Q.rejected++;
            pthread_mutex_unlock(&Q.mu);
            return rc != 0 ? rc : PETREL_EOVERLOAD;
        }
        reserved = true; /* the consumer that freed the slot counted it for us */
    }
    struct petrel_job *j = job_new(h, payload);
    job_make_id(j->id);
    struct petrel__waiter *also;
    struct petrel__waiter *w = enqueue_locked(j, reserved, &also);
    memcpy(id, j->id, PETREL_JOB_ID_LEN);
    pthread_mutex_unlock(&Q.mu);
    if (w != NULL)
        petrel__waiter_notify(w);
    if (also != NULL)
        petrel__waiter_notify(also);
    return 0;
}

int petrel_queue_try_put(const char *type, const json_t *payload, char id[PETREL_JOB_ID_LEN])
{
    return queue_put(type, payload, id, 0, false);
}

int petrel_queue_put(const char *type, const json_t *payload, char id[PETREL_JOB_ID_LEN],
                     int64_t timeout_ms)
{
    PETREL_ASSERT(petrel_fiber_current() != NULL);
    if (petrel_cancelled())
        return PETREL_ECANCELED;
    if (timeout_ms == PETREL_TIMEOUT_DEFAULT)
        timeout_ms = 1000;
    return queue_put(type, payload, id, timeout_ms < 0 ? 0 : timeout_ms, true);
}

int petrel_queue_job_status(const char *id, json_t **out)
{
    pthread_mutex_lock(&Q.mu);
    struct petrel_job *j = id != NULL ? table_find_locked(id) : NULL;
    if (j == NULL) {
        pthread_mutex_unlock(&Q.mu);
        return PETREL_ENOTFOUND;
    }
    json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:I}", "id", j->id, "type", j->h->type, "status",
                          job_status_names[j->status], "attempts", j->attempt, "max_attempts",
                          (json_int_t)Q.max_attempts);
    if (j->status == JOB_RETRYING) {
        int64_t left = j->next_at_ms - petrel_now_ms();
        json_object_set_new(o, "next_attempt_in_ms", json_integer(left > 0 ? left : 0));
    }
    if (j->error != NULL && (j->status == JOB_RETRYING || j->status == JOB_FAILED))
        json_object_set_new(o, "error", json_string(j->error));
    if (j->status == JOB_SUCCEEDED)
        json_object_set_new(o, "result",
                            j->result != NULL ? json_deep_copy(j->result) : json_null());
    pthread_mutex_unlock(&Q.mu);
    *out = o;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the job handler's view                                              */

const json_t *petrel_job_payload(const petrel_job_t *job)
{
    return job->payload;
}

const char *petrel_job_id(const petrel_job_t *job)
{
    return job->id;
}

const char *petrel_job_type(const petrel_job_t *job)
{
    return job->h->type;
}

int petrel_job_attempt(const petrel_job_t *job)
{
    return job->attempt;
}

void petrel_job_set_result(petrel_job_t *job, json_t *result)
{
    pthread_mutex_lock(&Q.mu);
    json_decref(job->result);
    job->result = result;
    pthread_mutex_unlock(&Q.mu);
}

void petrel_job_set_error(petrel_job_t *job, const char *msg)
{
    char *m = petrel_xstrdup(msg != NULL ? msg : "error");
    pthread_mutex_lock(&Q.mu);
    free(job->error);
    job->error = m;
    pthread_mutex_unlock(&Q.mu);
}

/* ------------------------------------------------------------------ */
/* consumers                                                           */

/* Exponential backoff with jitter: base * 2^(attempt-1), capped at max_ms,
 * times a uniform factor in [0.8, 1.2) so that jobs failing together do not
 * retry together. */
static int64_t backoff_ms_locked(int attempt)
{
    double d = (double)Q.base_ms * pow(2.0, attempt - 1);
    if (d > (double)Q.max_ms)
        d = (double)Q.max_ms;
    double u = (double)(queue_rand_locked() >> 11) / 9007199254740992.0;
    return (int64_t)(d * (0.8 + 0.4 * u));
}

static void delayed_insert_locked(struct petrel_job *j)
{
    struct petrel_job **pp = &Q.delayed;
    while (*pp != NULL && (*pp)->next_at_ms <= j->next_at_ms)
        pp = &(*pp)->qnext;
    j->qnext = *pp;
    *pp = j;
}

/* Takes the next job, waiting on the get queue; NULL when stopping or cancelled. */
static struct petrel_job *queue_get(void)
{
    pthread_mutex_lock(&Q.mu);
    for (;;) {
        if (Q.stopping) {
            pthread_mutex_unlock(&Q.mu);
            return NULL;
        }
        int64_t now = petrel_now_ms();
        /* Retries that are due join the back of the ready list. */
        while (Q.delayed != NULL && Q.delayed->next_at_ms <= now) {
            struct petrel_job *d = Q.delayed;
            Q.delayed = d->qnext;
            d->status = JOB_QUEUED;
            d->qnext = NULL;
            if (Q.ready_tail != NULL)
                Q.ready_tail->qnext = d;
            else
                Q.ready_head = d;
            Q.ready_tail = d;
        }
        if (Q.ready_head != NULL) {
            struct petrel_job *j = Q.ready_head;
            Q.ready_head = j->qnext;
            if (Q.ready_head == NULL)
                Q.ready_tail = NULL;
            Q.depth--;
            job_start_locked(j);
            struct petrel__waiter *w = space_freed_locked();
            pthread_mutex_unlock(&Q.mu);
            if (w != NULL)
                petrel__waiter_notify(w);
            return j;
        }
        /* Sleep until the next retry is due, or a producer hands us a job. */
        int64_t tmo = Q.delayed != NULL ? Q.delayed->next_at_ms - now : 1000;
        void *got = NULL;
        petrel_fiber_set_await_kind("queue_get");
        int rc = petrel__waitq_wait(&Q.get_waiters, &Q.mu, tmo < 0 ? 0 : tmo, &got);
        if (rc == 0)
            return got; /* a job (already started for us), or NULL: stopping */
        if (rc == PETREL_ECANCELED)
            return NULL;
        pthread_mutex_lock(&Q.mu);
    }
}

static void job_finish(struct petrel_job *j, int rc, int64_t dt_ns)
{
    pthread_mutex_lock(&Q.mu);
    Q.running--;
    Q.job_ns_total += (uint64_t)dt_ns;
    if (rc == 0) {
        j->status = JOB_SUCCEEDED;
        Q.succeeded++;
        finished_push_locked(j);
    } else {
        if (j->error == NULL || rc == PETREL_ECANCELED) {
            free(j->error);
            j->error = petrel_xstrdup(rc == PETREL_ECANCELED ? "cancelled at shutdown"
                                                             : petrel_strerror(rc));
        }
        if (j->attempt < Q.max_attempts && rc != PETREL_ECANCELED && !Q.stopping) {
            j->status = JOB_RETRYING;
            j->next_at_ms = petrel_now_ms() + backoff_ms_locked(j->attempt);
            Q.retries++;
            Q.depth++;
            delayed_insert_locked(j);
        } else {
            j->status = JOB_FAILED;
            Q.dead_letters++;
            finished_push_locked(j);
        }
    }
    pthread_mutex_unlock(&Q.mu);
    if (rc != 0 && j->status == JOB_FAILED)
        petrel_logj(
            PETREL_LOG_WARN, "job dead-lettered",
            json_pack("{s:s,s:s,s:i}", "id", j->id, "type", j->h->type, "attempts", j->attempt));
}

static void consumer_main(void *arg)
{
    struct consumer *c = arg;
    for (;;) {
        struct petrel_job *j = queue_get();
        if (j == NULL)
            break;
        /* The handler may set a fresh error for this attempt. */
        pthread_mutex_lock(&Q.mu);
        free(j->error);
        j->error = NULL;
        pthread_mutex_unlock(&Q.mu);
        int64_t t0 = petrel_now_ns();
        int rc = j->h->cb(j, j->h->arg);
        job_finish(j, rc < 0 ? rc : 0, petrel_now_ns() - t0);
        if (petrel_cancelled())
            break;
    }
    pthread_mutex_lock(&Q.mu);
    Q.consumers--;
    pthread_mutex_unlock(&Q.mu);
    c->done = true;
}

static int queue_worker_start(petrel_app_t *app, int worker, void *arg)
{
    (void)arg;
    (void)app;
    pthread_mutex_lock(&Q.mu);
    int64_t total = Q.workers;
    int nw = Q.nworkers;
    pthread_mutex_unlock(&Q.mu);
    if (nw <= 0 || worker >= QUEUE_MAX_WORKERS)
        return 0;
    int64_t mine = total / nw + (worker < total % nw ? 1 : 0);
    petrel__sched_t *s = petrel__sched_current();
    for (int64_t i = 0; i < mine; i++) {
        struct consumer *c = petrel_xcalloc(1, sizeof(*c));
        c->next = worker_consumers[worker];
        worker_consumers[worker] = c;
        c->fiber = petrel__fiber_new(s, consumer_main, c);
        pthread_mutex_lock(&Q.mu);
        Q.consumers++;
        pthread_mutex_unlock(&Q.mu);
        petrel__fiber_schedule(c->fiber);
    }
    return 0;
}

static bool consumers_running(int worker)
{
    for (struct consumer *c = worker_consumers[worker]; c != NULL; c = c->next)
        if (!c->done)
            return true;
    return false;
}

static void queue_begin_stop(int64_t deadline_ms)
{
    struct petrel__waiter **ws = NULL;
    size_t nws = 0;
    pthread_mutex_lock(&Q.mu);
    if (Q.stopping) {
        pthread_mutex_unlock(&Q.mu);
        return;
    }
    Q.stopping = true;
    Q.stop_deadline_ms = deadline_ms;
    int64_t abandoned = Q.depth;
    size_t cap = Q.get_waiters.n + Q.put_waiters.n;
    ws = petrel_xcalloc(cap + 1, sizeof(*ws));
    struct petrel__waiter *w;
    while ((w = petrel__waitq_pop(&Q.get_waiters, NULL)) != NULL)
        ws[nws++] = w;
    while ((w = petrel__waitq_pop(&Q.put_waiters, NULL)) != NULL)
        ws[nws++] = w;
    int64_t running = Q.running;
    pthread_mutex_unlock(&Q.mu);
    for (size_t i = 0; i < nws; i++)
        petrel__waiter_notify(ws[i]);
    free(ws);
    if (abandoned > 0 || running > 0)
        petrel_logj(PETREL_LOG_WARN, "work queue stopping",
                    json_pack("{s:I,s:I,s:s}", "abandoned_queued_jobs", (json_int_t)abandoned,
                              "running_jobs", (json_int_t)running, "note",
                              "the queue is in memory: queued jobs are lost"));
}

static int queue_worker_stop(petrel_app_t *app, int worker, void *arg)
{
    (void)app;
    (void)arg;
    if (worker >= QUEUE_MAX_WORKERS)
        return 0;
    queue_begin_stop(petrel_now_ms() + 1000);
    pthread_mutex_lock(&Q.mu);
    int64_t deadline = Q.stop_deadline_ms;
    pthread_mutex_unlock(&Q.mu);
    /* Running jobs finish within the shutdown deadline... */
    while (consumers_running(worker) && petrel_now_ms() < deadline)
        if (petrel_sleep(5) != 0)
            break;
    /* ...or are cancelled; their awaits return PETREL_ECANCELED. */
    for (struct consumer *c = worker_consumers[worker]; c != NULL; c = c->next)
        if (!c->done)
            petrel_fiber_cancel(c->fiber);
    int64_t d2 = petrel_now_ms() + 2000;
    while (consumers_running(worker) && petrel_now_ms() < d2)
        if (petrel_sleep(5) != 0)
            break;
    struct consumer **pp = &worker_consumers[worker];
    while (*pp != NULL) {
        struct consumer *c = *pp;
        if (c->done) {
            *pp = c->next;
            free(c);
        } else {
            pp = &c->next; /* stuck in a handler that ignores cancellation: leaked */
        }
    }
    return 0;
}

void petrel__queue_configure(petrel_app_t *app, int nworkers)
{
    const petrel_config_t *cfg = app->cfg;
    pthread_mutex_lock(&Q.mu);
    Q.maxsize = petrel_config_int(cfg, "queue.maxsize");
    Q.workers = petrel_config_int(cfg, "queue.workers");
    Q.base_ms = petrel_config_int(cfg, "queue.retry.base_ms");
    Q.max_ms = petrel_config_int(cfg, "queue.retry.max_ms");
    Q.max_attempts = petrel_config_int(cfg, "queue.retry.max_attempts");
    Q.max_kept = petrel_config_int(cfg, "queue.max_jobs_kept");
    Q.stopping = false;
    Q.nworkers = nworkers;
    if (Q.rng == 0)
        Q.rng = (uint64_t)petrel_now_ns();
    pthread_mutex_unlock(&Q.mu);
    /* Register the consumer hooks once per app. */
    for (size_t i = 0; i < app->nwstart; i++)
        if (app->wstart[i].cb == queue_worker_start)
            return;
    if (nhandlers == 0 || Q.workers == 0)
        return;
    petrel_app_on_worker_start(app, queue_worker_start, NULL);
    petrel_app_on_worker_stop(app, queue_worker_stop, NULL);
}

void petrel__queue_stop(petrel_server_t *srv, int64_t deadline_ms)
{
    (void)srv;
    queue_begin_stop(deadline_ms);
}

void petrel_queue_stats(petrel_queue_stats_t *out)
{
    pthread_mutex_lock(&Q.mu);
    out->maxsize = Q.maxsize;
    out->depth = Q.depth;
    out->running = Q.running;
    out->put_waiting = (int64_t)Q.put_waiters.n;
    out->consumers = Q.consumers;
    out->enqueued = Q.enqueued;
    out->rejected = Q.rejected;
    out->succeeded = Q.succeeded;
    out->retries = Q.retries;
    out->dead_letters = Q.dead_letters;
    out->job_ns_total = Q.job_ns_total;
    pthread_mutex_unlock(&Q.mu);
}
