/*
 * limits_int.h - private: the pieces shared by the process-wide limits
 * (sem.c, ratelimit.c, queue.c, procpool.c, threadpool.c) and the hooks the
 * server calls into them.
 *
 * The cross-worker wait queue below is the one hand-off protocol every
 * process-wide primitive uses to wake a fiber that waits on another worker's
 * loop; docs/internals/limits.md explains why it cannot lose or double-count
 * a grant.
 */
#ifndef PETREL_LIMITS_INT_H
#define PETREL_LIMITS_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "fiber_int.h"
#include "petrel/config.h"
#include "petrel/limits.h"

typedef struct petrel_server petrel_server_t;
typedef struct petrel_app petrel_app_t;
typedef struct petrel_req petrel_req_t;

enum petrel__waiter_state {
    PETREL__W_WAITING = 0, /* queued; only the owner's mutex holder may change it */
    PETREL__W_GRANTED,     /* removed from the queue by a granter; the grant is the fiber's */
};

/**
 * One fiber waiting in a petrel__waitq. Heap-allocated by petrel__waitq_wait.
 * `state`, `value` and the queue links are guarded by the owner's mutex.
 * `delivered` and `orphan` are touched only on the waiter's own loop thread
 * (by the fiber and by the posted wake-up), so they need no lock.
 */
struct petrel__waiter {
    struct petrel__waiter *prev, *next;
    petrel_fiber_t *fiber;  /* immutable once queued */
    petrel__sched_t *sched; /* immutable once queued */
    int state;              /* enum petrel__waiter_state */
    void *value;            /* what the granter handed over (a job, a child...) */
    bool delivered;         /* the wake-up post ran */
    bool orphan;            /* the fiber left; the post frees the waiter */
};

/** A FIFO of waiters, guarded by its owner's mutex. */
struct petrel__waitq {
    struct petrel__waiter *head, *tail;
    size_t n;
};

/**
 * Called with `mu` held: queues the current fiber and parks it (mu released while parked)
 * until a granter pops it, the timeout (ms, >= 0) passes, or the fiber is cancelled.
 * Returns with `mu` NOT held: 0 when granted (*value set to what the granter passed), else
 * PETREL_ETIMEDOUT or PETREL_ECANCELED with the waiter removed. A grant that races with a
 * timeout or cancellation is always taken (0 is returned): the caller decides to keep or pass
 * it on, so it is never lost.
 */
int petrel__waitq_wait(struct petrel__waitq *q, pthread_mutex_t *mu, int64_t timeout_ms,
                       void **value);
/** Called with the owner's mutex held: removes the oldest waiter, marks it granted with
 * `value` and returns it (NULL when empty). After unlocking, call petrel__waiter_notify(). */
struct petrel__waiter *petrel__waitq_pop(struct petrel__waitq *q, void *value);
/** Wakes a popped waiter on its own loop (any thread; never blocks). */
void petrel__waiter_notify(struct petrel__waiter *w);

/* ---- server hooks ---- */

/** Declares the limits' config keys (semaphores.*, rate_limits.*, queue.*, process_pool.*,
 * thread_pool.*) on a new config. */
void petrel__limits_declare(petrel_config_t *cfg);
/** At server start, before any thread exists: applies the config (semaphores, rate limits,
 * queue options), checks every route's max_concurrent / rate_limit names, and forks the
 * process pool. Returns 0, or -1 with one line in err. */
int petrel__limits_start(petrel_app_t *app, int nworkers, char *err, size_t errlen);
/** Runs a route's rate limit and semaphore before its handler, on the request fiber. Returns
 * 0 to run the handler; otherwise the error response (429/503 + Retry-After) has been set and
 * sent and the caller returns. A semaphore slot taken here is released by a fiber defer. */
int petrel__route_limits_enter(petrel_req_t *req);

/* sem.c */
void petrel__sem_configure(const petrel_config_t *cfg);
/* ratelimit.c */
int petrel__rate_configure(const petrel_config_t *cfg, char *err, size_t errlen);
/** The header a limiter is keyed by (borrowed), or NULL. */
const char *petrel__rate_header(const petrel_rate_t *rl);
/** 1 when a limiter is keyed by client address. */
int petrel__rate_keyed_by_client(const petrel_rate_t *rl);
/* queue.c: consumer fibers start and stop with per-worker hooks registered on the app;
 * petrel__queue_stop (control thread, after the request drain) stops taking jobs, logs how
 * many queued jobs are abandoned and sets the deadline running jobs must finish by. */
void petrel__queue_configure(petrel_app_t *app, int nworkers);
void petrel__queue_stop(petrel_server_t *srv, int64_t deadline_ms);
/* procpool.c */
int petrel__procpool_start(const petrel_config_t *cfg, char *err, size_t errlen);
/* threadpool.c */
void petrel__threadpool_configure(const petrel_config_t *cfg);

#endif
