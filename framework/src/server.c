/*
 * server.c - the server: worker threads each running an H2O evloop with its
 * own SO_REUSEPORT listener and fiber scheduler, request dispatch onto
 * fibers (route match, validation, per-route deadline, cancellation when the
 * client goes away), the control thread that runs lifespan hooks, and
 * graceful shutdown.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common_int.h"
#include "limits_int.h"
#include "log_int.h"
#include "metrics_int.h"
#include "petrel/log.h"
#include "server_int.h"

static __thread struct worker *tl_worker;

int petrel_worker_index(void)
{
    return tl_worker != NULL ? tl_worker->index : -1;
}

const char *petrel__current_request_id(void)
{
    petrel_fiber_t *f = petrel_fiber_current();
    if (f == NULL || tl_worker == NULL || f->user == NULL)
        return NULL;
    return ((petrel_req_t *)f->user)->reqid;
}

petrel_req_t *petrel__current_req(void)
{
    petrel_fiber_t *f = petrel_fiber_current();
    if (f == NULL || tl_worker == NULL)
        return NULL;
    return f->user;
}

/* ------------------------------------------------------------------ */
/* built-in routes                                                     */

static int healthz(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static int readyz(petrel_req_t *req)
{
    petrel_server_t *srv = req->w->srv;
    int st = atomic_load(&srv->state);
    petrel_app_t *app = srv->app;
    if (st == SERVER_READY && app->readiness != NULL) {
        char reason[256] = "";
        if (app->readiness(app, reason, sizeof(reason), app->readiness_arg) != 0) {
            petrel_resp_header(req, "Retry-After", "1");
            return petrel_json(req, 503,
                               json_pack("{s:s,s:s}", "status", "not_ready", "reason",
                                         reason[0] != '\0' ? reason : "not ready"));
        }
    }
    if (st == SERVER_READY)
        return petrel_json(req, 200, json_pack("{s:s}", "status", "ready"));
    petrel_resp_header(req, "Retry-After", "1");
    return petrel_json(
        req, 503, json_pack("{s:s}", "status", st == SERVER_STARTING ? "starting" : "draining"));
}

static const petrel_route_t builtin_routes[] = {
    PETREL_ROUTE(GET, "/healthz", healthz, .summary = "Liveness", .tags = {"ops"},
                 .timeout_ms = -1),
    PETREL_ROUTE(GET, "/readyz", readyz, .summary = "Readiness", .tags = {"ops"}, .timeout_ms = -1),
    PETREL_ROUTE(GET, "/metrics", petrel__metrics_route, .summary = "Prometheus metrics",
                 .tags = {"ops"}, .timeout_ms = -1),
    PETREL_ROUTE(GET, "/openapi.json", petrel__openapi_route, .include_in_schema_false = true,
                 .timeout_ms = -1),
    PETREL_ROUTE(GET, "/docs", petrel__docs_route, .include_in_schema_false = true,
                 .timeout_ms = -1),
    PETREL_ROUTE(GET, "/redoc", petrel__redoc_route, .include_in_schema_false = true,
                 .timeout_ms = -1),
    PETREL_ROUTE(GET, "/docs/static/{file:path}", petrel__static_route,
                 .include_in_schema_false = true, .timeout_ms = -1),
};

const petrel_route_t *petrel__builtin_routes(size_t *n)
{
    *n = sizeof(builtin_routes) / sizeof(builtin_routes[0]);
    return builtin_routes;
}

static bool route_is_builtin(const petrel_route_t *r)
{
    size_t n = sizeof(builtin_routes) / sizeof(builtin_routes[0]);
    return r >= builtin_routes && r < builtin_routes + n;
}

/* ------------------------------------------------------------------ */
/* request lifecycle                                                   */

#define REQ_CACHE_MAX 256

/* A zeroed request, from the worker's cache when it has one. */
static petrel_req_t *req_new(struct worker *w)
{
    petrel_req_t *req = w->req_cache;
    if (req == NULL)
        return petrel_xcalloc(1, sizeof(*req));
    w->req_cache = *(petrel_req_t **)req;
    w->nreq_cache--;
    petrel__clear(req, offsetof(petrel_req_t, match));
    return req;
}

/* Frees a request's memory, or keeps it for the next one (the link lives in its first
 * bytes, which req_new zeroes). */
static void req_recycle(struct worker *w, petrel_req_t *req)
{
    if (w->req_cache_closed || w->nreq_cache >= REQ_CACHE_MAX) {
        free(req);
        return;
    }
    *(petrel_req_t **)req = w->req_cache;
    w->req_cache = req;
    w->nreq_cache++;
}

static void req_cache_close(struct worker *w)
{
    w->req_cache_closed = true;
    while (w->req_cache != NULL) {
        petrel_req_t *req = w->req_cache;
        w->req_cache = *(petrel_req_t **)req;
        free(req);
    }
    w->nreq_cache = 0;
}

static void req_release(petrel_req_t *req)
{
    if (--req->refs > 0)
        return;
    if (h2o_linklist_is_linked(&req->link))
        h2o_linklist_unlink(&req->link);
    json_decref(req->params);
    json_decref(req->body_json);
    /* Most requests never used their arena (see inl). */
    if (req->arena.chunks != NULL || req->arena.shared_refs != NULL || req->arena.directs != NULL)
        h2o_mem_clear_pool(&req->arena);
    req_recycle(req->w, req);
}

void petrel__req_retain(petrel_req_t *req)
{
    req->refs++;
}

void petrel__req_release(petrel_req_t *req)
{
    req_release(req);
}

/* h2o frees its request (the client went away, or the response is done):
 * from here on the fiber must not touch req->h2o. */
static void req_on_h2o_dispose(void *p)
{
    petrel_req_t *req = *(petrel_req_t **)p;
    req->h2o = NULL;
    if (req->fiber != NULL)
        petrel_fiber_cancel(req->fiber);
    req_release(req);
}

/* on_req's reference becomes h2o's: released when h2o disposes its request. */
static void req_link_h2o(petrel_req_t *req, h2o_req_t *h)
{
    petrel_req_t **link = h2o_mem_alloc_shared(&h->pool, sizeof(*link), req_on_h2o_dispose);
    *link = req;
}

static void req_deadline_cb(petrel__timer_t *t)
{
    petrel_req_t *req = t->data;
    req->timed_out = true;
    if (req->h2o != NULL && !req->responded)
        petrel__req_send_error(req, 504, "Request timed out");
    if (req->fiber != NULL)
        petrel_fiber_cancel(req->fiber);
}

/* HTTP/1: h2o stops reading while a request is handled, so it would notice a
 * client that hung up only when writing the response. A waiting handler
 * watches the socket for the peer's FIN instead and is cancelled at once. */
static void req_client_left(petrel_req_t *req)
{
    petrel__fdwatch_del(req->w->sched, &req->hup);
    req->client_gone = true;
    if (req->fiber != NULL)
        petrel_fiber_cancel(req->fiber);
}

static void req_on_hup(petrel__fdwatch_t *hw, uint32_t events)
{
    (void)events;
    req_client_left(hw->data);
}

/* The HTTP/1 socket of the request a fiber serves (its handler or a child task), or -1. */
static int req_client_fd(petrel_req_t *req)
{
    h2o_req_t *h = req->h2o;
    if (h == NULL || h->version >= 0x200 || h->conn->callbacks->get_socket == NULL)
        return -1;
    h2o_socket_t *sock = h->conn->callbacks->get_socket(h->conn);
    return sock != NULL ? h2o_socket_get_fd(sock) : -1;
}

bool petrel__fiber_client_gone(void)
{
    petrel_fiber_t *f = petrel_fiber_current();
    petrel_req_t *req = f != NULL ? f->user : NULL;
    if (req == NULL)
        return false;
    if (req->client_gone)
        return true;
    int fd = req_client_fd(req);
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) != 1 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0)
        return false;
    /* Seen before the loop's own watch fired: act as it would. */
    req_client_left(req);
    return true;
}

