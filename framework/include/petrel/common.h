/*
 * petrel/common.h - macros, error codes and allocation helpers shared by every
 * petrel module.
 */
#ifndef PETREL_COMMON_H
#define PETREL_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PETREL_API __attribute__((visibility("default")))
#define PETREL_NODISCARD __attribute__((warn_unused_result))
/** Marks a function that may suspend the calling fiber. Greppable, expands to nothing. */
#define PETREL_AWAIT
/** Timeout argument meaning "use the configured default for this kind of await". */
#define PETREL_TIMEOUT_DEFAULT ((int64_t)-1)

#define PETREL_VERSION "0.1.0"

/**
 * Error codes. 0 is success; failures are negative. Codes equal -errno where a
 * matching errno exists; petrel-only codes sit below -4000.
 */
enum {
    PETREL_OK = 0,
    PETREL_ETIMEDOUT = -ETIMEDOUT,
    PETREL_ECANCELED = -ECANCELED,
    PETREL_ENOMEM = -ENOMEM,
    PETREL_EINVAL = -EINVAL,
    PETREL_EAGAIN = -EAGAIN,
    PETREL_EIO = -EIO,
    PETREL_ENOENT = -ENOENT,
    PETREL_EPERM = -EPERM,
    PETREL_ECONNREFUSED = -ECONNREFUSED,
    PETREL_ECONNRESET = -ECONNRESET,
    /* petrel-only codes */
    PETREL_EPOOL = -4001,       /**< a pool had nothing free within its wait (503) */
    PETREL_EUPSTREAM = -4002,   /**< an upstream answered an error (502) */
    PETREL_EVALIDATION = -4003, /**< request validation failed (422) */
    PETREL_ETOOBIG = -4004,     /**< an input-sized buffer hit its cap (413) */
    PETREL_ECONFIG = -4005,     /**< bad configuration */
    PETREL_EOVERLOAD = -4006,   /**< a concurrency limit rejected the call (503) */
    PETREL_ERATELIMIT = -4007,  /**< a rate limit rejected the call (429) */
    PETREL_ENOTFOUND = -4008,   /**< a looked-up entity does not exist (404) */
    PETREL_EDB = -4009,         /**< the database reported an error (500) */
    PETREL_EBREAKER = -4010,    /**< a circuit breaker is open (503) */
    PETREL_EINTERNAL = -4011,   /**< a bug or unexpected failure (500) */
};

/** Returns a human-readable, static description of a petrel error code. */
PETREL_API const char *petrel_strerror(int err);
/** Returns the symbolic name of a petrel error code ("PETREL_ETIMEDOUT"), static. */
PETREL_API const char *petrel_err_name(int err);
/**
 * The one mapping from error code to HTTP status: ETIMEDOUT 504, EPOOL/EOVERLOAD/EBREAKER 503,
 * ERATELIMIT 429, ETOOBIG 413, EVALIDATION 422, EUPSTREAM 502, ENOTFOUND 404, EINVAL 400,
 * everything else 500.
 */
PETREL_API int petrel_err_http_status(int err);

/** malloc that aborts on failure; for small, fixed-size allocations only. Owned: free(). */
PETREL_API void *petrel_xmalloc(size_t sz);
/** calloc that aborts on failure. Owned: free(). */
PETREL_API void *petrel_xcalloc(size_t n, size_t sz);
/** realloc that aborts on failure. Owned: free(). */
PETREL_API void *petrel_xrealloc(void *p, size_t sz);
/** strdup that aborts on failure; NULL in, NULL out. Owned: free(). */
PETREL_API char *petrel_xstrdup(const char *s);

/** Monotonic clock in milliseconds / nanoseconds. */
PETREL_API int64_t petrel_now_ms(void);
PETREL_API int64_t petrel_now_ns(void);

/** Always-on assertion: prints file:line and aborts. */
#define PETREL_ASSERT(e) ((e) ? (void)0 : petrel__assert_fail(#e, __FILE__, __LINE__, __func__))
#ifndef NDEBUG
#define PETREL_DASSERT(e) PETREL_ASSERT(e)
#else
#define PETREL_DASSERT(e) ((void)0)
#endif
PETREL_API _Noreturn void petrel__assert_fail(const char *expr, const char *file, int line,
                                              const char *func);

#ifdef __cplusplus
}
#endif
#endif
