/*
 * log.c - JSON-lines logging to stdout: record formatting, a fast JSON
 * string escaper that turns any bytes into valid JSON, per-thread buffering
 * for loop threads, and the hot-path access record.
 *
 * Every record is formatted into the calling thread's buffer. A loop thread
 * (buffered mode) lets records pile up and writes them with one write(2) per
 * loop iteration; any other thread writes each record as soon as it is
 * complete. A record is always written whole by a single write(2) call
 * unless the kernel splits it, so lines from different threads do not
 * interleave mid-line on pipes (up to PIPE_BUF) and O_APPEND files.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <petrel/log.h>

#include "common_int.h"
#include "log_int.h"
#include "petrel/req.h"

/* Buffered threads flush once the buffer passes this, so a burst inside one
 * loop iteration cannot grow memory without bound. */
#define LOG_FLUSH_AT ((size_t)32 * 1024)
/* After a flush a buffer that grew for one huge record shrinks back. */
#define LOG_KEEP_CAP ((size_t)64 * 1024)

struct log_buf {
    char *data;
    size_t len, cap;
    bool buffered;
    bool urgent;        /* holds a record other than an access record: write it soon */
    int64_t flushed_ms; /* coarse clock at the last write */
};

/* A loop thread writes its access records in batches at most this old: one write(2) per
 * loop iteration cost a system call per request or two at full load (nginx's
 * access_log buffer/flush does the same). */
#define LOG_ACCESS_DELAY_MS 20

static int64_t coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read on every record from every thread, written at startup: relaxed
 * atomics keep TSan quiet at no cost. */
static int log_level = PETREL_LOG_INFO;
static int log_access_on = 1;

static _Thread_local struct log_buf *log_tls;
/* The formatted UTC time of the last record on this thread, by millisecond;
 * a busy loop writes many records per millisecond. */
static _Thread_local struct {
    int64_t ms;
    time_t sec;
    char str[32]; /* "2026-11-25T21:40:00.123Z" */
} log_time = {-1, -1, ""};
#define LOG_TIME_LEN 24

static pthread_key_t log_key;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

static void log_write_all(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t r = write(STDOUT_FILENO, p, len);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Someone made stdout non-blocking; wait a little for room
             * rather than spin, and give up on a reader that never comes. */
            struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
            if (poll(&pfd, 1, 1000) <= 0)
                return;
        } else {
            /* stdout is gone (EPIPE, ENOSPC, ...); there is nowhere left to
             * report that, so the records are dropped. */
            return;
        }
    }
}

static void log_buf_flush(struct log_buf *b)
{
    /* In pieces of at most PIPE_BUF bytes that end at a record's newline: a write(2) of
     * that size to a pipe is atomic, so records of different threads never interleave
     * when stdout is a pipe to a log collector. */
    size_t off = 0;
    while (off < b->len) {
        size_t n = b->len - off;
        if (n > PIPE_BUF) {
            const char *nl = memrchr(b->data + off, '\n', PIPE_BUF);
            if (nl == NULL) /* one record longer than PIPE_BUF: it goes alone */
                nl = memchr(b->data + off + PIPE_BUF, '\n', n - PIPE_BUF);
            n = nl != NULL ? (size_t)(nl - (b->data + off)) + 1 : n;
        }
        log_write_all(b->data + off, n);
        off += n;
    }
    b->len = 0;
    b->urgent = false;
    b->flushed_ms = coarse_ms();
    if (b->cap > LOG_KEEP_CAP) {
        free(b->data);
        b->data = petrel_xmalloc(LOG_KEEP_CAP);
        b->cap = LOG_KEEP_CAP;
    }
}

static void log_tls_destroy(void *p)
{
    struct log_buf *b = p;
    log_buf_flush(b);
    free(b->data);
    free(b);
}

/* "000".."999": the three decimals of a duration in one copy (access records). Filled
 * once with the pthread key, before any thread has a buffer to write a record into. */