/* Only the worker itself writes its count (scrapes and the drain read it): a relaxed
 * load and store, not a locked add per request. */
static inline void inflight_add(struct worker *w, long d)
{
    atomic_store_explicit(&w->inflight,
                          atomic_load_explicit(&w->inflight, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

/* The request's deadline counts from its arrival. */
static void req_arm_deadline(petrel_req_t *req)
{
    req->deadline_armed = true;
    int64_t tmo =
        req->route->timeout_ms != 0 ? req->route->timeout_ms : req->w->srv->conf.request_timeout_ms;
    if (tmo > 0)
        petrel__timer_start_at(req->w->sched, &req->deadline, req->start_ns, tmo);
}

static void req_first_park(petrel_fiber_t *f)
{
    petrel_req_t *req = f->user;
    /* A handler that runs through without awaiting cannot be cancelled anyway (the loop
     * is not running), so its deadline is armed only when it first waits. */
    if (!req->deadline_armed)
        req_arm_deadline(req);
    int fd = req_client_fd(req);
    if (fd < 0)
        return;
    req->hup.cb = req_on_hup;
    req->hup.data = req;
    (void)petrel__fdwatch_add(req->w->sched, &req->hup, fd, EPOLLRDHUP);
}

static void req_fiber_done(void *arg)
{
    petrel_req_t *req = arg;
    struct worker *w = req->w;
    petrel__timer_stop(w->sched, &req->deadline);
    petrel__fdwatch_del(w->sched, &req->hup);
    if (req->client_gone && req->h2o != NULL && !req->responded) {
        /* Nobody will read it; writing it lets h2o notice the closed socket
         * and free the connection. */
        petrel__req_send_error(req, 499, "Client Closed Request");
    }
    if (!req->responded && req->h2o == NULL) {
        /* The client left before we answered: log it as nginx's 499. */
        int64_t now = petrel_now_ns();
        petrel__log_access(req->reqid, req->reqid_len, req->method, req->mlen, req->path, req->plen,
                           499, now - req->start_ns, w->index, now, NULL, NULL);
        petrel__metrics_inline(w, req->route, req->method, req->mlen, 499, req->start_ns);
    }
    req->fiber->user = NULL;
    req->fiber = NULL;
    inflight_add(w, -1);
    req_release(req);
}

static void request_main(void *arg)
{
    petrel_req_t *req = arg;
    petrel_defer(req_fiber_done, req);
    /* The route's rate limit and semaphore answer 429/503 themselves. */
    int rc = petrel__route_limits_enter(req);
    if (rc == 0)
        rc = req->route->handler(req);
    if (req->responded || req->h2o == NULL)
        return;
    if (rc == PETREL_ECANCELED && req->client_gone) {
        /* The client hung up: nothing failed, req_fiber_done answers 499 for the log. */
        return;
    }
    if (rc < 0) {
        int status = petrel_err_http_status(rc);
        if (status >= 500 && status != 503 && status != 504) {
            petrel_logj(PETREL_LOG_ERROR, "handler failed",
                        json_pack("{s:s,s:s,s:s}", "route", req->route->path, "error",
                                  petrel_err_name(rc), "reason",
                                  req->has_error && req->last_error.message
                                      ? req->last_error.message
                                      : petrel_strerror(rc)));
            petrel__req_send_error(req, 500, "Internal Server Error");
        } else {
            const char *detail = req->has_error && req->last_error.message != NULL
                                     ? req->last_error.message
                                     : petrel_strerror(rc);
            if (status == 503 || status == 429)
                petrel_resp_header(req, "Retry-After", "1");
            petrel__req_send_error(req, status, detail);
        }
        return;
    }
    if (!req->has_response) {
        petrel_logj(PETREL_LOG_ERROR, "handler returned without a response",
                    json_pack("{s:s}", "route", req->route->path));
        petrel__req_send_error(req, 500, "Internal Server Error");
        return;
    }
    petrel__req_send(req);
}

static bool reqid_is_sane(const char *v, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

/* Copies n bytes and a NUL to dst; returns the byte after the NUL. */
static char *cstr_put(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
    dst[n] = '\0';
    return dst + n + 1;
}

/* i: the index of the request's X-Request-ID header, or -1. gen: 17 bytes for a generated
 * id. */
static const char *reqid_make(struct worker *w, h2o_req_t *h, ssize_t i, h2o_mem_pool_t *pool,
                              char *gen, size_t *len)
{
    if (i != -1) {
        h2o_iovec_t v = h->headers.entries[i].value;
        if (reqid_is_sane(v.base, v.len)) {
            char *s = h2o_mem_alloc_pool(pool, v.len + 1);
            cstr_put(s, v.base, v.len);
            *len = v.len;
            return s;
        }
    }
    *len = 16;
    /* 64 bits: a per-worker sequence mixed with a random salt (splitmix64). */
    uint64_t x = w->reqid_salt + (++w->reqid_seq) * 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    /* 16 lowercase hex digits, eight at a time: each 32-bit half's nibbles are spread one per
     * byte, then mapped to '0'..'9' / 'a'..'f' in parallel. (Which digit comes from which bits
     * does not matter for a random id.) */
    for (int half = 0; half < 2; half++) {
        uint64_t v = half ? x >> 32 : x & 0xffffffffull;
        v = ((v & 0xffff0000ull) << 16) | (v & 0xffffull);
        v = ((v & 0x0000ff000000ff00ull) << 8) | (v & 0x000000ff000000ffull);
        v = ((v & 0x00f000f000f000f0ull) << 4) | (v & 0x000f000f000f000full);
        uint64_t letters = ((v + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
        v += 0x3030303030303030ull + letters * ('a' - '0' - 10);
        memcpy(gen + 8 * half, &v, 8);
    }
    gen[16] = '\0';
    return gen;
}

static const char *hdr_lookup(void *ctx, const char *name, size_t *len)
{
    h2o_req_t *h = ctx;
    char lower[128];
    size_t n = strlen(name);
    if (n >= sizeof(lower))
        return NULL;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    /* Header parameters are declared in snake_case and sent with dashes, as FastAPI converts. */
    for (size_t i = 0; i < n; i++)
        if (lower[i] == '_')
            lower[i] = '-';
    ssize_t i = h2o_find_header_by_str(&h->headers, lower, n, -1);
    if (i == -1)
        return NULL;
    *len = h->headers.entries[i].value.len;
    return h->headers.entries[i].value.base;
}

/* Answers without a fiber (404, 405, 422, 503 while starting). */
static void send_inline_json(h2o_req_t *h, int status, const char *body, size_t len,
                             const char *allow)
{
    static h2o_generator_t gen = {NULL, NULL};
    h->res.status = status;
    h->res.reason = petrel__reason_phrase(status);
    h->res.content_length = len;
    h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    if (allow != NULL)
        h2o_add_header_by_str(&h->pool, &h->res.headers, H2O_STRLIT("allow"), 0, NULL, allow,
                              strlen(allow));
    petrel_server_t *srv = tl_worker->srv;
    if (srv->server_hdr.len > 0)
        h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_SERVER, NULL, srv->server_hdr.base,
                       srv->server_hdr.len);
    h2o_iovec_t buf = h2o_iovec_init(body, len);
    bool head = h->method.len == 4 && memcmp(h->method.base, "HEAD", 4) == 0;
    h2o_start_response(h, &gen);
    h2o_send(h, &buf, head ? 0 : 1, H2O_SEND_STATE_FINAL);
}

static void send_inline_detail(struct worker *w, h2o_req_t *h, int status, json_t *detail,
                               const char *allow, const petrel_route_t *route, int64_t start)
{
    json_t *doc = json_pack("{s:o}", "detail", detail);
    size_t n = 0;
    /* The same serialiser as handler responses: a 422 echoing a float input prints it as
     * Python would. */
    char *text = petrel_json_dumps(doc, &n);
    json_decref(doc);
    PETREL_ASSERT(text != NULL);
    char *buf = h2o_mem_alloc_pool(&h->pool, n ? n : 1);
    memcpy(buf, text, n);
    free(text);
    send_inline_json(h, status, buf, n, allow);
    const char *m = h->method.base;
    size_t plen = h->query_at != SIZE_MAX ? h->query_at : h->path.len;
    int64_t now = petrel_now_ns();
    petrel__log_access(NULL, 0, m, h->method.len, h->path.base, plen, status, now - start, w->index,
                       now, NULL, NULL);
    petrel__metrics_inline(w, route, m, h->method.len, status, start);
}

static int on_req(h2o_handler_t *self, h2o_req_t *h)
{
    (void)self;
    struct worker *w = tl_worker;
    petrel_server_t *srv = w->srv;
    size_t plen = h->query_at != SIZE_MAX ? h->query_at : h->path.len;
    int64_t start = petrel_now_ns();

    /* h2o's own cap (H2O_MAX_REQLEN, ~417 KB) is far above what a JSON API
     * should accept; enforce ours like h11 (16 KB) does. */
    size_t hbytes = h->method.len + h->path.len;
    ssize_t rid_at = -1; /* the first X-Request-ID, found on the way (names are lowercase) */
    for (size_t i = 0; i < h->headers.size && hbytes <= (size_t)srv->conf.max_header_bytes; i++) {
        const h2o_header_t *e = &h->headers.entries[i];
        hbytes += e->name->len + e->value.len + 4;
        if (e->name->len == 12 && rid_at < 0 && memcmp(e->name->base, "x-request-id", 12) == 0)
            rid_at = (ssize_t)i;
    }
    if (hbytes > (size_t)srv->conf.max_header_bytes) {
        h->http1_is_persistent = 0;
        send_inline_detail(w, h, 431, json_string("Request Header Fields Too Large"), NULL, NULL,
                           start);
        return 0;
    }

    petrel_req_t *req = req_new(w);
    h2o_mem_init_pool(&req->arena);
    req->w = w;
    req->start_ns = start;
    /* One block for the copies every request keeps: path, decoded path, query, method and
     * a generated request id (one allocation instead of five). */
    size_t qlen = h->query_at != SIZE_MAX ? h->path.len - h->query_at - 1 : 0;
    size_t need = 2 * (plen + 1) + (qlen + 1) + (h->method.len + 1) + 17;
    char *blk = need <= sizeof(req->inl) ? req->inl : h2o_mem_alloc_pool(&req->arena, need);
    req->path = blk;
    req->plen = plen;
    req->scratch = cstr_put(blk, h->path.base, plen);
    blk = req->scratch + plen + 1;
    int st = petrel__router_match(srv->router, h->method.base, h->method.len, req->path, plen,
                                  req->scratch, &req->match);
    if (st != 0) {
        const char *allow = st == 405 ? req->match.allow : NULL;
        send_inline_detail(w, h, st, json_string(st == 404 ? "Not Found" : "Method Not Allowed"),
                           allow, NULL, start);
        goto free_early;
    }
    req->route = req->match.route;
    if (atomic_load(&srv->state) != SERVER_READY && !route_is_builtin(req->route)) {
        h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        send_inline_detail(w, h, 503,
                           json_string(atomic_load(&srv->state) == SERVER_STARTING
                                           ? "Service is starting"
                                           : "Service is shutting down"),
                           NULL, req->route, start);
        goto free_early;
    }
    if (h->query_at != SIZE_MAX) {
        req->query = blk;
        req->qlen = qlen;
    }
    blk = cstr_put(blk, h->path.base + (h->query_at != SIZE_MAX ? h->query_at + 1 : 0), qlen);
    json_t *errors = req->match.trivial
                         ? NULL /* nothing declared: params and body stay NULL */
                         : petrel__validate(&req->match, req->query, req->qlen, hdr_lookup, h,
                                            h->entity.base, h->entity.len, h->entity.base != NULL,
                                            &req->params, &req->body_json);
    if (errors != NULL) {
        send_inline_detail(w, h, 422, errors, NULL, req->route, start);
        goto free_early;
    }

    req->h2o = h;
    req->method = blk;
    req->mlen = h->method.len;
    blk = cstr_put(blk, h->method.base, h->method.len);
    req->reqid = reqid_make(w, h, rid_at, &req->arena, blk, &req->reqid_len);
    req->raw_body = (petrel_str_t){h->entity.base, h->entity.base ? h->entity.len : 0};
    req->refs = 2; /* the fiber's, and on_req's own until the first run is over */
    h2o_linklist_insert(&w->reqs, &req->link);

    petrel__timer_init(&req->deadline, req_deadline_cb, req);
    inflight_add(w, 1);
    req->hup.fd = -1;
    req->fiber = petrel__fiber_new_at(w->sched, request_main, req, start);
    req->fiber->user = req;
    req->fiber->first_park_cb = req_first_park;
    /* Run the handler at once while its data is hot in cache, unless we are
     * already inside a fiber (h2o can start a pipelined request from a send). */
    if (petrel_fiber_current() != NULL) {
        req_arm_deadline(req); /* it waits in the run queue from now */
        req_link_h2o(req, h);
        petrel__fiber_schedule(req->fiber);
        return 0;
    }
    petrel__fiber_resume_at(req->fiber, start);
    /* Most handlers answer without awaiting: by now their fiber is over and h2o holds
     * nothing of ours (h2o 2.2 encodes the headers inside h2o_send, HTTP/1 and 2 alike,
     * and bodies live in its own pool). Only a request still referenced (a waiting
     * fiber, child tasks) must hear when h2o frees its half, which costs an allocation;
     * h2o cannot free it during the run itself (write completions come from the loop). */
    if (req->refs > 1)
        req_link_h2o(req, h);
    else
        req_release(req);
    return 0;

free_early:
    h2o_mem_clear_pool(&req->arena);
    req_recycle(w, req);
    return 0;
}

/* ------------------------------------------------------------------ */
/* workers                                                             */

static void on_conn_close(void *data)
{
    struct worker *w = data;
    atomic_fetch_sub(&w->conns, 1);
    atomic_fetch_sub(&w->srv->connections, 1);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct worker *w = listener->data;
    petrel_server_t *srv = w->srv;
    if (err != NULL)
        return;
    /* Accept a bounded batch per wake-up so one busy listener cannot starve the loop. */
    for (int i = 0; i < 32; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        if (atomic_fetch_add(&srv->connections, 1) >= srv->conf.max_connections) {
            /* Over the process-wide cap: refuse at once rather than queue. */
            atomic_fetch_sub(&srv->connections, 1);
            h2o_socket_close(sock);
            continue;
        }
        atomic_fetch_add(&w->conns, 1);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = w;
        h2o_accept(&w->accept_ctx, sock);
    }
}

static void worker_hooks_fiber(void *arg);

static void worker_on_message(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, receiver, recv);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *node = messages->next;
        h2o_linklist_unlink(node);
        free(H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, node));
    }
    if (atomic_load(&w->close_listener) && w->listener != NULL) {
        h2o_socket_read_stop(w->listener);
        h2o_socket_close(w->listener);
        w->listener = NULL;
        /* Idle keep-alive connections are closed, busy ones after their response. */
        h2o_context_request_shutdown(&w->ctx);
    }
    if (atomic_load(&w->run_hooks) != 0 && !atomic_load(&w->hooks_done) && !w->hooks_running) {
        w->hooks_running = true;
        petrel_fiber_t *f = petrel__fiber_new(w->sched, worker_hooks_fiber, w);
        petrel__fiber_schedule(f);
    }
    if (atomic_exchange(&w->cancel_all, 0)) {
        for (h2o_linklist_t *n = w->reqs.next; n != &w->reqs; n = n->next) {
            petrel_req_t *req = H2O_STRUCT_FROM_MEMBER(petrel_req_t, link, n);
            if (req->fiber != NULL)
                petrel_fiber_cancel(req->fiber);
        }
    }
}

static void worker_hooks_fiber(void *arg)
{
    struct worker *w = arg;
    petrel_app_t *app = w->srv->app;
    int rc = 0;
    if (atomic_load(&w->run_hooks) == 1) {
        for (size_t i = 0; i < app->nwstart && rc == 0; i++) {
            rc = app->wstart[i].cb(app, w->index, app->wstart[i].arg);
            if (rc != 0)
                snprintf(w->srv->err, sizeof(w->srv->err), "worker %d: start hook %zu failed: %s",
                         w->index, i + 1, petrel_strerror(rc));
        }
    } else {
        for (size_t i = app->nwstop; i-- > 0;) {
            int r = app->wstop[i].cb(app, w->index, app->wstop[i].arg);
            if (r != 0)
                petrel_log(PETREL_LOG_WARN, "worker %d: stop hook %zu failed: %s", w->index, i + 1,
                           petrel_strerror(r));
        }
    }
    w->hooks_rc = rc;
    atomic_store(&w->hooks_done, 1);
}

static void worker_poke(struct worker *w)
{
    /* calloc leaves the link unlinked, which h2o asserts on send. */
    h2o_multithread_message_t *m = petrel_xcalloc(1, sizeof(*m));
    pthread_mutex_lock(&w->poke_mu);
    if (w->pokes_open)
        h2o_multithread_send_message(&w->receiver, m);
    else
        free(m); /* the worker's loop is gone or not there yet */
    pthread_mutex_unlock(&w->poke_mu);
}

/* Frees what worker_main made for its loop, on the same thread (see there). */
static void worker_teardown(struct worker *w)
{
    pthread_mutex_lock(&w->poke_mu);
    w->pokes_open = false;
    pthread_mutex_unlock(&w->poke_mu);
    /* A poke sent after the worker saw its stop flag is never read. */
    while (!h2o_linklist_is_empty(&w->receiver._messages)) {
        h2o_linklist_t *node = w->receiver._messages.next;
        h2o_linklist_unlink(node);
        free(H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, node));
    }
    h2o_multithread_unregister_receiver(w->queue, &w->receiver);
    h2o_multithread_destroy_queue(w->queue);
    w->queue = NULL;
    /* Other threads may still post to the scheduler until they are joined;
     * detach now (posts get dropped), free it in server_free. */
    petrel__sched_detach(w->sched);
    if (w->abandoned)
        return; /* connections h2o would not close keep their loop */
    /* request_shutdown arms http2's graceful-shutdown timer even with no
     * HTTP/2 connection; h2o_context_dispose asserts every timer is idle. */
    if (h2o_timeout_is_linked(&w->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&w->ctx);
    /* h2o frees closed sockets on the next loop runs; give it those. */
    for (int k = 0; k < 3; k++)
        h2o_evloop_run(w->loop, 0);
    h2o_evloop_destroy(w->loop);
    w->loop = NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    petrel_server_t *srv = w->srv;
    tl_worker = w;
    petrel__log_thread_buffered(true);
    /* Everything h2o allocates for this loop is made here, on the loop's own
     * thread: h2o 2.2 keeps its socket buffer recycler in thread-local
     * storage and a buffer remembers the thread that made it. */
    w->loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, w->loop, &srv->globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = srv->globalconf.hosts;
    w->accept_ctx.ssl_ctx = srv->ssl_ctx;
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, worker_on_message);
    pthread_mutex_lock(&w->poke_mu);
    w->pokes_open = true;
    pthread_mutex_unlock(&w->poke_mu);
    w->sched = petrel__sched_new(srv->conf.fiber_stack, srv->conf.fiber_pool_max);
    petrel__sched_attach_loop(w->sched, w->loop);
    petrel__metrics_attach(w);
    w->listener = h2o_evloop_socket_create(w->loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    pthread_mutex_lock(&srv->mu);
    srv->workers_ready++;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);

    size_t ran = 0;
    while (!atomic_load(&w->stop)) {
        /* Fibers that ran outside h2o_evloop_run may have written responses
         * whose completion callbacks (keep-alive: read the next request) h2o
         * runs only in its next round: poll without blocking after any ran. */
        int32_t wait = ran > 0 ? 0 : petrel__sched_wait_ms(w->sched, 1000);
        int due = petrel__log_flush_due();
        if (due >= 0 && due < wait)
            wait = due; /* buffered access records are written on time when idle too */
        h2o_evloop_run(w->loop, wait);
        ran = petrel__sched_run(w->sched);
        petrel__metrics_loop(w);
    }
    /* Close what is left: idle keep-alive connections and slow clients. h2o
     * computes each expiry from the timeout's current value, so setting the
     * values to zero expires every waiting connection on the next run. */
    w->ctx.http1.req_timeout.timeout = 0;
    w->ctx.http2.idle_timeout.timeout = 0;
    w->ctx.handshake_timeout.timeout = 0;
    h2o_context_request_shutdown(&w->ctx);
    int64_t grace = petrel_now_ms() + 1000;
    while ((atomic_load(&w->conns) > 0 || petrel__sched_live(w->sched) > 0) &&
           petrel_now_ms() < grace) {
        h2o_evloop_run(w->loop, petrel__sched_wait_ms(w->sched, 10));
        petrel__sched_run(w->sched);
    }
    /* A connection h2o would not close in time keeps its loop alive: freeing
     * the loop under it would be a use-after-free. */
    w->abandoned = atomic_load(&w->conns) > 0 || petrel__sched_live(w->sched) > 0;
    if (w->listener != NULL) {
        h2o_socket_read_stop(w->listener);
        h2o_socket_close(w->listener);
        w->listener = NULL;
    }
    worker_teardown(w);
    req_cache_close(w);
    petrel__log_flush();
    petrel__log_thread_buffered(false);
    return NULL;
}

struct server_header_filter {
    h2o_filter_t super;
    h2o_iovec_t name;
};

static void server_header_on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    struct server_header_filter *f = (struct server_header_filter *)self;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, f->name.base,
                   f->name.len);
    h2o_setup_next_ostream(req, slot);
}

