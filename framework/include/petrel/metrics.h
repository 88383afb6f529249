/*
 * petrel/metrics.h - Prometheus metrics: what GET /metrics exports and how a
 * module adds its own.
 *
 * GET /metrics answers the Prometheus text format 0.0.4 (when server.metrics is
 * true, the default). petrel itself exports:
 *   petrel_http_requests_total{route,method,status}      counter
 *   petrel_http_request_duration_seconds{route}          histogram
 *   petrel_http_request_run_seconds{route}               histogram: time on the fiber (CPU)
 *   petrel_http_request_wait_seconds{kind}               histogram: time awaiting, per kind
 *   petrel_http_requests_in_flight                       gauge
 *   petrel_http_connections                              gauge: client connections open
 *   petrel_loop_stall_seconds{worker}                    histogram: per loop iteration, the
 *                                                        time spent running fibers
 *   petrel_slow_callbacks_total                          counter: fiber slices longer than
 *                                                        server.slow_callback_ms
 *   petrel_fibers{worker}, petrel_fiber_stacks_pooled{worker}   gauges
 *   process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total
 *                                                        the standard process metrics
 * `route` is the route's template as declared ("/api/items/{item_id:int}"), so label
 * cardinality is bounded by the route table; requests that matched no route count under
 * route="<unmatched>". Counting costs a few non-atomic increments in arrays owned by the
 * worker thread; /metrics sums the workers when scraped.
 *
 * Exporting a module's own statistics (database pools, HTTP client origins,
 * semaphores, queues, process pools...): register a collector once, before the
 * server starts, and write samples from it when /metrics is scraped:
 *
 *     static void pool_collect_cb(petrel_metrics_writer_t *w, void *arg)
 *     {
 *         struct pool *p = arg;
 *         const char *labels[] = {"pool", p->name, NULL};
 *         petrel_metrics_gauge(w, "petrel_db_pool_checked_out", "Connections in use",
 *                              labels, (double)atomic_load(&p->checked_out));
 *         petrel_metrics_counter(w, "petrel_db_pool_timeouts_total",
 *                                "Acquires that timed out", labels, (double)p->timeouts);
 *     }
 *     ...
 *     petrel_metrics_add_collector(app, pool_collect_cb, pool);
 *
 * Samples of the same metric name from several calls (one per pool, per origin)
 * are grouped under one HELP/TYPE header, in first-seen order.
 */
#ifndef PETREL_METRICS_H
#define PETREL_METRICS_H

#include "app.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Accumulates one scrape's output; only valid inside a collector callback. */
typedef struct petrel_metrics_writer petrel_metrics_writer_t;

/**
 * A collector: writes its samples with petrel_metrics_gauge() / _counter().
 * Runs at every scrape of /metrics, on the worker thread that serves the scrape, possibly
 * while other workers change the values it reads: read shared state with atomics or under
 * the module's own lock. It must not await and must not block for long.
 */
typedef void (*petrel_metrics_collect_cb)(petrel_metrics_writer_t *w, void *arg);

/**
 * Registers `cb(w, arg)` to run at every scrape of the app's /metrics, after petrel's own
 * metrics, in registration order. Call it during setup, before petrel_server_start() (a
 * module's init function is the place). `arg` is borrowed: it must stay valid while the app
 * serves. Await: no. Errors: none (aborts on OOM, like every small allocation).
 */
PETREL_API void petrel_metrics_add_collector(petrel_app_t *app, petrel_metrics_collect_cb cb,
                                             void *arg);

/**
 * Writes one gauge sample `name{labels} value`. `name` must be a valid Prometheus metric
 * name (letters, digits, '_' and ':'; by convention petrel_<module>_<what>[_<unit>]);
 * `help` is the one-line description printed once per name; `labels` is NULL or a
 * NULL-terminated list of name/value pairs {"pool", "main", NULL}, values escaped here.
 * All strings are borrowed. Await: no. Errors: a sample with an invalid name is dropped.
 */
PETREL_API void petrel_metrics_gauge(petrel_metrics_writer_t *w, const char *name, const char *help,
                                     const char *const *labels, double value);

/** As petrel_metrics_gauge() for a counter: `name` should end in _total and `value` must
 * only ever grow. */
PETREL_API void petrel_metrics_counter(petrel_metrics_writer_t *w, const char *name,
                                       const char *help, const char *const *labels, double value);

#ifdef __cplusplus
}
#endif
#endif
