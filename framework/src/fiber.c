/*
 * fiber.c - fibers and their per-thread scheduler: stacks (mmap'd, guard
 * page, pooled), the context switch, the ready queue, a timer heap with
 * nanosecond deadlines, parking/waking, cancellation, defers, and the public
 * await primitives (sleep, wait for an fd, yield).
 *
 * fd waits go through one epoll instance per scheduler, itself watched by the
 * h2o loop as an ordinary socket: this keeps petrel independent of h2o's
 * socket internals and costs two epoll_ctl calls per wait.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#if !defined(__x86_64__) && !defined(__aarch64__) || defined(PETREL_FIBER_UCONTEXT)
#include <ucontext.h>
#endif

#include <h2o.h>

#include "fiber_int.h"
#include "petrel/fiber.h"

#ifdef PETREL_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* The public header wraps these in call-site-recording macros; define the functions. */
#undef petrel_sleep
#undef petrel_wait_fd
#undef petrel_yield

int64_t petrel__io_timeout_ms = 30000;

struct petrel__sched {
    petrel_fiber_t *current;
    void *loop_sp; /* the loop context's stack pointer while a fiber runs */
    petrel_fiber_t *ready_head, *ready_tail;
    /* Fibers that yielded: they rejoin the ready queue at the next petrel__sched_run, after
     * the loop has polled, so a fiber yielding in a loop cannot starve I/O and timers. */
    petrel_fiber_t *yield_head, *yield_tail;
    petrel__timer_t **heap;
    size_t heap_n, heap_cap;
    petrel_fiber_t *pool;
    size_t pool_n, pool_max, live;
    size_t stack_size, page;
    uint64_t next_id;
    int epfd;              /* aux epoll for fd waits, -1 until first use */
    h2o_socket_t *ep_sock; /* ep fd wrapped for the h2o loop */
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue; /* cross-thread posts */
    h2o_multithread_receiver_t receiver;
    pthread_mutex_t post_mu; /* guards posting against the queue's teardown */
    bool posts_open;
    int64_t busy_ns; /* time running fibers since petrel__sched_take_busy_ns */
    int64_t slow_ns; /* stall detector threshold; 0 = off */
    void (*slow_cb)(petrel_fiber_t *f, int64_t slice_ns);
    const void *asan_loop_bottom; /* loop stack bounds, learnt on first switch */
    size_t asan_loop_size;
#if !defined(PETREL_CTX_ASM)
    ucontext_t loop_uctx;
#endif
};

static __thread petrel__sched_t *tl_sched;

struct post_msg {
    h2o_multithread_message_t super;
    void (*cb)(void *arg);
    void *arg;
};

/* ------------------------------------------------------------------ */
/* timers: a binary min-heap keyed by deadline                          */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void heap_swap(petrel__sched_t *s, size_t a, size_t b)
{
    petrel__timer_t *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->idx = a;
    s->heap[b]->idx = b;
}

static void heap_up(petrel__sched_t *s, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p]->deadline_ns <= s->heap[i]->deadline_ns)
            break;
        heap_swap(s, i, p);
        i = p;
    }
}

static void heap_down(petrel__sched_t *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->heap_n && s->heap[l]->deadline_ns < s->heap[m]->deadline_ns)
            m = l;
        if (r < s->heap_n && s->heap[r]->deadline_ns < s->heap[m]->deadline_ns)
            m = r;
        if (m == i)
            break;
        heap_swap(s, i, m);
        i = m;
    }
}

void petrel__timer_init(petrel__timer_t *t, petrel__timer_cb cb, void *data)
{
    t->deadline_ns = 0;
    t->idx = SIZE_MAX;
    t->cb = cb;
    t->data = data;
}

void petrel__timer_stop(petrel__sched_t *s, petrel__timer_t *t)
{
    size_t i = t->idx;
    if (i == SIZE_MAX)
        return;
    t->idx = SIZE_MAX;
    s->heap_n--;
    if (i == s->heap_n)
        return;
    s->heap[i] = s->heap[s->heap_n];
    s->heap[i]->idx = i;
    heap_up(s, i);
    heap_down(s, s->heap[i]->idx);
}

void petrel__timer_start(petrel__sched_t *s, petrel__timer_t *t, int64_t ms)
{
    petrel__timer_start_at(s, t, now_ns(), ms);
}