static void server_header_filter(h2o_pathconf_t *pc, h2o_iovec_t name)
{
    if (name.len == 0)
        return; /* as h2o: no name, no header */
    struct server_header_filter *f =
        (struct server_header_filter *)h2o_create_filter(pc, sizeof(*f));
    f->super.on_setup_ostream = server_header_on_setup_ostream;
    f->name = name;
}

static int listen_open(const char *host, int port, int backlog, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
            break;
        int e = errno;
        close(fd);
        fd = -1;
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port,
                 e == EADDRINUSE ? "address already in use" : "bind/listen failed");
    }
    freeaddrinfo(res);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static SSL_CTX *tls_create(const struct server_conf *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        goto fail;
    int minv = strcmp(c->tls_min_version, "TLSv1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
        snprintf(err, errlen, "server.tls.cert_file: cannot load %s", c->tls_cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen,
                 "server.tls.key_file: cannot load %s or it does not match the "
                 "certificate",
                 c->tls_key);
        goto fail;
    }
    if (c->http2)
        h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
fail:
    if (err[0] == '\0')
        snprintf(err, errlen, "TLS setup failed");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* control thread: lifespan and drain                                  */

struct hook_run {
    petrel_server_t *srv;
    bool startup;
    int rc;
    bool done;
};

static void hooks_fiber(void *arg)
{
    struct hook_run *hr = arg;
    petrel_app_t *app = hr->srv->app;
    if (hr->startup) {
        for (size_t i = 0; i < app->nstartup; i++) {
            int rc = app->startup[i].cb(app, app->startup[i].arg);
            if (rc != 0) {
                hr->rc = rc;
                snprintf(hr->srv->err, sizeof(hr->srv->err), "startup hook %zu failed: %s", i + 1,
                         petrel_strerror(rc));
                break;
            }
        }
    } else {
        for (size_t i = app->nshutdown; i-- > 0;) {
            int rc = app->shutdown[i].cb(app, app->shutdown[i].arg);
            if (rc != 0)
                petrel_log(PETREL_LOG_WARN, "shutdown hook %zu failed: %s", i + 1,
                           petrel_strerror(rc));
        }
    }
    hr->done = true;
}

static int control_run_hooks(petrel_server_t *srv, bool startup)
{
    struct hook_run hr = {.srv = srv, .startup = startup};
    petrel_fiber_t *f = petrel__fiber_new(srv->control_sched, hooks_fiber, &hr);
    petrel__fiber_resume(f);
    /* Startup has a deadline (server.startup_timeout_s): past it the hooks are
     * cancelled, so their awaits return PETREL_ECANCELED and startup fails. */
    int64_t deadline = startup && srv->conf.startup_timeout_s > 0
                           ? petrel_now_ms() + (int64_t)(srv->conf.startup_timeout_s * 1000)
                           : INT64_MAX;
    bool timed_out = false;
    while (!hr.done) {
        h2o_evloop_run(srv->control_loop, petrel__sched_wait_ms(srv->control_sched, 100));
        petrel__sched_run(srv->control_sched);
        if (!hr.done && !timed_out && petrel_now_ms() >= deadline) {
            timed_out = true;
            petrel_fiber_cancel(f);
        }
    }
    if (timed_out) {
        snprintf(srv->err, sizeof(srv->err),
                 "startup hooks took longer than %gs "
                 "(server.startup_timeout_s)",
                 srv->conf.startup_timeout_s);
        return PETREL_ETIMEDOUT;
    }
    return hr.rc;
}

static long inflight_total(petrel_server_t *srv)
{
    long n = 0;
    for (int i = 0; i < srv->nworkers; i++)
        n += atomic_load(&srv->workers[i].inflight);
    return n;
}

static void control_sleep(petrel_server_t *srv, int ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000};
    (void)srv;
    nanosleep(&ts, NULL);
}

