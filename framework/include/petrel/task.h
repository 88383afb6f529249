/*
 * petrel/task.h - concurrent child tasks within a request: spawn, gather
 * (asyncio.gather(return_exceptions=True)), task groups (asyncio.TaskGroup),
 * wait_for and bounded fan-out.
 *
 * A child task runs on its own fiber on the worker that serves its request. It
 * never outlives the request: when the request's handler returns (or is
 * cancelled), every unfinished child is cancelled, and the request's memory
 * stays valid until the last child has finished. Task handles, their messages
 * and the groups are "arena": they live as long as the request; never free them.
 */
#ifndef PETREL_TASK_H
#define PETREL_TASK_H

#include <stdbool.h>

#include <jansson.h>

#include "common.h"
#include "route.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct petrel_task petrel_task_t;
typedef struct petrel_group petrel_group_t;

/**
 * A task body: runs on the child's fiber and may await. It returns a new JSON
 * reference (the result; the task steals it; NULL means JSON null), or the value
 * of petrel_task_fail() to fail. `arg` is whatever was given to the spawn.
 */
typedef json_t *(*petrel_task_fn)(petrel_task_t *t, void *arg);

/** Live children a request may have at once unless petrel_task_limit() says otherwise. */
#define PETREL_TASKS_PER_REQUEST 256

/**
 * Starts fn(t, arg) on a new fiber of the calling worker, as a child of `req`. The child
 * starts running at the caller's next await. Must be called on a fiber of the request
 * (its handler or one of its tasks). Never NULL: when the request already has its cap
 * of live children, the task is returned already failed with PETREL_EOVERLOAD; when the
 * caller is cancelled, with PETREL_ECANCELED. Arena (lives as long as the request).
 */
PETREL_API petrel_task_t *petrel_spawn(petrel_req_t *req, petrel_task_fn fn, void *arg);

/** Sets the cap on live (unfinished) children of `req` (default PETREL_TASKS_PER_REQUEST). */
PETREL_API void petrel_task_limit(petrel_req_t *req, size_t max_live);

/**
 * For use inside a task body: records `code` (a negative PETREL_E*) and a printf message as
 * the task's failure and returns NULL, so that a body can `return petrel_task_fail(...)`.
 * A NULL fmt uses petrel_strerror(code). The message is copied into the request arena.
 */
PETREL_API json_t *petrel_task_fail(petrel_task_t *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** The request a task belongs to. Borrowed. */
PETREL_API petrel_req_t *petrel_task_req(petrel_task_t *t);
/** True once the task finished (succeeded, failed or was cancelled). */
PETREL_API bool petrel_task_done(const petrel_task_t *t);
/** 0 when the task succeeded; its failure code otherwise (PETREL_ECANCELED when it was
 * cancelled, PETREL_ETIMEDOUT when a join's timeout cancelled it, PETREL_EAGAIN while it
 * still runs). */
PETREL_API int petrel_task_error(const petrel_task_t *t);
/** The failure message (arena), or NULL when the task succeeded or still runs. */
PETREL_API const char *petrel_task_message(const petrel_task_t *t);
/** The task's result, borrowed (owned by the task until the request ends); NULL unless it
 * succeeded. */
PETREL_API json_t *petrel_task_result(const petrel_task_t *t);
/** A new reference: the result when the task succeeded, else
 * {"error": message, "code": "PETREL_E..."}. */
PETREL_API json_t *petrel_task_json_or_error(const petrel_task_t *t);
/** Cancels a running task: its current and later awaits return PETREL_ECANCELED. Its
 * error becomes PETREL_ECANCELED at once. No-op when already done. */
PETREL_API void petrel_task_cancel(petrel_task_t *t);

/**
 * Waits until every task in `tasks` (borrowed array of `n`) has finished, keeping each
 * result or error (asyncio.gather with return_exceptions=True).
 * Await: yes, at most `timeout_ms` (< 0 or PETREL_TIMEOUT_DEFAULT: no extra deadline; the
 * request's own timeout still applies). On timeout or cancellation of the caller, the
 * unfinished tasks are cancelled and marked PETREL_ETIMEDOUT / PETREL_ECANCELED; the
 * finished ones keep their results.
 * Returns 0 when all finished (whatever their outcome), PETREL_ETIMEDOUT, or
 * PETREL_ECANCELED.
 */
PETREL_API PETREL_AWAIT int petrel_gather(petrel_task_t *const *tasks, size_t n,
                                          int64_t timeout_ms);

/**
 * Creates a task group for `req` (asyncio.TaskGroup): the first child of the group that
 * fails cancels all its siblings at once. Arena.
 */
PETREL_API petrel_group_t *petrel_group_new(petrel_req_t *req);
/** Spawns a child in group `g` (see petrel_spawn). A group that already failed returns a
 * task failed with PETREL_ECANCELED. Arena. */
PETREL_API petrel_task_t *petrel_group_spawn(petrel_group_t *g, petrel_task_fn fn, void *arg);
/**
 * Waits for every child of `g`. Await: yes, at most `timeout_ms` (< 0: no extra deadline).
 * Returns 0 when all succeeded. On the first failure returns that task's code at once
 * (its siblings are already cancelled; they finish in the background, releasing their
 * resources). On timeout or cancellation of the caller, cancels every child and returns
 * PETREL_ETIMEDOUT / PETREL_ECANCELED. petrel_group_failed() names the failed task.
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_group_wait(petrel_group_t *g,
                                                               int64_t timeout_ms);
/** The child whose failure ended the group, or NULL. Borrowed. */
PETREL_API petrel_task_t *petrel_group_failed(const petrel_group_t *g);
/** The i-th child of `g` in spawn order, or NULL past the end. Borrowed. */
PETREL_API petrel_task_t *petrel_group_task(const petrel_group_t *g, size_t i);
/** Number of children spawned in `g`. */
PETREL_API size_t petrel_group_size(const petrel_group_t *g);

/**
 * asyncio.wait_for: runs fn(t, arg) as a child and waits at most `timeout_ms` for it. When
 * the deadline passes the child is cancelled (its awaits return PETREL_ECANCELED and release
 * what they hold) and PETREL_ETIMEDOUT is returned at once.
 * `*out` (may be NULL) receives a new reference to the result on success; untouched on error.
 * Await: yes. Returns 0, the child's failure code, PETREL_ETIMEDOUT or PETREL_ECANCELED.
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int
petrel_wait_for(petrel_req_t *req, petrel_task_fn fn, void *arg, int64_t timeout_ms, json_t **out);

/**
 * Bounded fan-out: runs fn(t, args[i]) for i in [0, n) with at most `k` children in flight
 * at once (the seed's "1000 URLs, 20 at a time"), starting the next as soon as one finishes.
 * `out` (borrowed array of n) receives every task handle, in order, with gather semantics:
 * each keeps its result or error. `args` is borrowed; args[i] is passed as is.
 * Await: yes, at most `timeout_ms` overall (< 0: none); on timeout or cancellation the
 * running children are cancelled and those not yet started are marked failed with the same
 * code. Returns 0, PETREL_ETIMEDOUT, PETREL_ECANCELED, or PETREL_EINVAL (k == 0).
 */
PETREL_API PETREL_AWAIT int petrel_map_bounded(petrel_req_t *req, size_t n, size_t k,
                                               petrel_task_fn fn, void *const *args,
                                               petrel_task_t **out, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
