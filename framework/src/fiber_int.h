/*
 * fiber_int.h - private: fibers, the per-thread scheduler, timers and the
 * await protocol every suspending primitive is built on.
 *
 * One scheduler per loop thread. Fibers are resumed only from the loop's own
 * context (never from another fiber); a fiber that wants another to run puts
 * it on the ready queue. An await "parks" the current fiber; whoever completes
 * the wait calls petrel__fiber_wake(), which queues it to run again.
 */
#ifndef PETREL_FIBER_INT_H
#define PETREL_FIBER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "petrel/fiber.h"

/* Hand-written switch on x86-64 and AArch64; ucontext elsewhere or when forced. */
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(PETREL_FIBER_UCONTEXT)
#define PETREL_CTX_ASM 1
#endif

typedef struct petrel__sched petrel__sched_t;
typedef struct petrel__timer petrel__timer_t;
typedef void (*petrel__timer_cb)(petrel__timer_t *t);

/** A one-shot timer on the thread's scheduler (min-heap, nanosecond deadlines). */
struct petrel__timer {
    int64_t deadline_ns;
    size_t idx; /* position in the heap; SIZE_MAX when not armed */
    petrel__timer_cb cb;
    void *data;
};

typedef void (*petrel__fiber_fn)(void *arg);

/* Distinct await kinds a fiber's wait time is split into; later kinds add to the last. */
#define PETREL__WAIT_KINDS 8

struct petrel__defer {
    void (*cb)(void *arg);
    void *arg;
};

enum petrel__fiber_state {
    PETREL__FIBER_IDLE = 0, /* in the pool */
    PETREL__FIBER_READY,    /* queued to run */
    PETREL__FIBER_RUNNING,
    PETREL__FIBER_PARKED,
    PETREL__FIBER_DONE,
};

struct petrel_fiber {
    void *sp; /* saved stack pointer while not running */
    void *stack_lo;
    size_t stack_size;
    petrel__sched_t *sched;
    enum petrel__fiber_state state;
    bool cancelled;
    int wake_rc;
    petrel__fiber_fn fn;
    void *arg;
    petrel__timer_t timeout;
    struct petrel_fiber *next_ready; /* ready queue link */
    struct petrel_fiber *next_free;  /* pool link */
    struct petrel__defer *defers;
    size_t ndefers, defers_cap;
    void *user; /* owner data: the request for request fibers */
    /* Called the first time the fiber parks: lets the owner set up watches that
     * only matter for fibers that wait (e.g. client-disconnect detection). */
    void (*first_park_cb)(petrel_fiber_t *f);
    bool parked_once;
    const char *await_kind; /* what the fiber waits on ("sleep", "fd", ...) */
    /* Where the current await was called from (PETREL_AWAIT_HERE); NULL when unknown. */
    const char *await_file;
    int await_line;
    /* Time accounting for metrics, Server-Timing, the stall detector and the task monitor:
     * two clock reads per run slice. */
    int64_t slice_ns;  /* when the current run slice began */
    int64_t run_ns;    /* sum of finished run slices */
    int64_t parked_ns; /* when the fiber last switched out (its wait began) */
    size_t nwaits;
    struct petrel__wait_acc {
        const char *kind; /* static string: "sleep", "db", "queued", ... */
        int64_t ns;
    } waits[PETREL__WAIT_KINDS];
    int64_t started_ns;
    uint64_t id;
    void *asan_fake_stack;
    void *uctx; /* ucontext_t*, used by the ucontext fallback only */
};

/* ---- scheduler (one per loop thread) ---- */

/** Creates the calling thread's scheduler. `stack_size` bytes per fiber stack (rounded up to
 * pages, plus a guard page); at most `pool_max` idle stacks are kept. */
petrel__sched_t *petrel__sched_new(size_t stack_size, size_t pool_max);
/** Detaches the scheduler from its loop (posts are dropped from now on, its loop sockets are
 * closed). Call on the loop's own thread before the loop is destroyed. */
void petrel__sched_detach(petrel__sched_t *s);
/** Frees the scheduler (detaching it first if needed); every fiber must be done. After
 * petrel__sched_detach() this may run on any thread, once no other thread can still post. */
void petrel__sched_free(petrel__sched_t *s);
/** The calling thread's scheduler, or NULL. */
petrel__sched_t *petrel__sched_current(void);
/** Binds the scheduler's fd waits to an h2o evloop (struct st_h2o_evloop_t *). */
void petrel__sched_attach_loop(petrel__sched_t *s, void *h2o_loop);
/**
 * Runs cb(arg) on the thread that owns scheduler `s`, from its loop context (thread-safe; the
 * call never blocks). Used to wake fibers of another worker (process-wide semaphores, queues,
 * pools). Requires the scheduler to be attached to a loop. The callback must not assume the
 * fiber it targets still waits: check a generation or state first.
 */
void petrel__sched_post(petrel__sched_t *s, void (*cb)(void *arg), void *arg);
/** The scheduler a fiber belongs to. */
static inline petrel__sched_t *petrel__fiber_sched(const petrel_fiber_t *f)
{
    return f->sched;
}