/* Runs worker start (1) or stop (2) hooks on every worker's own loop and waits. */
static int control_worker_hooks(petrel_server_t *srv, int which)
{
    petrel_app_t *app = srv->app;
    if ((which == 1 ? app->nwstart : app->nwstop) == 0)
        return 0;
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        atomic_store(&w->hooks_done, 0);
        w->hooks_running = false;
        atomic_store(&w->run_hooks, which);
        worker_poke(w);
    }
    int rc = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        while (!atomic_load(&srv->workers[i].hooks_done))
            control_sleep(srv, 1);
        if (srv->workers[i].hooks_rc != 0 && rc == 0)
            rc = srv->workers[i].hooks_rc;
    }
    for (int i = 0; i < srv->nworkers; i++)
        atomic_store(&srv->workers[i].run_hooks, 0);
    return rc;
}

static void *control_main(void *arg)
{
    petrel_server_t *srv = arg;
    srv->control_loop = h2o_evloop_create();
    srv->control_sched = petrel__sched_new(srv->conf.fiber_stack, 4);
    petrel__sched_attach_loop(srv->control_sched, srv->control_loop);

    int rc = control_run_hooks(srv, true);
    bool app_started = rc == 0;
    if (rc == 0)
        rc = control_worker_hooks(srv, 1);
    pthread_mutex_lock(&srv->mu);
    srv->startup_done = rc == 0 ? 1 : -1;
    if (rc == 0)
        atomic_store(&srv->state, SERVER_READY);
    pthread_cond_broadcast(&srv->cv);
    while (rc == 0 && !srv->stop_requested)
        pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);

    /* Drain: stop accepting, let in-flight requests finish up to the deadline. */
    atomic_store(&srv->state, SERVER_DRAINING);
    for (int i = 0; i < srv->nworkers; i++) {
        atomic_store(&srv->workers[i].close_listener, 1);
        worker_poke(&srv->workers[i]);
    }
    int result = 0;
    if (rc == 0) {
        int64_t deadline = petrel_now_ms() + (int64_t)(srv->conf.shutdown_timeout_s * 1000);
        while (inflight_total(srv) > 0 && petrel_now_ms() < deadline)
            control_sleep(srv, 5);
        if (inflight_total(srv) > 0) {
            petrel_log(PETREL_LOG_WARN, "shutdown timeout: cancelling %ld requests",
                       inflight_total(srv));
            result = PETREL_ETIMEDOUT;
            for (int i = 0; i < srv->nworkers; i++) {
                atomic_store(&srv->workers[i].cancel_all, 1);
                worker_poke(&srv->workers[i]);
            }
            int64_t d2 = petrel_now_ms() + 2000;
            while (inflight_total(srv) > 0 && petrel_now_ms() < d2)
                control_sleep(srv, 5);
        }
        /* Give the last responses a moment to leave before loops stop. */
        /* Then the work queue: running jobs finish within the same deadline. */
        petrel__queue_stop(srv, deadline);
        control_sleep(srv, 20);
    }
    if (app_started)
        control_worker_hooks(srv, 2);
    for (int i = 0; i < srv->nworkers; i++) {
        atomic_store(&srv->workers[i].stop, 1);
        worker_poke(&srv->workers[i]);
    }
    for (int i = 0; i < srv->nworkers; i++)
        pthread_join(srv->workers[i].thread, NULL);
    if (app_started)
        control_run_hooks(srv, false);

    petrel__log_flush();
    petrel__sched_free(srv->control_sched);
    h2o_evloop_run(srv->control_loop, 0);
    h2o_evloop_destroy(srv->control_loop);
    pthread_mutex_lock(&srv->mu);
    srv->stop_result = result;
    srv->control_done = 1;
    atomic_store(&srv->state, SERVER_STOPPED);
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* start / stop                                                        */

