/*
 * petrel/http.h - the outbound HTTP/1.1 client (httpx.AsyncClient's knobs):
 * named clients created once in the lifespan and shared by every worker,
 * a keep-alive pool per client with a process-wide connection cap, timeouts
 * for connect, write, read, pool wait and the whole call, TLS with
 * verification and SNI on by default, retries with backoff for idempotent
 * methods, a circuit breaker (consecutive failures or a failure ratio) and
 * stats, exported in /metrics by petrel_http_metrics_collect().
 *
 * One client talks to one origin (its base_url). Its pool is process-wide: the
 * sockets are not tied to an event loop (each wait registers the socket on the
 * waiting worker's own epoll), so one idle list and one `max_connections` cap
 * serve every worker; a fiber waiting for a connection is woken on its own
 * worker, in FIFO order. Host names are resolved once, when the client is created.
 */
#ifndef PETREL_HTTP_H
#define PETREL_HTTP_H

#include <stdbool.h>

#include <jansson.h>

#include "common.h"
#include "config.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct petrel_http_client petrel_http_client_t;

/** Client settings; `upstreams.<name>.<field>` in config. Strings are borrowed during
 * petrel_http_client_new() only (the client copies them). */
typedef struct petrel_http_opts {
    const char *name;          /**< for logs and stats ("prices") */
    const char *base_url;      /**< "http://127.0.0.1:9000" or "https://host/prefix" (required) */
    int64_t max_connections;   /**< process-wide cap on open connections (default 100) */
    int64_t max_keepalive;     /**< idle connections kept (default 20) */
    double keepalive_expiry_s; /**< an idle connection older than this is closed (default 5) */
    int64_t connect_ms, read_ms, write_ms, pool_ms; /**< phase timeouts (default 5000 each) */
    int64_t total_ms;            /**< whole call incl. retries, unless the call gives one (10000) */
    int64_t max_response_bytes;  /**< response body cap (default 10 MiB): PETREL_ETOOBIG above */
    int64_t retries;             /**< extra attempts for idempotent methods (default 0) */
    const int *retry_statuses;   /**< statuses retried like connect errors; 0-terminated or NULL */
    int64_t backoff_base_ms;     /**< backoff before retry i: base * 2^i, with jitter (50) */
    int64_t breaker_failures;    /**< consecutive failures that open the breaker; 0: off */
    int64_t breaker_cooldown_ms; /**< open -> half-open after this (default 5000) */
    double breaker_ratio;       /**< failure ratio over the last breaker_window calls that opens the
                                     breaker (0 < r <= 1; 0: off, the default) */
    int64_t breaker_window;     /**< calls the ratio is taken over; it is judged only once that
                                     many were seen since the breaker last closed (default 20) */
    bool verify;                /**< TLS certificate + host name verification (default true) */
    const char *ca_file;        /**< PEM bundle to trust instead of the system store */
    const char *const *headers; /**< default headers, "Name: value", NULL-terminated */
    const char *semaphore;      /**< a declared semaphore (semaphores.<name>) each whole call,
                                     retries included, holds a slot of: caps the calls in
                                     flight to this upstream below max_connections, or across
                                     clients that share it. Waits up to pool_ms (PETREL_EPOOL).
                                     NULL: none (the default) */
} petrel_http_opts_t;

/** Fills `o` with the defaults above (verify on, base_url NULL). */
PETREL_API void petrel_http_opts_init(petrel_http_opts_t *o);

/**
 * Creates a client. Resolves the base URL's host (blocking; call it in a lifespan hook, not
 * a handler), builds the TLS context (a warning is logged when verify is false).
 * Owned: petrel_http_client_free(). Returns 0, PETREL_EINVAL (bad URL or options, logged),
 * PETREL_ECONFIG (CA file unreadable, host unknown).
 */
PETREL_API PETREL_NODISCARD int petrel_http_client_new(const petrel_http_opts_t *o,
                                                       petrel_http_client_t **out);