/** Milliseconds until the earliest timer (0 when fibers are ready), capped at max_ms. */
int32_t petrel__sched_wait_ms(petrel__sched_t *s, int32_t max_ms);
/** Fires due timers and runs every ready fiber until none is ready; a fiber that yields
 * during the call runs again only at the next call. Returns how many ran. */
size_t petrel__sched_run(petrel__sched_t *s);
/**
 * Stall detection: a run slice (resume to the next await or the end) of at least `ns`
 * nanoseconds (0 = off) calls cb(f, slice_ns) on the fiber, before it switches out, so the
 * owner can log its request while it still exists.
 */
void petrel__sched_set_slow(petrel__sched_t *s, int64_t ns,
                            void (*cb)(petrel_fiber_t *f, int64_t slice_ns));
/** Time spent running fibers since the last call (the loop iteration's busy time). */
int64_t petrel__sched_take_busy_ns(petrel__sched_t *s);
/** Time the fiber has run so far, the current slice included (call it on the fiber). */
int64_t petrel__fiber_run_ns(const petrel_fiber_t *f, int64_t now_ns);
/** Live (not pooled) fibers, idle pooled stacks. */
size_t petrel__sched_live(const petrel__sched_t *s);
size_t petrel__sched_pooled(const petrel__sched_t *s);

/* ---- fibers ---- */

/** Takes a fiber from the pool (or makes one) that will run fn(arg). Aborts on OOM. */
petrel_fiber_t *petrel__fiber_new(petrel__sched_t *s, petrel__fiber_fn fn, void *arg);
/** petrel__fiber_new with its creation time given (a clock read the caller already made). */
petrel_fiber_t *petrel__fiber_new_at(petrel__sched_t *s, petrel__fiber_fn fn, void *arg,
                                     int64_t now);
/** Runs f now until it parks or finishes. Only from loop context (not from a fiber). */
void petrel__fiber_resume(petrel_fiber_t *f);
/** The same with the clock already read (`now`, petrel_now_ns()): a clock read costs
 * tens of ns in a VM, and a request's first run starts right after the one on_req
 * made. */
void petrel__fiber_resume_at(petrel_fiber_t *f, int64_t now);
/** Queues f to run (from anywhere on the thread). */
void petrel__fiber_schedule(petrel_fiber_t *f);
/**
 * Parks the current fiber until petrel__fiber_wake(), the timeout (ms; <0: none) or
 * cancellation. Returns the wake code, PETREL_ETIMEDOUT or PETREL_ECANCELED. Returns
 * PETREL_ECANCELED at once when already cancelled.
 */
int petrel__fiber_park(int64_t timeout_ms);
/** Wakes a parked fiber with rc; no-op when it is not parked. */
void petrel__fiber_wake(petrel_fiber_t *f, int rc);

/* ---- fd watches on the scheduler's epoll ---- */

/** A watch on an fd: cb runs in loop context with the epoll events that fired. */
typedef struct petrel__fdwatch petrel__fdwatch_t;
struct petrel__fdwatch {
    void (*cb)(petrel__fdwatch_t *w, uint32_t events);
    void *data;
    int fd;
};
/** Adds a watch for epoll `events` (EPOLLIN, EPOLLRDHUP, EPOLLONESHOT, ...). Returns 0 or -errno.
 */
int petrel__fdwatch_add(petrel__sched_t *s, petrel__fdwatch_t *w, int fd, uint32_t events);
/** Removes a watch added with petrel__fdwatch_add (no-op when fd is -1). */
void petrel__fdwatch_del(petrel__sched_t *s, petrel__fdwatch_t *w);

/* ---- timers ---- */
void petrel__timer_init(petrel__timer_t *t, petrel__timer_cb cb, void *data);
/** Arms (or re-arms) t to fire after `ms` on the calling thread's scheduler. */
void petrel__timer_start(petrel__sched_t *s, petrel__timer_t *t, int64_t ms);
/** Starts t to fire ms after from_ns (a petrel_now_ns() reading the caller already has). */
void petrel__timer_start_at(petrel__sched_t *s, petrel__timer_t *t, int64_t from_ns, int64_t ms);
void petrel__timer_stop(petrel__sched_t *s, petrel__timer_t *t);
static inline bool petrel__timer_armed(const petrel__timer_t *t)
{
    return t->idx != SIZE_MAX;
}

/* ---- low level switch (arch/ or the ucontext fallback) ---- */
void petrel__ctx_switch(void **save_sp, void *load_sp);

/** Default timeout for fd waits (server.io_timeout_ms), set by the server. */
extern int64_t petrel__io_timeout_ms;

/**
 * True when the current fiber serves an HTTP/1 request (as its handler or a child task)
 * whose client has hung up; the request is then cancelled, as the loop's hang-up watch
 * would do a moment later. One poll(2): for callers about to spend something nobody may
 * wait for any more, such as a new upstream connection (server.c).
 */
bool petrel__fiber_client_gone(void);

#endif