/* Servers whose loops could not be freed; kept reachable on purpose. */
static petrel_server_t *graveyard[64];
static size_t ngraveyard;

static void server_free(petrel_server_t *srv)
{
    bool keep = false;
    for (int i = 0; i < srv->nworkers; i++)
        keep = keep || srv->workers[i].abandoned;
    if (keep && ngraveyard < sizeof(graveyard) / sizeof(graveyard[0])) {
        petrel_log(PETREL_LOG_WARN, "connections still open after stop; their loops are kept");
        if (srv->app->server == srv)
            srv->app->server = NULL;
        graveyard[ngraveyard++] = srv;
        return;
    }
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        /* The loop and its context were freed on the worker's own thread. */
        if (w->sched != NULL)
            petrel__sched_free(w->sched);
        pthread_mutex_destroy(&w->poke_mu);
        if (!w->started && w->listen_fd >= 0)
            close(w->listen_fd);
    }
    free(srv->workers);
    if (srv->hostconf != NULL)
        h2o_config_dispose(&srv->globalconf);
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    if (srv->router != NULL)
        petrel__router_free(srv->router);
    petrel__metrics_free(srv->metrics);
    petrel__server_conf_dispose(&srv->conf);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cv);
    if (srv->app->server == srv)
        srv->app->server = NULL;
    free(srv);
}