/** Creates the client `upstreams.<name>` from a loaded config (see petrel_http_client_new). */
PETREL_API PETREL_NODISCARD int petrel_http_client_from_config(const petrel_config_t *cfg,
                                                               const char *name,
                                                               petrel_http_client_t **out);
/** Closes idle connections and frees the client. No call may be in flight. NULL is a no-op. */
PETREL_API void petrel_http_client_free(petrel_http_client_t *c);
/** The client's name. Borrowed. */
PETREL_API const char *petrel_http_client_name(const petrel_http_client_t *c);

/** A header for a request (borrowed strings). */
typedef struct petrel_http_header {
    const char *name, *value;
} petrel_http_header_t;

/** One request. Every pointer is borrowed for the duration of the call. */
typedef struct petrel_http_req {
    const char *method;       /**< "GET" when NULL */
    const char *path;         /**< appended to the base URL's path; sent as is (escape segments with
                                   petrel_http_escape()) */
    const char *const *query; /**< key, value, key, value, ..., NULL: escaped and appended */
    const petrel_http_header_t *headers;
    size_t nheaders;
    const json_t *json; /**< JSON body (sent as application/json), or NULL */
    const void *body;   /**< raw body when json is NULL */
    size_t body_len;
    const char *content_type; /**< for a raw body */
    int64_t timeout_ms; /**< whole call incl. retries; 0 or PETREL_TIMEOUT_DEFAULT: total_ms */
} petrel_http_req_t;

/** A response. Always initialised by a call; owned: petrel_http_res_dispose(). */
typedef struct petrel_http_res {
    int status; /**< HTTP status; 0 when no response was received */
    char *body; /**< NUL-terminated (decoded from chunked); NULL when none */
    size_t body_len;
    size_t nheaders;
    char **header_names; /**< lower-case */
    char **header_values;
    int error;         /**< the call's return code (0 on success) */
    char message[160]; /**< what failed, for logs ("connect: Connection refused") */
    int attempts;      /**< 1 + retries made */
} petrel_http_res_t;

/**
 * Sends `rq` and reads the whole response into `res` (any HTTP status counts as success:
 * check res->status). Await: yes; every phase is bounded by its timeout and the whole call
 * by rq->timeout_ms (or total_ms); retries (idempotent methods only: GET, HEAD, PUT, DELETE,
 * OPTIONS) back off exponentially with jitter and never run past that deadline.
 * A connection whose response was not read completely, or that failed or timed out, is
 * closed, never pooled. Returns 0, or: PETREL_ETIMEDOUT (connect/read/write/total),
 * PETREL_EPOOL (no connection free within pool_ms), PETREL_EBREAKER (breaker open: fails
 * at once), PETREL_ETOOBIG (response over max_response_bytes), PETREL_ECONNREFUSED,
 * PETREL_EIO (connection closed or reset, bad TLS, malformed response), PETREL_ECANCELED.
 * On failure res->body is NULL and res->error / res->message say why.
 */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int
petrel_http_request(petrel_http_client_t *c, const petrel_http_req_t *rq, petrel_http_res_t *res);

/** GET `path` (sent as is) with the client's default timeout. Await: yes. See
 * petrel_http_request. */
PETREL_API PETREL_AWAIT PETREL_NODISCARD int
petrel_http_get(petrel_http_client_t *c, const char *path, petrel_http_res_t *res);

/** Parses the response body as JSON. A new reference, or NULL when it is not JSON. */
PETREL_API json_t *petrel_http_res_json(const petrel_http_res_t *res);
/** First value of response header `name` (case-insensitive), or NULL. Borrowed from res. */
PETREL_API const char *petrel_http_res_header(const petrel_http_res_t *res, const char *name);
/** Frees what `res` holds and zeroes it. Safe to call twice. */
PETREL_API void petrel_http_res_dispose(petrel_http_res_t *res);

