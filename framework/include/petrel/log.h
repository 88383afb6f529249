/*
 * petrel/log.h - JSON-lines logging to stdout.
 *
 * Each record is one line: {"time":"2026-01-02T03:04:05.678Z","level":"info",
 * "msg":"...","request_id":"...",...}. On a request fiber the request id is
 * added automatically. Records are buffered per thread and written with one
 * write(2) per batch, so logging never blocks the loop for long.
 */
#ifndef PETREL_LOG_H
#define PETREL_LOG_H

#include <jansson.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum petrel_log_level {
    PETREL_LOG_DEBUG = 0,
    PETREL_LOG_INFO,
    PETREL_LOG_WARN,
    PETREL_LOG_ERROR,
    PETREL_LOG_OFF,
} petrel_log_level_t;

/** Logs a printf-formatted message at `level`. */
PETREL_API void petrel_log(petrel_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Logs `msg` with extra structured fields; steals `fields` (an object, or NULL). */
PETREL_API void petrel_logj(petrel_log_level_t level, const char *msg, json_t *fields);
/** True when `level` would be written. */
PETREL_API int petrel_log_enabled(petrel_log_level_t level);

#define petrel_log_debug(...) petrel_log(PETREL_LOG_DEBUG, __VA_ARGS__)
#define petrel_log_info(...) petrel_log(PETREL_LOG_INFO, __VA_ARGS__)
#define petrel_log_warn(...) petrel_log(PETREL_LOG_WARN, __VA_ARGS__)
#define petrel_log_error(...) petrel_log(PETREL_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
