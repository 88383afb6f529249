/*
 * log_int.h - logging internals shared by log.c and the server: level and
 * access-log switches, per-thread buffering for loop threads, and the
 * hot-path access record.
 */
#ifndef PETREL_LOG_INT_H
#define PETREL_LOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <petrel/log.h>

/**
 * Sets the lowest level written and whether access records are written.
 * Safe to call from any thread at any time (the values are atomics); meant
 * for startup, after the config is loaded. Defaults: PETREL_LOG_INFO, true.
 */
void petrel__log_configure(petrel_log_level_t level, bool access);

/**
 * Parses "debug", "info", "warn", "error" or "off" (case-insensitive).
 * NULL or anything else gives PETREL_LOG_INFO, the default: the config layer
 * has already rejected values outside log.level's choices.
 */
petrel_log_level_t petrel__log_parse_level(const char *s);

/**
 * Switches the calling thread between buffered mode (records collect in a
 * thread-local buffer until petrel__log_flush(), or until it passes 32 KiB)
 * and direct mode (each record is written at once, the default). Loop threads
 * turn it on at start; turning it off flushes what is pending.
 */
void petrel__log_thread_buffered(bool on);

/**
 * Writes the calling thread's pending records to stdout with one write(2)
 * (retried on EINTR, EAGAIN and partial writes). Loop threads call it once
 * per loop iteration and before they exit. Cheap when nothing is pending.
 */
void petrel__log_flush(void);

/**
 * The loop's per-iteration flush: writes the calling thread's pending records
 * when one of them is not an access record, or when the last write is 20 ms
 * old; access records alone wait so that one write(2) carries many. Returns
 * the milliseconds until pending records are due (the loop caps its wait with
 * it), or -1 when nothing is pending.
 */
int petrel__log_flush_due(void);

/**
 * Logs one access record: {"time","level":"info","msg":"access","request_id",
 * "method","path","status","duration_ms","worker",...extra}. All pointers are
 * borrowed except `extra` (an object, or NULL), which it steals. request_id
 * may be NULL (the field is then left out). A no-op when access logging is
 * off; independent of the level, like uvicorn's separate access logger.
 * Built for the hot path: no allocation once the thread buffer is warm,
 * unless `extra` is given.
 */
/** Where a request's time went, for its access record (run_ms, <kind>_ms..., wait_ms). */
typedef struct petrel__log_timing {
    int64_t run_ns, wait_ns;
    size_t n;
    const char *kind[16];
    int64_t ns[16];
} petrel__log_timing_t;

/* request_id: NULL, or an id of rlen JSON-safe characters only (the server's are). */
void petrel__log_access(const char *request_id, size_t rlen, const char *method, size_t mlen,
                        const char *path, size_t plen, int status, int64_t duration_ns, int worker,
                        int64_t now /* petrel_now_ns() at the response, or 0 */,
                        const petrel__log_timing_t *timing /* may be NULL */,
                        json_t *extra /* steals, may be NULL */);

/**
 * The request id of the request whose fiber is running on this thread, or
 * NULL outside a request fiber. Implemented by the server; log.c adds it to
 * every record as "request_id". Borrowed.
 */
const char *petrel__current_request_id(void);

#endif
