/*
 * test_fiber.c - the fiber scheduler on its own loop: sleeps, timer order,
 * park/wake, cancellation, defers, fd waits, yields, the guard page and
 * floating-point control state across switches.
 */
#include <fenv.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <h2o.h>

#include "fiber_int.h"
#include "petrel/fiber.h"

static petrel__sched_t *sched;
static h2o_evloop_t *loop;

static void setup(void)
{
    loop = h2o_evloop_create();
    sched = petrel__sched_new(64 * 1024, 8);
    petrel__sched_attach_loop(sched, loop);
}

static void teardown(void)
{
    petrel__sched_free(sched);
    h2o_evloop_destroy(loop);
}

/* Runs the loop until no fiber is alive or `ms` passed. */
static void run_until_idle(int64_t ms)
{
    int64_t end = petrel_now_ms() + ms;
    petrel__sched_run(sched);
    while (petrel__sched_live(sched) > 0 && petrel_now_ms() < end) {
        h2o_evloop_run(loop, petrel__sched_wait_ms(sched, 10));
        petrel__sched_run(sched);
    }
}

static void spawn(petrel__fiber_fn fn, void *arg)
{
    petrel__fiber_schedule(petrel__fiber_new(sched, fn, arg));
}

TestSuite(fiber, .init = setup, .fini = teardown, .timeout = 20);

/* ---- sleeps ---- */
static int64_t woke_at[4];
static int order[4], norder;

static void sleeper(void *arg)
{
    int i = (int)(intptr_t)arg;
    int64_t ms = (int64_t[]){120, 40, 80, 0}[i];
    cr_assert_eq(petrel_sleep(ms), 0);
    woke_at[i] = petrel_now_ms();
    order[norder++] = i;
}

Test(fiber, sleeps_run_concurrently_and_wake_in_deadline_order)
{
    int64_t t0 = petrel_now_ms();
    for (int i = 0; i < 4; i++)
        spawn(sleeper, (void *)(intptr_t)i);
    run_until_idle(2000);
    cr_assert_eq(norder, 4);
    cr_assert_eq(order[0], 3);
    cr_assert_eq(order[1], 1);
    cr_assert_eq(order[2], 2);
    cr_assert_eq(order[3], 0);
    /* never early, and concurrent: total ~120 ms, not 240 */
    cr_assert_geq(woke_at[0] - t0, 120);
    cr_assert_lt(petrel_now_ms() - t0, 220);
}

static int many_done;
static void short_sleeper(void *arg)
{
    (void)arg;
    if (petrel_sleep(50) == 0)
        many_done++;
}

Test(fiber, ten_thousand_sleeping_fibers_finish_together)
{
    int64_t t0 = petrel_now_ms();
    for (int i = 0; i < 10000; i++)
        spawn(short_sleeper, NULL);
    run_until_idle(5000);
    cr_assert_eq(many_done, 10000);
    cr_assert_lt(petrel_now_ms() - t0, 1500);
    /* stacks went back to the pool, bounded by pool_max */
    cr_assert_eq(petrel__sched_live(sched), 0);
    cr_assert_leq(petrel__sched_pooled(sched), 8);
}

/* ---- cancellation ---- */
static int rc_first, rc_second, rc_third;
static petrel_fiber_t *victim;

static void cancellable(void *arg)
{
    (void)arg;
    rc_first = petrel_sleep(10000);
    rc_second = petrel_sleep(10);
    rc_third = petrel_yield();
}

static void canceller(void *arg)
{
    (void)arg;
    petrel_sleep(20);
    petrel_fiber_cancel(victim);
}

Test(fiber, cancel_wakes_the_await_and_every_later_await_fails_at_once)
{
    victim = petrel__fiber_new(sched, cancellable, NULL);
    petrel__fiber_schedule(victim);
    spawn(canceller, NULL);
    int64_t t0 = petrel_now_ms();
    run_until_idle(3000);
    cr_assert_eq(rc_first, PETREL_ECANCELED);
    cr_assert_eq(rc_second, PETREL_ECANCELED);
    cr_assert_eq(rc_third, PETREL_ECANCELED);
    cr_assert_lt(petrel_now_ms() - t0, 500);
}

/* ---- defers ---- */
static char trail[16];
static int ntrail;

static void mark(void *arg)
{
    trail[ntrail++] = (char)(intptr_t)arg;
}

static void with_defers(void *arg)
{
    petrel_defer(mark, (void *)(intptr_t)'a');
    int h = petrel_defer(mark, (void *)(intptr_t)'b');
    petrel_defer(mark, (void *)(intptr_t)'c');
    cr_assert_eq(petrel_defer_pop(h, false), 0); /* dropped: never runs */
    if (arg != NULL)
        petrel_sleep(10000); /* will be cancelled */
}

Test(fiber, defers_run_in_reverse_order_on_return)
{
    spawn(with_defers, NULL);
    run_until_idle(1000);
    trail[ntrail] = '\0';
    cr_assert_str_eq(trail, "ca");
}

