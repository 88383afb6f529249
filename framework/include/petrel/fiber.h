/*
 * petrel/fiber.h - await primitives for code running on a petrel fiber.
 *
 * Every request handler, lifespan hook and child task runs on its own fiber.
 * The functions here suspend the calling fiber (never the thread) until an
 * event, a timeout or cancellation. They must be called on a fiber; calling
 * them elsewhere trips an assertion.
 */
#ifndef PETREL_FIBER_H
#define PETREL_FIBER_H

#include <stdbool.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct petrel_fiber petrel_fiber_t;

/** Events for petrel_wait_fd(). */
enum { PETREL_READABLE = 1, PETREL_WRITABLE = 2 };

/** Returns the fiber the caller runs on, or NULL when not on a fiber. Borrowed. */
PETREL_API petrel_fiber_t *petrel_fiber_current(void);

/**
 * Suspends the calling fiber for `ms` milliseconds (asyncio.sleep).
 * Await: yes. Returns 0 after the delay, PETREL_ECANCELED if the fiber is or
 * becomes cancelled (at once if it already was).
 */
PETREL_API PETREL_AWAIT int petrel_sleep(int64_t ms);

/**
 * Suspends the calling fiber until `fd` is readable and/or writable (`events`
 * is a mask of PETREL_READABLE|PETREL_WRITABLE), for at most `timeout_ms`.
 * The fd is borrowed; it must stay open during the wait.
 * Returns 0 when ready, PETREL_ETIMEDOUT, PETREL_ECANCELED, or PETREL_EINVAL
 * for a bad fd. PETREL_TIMEOUT_DEFAULT means server.io_timeout_ms.
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int petrel_wait_fd(int fd, int events, int64_t timeout_ms);

/**
 * Gives other ready fibers and the event loop a turn, then resumes.
 * Returns 0, or PETREL_ECANCELED.
 */
PETREL_API PETREL_AWAIT int petrel_yield(void);

/**
 * Registers `cb(arg)` to run when the current fiber finishes, on every exit
 * path (return, failure, cancellation, timeout). Defers run in reverse order
 * of registration. Returns a handle for petrel_defer_cancel(), or -1 when
 * not on a fiber (the callback is then run at once). Defers must not await.
 */
PETREL_API int petrel_defer(void (*cb)(void *arg), void *arg);
/** Runs (run=true) or drops the defer `handle` now. Returns 0 or PETREL_EINVAL. */
PETREL_API int petrel_defer_pop(int handle, bool run);

/** True when the calling fiber has been cancelled. */
PETREL_API bool petrel_cancelled(void);

/**
 * Cancels `f`: its current await returns PETREL_ECANCELED and so does every
 * later one. Only valid on the fiber's own worker thread.
 */
PETREL_API void petrel_fiber_cancel(petrel_fiber_t *f);

/**
 * Describes what the calling fiber is about to wait on ("db", "http", ...)
 * for the task monitor; `what` must be a string literal.
 */
PETREL_API void petrel_fiber_set_await_kind(const char *what);

/**
 * Records `file`:`line` as the source of the calling fiber's next await, for the task
 * monitor (GET /debug/tasks), unless one is already recorded: the outermost call site
 * wins and the record is cleared when the await returns. Use it through
 * PETREL_AWAIT_HERE() in a macro that wraps an await function, as done below for
 * petrel_sleep/petrel_wait_fd/petrel_yield; `file` must be a string literal. No-op off a
 * fiber. Await: no. Errors: none.
 */
PETREL_API void petrel_fiber_await_site(const char *file, int line);
/** Records the caller's file:line as the next await's source (see petrel_fiber_await_site). */
#define PETREL_AWAIT_HERE() petrel_fiber_await_site(__FILE__, __LINE__)

/* The awaits above record their call site (a function-like macro: taking the
 * function's address still gives the function). */
#define petrel_sleep(ms) (PETREL_AWAIT_HERE(), (petrel_sleep)(ms))
#define petrel_wait_fd(fd, events, timeout_ms)                                                     \
    (PETREL_AWAIT_HERE(), (petrel_wait_fd)((fd), (events), (timeout_ms)))
#define petrel_yield() (PETREL_AWAIT_HERE(), (petrel_yield)())

#ifdef __cplusplus
}
#endif
#endif
