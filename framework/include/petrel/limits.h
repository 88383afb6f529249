/*
 * petrel/limits.h - process-wide limits and CPU work: named semaphores
 * (max_concurrent), token-bucket rate limiters, the process pool for CPU-bound
 * jobs and the thread pool for blocking calls.
 *
 * Every limit here holds for the whole process whatever the worker count: a
 * semaphore of 3 admits 3 requests in total, not 3 per worker. Waiters are
 * served in FIFO order and woken on their own worker's loop.
 *
 * Objects are created once (from the config at server start, or in code with
 * the _declare functions) and live until the process exits: pointers to them
 * are borrowed and stay valid for the process lifetime.
 */
#ifndef PETREL_LIMITS_H
#define PETREL_LIMITS_H

#include <stdbool.h>

#include <jansson.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* semaphores                                                          */

typedef struct petrel_sem petrel_sem_t;

/** Counters of one semaphore (a snapshot). */
typedef struct petrel_sem_stats {
    int64_t limit;
    int64_t in_use;         /**< slots held now */
    int64_t waiting;        /**< fibers queued for a slot now */
    uint64_t acquired;      /**< slots granted, total */
    uint64_t rejected;      /**< acquires that failed (timeout or try_acquire), total */
    uint64_t cancelled;     /**< waits ended by cancellation, total */
    uint64_t wait_ns_total; /**< time spent queued by granted acquires, total */
} petrel_sem_stats_t;

/**
 * Declares (or re-configures) semaphore `name` with `limit` slots and a default acquire
 * timeout. Config sections `semaphores.<name>.limit` / `.acquire_timeout_ms` are declared this
 * way at server start. Changing the limit of a live semaphore takes effect for later acquires.
 * `name` is copied. Returns the semaphore (borrowed, process lifetime), or NULL when
 * limit < 1 or name is empty.
 */
PETREL_API petrel_sem_t *petrel_sem_declare(const char *name, int64_t limit,
                                            int64_t acquire_timeout_ms);
/** The semaphore called `name`, or NULL. Borrowed (process lifetime). */
PETREL_API petrel_sem_t *petrel_sem_find(const char *name);

/**
 * Takes a slot, waiting in FIFO order up to `timeout_ms` (PETREL_TIMEOUT_DEFAULT: the
 * semaphore's acquire_timeout_ms; 0: do not wait). The slot is released when the calling
 * fiber finishes, on every exit path (cancellation included), or earlier with
 * petrel_sem_release(). Must run on a fiber.
 * Await: yes. Errors: PETREL_EOVERLOAD when no slot freed up in time (answered 503),
 * PETREL_ECANCELED when the fiber is or becomes cancelled.
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_sem_acquire(petrel_sem_t *sem,
                                                                int64_t timeout_ms);
/** Takes a slot only if one is free at once (never suspends); released as with
 * petrel_sem_acquire. Must run on a fiber. Returns 0 or PETREL_EAGAIN. */
PETREL_API PETREL_NODISCARD int petrel_sem_try_acquire(petrel_sem_t *sem);
/** Gives back the most recent slot of `sem` the calling fiber holds (and drops its defer).
 * The slot goes to the oldest waiter, if any. Returns 0, or PETREL_EINVAL when the fiber
 * holds no slot of `sem`. */
PETREL_API int petrel_sem_release(petrel_sem_t *sem);
/** Fills `out` with a snapshot of the counters. */
PETREL_API void petrel_sem_stats(petrel_sem_t *sem, petrel_sem_stats_t *out);
/** The semaphore's name (borrowed). */
PETREL_API const char *petrel_sem_name(const petrel_sem_t *sem);
/** Calls cb for every declared semaphore (for /metrics). */
PETREL_API void petrel_sem_foreach(void (*cb)(petrel_sem_t *sem, void *arg), void *arg);

/* ------------------------------------------------------------------ */
/* rate limiters (token buckets)                                       */

typedef struct petrel_rate petrel_rate_t;

/** Counters of one rate limiter (a snapshot). */
typedef struct petrel_rate_stats {
    double rate, burst;
    uint64_t allowed;   /**< tokens granted, total */
    uint64_t limited;   /**< requests refused (429) or waits that timed out, total */
    uint64_t keys;      /**< buckets held now (1 for a global limiter) */
    uint64_t evictions; /**< least recently used buckets dropped to stay under max_keys */
} petrel_rate_stats_t;

/**
 * Declares (or re-configures) rate limiter `name`: a token bucket refilled at `rate` tokens
 * per second holding at most `burst` tokens, starting full. `key` chooses the buckets:
 * "global" (one for the process), "client" (one per peer address) or "header:NAME" (one per
 * value of request header NAME, e.g. "header:X-API-Key"; requests without it share one).
 * At most `max_keys` keyed buckets are kept; the least recently used is evicted first.
 * Config: rate_limits.<name>.rate / .burst / .key / .max_keys. Strings are copied.
 * Returns the limiter (borrowed, process lifetime) or NULL for bad arguments.
 */
PETREL_API petrel_rate_t *petrel_rate_declare(const char *name, double rate, double burst,
                                              const char *key, int64_t max_keys);
/** The rate limiter called `name`, or NULL. Borrowed (process lifetime). */
PETREL_API petrel_rate_t *petrel_rate_find(const char *name);
/**
 * Takes one token from the bucket of `key` (borrowed; NULL: the shared bucket) if there is
 * one now; never suspends. Returns 0, or PETREL_ERATELIMIT and sets *retry_after_ms (may be
 * NULL) to the milliseconds until a token is available.
 */
PETREL_API PETREL_NODISCARD int petrel_rate_try_acquire(petrel_rate_t *rl, const char *key,
                                                        int64_t *retry_after_ms);