static char ac_digits3[1000 * 3];

static void log_key_init(void)
{
    for (int i = 0; i < 1000; i++) {
        ac_digits3[i * 3] = (char)('0' + i / 100);
        ac_digits3[i * 3 + 1] = (char)('0' + i / 10 % 10);
        ac_digits3[i * 3 + 2] = (char)('0' + i % 10);
    }
    int r = pthread_key_create(&log_key, log_tls_destroy);
    PETREL_ASSERT(r == 0);
}

static struct log_buf *log_buf_get(void)
{
    struct log_buf *b = log_tls;
    if (b != NULL)
        return b;
    /* The pthread key exists only for its destructor: it flushes and frees
     * the buffer of a thread that exits. */
    pthread_once(&log_once, log_key_init);
    b = petrel_xcalloc(1, sizeof(*b));
    b->cap = 4096;
    b->data = petrel_xmalloc(b->cap);
    pthread_setspecific(log_key, b);
    log_tls = b;
    return b;
}

static void log_reserve(struct log_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return;
    size_t cap = b->cap * 2;
    while (cap - b->len < more)
        cap *= 2;
    b->data = petrel_xrealloc(b->data, cap);
    b->cap = cap;
}

static void log_put(struct log_buf *b, const char *s, size_t len)
{
    log_reserve(b, len);
    memcpy(b->data + b->len, s, len);
    b->len += len;
}

#define LOG_PUT_LIT(b, lit) log_put((b), (lit), sizeof(lit) - 1)

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes are not valid UTF-8 (RFC 3629: no overlongs, no surrogates, nothing
 * past U+10FFFF). */
static size_t log_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

/* Writes s escaped for a JSON string at o (6 bytes of room per input byte) and returns
 * the end. Invalid UTF-8 bytes become U+FFFD, so the line is valid JSON whatever a
 * client sent in a path or header. */
static char *log_esc(char *o, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < len) {
        /* Runs of bytes that need nothing (the whole string, usually) go in one copy. */
        size_t j = i + petrel__json_plain_run((const char *)s + i, len - i, true);
        if (j > i) {
            memcpy(o, s + i, j - i);
            o += j - i;
            i = j;
            if (i == len)
                break;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t ul = log_utf8_len(s + i, len - i);
            if (ul == 0) {
                *o++ = (char)0xef;
                *o++ = (char)0xbf;
                *o++ = (char)0xbd;
                i++;
            } else {
                memcpy(o, s + i, ul);
                o += ul;
                i += ul;
            }
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 0xf];
            break;
        }
        i++;
    }
    return o;
}