static int router_build(petrel_server_t *srv, char *err, size_t errlen)
{
    srv->router = petrel__router_new();
    petrel_app_t *app = srv->app;
    for (size_t i = 0; i < app->nroutes; i++)
        if (petrel__router_add(srv->router, app->routes[i], err, errlen) != 0)
            return -1;
    for (size_t i = 0; i < sizeof(builtin_routes) / sizeof(builtin_routes[0]); i++) {
        char e2[64];
        /* The app may declare its own /healthz or /readyz; keep the app's. */
        (void)petrel__router_add(srv->router, &builtin_routes[i], e2, sizeof(e2));
    }
    /* The task monitor exists only in debug mode: elsewhere its paths answer 404. */
    size_t ndebug = 0;
    const petrel_route_t *debug = petrel__debug_routes(&ndebug);
    for (size_t i = 0; srv->conf.debug && i < ndebug; i++) {
        char e2[64];
        (void)petrel__router_add(srv->router, &debug[i], e2, sizeof(e2));
    }
    return 0;
}

petrel_server_t *petrel_server_start(petrel_app_t *app, char *err, size_t errlen)
{
    err[0] = '\0';
    petrel_server_t *srv = petrel_xcalloc(1, sizeof(*srv));
    srv->app = app;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    if (petrel__app_load_server_conf(app, &srv->conf, err, errlen) != 0)
        goto fail;
    petrel__io_timeout_ms = srv->conf.io_timeout_ms;
    petrel__log_configure(petrel__log_parse_level(petrel_config_str(app->cfg, "log.level")),
                          petrel_config_bool(app->cfg, "log.access"));
    signal(SIGPIPE, SIG_IGN);
    if (router_build(srv, err, errlen) != 0)
        goto fail;
    /* Before any thread exists: the process pool forks here. */
    if (petrel__limits_start(app, srv->conf.workers, err, errlen) != 0)
        goto fail;
    if (srv->conf.tls_cert != NULL || srv->conf.tls_key != NULL) {
        if (srv->conf.tls_cert == NULL || srv->conf.tls_key == NULL) {
            snprintf(err, errlen, "server.tls: cert_file and key_file must be set together");
            goto fail;
        }
        if ((srv->ssl_ctx = tls_create(&srv->conf, err, errlen)) == NULL)
            goto fail;
    }

    h2o_config_init(&srv->globalconf);
    /* h2o's HTTP/1 writer formats its configured name with a sprintf of its own on every
     * response, which cost about 700 instructions, a sixth of what petrel adds per
     * request. The name stays empty for h2o and a filter adds the header instead. */
    srv->globalconf.server_name = h2o_iovec_init(srv->conf.server_name, 0);
    srv->globalconf.max_request_entity_size = (size_t)srv->conf.max_body_bytes;
    srv->globalconf.http1.req_timeout = (uint64_t)srv->conf.keepalive_timeout_ms;
    srv->globalconf.http2.idle_timeout = (uint64_t)srv->conf.keepalive_timeout_ms;
    srv->hostconf =
        h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(srv->hostconf, "/", 0);
    h2o_handler_t *hd = h2o_create_handler(pc, sizeof(*hd));
    hd->on_req = on_req;
    /* Every response gets the header: petrel writes it into its own responses (every final
     * response on "/" is one), a filter adds it to h2o's own errors, such as a 413 for a
     * declared body over the limit, which use the host's fallback path. */
    const char *sname = srv->conf.server_name != NULL ? srv->conf.server_name : "";
    srv->server_hdr = h2o_iovec_init(sname, strlen(sname));
    server_header_filter(&srv->hostconf->fallback_path, srv->server_hdr);

    srv->nworkers = srv->conf.workers;
    srv->workers = petrel_xcalloc((size_t)srv->nworkers, sizeof(*srv->workers));
    for (int i = 0; i < srv->nworkers; i++) {
        srv->workers[i].listen_fd = -1;
        pthread_mutex_init(&srv->workers[i].poke_mu, NULL);
    }
    int port = srv->conf.port;
    for (int i = 0; i < srv->nworkers; i++) {
        int fd = listen_open(srv->conf.host, port, srv->conf.backlog, err, errlen);
        if (fd < 0)
            goto fail;
        srv->workers[i].listen_fd = fd;
        if (port == 0)
            port = bound_port(fd); /* the rest share the ephemeral port via SO_REUSEPORT */
    }
    srv->port = port;
    srv->metrics = petrel__metrics_new(srv);

    uint64_t salt = (uint64_t)petrel_now_ns() ^ ((uint64_t)getpid() << 32);
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        w->index = i;
        w->srv = srv;
        w->reqid_salt = salt + (uint64_t)i * 0x100000001b3ull;
        h2o_linklist_init_anchor(&w->reqs);
    }

    /* Threads inherit this mask: signals are taken only by the thread that
     * waits for them (petrel_server_run_until_signal), never by a loop. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    /* Hooks may ask petrel_app_workers() while the server starts. */
    app->server = srv;
    for (int i = 0; i < srv->nworkers; i++) {
        pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
        srv->workers[i].started = true;
    }
    /* The control thread pokes workers: start it once every loop exists. */
    pthread_mutex_lock(&srv->mu);
    while (srv->workers_ready < srv->nworkers)
        pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    pthread_create(&srv->control, NULL, control_main, srv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    pthread_mutex_lock(&srv->mu);
    while (srv->startup_done == 0)
        pthread_cond_wait(&srv->cv, &srv->mu);
    int ok = srv->startup_done > 0;
    pthread_mutex_unlock(&srv->mu);
    if (!ok) {
        snprintf(err, errlen, "%s", srv->err);
        pthread_join(srv->control, NULL);
        server_free(srv);
        return NULL;
    }
    petrel_logj(PETREL_LOG_INFO, "serving",
                json_pack("{s:s,s:i,s:i,s:b}", "host", srv->conf.host, "port", srv->port, "workers",
                          srv->nworkers, "tls", srv->ssl_ctx != NULL));
    return srv;

fail:
    server_free(srv);
    return NULL;
}