/**
 * Waits for a token of `key`'s bucket (the seed's RateLimiter for outbound calls): reserves
 * the next token and sleeps until it is due. When the token would come later than
 * `timeout_ms` (PETREL_TIMEOUT_DEFAULT: 30 s), returns PETREL_ERATELIMIT at once without
 * waiting. A cancelled wait gives its reservation back. Must run on a fiber.
 * Await: yes. Errors: PETREL_ERATELIMIT, PETREL_ECANCELED.
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_rate_acquire(petrel_rate_t *rl, const char *key,
                                                                 int64_t timeout_ms);
/** Fills `out` with a snapshot of the counters. */
PETREL_API void petrel_rate_stats(petrel_rate_t *rl, petrel_rate_stats_t *out);
/** The limiter's name (borrowed). */
PETREL_API const char *petrel_rate_name(const petrel_rate_t *rl);

/* ------------------------------------------------------------------ */
/* process pool                                                        */

/**
 * A function run in a pool child: reads `in` (borrowed, `in_len` bytes) and sets *out to a
 * malloc'd result of *out_len bytes (owned by the pool, which frees it). Returns 0, or a
 * negative code which the caller receives as PETREL_EIO with the message "job failed: <code>".
 * It runs in a single-threaded child process: it may block and burn CPU, but must not use
 * the parent's sockets, loops or locks.
 */
typedef int (*petrel_proc_fn)(const void *in, size_t in_len, void **out, size_t *out_len);

/** Counters of the process pool (a snapshot). */
typedef struct petrel_procpool_stats {
    int64_t size;          /**< configured children */
    int64_t alive;         /**< children running now */
    int64_t busy;          /**< children running a job now */
    int64_t waiting;       /**< callers queued for a free child */
    uint64_t jobs;         /**< jobs finished (any outcome), total */
    uint64_t failed;       /**< jobs failed (timeout, crash, error), total */
    uint64_t timeouts;     /**< jobs killed past their timeout, total */
    uint64_t crashes;      /**< children that died mid-job, total */
    uint64_t restarts;     /**< replacement children started, total */
    uint64_t rejected;     /**< calls refused because the backlog was full, total */
    uint64_t job_ns_total; /**< summed job durations (successful jobs) */
} petrel_procpool_stats_t;

/**
 * Registers `fn` under `name` (copied) for pool children. Call it before the server starts:
 * children are forked then and see only what was registered by that time.
 * Returns 0, PETREL_EINVAL (bad or duplicate name) or PETREL_EPERM (pool already started).
 */
PETREL_API PETREL_NODISCARD int petrel_procpool_register(const char *name, petrel_proc_fn fn);
/**
 * Runs registered function `name` with `in` in a pool child and awaits its result; FIFO when
 * every child is busy (at most process_pool.backlog callers wait). A job still running after
 * `timeout_ms` (PETREL_TIMEOUT_DEFAULT: process_pool.job_timeout_ms) has its child killed and
 * replaced. On success *out is a malloc'd buffer (owned: free()) of *out_len bytes.
 * Await: yes. Errors: PETREL_EOVERLOAD (no pool, or the backlog is full: 503), PETREL_ETIMEDOUT
 * (job overran; its child was killed), PETREL_EIO (the child crashed or the function failed),
 * PETREL_ENOENT (unknown name), PETREL_ETOOBIG (over process_pool.max_msg_bytes),
 * PETREL_ECANCELED (the caller was cancelled; a running job's child is killed and replaced).
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_procpool_call(const char *name, const void *in,
                                                                  size_t in_len, void **out,
                                                                  size_t *out_len,
                                                                  int64_t timeout_ms);
/** petrel_procpool_call with JSON in (borrowed) and out (*out: new reference, owned). A result
 * that is not JSON fails with PETREL_EIO. Same await, timeout and errors. */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int
petrel_procpool_call_json(const char *name, const json_t *in, json_t **out, int64_t timeout_ms);
/** Fills `out` with a snapshot of the counters. */
PETREL_API void petrel_procpool_stats(petrel_procpool_stats_t *out);
/** Pids of the live children (for tests and operators): fills up to `max`, returns how many. */
PETREL_API size_t petrel_procpool_pids(int *pids, size_t max);

/* ------------------------------------------------------------------ */
/* thread pool                                                         */

/** A blocking function run on a pool thread; its return value is handed back. */
typedef void *(*petrel_thread_fn)(void *arg);

/** Counters of the thread pool (a snapshot). */
typedef struct petrel_threadpool_stats {
    int64_t size;          /**< threads */
    int64_t busy;          /**< threads running a job now */
    int64_t queued;        /**< jobs waiting for a thread now */
    uint64_t jobs;         /**< jobs finished, total */
    uint64_t abandoned;    /**< jobs whose caller stopped waiting (timeout, cancel), total */
    uint64_t job_ns_total; /**< summed job durations */
} petrel_threadpool_stats_t;

/**
 * Runs fn(arg) on one of thread_pool.size threads (asyncio.to_thread) and awaits it; the loop
 * keeps serving meanwhile. On success stores fn's return value in *result (may be NULL).
 * On timeout or cancellation the caller returns at once while fn runs to completion in the
 * background: `arg` must then stay valid until fn returns (pass heap data fn frees itself),
 * and the result is dropped. `timeout_ms`: PETREL_TIMEOUT_DEFAULT is server.io_timeout_ms.
 * Await: yes. Errors: PETREL_ETIMEDOUT, PETREL_ECANCELED.
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_to_thread(petrel_thread_fn fn, void *arg,
                                                              void **result, int64_t timeout_ms);
/** Fills `out` with a snapshot of the counters. */
PETREL_API void petrel_threadpool_stats(petrel_threadpool_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
