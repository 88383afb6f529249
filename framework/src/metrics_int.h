/*
 * metrics_int.h - private: the server's metrics registry (metrics.c) as used by
 * the server (server.c: loop and request hooks), the response path (req.c:
 * Server-Timing and the access record) and the app (collectors).
 *
 * Counting happens on the worker that owns the data, with relaxed atomic
 * loads/stores (plain moves on x86-64 and AArch64, no lock prefix): only the
 * owner writes, a scrape on another worker only reads.
 */
#ifndef PETREL_METRICS_INT_H
#define PETREL_METRICS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "log_int.h"
#include "petrel/metrics.h"
#include "server_int.h"

/** A registered collector (kept in the app). */
struct petrel__collector {
    petrel_metrics_collect_cb cb;
    void *arg;
};

typedef struct petrel__metrics petrel__metrics_t;
typedef struct petrel__wmetrics petrel__wmetrics_t;

/** Creates the registry for a server whose router is built and worker count known. */
petrel__metrics_t *petrel__metrics_new(petrel_server_t *srv);
void petrel__metrics_free(petrel__metrics_t *m);
/** Worker i's counters. */
petrel__wmetrics_t *petrel__metrics_worker(petrel__metrics_t *m, int i);
/** True when server.metrics is on (requests are counted, /metrics answers). */
bool petrel__metrics_enabled(const petrel__metrics_t *m);

/** On worker `w`'s thread before its loop starts: binds its counters, installs the stall
 * detector (server.slow_callback_ms) on its scheduler. */
void petrel__metrics_attach(struct worker *w);
/** Once per loop iteration on worker `w`: the loop stall sample and fiber gauges. */
void petrel__metrics_loop(struct worker *w);
/** A response that never ran on a fiber (404, 405, 422, 431, 503 while starting). */
void petrel__metrics_inline(struct worker *w, const petrel_route_t *route, const char *method,
                            size_t mlen, int status, int64_t start_ns);
/**
 * A fiber-handled request's response is about to start (req.c): counts it, and adds the
 * Server-Timing header when server.server_timing is on. Returns the access record's extra
 * fields (run_ms, wait_ms, <kind>_ms) when the access log is on, else NULL; owned.
 */
bool petrel__metrics_response(petrel_req_t *req, int status, int64_t now,
                              petrel__log_timing_t *out);
/** The stall detector's callback, installed on every worker's scheduler. */
void petrel__metrics_slow_cb(petrel_fiber_t *f, int64_t slice_ns);

/** GET /metrics. */
int petrel__metrics_route(petrel_req_t *req);

/* debug.c: the task monitor's routes (registered only when debug is on). */
const petrel_route_t *petrel__debug_routes(size_t *n);

#endif
