/*
 * petrel/queue.h - the process's bounded work queue: jobs put by handlers and
 * run by consumer fibers, retried with exponential backoff and jitter, then
 * dead-lettered; every job has an id and a status readable while it is kept.
 *
 * The queue is in memory and not durable: jobs still queued when the process
 * stops are lost (their number is logged). Configured by queue.maxsize,
 * queue.workers, queue.retry.{base_ms,max_ms,max_attempts} and
 * queue.max_jobs_kept.
 */
#ifndef PETREL_QUEUE_H
#define PETREL_QUEUE_H

#include <jansson.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Length of a job id buffer: a UUID in text plus NUL. */
#define PETREL_JOB_ID_LEN 37

typedef struct petrel_job petrel_job_t;

/**
 * A job handler: runs on a consumer fiber (it may await). Returns 0 on success (after
 * petrel_job_set_result, optionally) or a negative code to have the job retried; the message
 * given to petrel_job_set_error (or petrel_strerror(code)) is kept as the job's last error.
 */
typedef int (*petrel_job_cb)(petrel_job_t *job, void *arg);

/** Counters of the work queue (a snapshot). */
typedef struct petrel_queue_stats {
    int64_t maxsize;
    int64_t depth;         /**< jobs queued or waiting for a retry now */
    int64_t running;       /**< jobs running now */
    int64_t put_waiting;   /**< producers waiting for space now */
    int64_t consumers;     /**< consumer fibers alive */
    uint64_t enqueued;     /**< jobs accepted, total */
    uint64_t rejected;     /**< puts refused (full, or timed out waiting), total */
    uint64_t succeeded;    /**< total */
    uint64_t retries;      /**< failed attempts that were retried, total */
    uint64_t dead_letters; /**< jobs failed after max_attempts, total */
    uint64_t job_ns_total; /**< summed durations of attempts */
} petrel_queue_stats_t;

/**
 * Registers handler `cb(job, arg)` for jobs of `type` (copied). Call before serving.
 * Returns 0 or PETREL_EINVAL (empty or duplicate type).
 */
PETREL_API PETREL_NODISCARD int petrel_queue_register(const char *type, petrel_job_cb cb,
                                                      void *arg);
/**
 * Queues a job of `type` with `payload` (borrowed; deep-copied) if there is room now; never
 * suspends. On success writes the job's id into `id`.
 * Errors: PETREL_EAGAIN (queue full: answer 503 + Retry-After), PETREL_ENOENT (no handler
 * for type), PETREL_EOVERLOAD (the queue is stopping).
 */
PETREL_API PETREL_NODISCARD int petrel_queue_try_put(const char *type, const json_t *payload,
                                                     char id[PETREL_JOB_ID_LEN]);
/**
 * Like petrel_queue_try_put but waits for room up to `timeout_ms` (backpressure; FIFO among
 * waiting producers). PETREL_TIMEOUT_DEFAULT means 1000 ms. Must run on a fiber.
 * Await: yes. Errors: PETREL_ETIMEDOUT (still full), PETREL_ECANCELED, PETREL_ENOENT,
 * PETREL_EOVERLOAD (stopping).
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_queue_put(const char *type,
                                                              const json_t *payload,
                                                              char id[PETREL_JOB_ID_LEN],
                                                              int64_t timeout_ms);
/**
 * The status of job `id` as JSON (owned: json_decref): {"id","type","status","attempts"} plus
 * "next_attempt_in_ms" while retrying, "result" once succeeded, "error" once failed (and the
 * last error while retrying). status is one of "queued", "running", "retrying", "succeeded",
 * "failed". Returns 0 or PETREL_ENOTFOUND (unknown, or dropped from the bounded table).
 */
PETREL_API PETREL_NODISCARD int petrel_queue_job_status(const char *id, json_t **out);

/** The job's payload (borrowed; valid during the handler). */
PETREL_API const json_t *petrel_job_payload(const petrel_job_t *job);
/** The job's id and type (borrowed). */
PETREL_API const char *petrel_job_id(const petrel_job_t *job);
PETREL_API const char *petrel_job_type(const petrel_job_t *job);
/** The current attempt, 1-based. */
PETREL_API int petrel_job_attempt(const petrel_job_t *job);
/** Sets the result reported once the job succeeds (steals `result`). */
PETREL_API void petrel_job_set_result(petrel_job_t *job, json_t *result);
/** Sets the error message of a failing attempt (copied). */
PETREL_API void petrel_job_set_error(petrel_job_t *job, const char *msg);

/** Fills `out` with a snapshot of the counters. */
PETREL_API void petrel_queue_stats(petrel_queue_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
