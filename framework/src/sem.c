/*
 * sem.c - process-wide named semaphores and the cross-worker wait queue
 * (petrel__waitq) that semaphores, the work queue and the process pool use to
 * hand a grant to a fiber parked on another worker's loop.
 *
 * A semaphore is a counter and a FIFO of waiters behind one pthread mutex,
 * shared by every worker. The mutex is only ever held for a few instructions
 * and never across an await. See docs/internals/limits.md for the hand-off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits_int.h"
#include "petrel/limits.h"

/* ------------------------------------------------------------------ */
/* the cross-worker wait queue                                         */

static void waitq_append(struct petrel__waitq *q, struct petrel__waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail != NULL)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->n++;
}

static void waitq_remove(struct petrel__waitq *q, struct petrel__waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    q->n--;
}

struct petrel__waiter *petrel__waitq_pop(struct petrel__waitq *q, void *value)
{
    struct petrel__waiter *w = q->head;
    if (w == NULL)
        return NULL;
    waitq_remove(q, w);
    w->state = PETREL__W_GRANTED;
    w->value = value;
    return w;
}

/* Runs on the waiter's own loop thread, so `delivered` and `orphan` need no
 * lock: the fiber reads and writes them on this same thread. */
static void waiter_deliver(void *arg)
{
    struct petrel__waiter *w = arg;
    w->delivered = true;
    if (w->orphan) {
        /* The fiber already took the grant (it woke for a timeout or a
         * cancellation first) and left; the post was the last user. */
        free(w);
        return;
    }
    petrel__fiber_wake(w->fiber, 0);
}

void petrel__waiter_notify(struct petrel__waiter *w)
{
    /* The waiter cannot be freed before waiter_deliver has run, so reading
     * its immutable sched here, after the owner's mutex was dropped, is safe. */
    if (w->sched == petrel__sched_current())
        waiter_deliver(w);
    else
        petrel__sched_post(w->sched, waiter_deliver, w);
}

int petrel__waitq_wait(struct petrel__waitq *q, pthread_mutex_t *mu, int64_t timeout_ms,
                       void **value)
{
    petrel_fiber_t *f = petrel_fiber_current();
    PETREL_ASSERT(f != NULL); /* awaiting outside a fiber */
    struct petrel__waiter *w = petrel_xcalloc(1, sizeof(*w));
    w->fiber = f;
    w->sched = petrel__sched_current();
    w->state = PETREL__W_WAITING;
    waitq_append(q, w);
    pthread_mutex_unlock(mu);

    int64_t deadline = petrel_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int64_t left = deadline - petrel_now_ms();
        int rc = petrel__fiber_park(left < 0 ? 0 : left);
        pthread_mutex_lock(mu);
        if (w->state == PETREL__W_GRANTED) {
            /* Granted, possibly at the same moment as a timeout or a
             * cancellation: the grant is ours either way, so it is never lost;
             * the caller keeps it or passes it on. */
            pthread_mutex_unlock(mu);
            *value = w->value;
            if (w->delivered)
                free(w);
            else
                w->orphan = true;
            return 0;
        }
        if (rc == PETREL_ETIMEDOUT || rc == PETREL_ECANCELED || f->cancelled) {
            /* Still queued: nobody has posted for us and nobody will once we
             * are out of the queue. */
            waitq_remove(q, w);
            pthread_mutex_unlock(mu);
            free(w);
            return rc == PETREL_ETIMEDOUT ? PETREL_ETIMEDOUT : PETREL_ECANCELED;
        }
        pthread_mutex_unlock(mu);
    }
}

/* ------------------------------------------------------------------ */
/* semaphores                                                          */

struct petrel_sem {
    char *name;
    pthread_mutex_t mu;
    int64_t limit;
    int64_t acquire_timeout_ms;
    int64_t in_use;
    struct petrel__waitq waiters;
    uint64_t acquired, rejected, cancelled, wait_ns_total;
    struct petrel_sem *next_sem; /* registry link */
};