Test(fiber, defers_run_when_cancelled)
{
    petrel_fiber_t *f = petrel__fiber_new(sched, with_defers, (void *)1);
    petrel__fiber_schedule(f);
    petrel__sched_run(sched);
    cr_assert_eq(ntrail, 0);
    petrel_fiber_cancel(f);
    run_until_idle(1000);
    trail[ntrail] = '\0';
    cr_assert_str_eq(trail, "ca");
}

/* ---- fd waits ---- */
static int pipefd[2];
static int wait_rc = 1;
static int64_t wait_ms;

static void fd_waiter(void *arg)
{
    int64_t t0 = petrel_now_ms();
    wait_rc = petrel_wait_fd(pipefd[0], PETREL_READABLE, (int64_t)(intptr_t)arg);
    wait_ms = petrel_now_ms() - t0;
}

static void fd_writer(void *arg)
{
    (void)arg;
    petrel_sleep(30);
    cr_assert_eq(write(pipefd[1], "x", 1), 1);
}

Test(fiber, wait_fd_wakes_when_readable)
{
    cr_assert_eq(pipe(pipefd), 0);
    spawn(fd_waiter, (void *)(intptr_t)5000);
    spawn(fd_writer, NULL);
    run_until_idle(3000);
    cr_assert_eq(wait_rc, 0);
    cr_assert_geq(wait_ms, 25);
    cr_assert_lt(wait_ms, 1000);
}

Test(fiber, wait_fd_times_out)
{
    cr_assert_eq(pipe(pipefd), 0);
    spawn(fd_waiter, (void *)(intptr_t)60);
    run_until_idle(3000);
    cr_assert_eq(wait_rc, PETREL_ETIMEDOUT);
    cr_assert_geq(wait_ms, 59);
    cr_assert_lt(wait_ms, 500);
}

Test(fiber, wait_fd_rejects_bad_fd)
{
    spawn(fd_waiter, (void *)(intptr_t)60);
    pipefd[0] = -1;
    run_until_idle(1000);
    cr_assert_eq(wait_rc, PETREL_EINVAL);
}

/* ---- yields interleave ---- */
static char seq[32];
static int nseq;

static void yielder(void *arg)
{
    for (int i = 0; i < 3; i++) {
        seq[nseq++] = (char)(intptr_t)arg;
        petrel_yield();
    }
}

Test(fiber, yield_lets_other_fibers_run)
{
    spawn(yielder, (void *)(intptr_t)'x');
    spawn(yielder, (void *)(intptr_t)'y');
    run_until_idle(1000);
    seq[nseq] = '\0';
    cr_assert_str_eq(seq, "xyxyxy");
}

/* ---- floating-point control state is per fiber ---- */
static int fe_inside, fe_after_switch;

static void rounding_fiber(void *arg)
{
    (void)arg;
    fesetround(FE_UPWARD);
    petrel_yield();
    fe_after_switch = fegetround();
    fe_inside = FE_UPWARD;
}

Test(fiber, rounding_mode_set_in_a_fiber_does_not_leak_to_the_loop)
{
    fesetround(FE_TONEAREST);
    spawn(rounding_fiber, NULL);
    petrel__sched_run(sched);
    run_until_idle(1000);
    cr_assert_eq(fe_after_switch, FE_UPWARD);
    cr_assert_eq(fegetround(), FE_TONEAREST);
}

/* ---- guard page ---- */
#ifndef PETREL_ASAN
static volatile int recurse_limit = 1 << 30;

static int recurse(volatile char *p, int depth)
{
    volatile char buf[1024];
    buf[0] = (char)depth;
    if (p != NULL)
        buf[1] = p[0];
    if (depth >= recurse_limit) /* never true: keeps the compiler from calling this infinite */
        return 0;
    return recurse(buf, depth + 1) + buf[0];
}

static void overflow(void *arg)
{
    (void)arg;
    recurse(NULL, 0);
}

/* ASan replaces the SIGSEGV with its own report, so this runs in the plain build only. */
Test(fiber, stack_overflow_hits_the_guard_page, .signal = SIGSEGV)
{
    spawn(overflow, NULL);
    petrel__sched_run(sched);
}
#endif

/* ---- cross-thread posts ---- */

static atomic_int posted_on_loop_thread;
static pthread_t loop_thread;

static void on_post(void *arg)
{
    if (pthread_equal(pthread_self(), loop_thread))
        atomic_fetch_add(&posted_on_loop_thread, (int)(intptr_t)arg);
}

static void *poster(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        petrel__sched_post(sched, on_post, (void *)(intptr_t)1);
    return NULL;
}

Test(fiber, posts_from_other_threads_run_on_the_loop_thread)
{
    loop_thread = pthread_self();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, poster, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    int64_t end = petrel_now_ms() + 2000;
    while (atomic_load(&posted_on_loop_thread) < 400 && petrel_now_ms() < end)
        h2o_evloop_run(loop, 10);
    cr_assert_eq(atomic_load(&posted_on_loop_thread), 400);
}