void petrel__timer_start_at(petrel__sched_t *s, petrel__timer_t *t, int64_t from_ns, int64_t ms)
{
    petrel__timer_stop(s, t);
    if (ms < 0)
        ms = 0;
    /* Clamp so that deadline arithmetic cannot overflow (a year is plenty). */
    if (ms > (int64_t)365 * 86400 * 1000)
        ms = (int64_t)365 * 86400 * 1000;
    t->deadline_ns = from_ns + ms * 1000000;
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
        s->heap = petrel_xrealloc(s->heap, s->heap_cap * sizeof(*s->heap));
    }
    t->idx = s->heap_n;
    s->heap[s->heap_n++] = t;
    heap_up(s, t->idx);
}

static void timers_fire(petrel__sched_t *s)
{
    if (s->heap_n == 0)
        return;
    int64_t now = now_ns();
    while (s->heap_n > 0 && s->heap[0]->deadline_ns <= now) {
        petrel__timer_t *t = s->heap[0];
        petrel__timer_stop(s, t);
        t->cb(t);
    }
}

/* ------------------------------------------------------------------ */
/* stacks and context switch                                          */

static void fiber_main(void *arg);

#if defined(PETREL_CTX_ASM)
void petrel__ctx_trampoline(void);

static void ctx_prepare(petrel_fiber_t *f)
{
    uintptr_t top = ((uintptr_t)f->stack_lo + f->stack_size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* Frame popped by petrel__ctx_switch: fpctl, r15, r14, r13, r12, rbx, rbp, ret.
     * The return address sits at top-8 so the trampoline starts with rsp 16-aligned. */
    uint64_t *sp = (uint64_t *)(top - 64);
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    sp[0] = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
    sp[1] = 0;                               /* r15 */
    sp[2] = 0;                               /* r14 */
    sp[3] = (uint64_t)(uintptr_t)fiber_main; /* r13: entry */
    sp[4] = (uint64_t)(uintptr_t)f;          /* r12: arg */
    sp[5] = 0;                               /* rbx */
    sp[6] = 0;                               /* rbp */
    sp[7] = (uint64_t)(uintptr_t)petrel__ctx_trampoline;
    f->sp = sp;
#else
    uint64_t *sp = (uint64_t *)(top - 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)f;                       /* x19: arg */
    sp[1] = (uint64_t)(uintptr_t)fiber_main;              /* x20: entry */
    sp[11] = (uint64_t)(uintptr_t)petrel__ctx_trampoline; /* x30 */
    sp[20] = fpcr;
    f->sp = sp;
#endif
}

static inline void ctx_to_fiber(petrel__sched_t *s, petrel_fiber_t *f)
{
    petrel__ctx_switch(&s->loop_sp, f->sp);
}

static inline void ctx_to_loop(petrel__sched_t *s, petrel_fiber_t *f)
{
    petrel__ctx_switch(&f->sp, s->loop_sp);
}
#else
/* Portable fallback. swapcontext() makes a sigprocmask syscall per switch
 * (~230 ns measured), so it is used only where no hand-written switch exists. */
static void uctx_entry(unsigned hi, unsigned lo)
{
    fiber_main((void *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}

static void ctx_prepare(petrel_fiber_t *f)
{
    ucontext_t *uc = f->uctx;
    if (uc == NULL)
        f->uctx = uc = petrel_xcalloc(1, sizeof(*uc));
    getcontext(uc);
    uc->uc_stack.ss_sp = f->stack_lo;
    uc->uc_stack.ss_size = f->stack_size;
    uc->uc_link = NULL;
    uintptr_t p = (uintptr_t)f;
    makecontext(uc, (void (*)(void))uctx_entry, 2, (unsigned)(p >> 32), (unsigned)p);
}

static inline void ctx_to_fiber(petrel__sched_t *s, petrel_fiber_t *f)
{
    swapcontext(&s->loop_uctx, f->uctx);
}

static inline void ctx_to_loop(petrel__sched_t *s, petrel_fiber_t *f)
{
    swapcontext(f->uctx, &s->loop_uctx);
}
#endif

static petrel_fiber_t *fiber_alloc(petrel__sched_t *s)
{
    size_t len = s->stack_size + s->page;
    void *mem =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) {
        fprintf(stderr, "petrel: cannot map a %zu-byte fiber stack\n", len);
        abort();
    }
    /* The lowest page is the guard: a stack overflow faults instead of
     * silently overwriting the neighbouring mapping. */
    if (mprotect(mem, s->page, PROT_NONE) != 0)
        abort();
    petrel_fiber_t *f = petrel_xcalloc(1, sizeof(*f));
    f->stack_lo = (char *)mem + s->page;
    f->stack_size = s->stack_size;
    f->sched = s;
    petrel__timer_init(&f->timeout, NULL, f);
    ctx_prepare(f);
    return f;
}

static void fiber_unmap(petrel_fiber_t *f)
{
    size_t page = f->sched->page;
    munmap((char *)f->stack_lo - page, f->stack_size + page);
    free(f->uctx);
    free(f->defers);
    free(f);
}

static void fiber_timeout_cb(petrel__timer_t *t)
{
    petrel__fiber_wake(t->data, PETREL_ETIMEDOUT);
}

petrel_fiber_t *petrel__fiber_new(petrel__sched_t *s, petrel__fiber_fn fn, void *arg)
{
    return petrel__fiber_new_at(s, fn, arg, now_ns());
}

petrel_fiber_t *petrel__fiber_new_at(petrel__sched_t *s, petrel__fiber_fn fn, void *arg,
                                     int64_t now)
{
    petrel_fiber_t *f = s->pool;
    if (f != NULL) {
        s->pool = f->next_free;
        s->pool_n--;
    } else {
        f = fiber_alloc(s);
    }
    f->next_free = NULL;
    f->next_ready = NULL;
    f->state = PETREL__FIBER_READY;
    f->cancelled = false;
    f->wake_rc = 0;
    f->fn = fn;
    f->arg = arg;
    f->ndefers = 0;
    f->user = NULL;
    f->first_park_cb = NULL;
    f->parked_once = false;
    f->await_kind = NULL;
    f->await_file = NULL;
    f->started_ns = now;
    f->run_ns = 0;
    f->nwaits = 0;
    f->parked_ns = f->started_ns; /* time before the first run counts as "queued" */
    f->id = ++s->next_id;
    petrel__timer_init(&f->timeout, fiber_timeout_cb, f);
    s->live++;
    return f;
}

static void run_defers(petrel_fiber_t *f)
{
    /* A defer may register another defer; walk by index from the top. */
    while (f->ndefers > 0) {
        struct petrel__defer d = f->defers[--f->ndefers];
        if (d.cb != NULL)
            d.cb(d.arg);
    }
}

#ifdef PETREL_ASAN
#define ASAN_START(fake, bottom, size) __sanitizer_start_switch_fiber((fake), (bottom), (size))
#define ASAN_FINISH(fake, bottom, size) __sanitizer_finish_switch_fiber((fake), (bottom), (size))
#else
#define ASAN_START(fake, bottom, size) ((void)0)
#define ASAN_FINISH(fake, bottom, size) ((void)0)
#endif

/* Adds `ns` of waiting to the fiber's per-kind totals; kinds are compared by pointer first
 * since they are string literals. */
static void fiber_add_wait(petrel_fiber_t *f, const char *kind, int64_t ns)
{
    if (kind == NULL)
        kind = "queued";
    for (size_t i = 0; i < f->nwaits; i++) {
        if (f->waits[i].kind == kind || strcmp(f->waits[i].kind, kind) == 0) {
            f->waits[i].ns += ns;
            return;
        }
    }
    if (f->nwaits < PETREL__WAIT_KINDS) {
        f->waits[f->nwaits].kind = kind;
        f->waits[f->nwaits++].ns = ns;
    } else {
        f->waits[PETREL__WAIT_KINDS - 1].ns += ns;
    }
}

/* Ends a run slice, on the fiber just before it switches out: accounts the time and
 * reports a slice over the stall threshold while the fiber's owner can still be read. */
static void fiber_slice_end(petrel_fiber_t *f)
{
    petrel__sched_t *s = f->sched;
    int64_t t = now_ns(), d = t - f->slice_ns;
    f->run_ns += d;
    f->parked_ns = t;
    s->busy_ns += d;
    if (s->slow_ns > 0 && d >= s->slow_ns && s->slow_cb != NULL)
        s->slow_cb(f, d);
}

int64_t petrel__fiber_run_ns(const petrel_fiber_t *f, int64_t now)
{
    return f->run_ns + (f->state == PETREL__FIBER_RUNNING ? now - f->slice_ns : 0);
}

/* Switches from the fiber back to the loop context. */
static void fiber_switch_out(petrel_fiber_t *f, bool finished)
{
    petrel__sched_t *s = f->sched;
    (void)finished;
    ASAN_START(finished ? NULL : &f->asan_fake_stack, s->asan_loop_bottom, s->asan_loop_size);
    ctx_to_loop(s, f);
    ASAN_FINISH(f->asan_fake_stack, &s->asan_loop_bottom, &s->asan_loop_size);
}

static void fiber_main(void *arg)
{
    petrel_fiber_t *f = arg;
    ASAN_FINISH(NULL, &f->sched->asan_loop_bottom, &f->sched->asan_loop_size);
    /* A pooled fiber is reused by running this loop again rather than
     * rebuilding its stack frame. */
    for (;;) {
        f->fn(f->arg);
        fiber_slice_end(f);
        run_defers(f);
        petrel__timer_stop(f->sched, &f->timeout);
        f->state = PETREL__FIBER_DONE;
        fiber_switch_out(f, false);
    }
}

static void fiber_release(petrel__sched_t *s, petrel_fiber_t *f)
{
    s->live--;
    f->state = PETREL__FIBER_IDLE;
    f->user = NULL;
    if (s->pool_n < s->pool_max) {
        f->next_free = s->pool;
        s->pool = f;
        s->pool_n++;
    } else {
        fiber_unmap(f);
    }
}

void petrel__fiber_resume(petrel_fiber_t *f)
{
    petrel__fiber_resume_at(f, now_ns());
}

void petrel__fiber_resume_at(petrel_fiber_t *f, int64_t now)
{
    petrel__sched_t *s = f->sched;
    PETREL_ASSERT(s->current == NULL);
    PETREL_ASSERT(f->state == PETREL__FIBER_READY);
    f->state = PETREL__FIBER_RUNNING;
    s->current = f;
    f->slice_ns = now;
    /* A fiber run the moment it was made (most requests) did not queue: no zero entry. */
    if (f->await_kind != NULL || now != f->parked_ns)
        fiber_add_wait(f, f->await_kind, now - f->parked_ns);
#ifdef PETREL_ASAN
    void *fake = NULL;
#endif
    ASAN_START(&fake, f->stack_lo, f->stack_size);
    ctx_to_fiber(s, f);
    ASAN_FINISH(fake, NULL, NULL);
    s->current = NULL;
    if (f->state == PETREL__FIBER_DONE)
        fiber_release(s, f);
}

/* Marks f ready and appends it to the list head/tail (the ready queue or the yielded). */
static void fiber_enqueue(petrel_fiber_t **head, petrel_fiber_t **tail, petrel_fiber_t *f)
{
    f->state = PETREL__FIBER_READY;
    f->next_ready = NULL;
    if (*tail != NULL)
        (*tail)->next_ready = f;
    else
        *head = f;
    *tail = f;
}

void petrel__fiber_schedule(petrel_fiber_t *f)
{
    petrel__sched_t *s = f->sched;
    if (f->state == PETREL__FIBER_READY &&
        (f->next_ready != NULL || s->ready_tail == f || s->yield_tail == f))
        return; /* already queued */
    fiber_enqueue(&s->ready_head, &s->ready_tail, f);
}

/* The first time a fiber gives the loop back (an await or a yield): its owner's hook
 * (a request arms its deadline and watches its client then). */
static inline void fiber_first_wait(petrel_fiber_t *f)
{
    if (!f->parked_once) {
        f->parked_once = true;
        if (f->first_park_cb != NULL)
            f->first_park_cb(f);
    }
}

int petrel__fiber_park(int64_t timeout_ms)
{
    petrel__sched_t *s = tl_sched;
    PETREL_ASSERT(s != NULL && s->current != NULL); /* awaiting outside a fiber */
    petrel_fiber_t *f = s->current;
    fiber_first_wait(f);
    if (f->cancelled) {
        f->await_kind = NULL;
        f->await_file = NULL;
        return PETREL_ECANCELED;
    }
    if (timeout_ms >= 0)
        petrel__timer_start(s, &f->timeout, timeout_ms);
    f->state = PETREL__FIBER_PARKED;
    f->wake_rc = 0;
    fiber_slice_end(f);
    fiber_switch_out(f, false);
    petrel__timer_stop(s, &f->timeout);
    f->await_kind = NULL;
    f->await_file = NULL;
    return f->wake_rc;
}

void petrel__fiber_wake(petrel_fiber_t *f, int rc)
{
    if (f->state != PETREL__FIBER_PARKED)
        return;
    f->wake_rc = rc;
    petrel__timer_stop(f->sched, &f->timeout);
    petrel__fiber_schedule(f);
}

/* ------------------------------------------------------------------ */
/* scheduler                                                           */

petrel__sched_t *petrel__sched_new(size_t stack_size, size_t pool_max)
{
    petrel__sched_t *s = petrel_xcalloc(1, sizeof(*s));
    long page = sysconf(_SC_PAGESIZE);
    s->page = page > 0 ? (size_t)page : 4096;
#ifdef PETREL_ASAN
    /* ASan's instrumentation needs far more stack per frame. */
    stack_size *= 4;
#endif
    s->stack_size = (stack_size + s->page - 1) / s->page * s->page;
    if (s->stack_size < 4 * s->page)
        s->stack_size = 4 * s->page;
    s->pool_max = pool_max;
    s->epfd = -1;
    pthread_mutex_init(&s->post_mu, NULL);
    tl_sched = s;
    return s;
}

void petrel__sched_detach(petrel__sched_t *s)
{
    if (s->queue != NULL) {
        /* From here on posts are dropped by the poster; those that arrived
         * after the loop stopped are dropped, never run. */
        pthread_mutex_lock(&s->post_mu);
        s->posts_open = false;
        pthread_mutex_unlock(&s->post_mu);
        while (!h2o_linklist_is_empty(&s->receiver._messages)) {
            struct post_msg *m =
                H2O_STRUCT_FROM_MEMBER(struct post_msg, super.link, s->receiver._messages.next);
            h2o_linklist_unlink(&m->super.link);
            free(m);
        }
        h2o_multithread_unregister_receiver(s->queue, &s->receiver);
        h2o_multithread_destroy_queue(s->queue);
        s->queue = NULL;
    }
    if (s->ep_sock != NULL) {
        h2o_socket_read_stop(s->ep_sock);
        h2o_socket_close(s->ep_sock); /* closes epfd */
        s->ep_sock = NULL;
        s->epfd = -1;
    } else if (s->epfd >= 0) {
        close(s->epfd);
        s->epfd = -1;
    }
    if (tl_sched == s)
        tl_sched = NULL;
}

void petrel__sched_free(petrel__sched_t *s)
{
    petrel__sched_detach(s);
    while (s->pool != NULL) {
        petrel_fiber_t *f = s->pool;
        s->pool = f->next_free;
        fiber_unmap(f);
    }
    free(s->heap);
    pthread_mutex_destroy(&s->post_mu);
    free(s);
}

petrel__sched_t *petrel__sched_current(void)
{
    return tl_sched;
}

static void sched_on_posts(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    (void)recv;
    while (!h2o_linklist_is_empty(messages)) {
        struct post_msg *m = H2O_STRUCT_FROM_MEMBER(struct post_msg, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        m->cb(m->arg);
        free(m);
    }
}

void petrel__sched_attach_loop(petrel__sched_t *s, void *h2o_loop)
{
    s->loop = h2o_loop;
    s->queue = h2o_multithread_create_queue(s->loop);
    h2o_multithread_register_receiver(s->queue, &s->receiver, sched_on_posts);
    pthread_mutex_lock(&s->post_mu);
    s->posts_open = true;
    pthread_mutex_unlock(&s->post_mu);
}

void petrel__sched_post(petrel__sched_t *s, void (*cb)(void *arg), void *arg)
{
    /* calloc leaves the link unlinked, which h2o asserts on send. */
    struct post_msg *m = petrel_xcalloc(1, sizeof(*m));
    m->cb = cb;
    m->arg = arg;
    pthread_mutex_lock(&s->post_mu);
    if (s->posts_open)
        h2o_multithread_send_message(&s->receiver, &m->super);
    else
        free(m); /* the loop is gone: nothing waits there any more */
    pthread_mutex_unlock(&s->post_mu);
}

int32_t petrel__sched_wait_ms(petrel__sched_t *s, int32_t max_ms)
{
    if (s->ready_head != NULL || s->yield_head != NULL)
        return 0;
    if (s->heap_n == 0)
        return max_ms;
    int64_t d = s->heap[0]->deadline_ns - now_ns();
    if (d <= 0)
        return 0;
    /* Round up: waking early would only spin once more. */
    int64_t ms = (d + 999999) / 1000000;
    return ms < max_ms ? (int32_t)ms : max_ms;
}

size_t petrel__sched_run(petrel__sched_t *s)
{
    size_t n = 0;
    if (s->yield_head != NULL) {
        if (s->ready_tail != NULL)
            s->ready_tail->next_ready = s->yield_head;
        else
            s->ready_head = s->yield_head;
        s->ready_tail = s->yield_tail;
        s->yield_head = s->yield_tail = NULL;
    }
    timers_fire(s);
    while (s->ready_head != NULL) {
        petrel_fiber_t *f = s->ready_head;
        s->ready_head = f->next_ready;
        if (s->ready_head == NULL)
            s->ready_tail = NULL;
        f->next_ready = NULL;
        petrel__fiber_resume(f);
        n++;
        if (s->ready_head == NULL)
            timers_fire(s);
    }
    return n;
}

void petrel__sched_set_slow(petrel__sched_t *s, int64_t ns,
                            void (*cb)(petrel_fiber_t *f, int64_t slice_ns))
{
    s->slow_ns = ns;
    s->slow_cb = cb;
}

int64_t petrel__sched_take_busy_ns(petrel__sched_t *s)
{
    int64_t b = s->busy_ns;
    s->busy_ns = 0;
    return b;
}

size_t petrel__sched_live(const petrel__sched_t *s)
{
    return s->live;
}

size_t petrel__sched_pooled(const petrel__sched_t *s)
{
    return s->pool_n;
}

/* ------------------------------------------------------------------ */
/* public await primitives                                             */

petrel_fiber_t *petrel_fiber_current(void)
{
    return tl_sched != NULL ? tl_sched->current : NULL;
}

bool petrel_cancelled(void)
{
    petrel_fiber_t *f = petrel_fiber_current();
    return f != NULL && f->cancelled;
}

void petrel_fiber_cancel(petrel_fiber_t *f)
{
    if (f->cancelled || f->state == PETREL__FIBER_DONE || f->state == PETREL__FIBER_IDLE)
        return;
    f->cancelled = true;
    petrel__fiber_wake(f, PETREL_ECANCELED);
}

void petrel_fiber_set_await_kind(const char *what)
{
    petrel_fiber_t *f = petrel_fiber_current();
    if (f != NULL)
        f->await_kind = what;
}

void petrel_fiber_await_site(const char *file, int line)
{
    petrel_fiber_t *f = petrel_fiber_current();
    if (f != NULL && f->await_file == NULL) {
        f->await_file = file;
        f->await_line = line;
    }
}

int petrel_sleep(int64_t ms)
{
    /* Keep a kind set by a caller that sleeps on its behalf (a rate limiter). */
    petrel_fiber_t *self = petrel_fiber_current();
    if (self != NULL && self->await_kind == NULL)
        self->await_kind = "sleep";
    int rc = petrel__fiber_park(ms < 0 ? 0 : ms);
    return rc == PETREL_ETIMEDOUT ? 0 : rc;
}

int petrel_yield(void)
{
    petrel_fiber_t *f = petrel_fiber_current();
    PETREL_ASSERT(f != NULL);
    if (f->cancelled)
        return PETREL_ECANCELED;
    fiber_first_wait(f);
    /* Run again after every fiber ready now, and after the loop has polled once (asyncio's
     * sleep(0)). */
    fiber_enqueue(&f->sched->yield_head, &f->sched->yield_tail, f);
    f->await_kind = "yield";
    fiber_slice_end(f);
    fiber_switch_out(f, false);
    f->await_kind = NULL;
    f->await_file = NULL;
    return f->cancelled ? PETREL_ECANCELED : 0;
}

static void ep_on_read(h2o_socket_t *sock, const char *err)
{
    petrel__sched_t *s = sock->data;
    struct epoll_event evs[64];
    (void)err;
    int n = epoll_wait(s->epfd, evs, 64, 0);
    for (int i = 0; i < n; i++) {
        petrel__fdwatch_t *w = evs[i].data.ptr;
        w->cb(w, evs[i].events);
    }
}

static int ep_ensure(petrel__sched_t *s)
{
    if (s->epfd >= 0)
        return 0;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        return -errno;
    if (s->loop != NULL) {
        s->ep_sock = h2o_evloop_socket_create(s->loop, s->epfd, H2O_SOCKET_FLAG_DONT_READ);
        s->ep_sock->data = s;
        h2o_socket_read_start(s->ep_sock, ep_on_read);
    }
    return 0;
}

int petrel__fdwatch_add(petrel__sched_t *s, petrel__fdwatch_t *w, int fd, uint32_t events)
{
    int rc = ep_ensure(s);
    if (rc != 0)
        return rc;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return -errno;
    w->fd = fd;
    return 0;
}

void petrel__fdwatch_del(petrel__sched_t *s, petrel__fdwatch_t *w)
{
    if (w->fd < 0)
        return;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->fd = -1;
}

static void fd_wait_cb(petrel__fdwatch_t *w, uint32_t events)
{
    (void)events;
    petrel__fiber_wake(w->data, 0);
}

int petrel_wait_fd(int fd, int events, int64_t timeout_ms)
{
    petrel__sched_t *s = tl_sched;
    PETREL_ASSERT(s != NULL && s->current != NULL);
    petrel_fiber_t *f = s->current;
    int rc;
    if (f->cancelled) {
        rc = PETREL_ECANCELED;
        goto fail;
    }
    if (fd < 0 || (events & (PETREL_READABLE | PETREL_WRITABLE)) == 0) {
        rc = PETREL_EINVAL;
        goto fail;
    }
    uint32_t ev = EPOLLONESHOT;
    if (events & PETREL_READABLE)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (events & PETREL_WRITABLE)
        ev |= EPOLLOUT;
    petrel__fdwatch_t w = {.cb = fd_wait_cb, .data = f, .fd = -1};
    rc = petrel__fdwatch_add(s, &w, fd, ev);
    if (rc != 0) {
        rc = rc == -EBADF || rc == -EPERM ? PETREL_EINVAL : rc;
        goto fail;
    }
    if (timeout_ms == PETREL_TIMEOUT_DEFAULT)
        timeout_ms = petrel__io_timeout_ms;
    /* A module that waits on its socket names the wait first ("db", "http"): keep it. */
    if (f->await_kind == NULL)
        f->await_kind = "fd";
    rc = petrel__fiber_park(timeout_ms < 0 ? 0 : timeout_ms);
    petrel__fdwatch_del(s, &w);
    return rc;

fail:
    /* No wait happened: the site and kind recorded for it must not stick to the next one. */
    f->await_kind = NULL;
    f->await_file = NULL;
    return rc;
}

int petrel_defer(void (*cb)(void *arg), void *arg)
{
    petrel_fiber_t *f = petrel_fiber_current();
    if (f == NULL) {
        cb(arg);
        return -1;
    }
    if (f->ndefers == f->defers_cap) {
        f->defers_cap = f->defers_cap ? f->defers_cap * 2 : 8;
        f->defers = petrel_xrealloc(f->defers, f->defers_cap * sizeof(*f->defers));
    }
    f->defers[f->ndefers].cb = cb;
    f->defers[f->ndefers].arg = arg;
    return (int)f->ndefers++;
}

int petrel_defer_pop(int handle, bool run)
{
    petrel_fiber_t *f = petrel_fiber_current();
    if (f == NULL || handle < 0 || (size_t)handle >= f->ndefers || f->defers[handle].cb == NULL)
        return PETREL_EINVAL;
    struct petrel__defer d = f->defers[handle];
    f->defers[handle].cb = NULL;
    /* Trim cleared entries at the top so the array does not grow forever. */
    while (f->ndefers > 0 && f->defers[f->ndefers - 1].cb == NULL)
        f->ndefers--;
    if (run)
        d.cb(d.arg);
    return 0;
}