/* The registry only grows; semaphores live for the process, so a pointer
 * handed out once never dangles. */
static pthread_mutex_t sem_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static petrel_sem_t *sem_registry;

static petrel_sem_t *sem_find_locked(const char *name)
{
    for (petrel_sem_t *s = sem_registry; s != NULL; s = s->next_sem)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

petrel_sem_t *petrel_sem_find(const char *name)
{
    if (name == NULL)
        return NULL;
    pthread_mutex_lock(&sem_registry_mu);
    petrel_sem_t *s = sem_find_locked(name);
    pthread_mutex_unlock(&sem_registry_mu);
    return s;
}

petrel_sem_t *petrel_sem_declare(const char *name, int64_t limit, int64_t acquire_timeout_ms)
{
    if (name == NULL || name[0] == '\0' || limit < 1)
        return NULL;
    pthread_mutex_lock(&sem_registry_mu);
    petrel_sem_t *s = sem_find_locked(name);
    if (s == NULL) {
        s = petrel_xcalloc(1, sizeof(*s));
        s->name = petrel_xstrdup(name);
        pthread_mutex_init(&s->mu, NULL);
        s->next_sem = sem_registry;
        sem_registry = s;
    }
    pthread_mutex_unlock(&sem_registry_mu);
    struct petrel__waiter *grants[64];
    size_t ngrants = 0;
    pthread_mutex_lock(&s->mu);
    s->limit = limit;
    s->acquire_timeout_ms = acquire_timeout_ms < 0 ? 0 : acquire_timeout_ms;
    /* A raised limit admits queued waiters at once. */
    while (ngrants < sizeof(grants) / sizeof(grants[0]) && s->in_use < s->limit &&
           s->waiters.head != NULL) {
        s->in_use++;
        s->acquired++;
        grants[ngrants++] = petrel__waitq_pop(&s->waiters, s);
    }
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < ngrants; i++)
        petrel__waiter_notify(grants[i]);
    return s;
}

const char *petrel_sem_name(const petrel_sem_t *sem)
{
    return sem->name;
}

void petrel_sem_foreach(void (*cb)(petrel_sem_t *sem, void *arg), void *arg)
{
    pthread_mutex_lock(&sem_registry_mu);
    petrel_sem_t *head = sem_registry;
    pthread_mutex_unlock(&sem_registry_mu);
    /* Entries are only ever prepended, so the list from `head` on is stable. */
    for (petrel_sem_t *s = head; s != NULL; s = s->next_sem)
        cb(s, arg);
}

/* With sem->mu held: a slot is free again. Hand it to the oldest waiter (the
 * count stays, the slot changes owner) or decrement. */
static void sem_pass_on_locked(petrel_sem_t *sem, struct petrel__waiter **grant)
{
    *grant = NULL;
    if (sem->in_use <= sem->limit && sem->waiters.head != NULL)
        *grant = petrel__waitq_pop(&sem->waiters, sem);
    else
        sem->in_use--;
}

static void sem_release_slot(petrel_sem_t *sem)
{
    struct petrel__waiter *grant;
    pthread_mutex_lock(&sem->mu);
    PETREL_ASSERT(sem->in_use > 0);
    sem_pass_on_locked(sem, &grant);
    if (grant != NULL)
        sem->acquired++;
    pthread_mutex_unlock(&sem->mu);
    if (grant != NULL)
        petrel__waiter_notify(grant);
}

/* The fiber defer registered at acquire. */
static void sem_defer_cb(void *arg)
{
    sem_release_slot(arg);
}

int petrel_sem_try_acquire(petrel_sem_t *sem)
{
    PETREL_ASSERT(petrel_fiber_current() != NULL);
    pthread_mutex_lock(&sem->mu);
    /* FIFO: a newcomer never overtakes a queued waiter. */
    if (sem->in_use < sem->limit && sem->waiters.head == NULL) {
        sem->in_use++;
        sem->acquired++;
        pthread_mutex_unlock(&sem->mu);
        (void)petrel_defer(sem_defer_cb, sem);
        return 0;
    }
    sem->rejected++;
    pthread_mutex_unlock(&sem->mu);
    return PETREL_EAGAIN;
}

