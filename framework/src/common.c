/*
 * common.c - error descriptions, the error-to-HTTP-status mapping, aborting
 * allocation helpers, monotonic clocks and the always-on assertion handler
 * declared in petrel/common.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <petrel/common.h>

#include "common_int.h"

/* One table drives both petrel_strerror() and petrel_err_name(), so a code can
 * never have a name without a description or the other way round. */
struct common_err {
    int code;
    const char *name;
    const char *desc;
};

static const struct common_err common_errs[] = {
    {PETREL_OK, "PETREL_OK", "success"},
    {PETREL_ETIMEDOUT, "PETREL_ETIMEDOUT", "operation timed out"},
    {PETREL_ECANCELED, "PETREL_ECANCELED", "operation canceled"},
    {PETREL_ENOMEM, "PETREL_ENOMEM", "out of memory"},
    {PETREL_EINVAL, "PETREL_EINVAL", "invalid argument"},
    {PETREL_EAGAIN, "PETREL_EAGAIN", "resource temporarily unavailable"},
    {PETREL_EIO, "PETREL_EIO", "input/output error"},
    {PETREL_ENOENT, "PETREL_ENOENT", "no such file or directory"},
    {PETREL_EPERM, "PETREL_EPERM", "operation not permitted"},
    {PETREL_ECONNREFUSED, "PETREL_ECONNREFUSED", "connection refused"},
    {PETREL_ECONNRESET, "PETREL_ECONNRESET", "connection reset by peer"},
    {PETREL_EPOOL, "PETREL_EPOOL", "pool exhausted"},
    {PETREL_EUPSTREAM, "PETREL_EUPSTREAM", "upstream returned an error"},
    {PETREL_EVALIDATION, "PETREL_EVALIDATION", "validation failed"},
    {PETREL_ETOOBIG, "PETREL_ETOOBIG", "input too large"},
    {PETREL_ECONFIG, "PETREL_ECONFIG", "bad configuration"},
    {PETREL_EOVERLOAD, "PETREL_EOVERLOAD", "concurrency limit reached"},
    {PETREL_ERATELIMIT, "PETREL_ERATELIMIT", "rate limit exceeded"},
    {PETREL_ENOTFOUND, "PETREL_ENOTFOUND", "not found"},
    {PETREL_EDB, "PETREL_EDB", "database error"},
    {PETREL_EBREAKER, "PETREL_EBREAKER", "circuit breaker open"},
    {PETREL_EINTERNAL, "PETREL_EINTERNAL", "internal error"},
};

static const struct common_err *common_find(int err)
{
    for (size_t i = 0; i < sizeof(common_errs) / sizeof(common_errs[0]); i++) {
        if (common_errs[i].code == err)
            return &common_errs[i];
    }
    return NULL;
}

const char *petrel_strerror(int err)
{
    const struct common_err *e = common_find(err);
    if (e != NULL)
        return e->desc;
    /* Other -errno values pass through from system calls; glibc's _np
     * variants return static strings and, unlike strerror(), are
     * thread-safe. */
    if (err < 0 && err > -4000) {
        const char *d = strerrordesc_np(-err);
        if (d != NULL)
            return d;
    }
    return "unknown error";
}

const char *petrel_err_name(int err)
{
    const struct common_err *e = common_find(err);
    if (e != NULL)
        return e->name;
    if (err < 0 && err > -4000) {
        const char *n = strerrorname_np(-err);
        if (n != NULL)
            return n;
    }
    return "PETREL_EUNKNOWN";
}

int petrel_err_http_status(int err)
{
    switch (err) {
    case PETREL_OK:
        return 200;
    case PETREL_ETIMEDOUT:
        return 504;
    case PETREL_EPOOL:
    case PETREL_EOVERLOAD:
    case PETREL_EBREAKER:
        return 503;
    case PETREL_ERATELIMIT:
        return 429;
    case PETREL_ETOOBIG:
        return 413;
    case PETREL_EVALIDATION:
        return 422;
    case PETREL_EUPSTREAM:
        return 502;
    case PETREL_ENOTFOUND:
        return 404;
    case PETREL_EINVAL:
        return 400;
    default:
        return 500;
    }
}

static _Noreturn void common_oom(size_t sz)
{
    /* fprintf may itself allocate, but stderr is unbuffered, so this is the
     * best effort that still tells the operator what happened. */
    (void)fprintf(stderr, "petrel: out of memory allocating %zu bytes\n", sz);
    abort();
}

void *petrel_xmalloc(size_t sz)
{
    void *p = malloc(sz != 0 ? sz : 1);
    if (p == NULL)
        common_oom(sz);
    return p;
}

/* Out of line on purpose: GCC expands a memset of a known size of a few hundred bytes
 * as rep stos, whose start-up on AMD cores costs more than libc's vector loop takes for
 * the whole clear; a call with the size as an argument always gets libc's. */
void petrel__clear(void *p, size_t n)
{
    memset(p, 0, n);
}

void *petrel_xcalloc(size_t n, size_t sz)
{
    /* calloc checks n * sz for overflow itself; asking for at least one byte
     * keeps a zero-sized request from returning a NULL we would mistake for
     * OOM. */
    void *p = calloc(n != 0 ? n : 1, sz != 0 ? sz : 1);
    if (p == NULL)
        common_oom(n * sz);
    return p;
}

void *petrel_xrealloc(void *p, size_t sz)
{
    void *q = realloc(p, sz != 0 ? sz : 1);
    if (q == NULL)
        common_oom(sz);
    return q;
}

char *petrel_xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s) + 1;
    char *d = petrel_xmalloc(len);
    memcpy(d, s, len);
    return d;
}

int64_t petrel_now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer; asserting
     * keeps a broken platform from silently producing garbage deadlines. */
    int r = clock_gettime(CLOCK_MONOTONIC, &ts);
    PETREL_ASSERT(r == 0);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t petrel_now_ms(void)
{
    return petrel_now_ns() / 1000000;
}

void petrel__assert_fail(const char *expr, const char *file, int line, const char *func)
{
    (void)fprintf(stderr, "%s:%d: %s: assertion `%s' failed\n", file, line, func, expr);
    (void)fflush(stderr);
    abort();
}

/* The standard reason phrases petrel answers with (RFC 9110 names). */
const char *petrel__reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 418:
        return "I'm a teapot";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}
