/*
 * bench_fiber.c - nanoseconds per fiber context switch: petrel's hand-written
 * switch against glibc swapcontext() in the same run, plus a full scheduler
 * round trip (petrel_yield between two fibers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>

#include "fiber_int.h"
#include "petrel/fiber.h"

#define ITERS 5000000L

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- glibc ucontext ping-pong ---- */
static ucontext_t uc_main, uc_fib;

static void uc_body(void)
{
    for (;;)
        swapcontext(&uc_fib, &uc_main);
}

static double bench_ucontext(void)
{
    size_t sz = 64 * 1024;
    void *stack = malloc(sz);
    getcontext(&uc_fib);
    uc_fib.uc_stack.ss_sp = stack;
    uc_fib.uc_stack.ss_size = sz;
    uc_fib.uc_link = NULL;
    makecontext(&uc_fib, uc_body, 0);
    long n = ITERS / 10;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        swapcontext(&uc_main, &uc_fib);
    int64_t t1 = now_ns();
    free(stack);
    return (double)(t1 - t0) / (double)(2 * n); /* two switches per round trip */
}

/* ---- the scheduler: two fibers yielding to each other ---- */
static long yields_left;

static void yielder(void *arg)
{
    (void)arg;
    while (yields_left-- > 0)
        if (petrel_yield() != 0)
            break;
}

static double bench_sched(void)
{
    petrel__sched_t *s = petrel__sched_new(64 * 1024, 16);
    yields_left = ITERS;
    petrel__fiber_schedule(petrel__fiber_new(s, yielder, NULL));
    petrel__fiber_schedule(petrel__fiber_new(s, yielder, NULL));
    int64_t t0 = now_ns();
    /* A yielded fiber runs again at the next round (after the loop would poll). */
    while (petrel__sched_live(s) > 0)
        petrel__sched_run(s);
    int64_t t1 = now_ns();
    petrel__sched_free(s);
    /* each yield = switch out + switch in */
    return (double)(t1 - t0) / (double)ITERS;
}

#if defined(PETREL_CTX_ASM)
/* ---- raw petrel__ctx_switch ping-pong, via a fiber that yields ---- */
static void *main_sp, *fib_sp;

static void raw_body(void *arg)
{
    (void)arg;
    for (;;)
        petrel__ctx_switch(&fib_sp, main_sp);
}

static double bench_asm(void)
{
    /* Build the fiber through the scheduler so its frame is prepared exactly
     * as in production, then drive the raw switch directly. */
    size_t sz = 64 * 1024;
    char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uintptr_t top = ((uintptr_t)stack + sz) & ~(uintptr_t)15;
#if defined(__x86_64__)
    extern void petrel__ctx_trampoline(void);
    uint64_t *sp = (uint64_t *)(top - 64);
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    sp[0] = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
    sp[1] = sp[2] = sp[5] = sp[6] = 0;
    sp[3] = (uint64_t)(uintptr_t)raw_body;
    sp[4] = 0;
    sp[7] = (uint64_t)(uintptr_t)petrel__ctx_trampoline;
    fib_sp = sp;
#else
    extern void petrel__ctx_trampoline(void);
    uint64_t *sp = (uint64_t *)(top - 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    for (int i = 0; i < 22; i++)
        sp[i] = 0;
    sp[1] = (uint64_t)(uintptr_t)raw_body;
    sp[11] = (uint64_t)(uintptr_t)petrel__ctx_trampoline;
    sp[20] = fpcr;
    fib_sp = sp;
#endif
    int64_t t0 = now_ns();
    for (long i = 0; i < ITERS; i++)
        petrel__ctx_switch(&main_sp, fib_sp);
    int64_t t1 = now_ns();
    munmap(stack, sz);
    return (double)(t1 - t0) / (double)(2 * ITERS);
}
#endif

int main(void)
{
    double uc = bench_ucontext();
#if defined(PETREL_CTX_ASM)
    double as = bench_asm();
#endif
    double sc = bench_sched();
    printf("%-44s %10s\n", "fiber switch", "ns/switch");
#if defined(PETREL_CTX_ASM)
    printf("%-44s %10.1f\n", "petrel asm switch (petrel__ctx_switch)", as);
#endif
    printf("%-44s %10.1f\n", "glibc swapcontext()", uc);
    printf("%-44s %10.1f\n", "petrel_yield round trip via scheduler (/2)", sc / 2);
#if defined(PETREL_CTX_ASM)
    printf("ratio ucontext/asm: %.1fx; target asm <= 20 ns: %s\n", uc / as,
           as <= 20.0 ? "met" : "NOT met");
#endif
    return 0;
}