int petrel_sem_acquire(petrel_sem_t *sem, int64_t timeout_ms)
{
    petrel_fiber_t *f = petrel_fiber_current();
    PETREL_ASSERT(f != NULL); /* awaiting outside a fiber */
    if (f->cancelled)
        return PETREL_ECANCELED;
    pthread_mutex_lock(&sem->mu);
    if (sem->in_use < sem->limit && sem->waiters.head == NULL) {
        sem->in_use++;
        sem->acquired++;
        pthread_mutex_unlock(&sem->mu);
        (void)petrel_defer(sem_defer_cb, sem);
        return 0;
    }
    if (timeout_ms == PETREL_TIMEOUT_DEFAULT)
        timeout_ms = sem->acquire_timeout_ms;
    if (timeout_ms <= 0) {
        sem->rejected++;
        pthread_mutex_unlock(&sem->mu);
        return PETREL_EOVERLOAD;
    }
    int64_t t0 = petrel_now_ns();
    void *got = NULL;
    petrel_fiber_set_await_kind("semaphore");
    int rc = petrel__waitq_wait(&sem->waiters, &sem->mu, timeout_ms, &got);
    if (rc == 0) {
        /* The releaser counted the slot as ours (in_use unchanged, acquired
         * bumped). A grant that raced with our cancellation goes straight on
         * to the next waiter. */
        if (f->cancelled) {
            sem_release_slot(sem);
            pthread_mutex_lock(&sem->mu);
            sem->cancelled++;
            pthread_mutex_unlock(&sem->mu);
            return PETREL_ECANCELED;
        }
        pthread_mutex_lock(&sem->mu);
        sem->wait_ns_total += (uint64_t)(petrel_now_ns() - t0);
        pthread_mutex_unlock(&sem->mu);
        (void)petrel_defer(sem_defer_cb, sem);
        return 0;
    }
    pthread_mutex_lock(&sem->mu);
    if (rc == PETREL_ECANCELED)
        sem->cancelled++;
    else
        sem->rejected++;
    pthread_mutex_unlock(&sem->mu);
    return rc == PETREL_ECANCELED ? PETREL_ECANCELED : PETREL_EOVERLOAD;
}

int petrel_sem_release(petrel_sem_t *sem)
{
    petrel_fiber_t *f = petrel_fiber_current();
    if (f == NULL)
        return PETREL_EINVAL;
    /* The slot is recorded only as the fiber's defer; find the topmost one. */
    for (size_t i = f->ndefers; i-- > 0;)
        if (f->defers[i].cb == sem_defer_cb && f->defers[i].arg == sem)
            return petrel_defer_pop((int)i, true);
    return PETREL_EINVAL;
}

void petrel_sem_stats(petrel_sem_t *sem, petrel_sem_stats_t *out)
{
    pthread_mutex_lock(&sem->mu);
    out->limit = sem->limit;
    out->in_use = sem->in_use;
    out->waiting = (int64_t)sem->waiters.n;
    out->acquired = sem->acquired;
    out->rejected = sem->rejected;
    out->cancelled = sem->cancelled;
    out->wait_ns_total = sem->wait_ns_total;
    pthread_mutex_unlock(&sem->mu);
}

void petrel__sem_configure(const petrel_config_t *cfg)
{
    size_t n = 0;
    const char *const *names = petrel_config_map_names(cfg, "semaphores", &n);
    for (size_t i = 0; i < n; i++) {
        char k1[256], k2[256];
        snprintf(k1, sizeof(k1), "semaphores.%s.limit", names[i]);
        snprintf(k2, sizeof(k2), "semaphores.%s.acquire_timeout_ms", names[i]);
        (void)petrel_sem_declare(names[i], petrel_config_int(cfg, k1), petrel_config_int(cfg, k2));
    }
}