int petrel_server_port(const petrel_server_t *srv)
{
    return srv->port;
}

int petrel_server_stop(petrel_server_t *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->stop_requested = 1;
    /* Not ready from this moment: a load balancer polling /readyz stops sending new
     * work before the control thread has even woken up to drain. */
    if (atomic_load(&srv->state) == SERVER_READY)
        atomic_store(&srv->state, SERVER_DRAINING);
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    pthread_join(srv->control, NULL);
    int rc = srv->stop_result;
    petrel_log(PETREL_LOG_INFO, "stopped");
    petrel__log_flush();
    server_free(srv);
    return rc;
}

struct stopper {
    petrel_server_t *srv;
    _Atomic int done;
    int rc;
};

static void *stopper_main(void *arg)
{
    struct stopper *st = arg;
    st->rc = petrel_server_stop(st->srv);
    atomic_store(&st->done, 1);
    return NULL;
}

int petrel_server_run_until_signal(petrel_server_t *srv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    petrel_logj(PETREL_LOG_INFO, "shutting down",
                json_pack("{s:s,s:f}", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", "timeout_s",
                          srv->conf.shutdown_timeout_s));
    petrel__log_flush();
    struct stopper st = {.srv = srv};
    pthread_t t;
    pthread_create(&t, NULL, stopper_main, &st);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000};
    while (!atomic_load(&st.done)) {
        siginfo_t si;
        int s2 = sigtimedwait(&set, &si, &ts);
        if (s2 == SIGINT) {
            /* A second Ctrl-C means "now", as uvicorn does. */
            petrel_log(PETREL_LOG_WARN, "second SIGINT: exiting at once");
            petrel__log_flush();
            _exit(130);
        }
    }
    pthread_join(t, NULL);
    return st.rc;
}