/**
 * Percent-encodes `s` for a path segment or query value (everything but RFC 3986
 * unreserved characters) into `out` (cap bytes, NUL-terminated). Returns the length, or
 * PETREL_ETOOBIG when it does not fit (out untouched).
 */
PETREL_API PETREL_NODISCARD int petrel_http_escape(const char *s, char *out, size_t cap);

/** Circuit breaker states. */
typedef enum petrel_breaker_state {
    PETREL_BREAKER_CLOSED = 0,
    PETREL_BREAKER_OPEN,
    PETREL_BREAKER_HALF_OPEN,
} petrel_breaker_state_t;

/** Why the client closed a connection instead of keeping it in the pool. */
typedef enum petrel_http_close_reason {
    PETREL_HTTP_CLOSE_EXPIRED = 0,  /**< idle longer than keepalive_expiry_s */
    PETREL_HTTP_CLOSE_PEER,         /**< the server closed it while it sat idle */
    PETREL_HTTP_CLOSE_NOT_REUSABLE, /**< Connection: close, or a body that ends at EOF */
    PETREL_HTTP_CLOSE_POOL_FULL,    /**< max_keepalive idle connections already */
    PETREL_HTTP_CLOSE_TIMEOUT,      /**< a phase or the call's deadline timed out */
    PETREL_HTTP_CLOSE_CANCELLED,    /**< the calling fiber was cancelled mid-exchange */
    PETREL_HTTP_CLOSE_ERROR,        /**< reset, malformed or oversize response, TLS error */
    PETREL_HTTP_CLOSE_REASONS
} petrel_http_close_reason_t;

/** The reason's name as in stats and metrics ("expired", "peer", ...). */
PETREL_API const char *petrel_http_close_reason_name(petrel_http_close_reason_t r);

/** A snapshot of a client's pool and counters (process-wide). */
typedef struct petrel_http_stats {
    int64_t open;    /**< connections open (idle + in use + connecting) */
    int64_t idle;    /**< kept alive, waiting in the pool */
    int64_t in_use;  /**< serving a call */
    int64_t waiting; /**< calls waiting for a connection */
    int64_t max_connections;
    int64_t connects_total; /**< connections made (TCP + TLS handshake done) */
    int64_t reused_total;   /**< calls served on a kept-alive connection */
    int64_t requests_total; /**< attempts sent */
    int64_t retries_total;
    int64_t timeouts; /**< attempts that timed out (any phase, pool included) */
    int64_t errors;   /**< attempts that failed otherwise */
    int64_t closed[PETREL_HTTP_CLOSE_REASONS]; /**< connections closed, by reason */
    petrel_breaker_state_t breaker;
} petrel_http_stats_t;

/** Reads the client's stats (thread-safe). */
PETREL_API void petrel_http_stats(petrel_http_client_t *c, petrel_http_stats_t *out);
/** The stats as a JSON object (new reference); breaker as "closed"/"open"/"half_open". */
PETREL_API json_t *petrel_http_stats_json(petrel_http_client_t *c);

/**
 * Writes every live client's stats (created and not yet freed, whoever made it); `arg` is
 * unused. /metrics calls it at each scrape for every app, so apps need not register it.
 * Samples, labelled {upstream="<client name>"}:
 *   petrel_http_client_connections{upstream,state="open|idle|in_use"}   gauge
 *   petrel_http_client_max_connections, petrel_http_client_waiting      gauges
 *   petrel_http_client_breaker_open        gauge: 1 while the breaker is open or half-open
 *   petrel_http_client_connects_total, _reused_total, _requests_total, _retries_total,
 *   _timeouts_total, _errors_total          counters (see petrel_http_stats_t)
 *   petrel_http_client_closed_total{upstream,reason}  counter, reasons as
 *                                           petrel_http_close_reason_name() names them
 * Thread-safe; clients may be created and freed while it runs. Await: no.
 */
PETREL_API void petrel_http_metrics_collect(petrel_metrics_writer_t *w, void *arg);

#ifdef __cplusplus
}
#endif
#endif