/* Appends s as a quoted JSON string. */
static void log_put_str(struct log_buf *b, const char *str, size_t len)
{
    log_reserve(b, len * 6 + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    o = log_esc(o, (const unsigned char *)str, len);
    *o++ = '"';
    b->len = (size_t)(o - b->data);
}

/* Wall-clock time from a monotonic reading the caller already has: the offset between
 * the two clocks is re-read at most every 100 ms per thread, which keeps the error far
 * below the millisecond printed and saves a clock read (tens of ns in a VM) per access
 * record. mono <= 0: read the wall clock. */
static _Thread_local struct {
    int64_t mono, off;
} log_clock = {INT64_MIN / 2, 0};

static int64_t log_realtime_ns(int64_t mono)
{
    if (mono > 0 && mono - log_clock.mono < 100000000)
        return mono + log_clock.off;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t real = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (mono <= 0)
        return real;
    /* The offset from a fresh monotonic reading: `mono` may be a little old (it was read
     * before the response was sent), and its age would shift the next 100 ms of records. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t fresh = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    log_clock.mono = fresh;
    log_clock.off = real - fresh;
    return mono + log_clock.off;
}

/* Brings log_time up to the millisecond of `real` (ns since the epoch). The date part is
 * recomputed only when the second changes and the string only when the millisecond does. */
static void log_time_refresh(int64_t real)
{
    int64_t ms = real / 1000000;
    if (ms != log_time.ms) {
        time_t sec = (time_t)(real / 1000000000);
        if (sec != log_time.sec) {
            struct tm tm;
            gmtime_r(&sec, &tm);
            (void)strftime(log_time.str, sizeof(log_time.str), "%Y-%m-%dT%H:%M:%S.", &tm);
            log_time.sec = sec;
        }
        /* The date is always 20 characters for years 1000..9999. */
        int frac = (int)(ms % 1000);
        char *p = log_time.str + 20;
        p[0] = (char)('0' + frac / 100);
        p[1] = (char)('0' + frac / 10 % 10);
        p[2] = (char)('0' + frac % 10);
        p[3] = 'Z';
        p[4] = '\0';
        log_time.ms = ms;
    }
}

/* Appends "<time>" (quoted). */
static void log_put_time(struct log_buf *b)
{
    log_time_refresh(log_realtime_ns(0));
    log_put(b, "\"", 1);
    log_put(b, log_time.str, LOG_TIME_LEN);
    log_put(b, "\"", 1);
}

/* Appends {"time":...,"level":...,"msg":... without the closing brace. */
static void log_put_head(struct log_buf *b, petrel_log_level_t level, const char *msg,
                         size_t msglen)
{
    LOG_PUT_LIT(b, "{\"time\":");
    log_put_time(b);
    LOG_PUT_LIT(b, ",\"level\":\"");
    log_put(b, log_level_names[level], strlen(log_level_names[level]));
    LOG_PUT_LIT(b, "\",\"msg\":");
    log_put_str(b, msg, msglen);
}

static int log_dump_cb(const char *buffer, size_t size, void *data)
{
    log_put(data, buffer, size);
    return 0;
}

static void log_put_value(struct log_buf *b, json_t *v)
{
    if (json_is_string(v)) {
        /* Our escaper, not jansson's: a string made with the _nocheck
         * constructors may hold invalid UTF-8, which jansson refuses to
         * dump. */
        log_put_str(b, json_string_value(v), json_string_length(v));
        return;
    }
    size_t mark = b->len;
    if (petrel_json_dump(v, log_dump_cb, b) != 0) {
        b->len = mark;
        LOG_PUT_LIT(b, "null");
    }
}

/* Appends ,"key":value for each field that does not collide with a field the
 * record already has; a duplicate key would make the line ambiguous. */
static void log_put_fields(struct log_buf *b, json_t *fields, const char *const *reserved)
{
    const char *key;
    json_t *v;
    if (fields == NULL)
        return;
    if (!json_is_object(fields)) {
        LOG_PUT_LIT(b, ",\"data\":");
        log_put_value(b, fields);
        return;
    }
    json_object_foreach (fields, key, v) {
        bool skip = false;
        for (size_t i = 0; reserved[i] != NULL && !skip; i++)
            skip = strcmp(key, reserved[i]) == 0;
        if (skip)
            continue;
        LOG_PUT_LIT(b, ",");
        log_put_str(b, key, strlen(key));
        LOG_PUT_LIT(b, ":");
        log_put_value(b, v);
    }
}

static void log_end(struct log_buf *b)
{
    LOG_PUT_LIT(b, "}\n");
    if (!b->buffered || b->len >= LOG_FLUSH_AT)
        log_buf_flush(b);
}

int petrel_log_enabled(petrel_log_level_t level)
{
    return (int)level >= __atomic_load_n(&log_level, __ATOMIC_RELAXED) && level < PETREL_LOG_OFF;
}

static void log_record(petrel_log_level_t level, const char *msg, size_t msglen, json_t *fields)
{
    static const char *const reserved[] = {"time", "level", "msg", "request_id", NULL};
    struct log_buf *b = log_buf_get();
    log_put_head(b, level, msg, msglen);
    /* An explicit request_id field wins over the fiber's, so code off the
     * request fiber (a queue consumer) can still tie a record to a request. */
    json_t *rid_field = json_is_object(fields) ? json_object_get(fields, "request_id") : NULL;
    const char *rid = rid_field == NULL ? petrel__current_request_id() : NULL;
    if (rid_field != NULL) {
        LOG_PUT_LIT(b, ",\"request_id\":");
        log_put_value(b, rid_field);
    } else if (rid != NULL) {
        LOG_PUT_LIT(b, ",\"request_id\":");
        log_put_str(b, rid, strlen(rid));
    }
    log_put_fields(b, fields, reserved);
    b->urgent = true;
    log_end(b);
}

void petrel_log(petrel_log_level_t level, const char *fmt, ...)
{
    if (!petrel_log_enabled(level))
        return;
    char small[512];
    char *msg = small;
    va_list ap, again;
    va_start(ap, fmt);
    /* Kept for a second pass when the message does not fit the stack
     * buffer. */
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    if (n < 0) {
        msg = NULL;
        n = 0;
    } else if ((size_t)n >= sizeof(small)) {
        msg = petrel_xmalloc((size_t)n + 1);
        (void)vsnprintf(msg, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    va_end(ap);
    log_record(level, msg != NULL ? msg : "", (size_t)n, NULL);
    if (msg != small)
        free(msg);
}

void petrel_logj(petrel_log_level_t level, const char *msg, json_t *fields)
{
    if (petrel_log_enabled(level))
        log_record(level, msg != NULL ? msg : "", msg != NULL ? strlen(msg) : 0, fields);
    json_decref(fields);
}

void petrel__log_configure(petrel_log_level_t level, bool access)
{
    __atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
    __atomic_store_n(&log_access_on, access ? 1 : 0, __ATOMIC_RELAXED);
}

petrel_log_level_t petrel__log_parse_level(const char *s)
{
    if (s == NULL)
        return PETREL_LOG_INFO;
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
        if (strcasecmp(s, log_level_names[i]) == 0)
            return (petrel_log_level_t)i;
    }
    if (strcasecmp(s, "off") == 0)
        return PETREL_LOG_OFF;
    return PETREL_LOG_INFO;
}

void petrel__log_thread_buffered(bool on)
{
    struct log_buf *b = log_buf_get();
    if (!on)
        log_buf_flush(b);
    b->buffered = on;
}

void petrel__log_flush(void)
{
    struct log_buf *b = log_tls;
    if (b != NULL && b->len > 0)
        log_buf_flush(b);
}

int petrel__log_flush_due(void)
{
    struct log_buf *b = log_tls;
    if (b == NULL || b->len == 0)
        return -1;
    int64_t left = b->flushed_ms + LOG_ACCESS_DELAY_MS - coarse_ms();
    if (b->urgent || left <= 0) {
        log_buf_flush(b);
        return -1;
    }
    return (int)left;
}

/* The access record is written through a pointer into space reserved once: it runs
 * for every request, and a bounds check per piece cost more than the rest of it. */
#define AC_LIT(o, lit) (memcpy((o), (lit), sizeof(lit) - 1), (o) += sizeof(lit) - 1)

/* s as a quoted JSON string at o (room for 6 bytes per input byte + 2); returns the end.
 * The leading printable-ASCII run (usually all of it) is one copy; the rest goes through
 * log_esc. */
static inline char *ac_str(char *o, const char *str, size_t len)
{
    *o++ = '"';
    size_t i = petrel__json_plain_copy(o, str, len, true);
    o += i;
    if (i < len) /* rare: the general escaper takes the rest */
        o = log_esc(o, (const unsigned char *)str + i, len - i);
    *o++ = '"';
    return o;
}

static inline char *ac_uint(char *o, uint64_t u)
{
    if (u < 10) { /* a worker index, the whole milliseconds of most requests */
        *o = (char)('0' + u);
        return o + 1;
    }
    if (u >= 100 && u < 1000) { /* a status */
        o[0] = (char)('0' + u / 100);
        o[1] = (char)('0' + u / 10 % 10);
        o[2] = (char)('0' + u % 10);
        return o + 3;
    }
    char tmp[24];
    char *e = tmp + sizeof(tmp), *p = e;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t n = (size_t)(e - p);
    memcpy(o, p, n);
    return o + n;
}

/* Microseconds as milliseconds with three decimals ("12.345"). */
static inline char *ac_us(char *o, uint64_t us)
{
    uint64_t ms = us / 1000;
    o = ac_uint(o, ms);
    *o = '.';
    memcpy(o + 1, ac_digits3 + (us - ms * 1000) * 3, 3);
    return o + 4;
}

static inline char *ac_ns(char *o, int64_t ns)
{
    return ac_us(o, ns > 0 ? ((uint64_t)ns + 500) / 1000 : 0);
}

void petrel__log_access(const char *request_id, size_t rlen, const char *method, size_t mlen,
                        const char *path, size_t plen, int status, int64_t duration_ns, int worker,
                        int64_t now, const petrel__log_timing_t *timing, json_t *extra)
{
    static const char *const reserved[] = {"time", "level",  "msg",         "request_id", "method",
                                           "path", "status", "duration_ms", "worker",     NULL};
    if (!__atomic_load_n(&log_access_on, __ATOMIC_RELAXED)) {
        json_decref(extra);
        return;
    }
    if (method == NULL)
        mlen = 0, method = "";
    if (path == NULL)
        plen = 0, path = "";
    if (request_id == NULL)
        rlen = 0;
    /* Fixed text and numbers stay under 256 bytes; strings take at most 6 bytes per byte. */
    size_t need = 256 + 6 * (rlen + mlen + plen);
    if (timing != NULL)
        for (size_t i = 0; i < timing->n; i++)
            need += 48 + 6 * strlen(timing->kind[i]);
    struct log_buf *b = log_buf_get();
    log_reserve(b, need);
    log_time_refresh(log_realtime_ns(now));
    char *o = b->data + b->len;
    AC_LIT(o, "{\"time\":\"");
    memcpy(o, log_time.str, LOG_TIME_LEN);
    o += LOG_TIME_LEN;
    AC_LIT(o, "\",\"level\":\"info\",\"msg\":\"access\"");
    if (request_id != NULL) {
        /* A request id is generated hex or passed reqid_is_sane: nothing to escape. */
        AC_LIT(o, ",\"request_id\":\"");
        memcpy(o, request_id, rlen);
        o += rlen;
        *o++ = '"';
    }
    AC_LIT(o, ",\"method\":");
    o = ac_str(o, method, mlen);
    AC_LIT(o, ",\"path\":");
    o = ac_str(o, path, plen);
    AC_LIT(o, ",\"status\":");
    o = ac_uint(o, status < 0 ? 0 : (uint64_t)status);
    /* Microsecond resolution in milliseconds; a negative duration (a clock bug) is 0. */
    AC_LIT(o, ",\"duration_ms\":");
    o = ac_ns(o, duration_ns);
    AC_LIT(o, ",\"worker\":");
    o = ac_uint(o, (uint64_t)(worker < 0 ? 0 : worker));
    if (timing != NULL) {
        AC_LIT(o, ",\"run_ms\":");
        o = ac_ns(o, timing->run_ns);
        for (size_t i = 0; i < timing->n; i++) {
            AC_LIT(o, ",");
            const char *k = timing->kind[i];
            size_t kl = strlen(k);
            o = ac_str(o, k, kl);
            /* The key is "<kind>_ms": reopen the string just closed. */
            o--;
            AC_LIT(o, "_ms\":");
            o = ac_ns(o, timing->ns[i]);
        }
        AC_LIT(o, ",\"wait_ms\":");
        o = ac_ns(o, timing->wait_ns);
    }
    b->len = (size_t)(o - b->data);
    log_put_fields(b, extra, reserved);
    json_decref(extra);
    log_end(b);
}
