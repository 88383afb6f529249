/*
 * http_client.c - the outbound HTTP/1.1 client: named clients, one
 * process-wide keep-alive pool per client (its origin), non-blocking sockets
 * and TLS driven by petrel_wait_fd(), timeouts per phase and per call,
 * retries with backoff, a circuit breaker, stats.
 *
 * Pool. One mutex-guarded pool per client holds the idle connections (LIFO, so
 * the warmest is reused and the coldest expire) and counts every open one
 * against max_connections. The cap is process-wide: a socket is not bound to
 * any event loop (each wait adds it to the waiting worker's epoll for that wait
 * only), so a connection opened on worker 1 is reused on worker 0. A call that
 * finds the pool full queues a waiter (FIFO); a release hands its connection,
 * or the freed slot, straight to the first waiter and wakes it on its own
 * worker (directly, or through petrel__sched_post from another thread). The
 * mutex is never held across an await.
 *
 * A connection goes back to the pool only after a complete response that
 * allows keep-alive; anything else (timeout, cancellation, error, unread
 * bytes, size cap) closes it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "fiber_int.h"
#include "http_int.h"
#include "petrel/fiber.h"
#include "petrel/http.h"
#include "petrel/limits.h"
#include "petrel/log.h"

#define HEAD_MAX (64 * 1024) /* response head cap */
#define MAX_RETRY_STATUSES 16

struct conn {
    int fd;
    SSL *ssl;
    int64_t idle_since_ms;
    struct conn *next;
};

/* A call waiting for a connection; heap-allocated because a post from another worker may
 * arrive after the waiting call gave up. */
struct waiter {
    struct waiter *next;
    petrel_fiber_t *fiber;
    petrel__sched_t *sched;
    bool granted;      /* guarded by the pool mutex */
    struct conn *conn; /* granted connection, or NULL for a free slot */
    bool parked;       /* the fiber still waits (touched on the fiber's thread only) */
    _Atomic int refs;
};

struct petrel_http_client {
    char *name;
    bool tls;
    char *host;     /* for Host, SNI and the certificate check */
    char *host_hdr; /* "host" or "host:port" */
    char *prefix;   /* base path without trailing '/', may be "" */
    int port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool host_is_ip;
    SSL_CTX *ssl_ctx;
    char *default_headers; /* "Name: value\r\n"... */
    petrel_sem_t *sem;     /* held by each whole call, or NULL */
    /* knobs */
    int64_t max_connections, max_keepalive, keepalive_expiry_ms;
    int64_t connect_ms, read_ms, write_ms, pool_ms, total_ms, max_response_bytes;
    int64_t retries, backoff_base_ms, breaker_failures, breaker_cooldown_ms;
    int retry_statuses[MAX_RETRY_STATUSES];
    size_t nretry_statuses;
    /* pool, guarded by mu */
    pthread_mutex_t mu;
    struct conn *idle;
    int64_t nidle, open, in_use, waiting;
    struct waiter *wq_head, *wq_tail;
    /* breaker, guarded by mu */
    petrel_breaker_state_t breaker;
    int64_t consecutive_failures;
    int64_t opened_at_ms;
    bool probe_inflight;
    double breaker_ratio; /* 0: off */
    int64_t breaker_window;
    uint8_t *win;                     /* the last breaker_window outcomes (1: failure), a ring */
    int64_t win_n, win_pos, win_fail; /* outcomes held, next slot, failures among them */
    /* counters */
    _Atomic int64_t connects_total, reused_total, requests_total, retries_total, timeouts, errors;
    _Atomic int64_t closed[PETREL_HTTP_CLOSE_REASONS];
    /* the registry of live clients (for /metrics), guarded by reg_mu */
    struct petrel_http_client *reg_prev, *reg_next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static petrel_http_client_t *reg_head;

static void registry_add(petrel_http_client_t *c)
{
    pthread_mutex_lock(&reg_mu);
    c->reg_prev = NULL;
    c->reg_next = reg_head;
    if (reg_head != NULL)
        reg_head->reg_prev = c;
    reg_head = c;
    pthread_mutex_unlock(&reg_mu);
}

static void registry_remove(petrel_http_client_t *c)
{
    pthread_mutex_lock(&reg_mu);
    if (c->reg_prev != NULL)
        c->reg_prev->reg_next = c->reg_next;
    else
        reg_head = c->reg_next;
    if (c->reg_next != NULL)
        c->reg_next->reg_prev = c->reg_prev;
    c->reg_prev = c->reg_next = NULL;
    pthread_mutex_unlock(&reg_mu);
}

/* ------------------------------------------------------------------ */
/* options and configuration                                           */

void petrel_http_opts_init(petrel_http_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->name = "http";
    o->max_connections = 100;
    o->max_keepalive = 100; /* = max_connections: a busy client never churns sockets */
    o->keepalive_expiry_s = 5.0;
    o->connect_ms = o->read_ms = o->write_ms = o->pool_ms = 5000;
    o->total_ms = 10000;
    o->max_response_bytes = 10 * 1024 * 1024;
    o->backoff_base_ms = 50;
    o->breaker_cooldown_ms = 5000;
    o->breaker_window = 20;
    o->verify = true;
}

static const petrel_cfg_key_t http_keys[] = {
    {"upstreams.*.base_url", PETREL_CFG_STR, NULL,
     "origin (and optional base path) of the upstream: http://host:port or https://host", 0, 0,
     NULL},
    {"upstreams.*.max_connections", PETREL_CFG_INT, "100",
     "process-wide cap on open connections to the upstream", 1, 100000, NULL},
    {"upstreams.*.max_keepalive", PETREL_CFG_INT, "100",
     "idle keep-alive connections kept; below max_connections, busy periods close and reopen "
     "sockets",
     0, 100000, NULL},
    {"upstreams.*.keepalive_expiry_s", PETREL_CFG_FLOAT, "5",
     "an idle connection older than this is closed", 0, 86400, NULL},
    {"upstreams.*.connect_ms", PETREL_CFG_INT, "5000", "TCP + TLS connect timeout", 1, 3600000,
     NULL},
    {"upstreams.*.read_ms", PETREL_CFG_INT, "5000", "timeout of each read", 1, 3600000, NULL},
    {"upstreams.*.write_ms", PETREL_CFG_INT, "5000", "timeout of each write", 1, 3600000, NULL},
    {"upstreams.*.pool_ms", PETREL_CFG_INT, "5000", "wait for a free connection (then 503)", 0,
     3600000, NULL},
    {"upstreams.*.total_ms", PETREL_CFG_INT, "10000", "deadline of a whole call, retries included",
     1, 3600000, NULL},
    {"upstreams.*.max_response_bytes", PETREL_CFG_INT, "10485760", "response body cap", 1,
     1073741824, NULL},
    {"upstreams.*.retries", PETREL_CFG_INT, "0", "extra attempts for idempotent methods", 0, 10,
     NULL},
    {"upstreams.*.retry_statuses", PETREL_CFG_STRLIST, "502,503,504",
     "statuses retried like connection errors", 0, 0, NULL},
    {"upstreams.*.backoff_base_ms", PETREL_CFG_INT, "50",
     "backoff before retry i: base * 2^i, with jitter", 0, 60000, NULL},
    {"upstreams.*.breaker_failures", PETREL_CFG_INT, "5",
     "consecutive failures that open the circuit breaker (0: off)", 0, 1000000, NULL},
    {"upstreams.*.breaker_cooldown_ms", PETREL_CFG_INT, "5000",
     "open breaker lets one probe through after this", 1, 3600000, NULL},
    {"upstreams.*.breaker_ratio", PETREL_CFG_FLOAT, "0",
     "failure ratio over the last breaker_window calls that opens the breaker (0: off)", 0, 1,
     NULL},
    {"upstreams.*.breaker_window", PETREL_CFG_INT, "20",
     "calls the failure ratio is taken over (judged once that many were seen)", 1, 100000, NULL},
    {"upstreams.*.verify", PETREL_CFG_BOOL, "true", "verify TLS certificates and host names", 0, 0,
     NULL},
    {"upstreams.*.ca_file", PETREL_CFG_STR, NULL, "PEM CA bundle instead of the system store", 0, 0,
     NULL},
    {"upstreams.*.headers", PETREL_CFG_STRLIST, NULL, "default headers, \"Name: value\"", 0, 0,
     NULL},
    {"upstreams.*.semaphore", PETREL_CFG_STR, NULL,
     "semaphore (semaphores.<name>) every call holds a slot of: a concurrency cap below "
     "max_connections, or shared by several upstreams",
     0, 0, NULL},
};

int petrel__http_declare(petrel_config_t *cfg)
{
    return petrel_config_declare(cfg, http_keys, sizeof(http_keys) / sizeof(http_keys[0]));
}

static const char *key(char *buf, size_t len, const char *name, const char *field)
{
    (void)snprintf(buf, len, "upstreams.%s.%s", name, field);
    return buf;
}

int petrel_http_client_from_config(const petrel_config_t *cfg, const char *name,
                                   petrel_http_client_t **out)
{
    char k[256];
    petrel_http_opts_t o;
    petrel_http_opts_init(&o);
    o.name = name;
    o.base_url = petrel_config_str(cfg, key(k, sizeof(k), name, "base_url"));
    o.max_connections = petrel_config_int(cfg, key(k, sizeof(k), name, "max_connections"));
    o.max_keepalive = petrel_config_int(cfg, key(k, sizeof(k), name, "max_keepalive"));
    o.keepalive_expiry_s = petrel_config_float(cfg, key(k, sizeof(k), name, "keepalive_expiry_s"));
    o.connect_ms = petrel_config_int(cfg, key(k, sizeof(k), name, "connect_ms"));
    o.read_ms = petrel_config_int(cfg, key(k, sizeof(k), name, "read_ms"));
    o.write_ms = petrel_config_int(cfg, key(k, sizeof(k), name, "write_ms"));
    o.pool_ms = petrel_config_int(cfg, key(k, sizeof(k), name, "pool_ms"));
    o.total_ms = petrel_config_int(cfg, key(k, sizeof(k), name, "total_ms"));
    o.max_response_bytes = petrel_config_int(cfg, key(k, sizeof(k), name, "max_response_bytes"));
    o.retries = petrel_config_int(cfg, key(k, sizeof(k), name, "retries"));
    o.backoff_base_ms = petrel_config_int(cfg, key(k, sizeof(k), name, "backoff_base_ms"));
    o.breaker_failures = petrel_config_int(cfg, key(k, sizeof(k), name, "breaker_failures"));
    o.breaker_cooldown_ms = petrel_config_int(cfg, key(k, sizeof(k), name, "breaker_cooldown_ms"));
    o.breaker_ratio = petrel_config_float(cfg, key(k, sizeof(k), name, "breaker_ratio"));
    o.breaker_window = petrel_config_int(cfg, key(k, sizeof(k), name, "breaker_window"));
    o.verify = petrel_config_bool(cfg, key(k, sizeof(k), name, "verify"));
    o.ca_file = petrel_config_str(cfg, key(k, sizeof(k), name, "ca_file"));
    o.semaphore = petrel_config_str(cfg, key(k, sizeof(k), name, "semaphore"));
    size_t n = 0;
    const char *const *st =
        petrel_config_strlist(cfg, key(k, sizeof(k), name, "retry_statuses"), &n);
    int statuses[MAX_RETRY_STATUSES + 1];
    size_t ns = 0;
    for (size_t i = 0; i < n && ns < MAX_RETRY_STATUSES; i++) {
        char *end = NULL;
        long v = strtol(st[i], &end, 10);
        if (end == st[i] || *end != '\0' || v < 100 || v > 599) {
            petrel_log_error("upstreams.%s.retry_statuses: bad status \"%s\"", name, st[i]);
            return PETREL_ECONFIG;
        }
        statuses[ns++] = (int)v;
    }
    statuses[ns] = 0;
    o.retry_statuses = statuses;
    o.headers = petrel_config_strlist(cfg, key(k, sizeof(k), name, "headers"), &n);
    if (o.base_url == NULL) {
        petrel_log_error("upstreams.%s.base_url is not set", name);
        return PETREL_ECONFIG;
    }
    return petrel_http_client_new(&o, out);
}

/* ------------------------------------------------------------------ */
/* client lifecycle                                                    */

/* Splits scheme://host[:port][/path]; host may be [v6]. */
static int url_split(petrel_http_client_t *c, const char *url)
{
    const char *p;
    if (strncmp(url, "http://", 7) == 0) {
        c->tls = false;
        p = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        c->tls = true;
        p = url + 8;
    } else {
        return PETREL_EINVAL;
    }
    const char *hs = p, *he;
    if (*p == '[') {
        he = strchr(p, ']');
        if (he == NULL)
            return PETREL_EINVAL;
        hs = p + 1;
        p = he + 1;
    } else {
        while (*p != '\0' && *p != ':' && *p != '/' && *p != '?')
            p++;
        he = p;
    }
    if (he == hs)
        return PETREL_EINVAL;
    c->port = c->tls ? 443 : 80;
    if (*p == ':') {
        char *end = NULL;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v <= 0 || v > 65535)
            return PETREL_EINVAL;
        c->port = (int)v;
        p = end;
    }
    if (*p != '\0' && *p != '/')
        return PETREL_EINVAL;
    c->host = petrel_xmalloc((size_t)(he - hs) + 1);
    memcpy(c->host, hs, (size_t)(he - hs));
    c->host[he - hs] = '\0';
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    c->prefix = petrel_xmalloc(plen + 1);
    memcpy(c->prefix, p, plen);
    c->prefix[plen] = '\0';
    bool dflt = c->port == (c->tls ? 443 : 80);
    bool v6 = strchr(c->host, ':') != NULL;
    size_t hl = strlen(c->host) + 16;
    c->host_hdr = petrel_xmalloc(hl);
    if (dflt)
        (void)snprintf(c->host_hdr, hl, v6 ? "[%s]" : "%s", c->host);
    else
        (void)snprintf(c->host_hdr, hl, v6 ? "[%s]:%d" : "%s:%d", c->host, c->port);
    return 0;
}

static int client_resolve(petrel_http_client_t *c)
{
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, c->host, &a4) == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)&c->addr;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)c->port);
        s->sin_addr = a4;
        c->addrlen = sizeof(*s);
        c->host_is_ip = true;
        return 0;
    }
    if (inet_pton(AF_INET6, c->host, &a6) == 1) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&c->addr;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)c->port);
        s->sin6_addr = a6;
        c->addrlen = sizeof(*s);
        c->host_is_ip = true;
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[16];
    (void)snprintf(port, sizeof(port), "%d", c->port);
    int rc = getaddrinfo(c->host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        petrel_log_error("http client %s: cannot resolve %s: %s", c->name, c->host,
                         gai_strerror(rc));
        return PETREL_ECONFIG;
    }
    memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
    c->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int client_tls(petrel_http_client_t *c, const petrel_http_opts_t *o)
{
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (c->ssl_ctx == NULL)
        return PETREL_ENOMEM;
    (void)SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(c->ssl_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!o->verify) {
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
        petrel_log_warn("http client %s: TLS verification is OFF (upstreams.%s.verify: false); "
                        "the upstream's identity is not checked",
                        c->name, c->name);
        return 0;
    }
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int ok = o->ca_file != NULL ? SSL_CTX_load_verify_locations(c->ssl_ctx, o->ca_file, NULL)
                                : SSL_CTX_set_default_verify_paths(c->ssl_ctx);
    if (ok != 1) {
        petrel_log_error("http client %s: cannot load CA file %s", c->name,
                         o->ca_file != NULL ? o->ca_file : "(system)");
        return PETREL_ECONFIG;
    }
    return 0;
}

static char *headers_join(const char *const *h)
{
    size_t len = 0;
    for (size_t i = 0; h != NULL && h[i] != NULL; i++)
        len += strlen(h[i]) + 2;
    char *s = petrel_xmalloc(len + 1);
    size_t off = 0;
    for (size_t i = 0; h != NULL && h[i] != NULL; i++) {
        size_t l = strlen(h[i]);
        memcpy(s + off, h[i], l);
        memcpy(s + off + l, "\r\n", 2);
        off += l + 2;
    }
    s[off] = '\0';
    return s;
}

static bool headers_valid(const char *const *h)
{
    for (size_t i = 0; h != NULL && h[i] != NULL; i++) {
        const char *colon = strchr(h[i], ':');
        if (colon == NULL || colon == h[i] || strpbrk(h[i], "\r\n") != NULL)
            return false;
    }
    return true;
}

int petrel_http_client_new(const petrel_http_opts_t *o, petrel_http_client_t **out)
{
    if (o->base_url == NULL || o->max_connections < 1 || o->max_keepalive < 0 ||
        !headers_valid(o->headers) || !(o->breaker_ratio >= 0.0 && o->breaker_ratio <= 1.0) ||
        (o->breaker_ratio > 0.0 && o->breaker_window < 1)) {
        petrel_log_error("http client %s: invalid options", o->name ? o->name : "?");
        return PETREL_EINVAL;
    }
    petrel_sem_t *sem = NULL;
    if (o->semaphore != NULL && (sem = petrel_sem_find(o->semaphore)) == NULL) {
        petrel_log_error("http client %s: semaphore \"%s\" is not declared (semaphores.%s.limit)",
                         o->name ? o->name : "?", o->semaphore, o->semaphore);
        return PETREL_EINVAL;
    }
    petrel_http_client_t *c = petrel_xcalloc(1, sizeof(*c));
    c->sem = sem;
    c->name = petrel_xstrdup(o->name != NULL ? o->name : "http");
    int rc = url_split(c, o->base_url);
    if (rc != 0) {
        petrel_log_error("http client %s: bad base_url \"%s\"", c->name, o->base_url);
        goto fail;
    }
    if ((rc = client_resolve(c)) != 0)
        goto fail;
    if (c->tls && (rc = client_tls(c, o)) != 0)
        goto fail;
    c->default_headers = headers_join(o->headers);
    c->max_connections = o->max_connections;
    c->max_keepalive = o->max_keepalive;
    c->keepalive_expiry_ms = (int64_t)(o->keepalive_expiry_s * 1000.0);
    c->connect_ms = o->connect_ms;
    c->read_ms = o->read_ms;
    c->write_ms = o->write_ms;
    c->pool_ms = o->pool_ms;
    c->total_ms = o->total_ms;
    c->max_response_bytes = o->max_response_bytes;
    c->retries = o->retries;
    c->backoff_base_ms = o->backoff_base_ms;
    c->breaker_failures = o->breaker_failures;
    c->breaker_cooldown_ms = o->breaker_cooldown_ms;
    c->breaker_ratio = o->breaker_ratio;
    if (c->breaker_ratio > 0.0) {
        c->breaker_window = o->breaker_window;
        c->win = petrel_xcalloc((size_t)c->breaker_window, 1);
    }
    for (size_t i = 0; o->retry_statuses != NULL && o->retry_statuses[i] != 0 &&
                       c->nretry_statuses < MAX_RETRY_STATUSES;
         i++)
        c->retry_statuses[c->nretry_statuses++] = o->retry_statuses[i];
    pthread_mutex_init(&c->mu, NULL);
    registry_add(c);
    *out = c;
    return 0;
fail:
    if (c->ssl_ctx != NULL)
        SSL_CTX_free(c->ssl_ctx);
    free(c->host);
    free(c->host_hdr);
    free(c->prefix);
    free(c->name);
    free(c);
    return rc;
}

static void conn_close(struct conn *k)
{
    if (k->ssl != NULL)
        SSL_free(k->ssl);
    close(k->fd);
    free(k);
}

void petrel_http_client_free(petrel_http_client_t *c)
{
    if (c == NULL)
        return;
    registry_remove(c);
    while (c->idle != NULL) {
        struct conn *k = c->idle;
        c->idle = k->next;
        conn_close(k);
    }
    pthread_mutex_destroy(&c->mu);
    if (c->ssl_ctx != NULL)
        SSL_CTX_free(c->ssl_ctx);
    free(c->win);
    free(c->default_headers);
    free(c->host);
    free(c->host_hdr);
    free(c->prefix);
    free(c->name);
    free(c);
}

const char *petrel_http_client_name(const petrel_http_client_t *c)
{
    return c->name;
}

/* ------------------------------------------------------------------ */
/* jitter: a per-thread xorshift (rand() is banned and not thread-safe)  */

static uint64_t jitter_next(void)
{
    static __thread uint64_t s;
    if (s == 0)
        s = (uint64_t)petrel_now_ns() ^ ((uint64_t)(uintptr_t)&s << 17) ^ 0x9e3779b97f4a7c15ULL;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* ------------------------------------------------------------------ */
/* pool                                                                */

static void waiter_unref(struct waiter *w)
{
    if (atomic_fetch_sub(&w->refs, 1) == 1)
        free(w);
}

static void waiter_wake_cb(void *arg)
{
    struct waiter *w = arg;
    if (w->parked)
        petrel__fiber_wake(w->fiber, 0);
    waiter_unref(w);
}

/* Hands `k` (or a free slot when k is NULL) to the first waiter. Called with mu held;
 * returns the waiter to wake (after unlocking), or NULL when nobody waits. */
static struct waiter *pool_grant_locked(petrel_http_client_t *c, struct conn *k)
{
    struct waiter *w = c->wq_head;
    if (w == NULL)
        return NULL;
    c->wq_head = w->next;
    if (c->wq_head == NULL)
        c->wq_tail = NULL;
    c->waiting--;
    w->granted = true;
    w->conn = k;
    atomic_fetch_add(&w->refs, 1);
    return w;
}

static void waiter_notify(struct waiter *w)
{
    if (w->sched == petrel__sched_current()) {
        waiter_wake_cb(w);
    } else {
        petrel__sched_post(w->sched, waiter_wake_cb, w);
    }
}

/* Gives a connection back: pooled when `why` is CLOSE_NONE, else closed and counted under
 * that reason; either way its slot goes to the first waiter if there is one. `k` NULL
 * gives back a reserved slot whose connection was never made. */
#define CLOSE_NONE (-1)
static void pool_release(petrel_http_client_t *c, struct conn *k, int why)
{
    struct waiter *w = NULL;
    struct conn *to_close = NULL;
    pthread_mutex_lock(&c->mu);
    if (why == CLOSE_NONE && c->nidle >= c->max_keepalive && c->wq_head == NULL)
        why = PETREL_HTTP_CLOSE_POOL_FULL;
    if (why == CLOSE_NONE) {
        w = pool_grant_locked(c, k);
        if (w == NULL) {
            k->idle_since_ms = petrel_now_ms();
            k->next = c->idle;
            c->idle = k;
            c->nidle++;
            c->in_use--;
        }
    } else {
        to_close = k;
        w = pool_grant_locked(c, NULL);
        if (w == NULL) {
            c->open--;
            c->in_use--;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (to_close != NULL) {
        atomic_fetch_add(&c->closed[why], 1);
        conn_close(to_close);
    }
    if (w != NULL)
        waiter_notify(w);
}

/* True when an idle connection still looks usable: the peer has not closed it and sent
 * nothing unexpected. */
static bool conn_alive(struct conn *k)
{
    char b;
    ssize_t n = recv(k->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Acquires a connection: *out is an idle one (reused), or NULL with a slot reserved for
 * a new connection. Returns 0, PETREL_EPOOL, PETREL_ETIMEDOUT (call deadline) or
 * PETREL_ECANCELED. */
static int pool_acquire(petrel_http_client_t *c, int64_t deadline, struct conn **out, bool *reused)
{
    for (;;) {
        struct conn *k = NULL;
        bool slot = false;
        pthread_mutex_lock(&c->mu);
        int64_t now = petrel_now_ms();
        while (c->idle != NULL) {
            k = c->idle;
            c->idle = k->next;
            c->nidle--;
            if (now - k->idle_since_ms < c->keepalive_expiry_ms)
                break;
            c->open--;
            pthread_mutex_unlock(&c->mu);
            atomic_fetch_add(&c->closed[PETREL_HTTP_CLOSE_EXPIRED], 1);
            conn_close(k);
            k = NULL;
            pthread_mutex_lock(&c->mu);
        }
        if (k != NULL) {
            c->in_use++;
        } else if (c->open < c->max_connections) {
            c->open++;
            c->in_use++;
            slot = true;
        }
        if (k != NULL || slot) {
            pthread_mutex_unlock(&c->mu);
            if (k != NULL && !conn_alive(k)) {
                /* The server closed it while idle: drop it and look again. */
                pool_release(c, k, PETREL_HTTP_CLOSE_PEER);
                continue;
            }
            *out = k;
            *reused = k != NULL;
            return 0;
        }
        /* Full: queue (FIFO) and wait for a release to hand us its connection or slot. */
        struct waiter *w = petrel_xcalloc(1, sizeof(*w));
        w->fiber = petrel_fiber_current();
        w->sched = petrel__sched_current();
        w->parked = true;
        atomic_init(&w->refs, 1);
        if (c->wq_tail != NULL)
            c->wq_tail->next = w;
        else
            c->wq_head = w;
        c->wq_tail = w;
        c->waiting++;
        pthread_mutex_unlock(&c->mu);

        int64_t pool_deadline = petrel_now_ms() + c->pool_ms;
        int64_t until = pool_deadline < deadline ? pool_deadline : deadline;
        int rc = 0;
        for (;;) {
            int64_t left = until - petrel_now_ms();
            pthread_mutex_lock(&c->mu);
            bool granted = w->granted;
            pthread_mutex_unlock(&c->mu);
            if (granted)
                break;
            if (left <= 0) {
                rc = PETREL_ETIMEDOUT;
                break;
            }
            petrel_fiber_set_await_kind("http pool");
            int prc = petrel__fiber_park(left);
            if (prc == PETREL_ECANCELED) {
                rc = prc;
                break;
            }
        }
        w->parked = false;
        pthread_mutex_lock(&c->mu);
        if (!w->granted) {
            /* Still queued: leave the queue. */
            struct waiter **pp = &c->wq_head;
            struct waiter *prev = NULL;
            while (*pp != w) {
                prev = *pp;
                pp = &(*pp)->next;
            }
            *pp = w->next;
            if (c->wq_tail == w)
                c->wq_tail = prev;
            c->waiting--;
            pthread_mutex_unlock(&c->mu);
            waiter_unref(w);
            if (rc == PETREL_ETIMEDOUT)
                return petrel_now_ms() >= deadline ? PETREL_ETIMEDOUT : PETREL_EPOOL;
            return rc;
        }
        pthread_mutex_unlock(&c->mu);
        struct conn *got = w->conn;
        waiter_unref(w);
        if (rc != 0) {
            /* Granted just as we gave up: pass the connection or slot on. */
            pool_release(c, got, got != NULL ? CLOSE_NONE : PETREL_HTTP_CLOSE_CANCELLED);
            return rc;
        }
        if (got != NULL && !conn_alive(got)) {
            pool_release(c, got, PETREL_HTTP_CLOSE_PEER);
            continue;
        }
        *out = got;
        *reused = got != NULL;
        return 0;
    }
}

/* ------------------------------------------------------------------ */
/* buffers                                                             */

struct dbuf {
    char *p;
    size_t len, cap;
};

static void dbuf_reserve(struct dbuf *d, size_t extra)
{
    if (d->len + extra + 1 <= d->cap)
        return;
    size_t cap = d->cap ? d->cap : 1024;
    while (cap < d->len + extra + 1)
        cap *= 2;
    d->p = petrel_xrealloc(d->p, cap);
    d->cap = cap;
}

static void dbuf_add(struct dbuf *d, const void *p, size_t n)
{
    dbuf_reserve(d, n);
    memcpy(d->p + d->len, p, n);
    d->len += n;
    d->p[d->len] = '\0';
}

static void dbuf_str(struct dbuf *d, const char *s)
{
    dbuf_add(d, s, strlen(s));
}

static void dbuf_escaped(struct dbuf *d, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            dbuf_add(d, s, 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            dbuf_add(d, e, 3);
        }
    }
}

int petrel_http_escape(const char *s, char *out, size_t cap)
{
    struct dbuf d = {0};
    dbuf_escaped(&d, s);
    if (d.len + 1 > cap || d.len > INT32_MAX) {
        free(d.p);
        return PETREL_ETOOBIG;
    }
    if (d.p != NULL)
        memcpy(out, d.p, d.len + 1);
    else
        out[0] = '\0';
    int n = (int)d.len;
    free(d.p);
    return n;
}

/* ------------------------------------------------------------------ */
/* socket and TLS I/O, every wait bounded by its phase and the call    */

/* What a call is doing, for timeouts, retries and messages. */
enum phase { PH_CONNECT = 0, PH_SEND, PH_WAIT_HEAD, PH_RECV };

struct call {
    petrel_http_client_t *c;
    int64_t deadline;
    enum phase phase;
    bool got_bytes; /* some response byte arrived */
    bool pool_fail; /* the attempt never got a connection (local saturation) */
    petrel_http_res_t *res;
};

static int call_fail(struct call *cl, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int call_fail(struct call *cl, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(cl->res->message, sizeof(cl->res->message), fmt, ap);
    va_end(ap);
    cl->res->error = rc;
    return rc;
}

static const char *phase_name(enum phase p)
{
    static const char *const names[] = {"connect", "write", "read", "read"};
    return names[p];
}

static int io_wait(struct call *cl, int fd, int ev, int64_t phase_ms)
{
    int64_t left = cl->deadline - petrel_now_ms();
    if (left <= 0)
        return PETREL_ETIMEDOUT;
    int64_t t = phase_ms < left ? phase_ms : left;
    petrel_fiber_set_await_kind("http");
    int rc = petrel_wait_fd(fd, ev, t < 1 ? 1 : t);
    if (rc == PETREL_ETIMEDOUT)
        return call_fail(cl, rc, "%s timeout (%s)", phase_name(cl->phase), cl->c->name);
    if (rc == PETREL_ECANCELED)
        return call_fail(cl, rc, "cancelled");
    return rc;
}

static int tls_error(struct call *cl, struct conn *k, const char *what)
{
    long vr = k->ssl != NULL ? SSL_get_verify_result(k->ssl) : X509_V_OK;
    unsigned long e = ERR_get_error();
    char buf[120];
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    if (vr != X509_V_OK)
        return call_fail(cl, PETREL_EIO, "TLS %s: certificate verify failed: %s", what,
                         X509_verify_cert_error_string(vr));
    return call_fail(cl, PETREL_EIO, "TLS %s: %s", what, e != 0 ? buf : "connection closed");
}

/* Drives a non-blocking SSL call: returns 1 to call again after a wait, 0 done, < 0 error. */
static int tls_want(struct call *cl, struct conn *k, int r, int64_t phase_ms, const char *what)
{
    int e = SSL_get_error(k->ssl, r);
    int rc;
    if (e == SSL_ERROR_WANT_READ)
        rc = io_wait(cl, k->fd, PETREL_READABLE, phase_ms);
    else if (e == SSL_ERROR_WANT_WRITE)
        rc = io_wait(cl, k->fd, PETREL_WRITABLE, phase_ms);
    else
        return tls_error(cl, k, what);
    return rc == 0 ? 1 : rc;
}

static int conn_connect(struct call *cl, struct conn **out)
{
    petrel_http_client_t *c = cl->c;
    cl->phase = PH_CONNECT;
    /* connect_ms bounds TCP and TLS together. */
    int64_t saved = cl->deadline;
    int64_t cd = petrel_now_ms() + c->connect_ms;
    if (cd < cl->deadline)
        cl->deadline = cd;
    int rc = 0;
    struct conn *k = petrel_xcalloc(1, sizeof(*k));
    k->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (k->fd < 0) {
        rc = call_fail(cl, PETREL_EIO, "socket: errno %d", errno);
        free(k);
        cl->deadline = saved;
        return rc;
    }
    int one = 1;
    (void)setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(k->fd, (struct sockaddr *)&c->addr, c->addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno == PETREL_ECONNREFUSED ? PETREL_ECONNREFUSED : PETREL_EIO;
            call_fail(cl, rc, "connect to %s:%d: errno %d", c->host, c->port, errno);
            goto fail;
        }
        if ((rc = io_wait(cl, k->fd, PETREL_WRITABLE, c->connect_ms)) != 0)
            goto fail;
        int err = 0;
        socklen_t el = sizeof(err);
        (void)getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
            rc = err == ECONNREFUSED ? PETREL_ECONNREFUSED : PETREL_EIO;
            call_fail(cl, rc, "connect to %s:%d: %s", c->host, c->port,
                      err == ECONNREFUSED ? "connection refused" : "failed");
            goto fail;
        }
    }
    if (c->tls) {
        k->ssl = SSL_new(c->ssl_ctx);
        if (k->ssl == NULL || SSL_set_fd(k->ssl, k->fd) != 1) {
            rc = tls_error(cl, k, "setup");
            goto fail;
        }
        /* SNI for names only (RFC 6066 forbids IP literals); the identity check works on
         * TLS 1.2 and 1.3 alike because OpenSSL runs it during chain verification. */
        if (!c->host_is_ip)
            (void)SSL_set_tlsext_host_name(k->ssl, c->host);
        X509_VERIFY_PARAM *vp = SSL_get0_param(k->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = c->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, c->host)
                               : X509_VERIFY_PARAM_set1_host(vp, c->host, 0);
        if (ok != 1) {
            rc = tls_error(cl, k, "setup");
            goto fail;
        }
        for (;;) {
            int r = SSL_connect(k->ssl);
            if (r == 1)
                break;
            rc = tls_want(cl, k, r, c->connect_ms, "handshake");
            if (rc < 0)
                goto fail;
        }
    }
    cl->deadline = saved;
    atomic_fetch_add(&c->connects_total, 1); /* made: refused or failed attempts are errors */
    *out = k;
    return 0;
fail:
    cl->deadline = saved;
    if (rc == PETREL_ETIMEDOUT && petrel_now_ms() < saved)
        call_fail(cl, rc, "connect timeout (%s)", c->name);
    conn_close(k);
    return rc;
}

static int conn_write(struct call *cl, struct conn *k, const char *p, size_t len)
{
    cl->phase = PH_SEND;
    while (len > 0) {
        if (k->ssl != NULL) {
            int r = SSL_write(k->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
            if (r > 0) {
                p += r;
                len -= (size_t)r;
                continue;
            }
            int rc = tls_want(cl, k, r, cl->c->write_ms, "write");
            if (rc < 0)
                return rc;
            continue;
        }
        ssize_t n = send(k->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = io_wait(cl, k->fd, PETREL_WRITABLE, cl->c->write_ms);
            if (rc != 0)
                return rc;
            continue;
        }
        return call_fail(cl, PETREL_ECONNRESET, "write: connection reset");
    }
    return 0;
}

/* Reads what is available (waiting up to read_ms): returns bytes read, 0 at EOF, or < 0. */
static int64_t conn_read(struct call *cl, struct conn *k, char *buf, size_t cap)
{
    for (;;) {
        if (k->ssl != NULL) {
            int r = SSL_read(k->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
            if (r > 0)
                return r;
            int e = SSL_get_error(k->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                ERR_clear_error();
                return 0;
            }
            int rc = tls_want(cl, k, r, cl->c->read_ms, "read");
            if (rc < 0)
                return rc;
            continue;
        }
        ssize_t n = recv(k->fd, buf, cap, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = io_wait(cl, k->fd, PETREL_READABLE, cl->c->read_ms);
            if (rc != 0)
                return rc;
            continue;
        }
        return call_fail(cl, PETREL_ECONNRESET, "read: connection reset");
    }
}

/* ------------------------------------------------------------------ */
/* one exchange on one connection                                      */

static void res_headers(petrel_http_res_t *res, const struct petrel__http_head *h)
{
    res->nheaders = h->nheaders;
    res->header_names = petrel_xcalloc(h->nheaders + 1, sizeof(char *));
    res->header_values = petrel_xcalloc(h->nheaders + 1, sizeof(char *));
    for (size_t i = 0; i < h->nheaders; i++) {
        char *n = petrel_xmalloc(h->headers[i].nlen + 1);
        for (size_t j = 0; j < h->headers[i].nlen; j++)
            n[j] = (char)tolower((unsigned char)h->headers[i].name[j]);
        n[h->headers[i].nlen] = '\0';
        char *v = petrel_xmalloc(h->headers[i].vlen + 1);
        memcpy(v, h->headers[i].value, h->headers[i].vlen);
        v[h->headers[i].vlen] = '\0';
        res->header_names[i] = n;
        res->header_values[i] = v;
    }
}

static void res_clear(petrel_http_res_t *res)
{
    for (size_t i = 0; i < res->nheaders; i++) {
        free(res->header_names[i]);
        free(res->header_values[i]);
    }
    free(res->header_names);
    free(res->header_values);
    free(res->body);
    res->header_names = res->header_values = NULL;
    res->nheaders = 0;
    res->body = NULL;
    res->body_len = 0;
    res->status = 0;
}

/* Reads the body per the head's framing into `body`, starting with the `pre` bytes that
 * came with the head. Sets *clean when the connection may be reused. */
static int read_body(struct call *cl, struct conn *k, const struct petrel__http_head *h,
                     bool no_body, char *pre, size_t npre, struct dbuf *body, bool *clean)
{
    size_t cap = (size_t)cl->c->max_response_bytes;
    *clean = false;
    cl->phase = PH_RECV;
    if (no_body) {
        *clean = h->keepalive && npre == 0;
        return 0;
    }
    if (h->content_length >= 0) {
        if ((uint64_t)h->content_length > cap)
            return call_fail(cl, PETREL_ETOOBIG, "response of %lld bytes over the %zu-byte cap",
                             (long long)h->content_length, cap);
        size_t need = (size_t)h->content_length;
        size_t take = npre < need ? npre : need;
        dbuf_reserve(body, need);
        dbuf_add(body, pre, take);
        while (body->len < need) {
            int64_t n = conn_read(cl, k, body->p + body->len, need - body->len);
            if (n < 0)
                return (int)n;
            if (n == 0)
                return call_fail(cl, PETREL_EIO, "connection closed mid-body (%zu of %zu bytes)",
                                 body->len, need);
            body->len += (size_t)n;
        }
        body->p[body->len] = '\0';
        *clean = h->keepalive && npre <= need;
        return 0;
    }
    char tmp[16384];
    if (h->chunked) {
        struct petrel__chunked dec = {0};
        char *src = pre;
        size_t n = npre;
        for (;;) {
            size_t dn = n;
            int64_t r = petrel__chunked_decode(&dec, src, &dn);
            if (r == -1)
                return call_fail(cl, PETREL_EIO, "malformed chunked body");
            if (body->len + dn > cap)
                return call_fail(cl, PETREL_ETOOBIG, "response over the %zu-byte cap", cap);
            dbuf_add(body, src, dn);
            if (r >= 0) {
                *clean = h->keepalive && r == 0;
                return 0;
            }
            int64_t got = conn_read(cl, k, tmp, sizeof(tmp));
            if (got < 0)
                return (int)got;
            if (got == 0)
                return call_fail(cl, PETREL_EIO, "connection closed mid-body (chunked)");
            src = tmp;
            n = (size_t)got;
        }
    }
    /* No length: the body ends when the server closes. */
    if (npre > cap)
        return call_fail(cl, PETREL_ETOOBIG, "response over the %zu-byte cap", cap);
    dbuf_add(body, pre, npre);
    for (;;) {
        int64_t got = conn_read(cl, k, tmp, sizeof(tmp));
        if (got < 0)
            return (int)got;
        if (got == 0)
            break;
        if (body->len + (size_t)got > cap)
            return call_fail(cl, PETREL_ETOOBIG, "response over the %zu-byte cap", cap);
        dbuf_add(body, tmp, (size_t)got);
    }
    return 0;
}

/* Sends the request and reads the response into res. *clean: the connection may be pooled. */
static int exchange(struct call *cl, struct conn *k, const struct dbuf *req, bool is_head,
                    bool *clean)
{
    *clean = false;
    int rc = conn_write(cl, k, req->p, req->len);
    if (rc != 0)
        return rc;
    cl->phase = PH_WAIT_HEAD;
    struct dbuf rb = {0};
    struct petrel__http_head h;
    int hl;
    for (;;) {
        hl = petrel__http_parse_head(rb.p != NULL ? rb.p : "", rb.len, &h);
        if (hl < 0) {
            rc = call_fail(cl, PETREL_EIO, "malformed response head");
            goto out;
        }
        if (hl > 0 && h.status >= 100 && h.status < 200 && h.status != 101) {
            /* 100 Continue and friends: drop and read the real head. */
            memmove(rb.p, rb.p + hl, rb.len - (size_t)hl);
            rb.len -= (size_t)hl;
            continue;
        }
        if (hl > 0)
            break;
        if (rb.len >= HEAD_MAX) {
            rc = call_fail(cl, PETREL_ETOOBIG, "response head over %d bytes", HEAD_MAX);
            goto out;
        }
        dbuf_reserve(&rb, 4096);
        int64_t n = conn_read(cl, k, rb.p + rb.len, rb.cap - rb.len - 1);
        if (n < 0) {
            rc = (int)n;
            goto out;
        }
        if (n == 0) {
            rc = call_fail(cl, PETREL_EIO,
                           rb.len == 0 ? "connection closed before a response"
                                       : "connection closed mid-head");
            goto out;
        }
        cl->got_bytes = true;
        rb.len += (size_t)n;
    }
    cl->res->status = h.status;
    res_headers(cl->res, &h);
    struct dbuf body = {0};
    bool no_body = is_head || h.status == 204 || h.status == 304;
    rc = read_body(cl, k, &h, no_body, rb.p + hl, rb.len - (size_t)hl, &body, clean);
    if (rc != 0) {
        free(body.p);
        res_clear(cl->res);
        goto out;
    }
    if (body.p == NULL)
        dbuf_add(&body, "", 0);
    cl->res->body = body.p;
    cl->res->body_len = body.len;
out:
    free(rb.p);
    return rc;
}

/* ------------------------------------------------------------------ */
/* breaker                                                             */

static bool breaker_on(const petrel_http_client_t *c)
{
    return c->breaker_failures > 0 || c->breaker_ratio > 0.0;
}

/* Forgets the failure-ratio window (the breaker opened or closed: start afresh). mu held. */
static void window_reset_locked(petrel_http_client_t *c)
{
    c->win_n = c->win_pos = c->win_fail = 0;
}

/* Adds an outcome to the window; returns true when the ratio says open. mu held. */
static bool window_add_locked(petrel_http_client_t *c, bool failed)
{
    if (c->win == NULL)
        return false;
    if (c->win_n == c->breaker_window)
        c->win_fail -= c->win[c->win_pos]; /* the oldest outcome drops out */
    else
        c->win_n++;
    c->win[c->win_pos] = failed ? 1 : 0;
    c->win_fail += failed ? 1 : 0;
    c->win_pos = (c->win_pos + 1) % c->breaker_window;
    return c->win_n == c->breaker_window &&
           (double)c->win_fail >= c->breaker_ratio * (double)c->breaker_window - 1e-9;
}

/* True while the breaker is open and cooling down: a call would fail at once. Read-only,
 * for checks made before waiting on anything. */
static bool breaker_rejects(petrel_http_client_t *c)
{
    if (!breaker_on(c))
        return false;
    pthread_mutex_lock(&c->mu);
    bool no = (c->breaker == PETREL_BREAKER_OPEN &&
               petrel_now_ms() - c->opened_at_ms < c->breaker_cooldown_ms) ||
              (c->breaker == PETREL_BREAKER_HALF_OPEN && c->probe_inflight);
    pthread_mutex_unlock(&c->mu);
    return no;
}

static int breaker_allow(petrel_http_client_t *c, bool *probe)
{
    *probe = false;
    if (!breaker_on(c))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    switch (c->breaker) {
    case PETREL_BREAKER_CLOSED:
        break;
    case PETREL_BREAKER_OPEN:
        if (petrel_now_ms() - c->opened_at_ms >= c->breaker_cooldown_ms) {
            c->breaker = PETREL_BREAKER_HALF_OPEN;
            c->probe_inflight = true;
            *probe = true;
        } else {
            rc = PETREL_EBREAKER;
        }
        break;
    case PETREL_BREAKER_HALF_OPEN:
        if (c->probe_inflight) {
            rc = PETREL_EBREAKER;
        } else {
            c->probe_inflight = true;
            *probe = true;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* outcome: 1 success, -1 upstream failure, 0 neither (cancelled, local limits). */
static void breaker_record(petrel_http_client_t *c, bool probe, int outcome)
{
    if (!breaker_on(c))
        return;
    bool by_count = false, by_ratio = false;
    int64_t wfail = 0, wn = 0;
    pthread_mutex_lock(&c->mu);
    if (probe) {
        c->probe_inflight = false;
        if (outcome > 0) {
            c->breaker = PETREL_BREAKER_CLOSED;
            c->consecutive_failures = 0;
            window_reset_locked(c);
        } else if (outcome < 0) {
            c->breaker = PETREL_BREAKER_OPEN;
            c->opened_at_ms = petrel_now_ms();
        }
    } else if (c->breaker == PETREL_BREAKER_CLOSED && outcome != 0) {
        if (outcome > 0)
            c->consecutive_failures = 0;
        else
            by_count = c->breaker_failures > 0 && ++c->consecutive_failures >= c->breaker_failures;
        by_ratio = window_add_locked(c, outcome < 0);
        wfail = c->win_fail;
        wn = c->win_n;
        if (by_count || by_ratio) {
            c->breaker = PETREL_BREAKER_OPEN;
            c->opened_at_ms = petrel_now_ms();
            c->consecutive_failures = 0;
            window_reset_locked(c);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (by_count)
        petrel_log_warn("http client %s: circuit breaker open after %lld consecutive failures",
                        c->name, (long long)c->breaker_failures);
    else if (by_ratio)
        petrel_log_warn("http client %s: circuit breaker open: %lld of the last %lld calls failed "
                        "(breaker_ratio %g)",
                        c->name, (long long)wfail, (long long)wn, c->breaker_ratio);
}

/* ------------------------------------------------------------------ */
/* calls                                                               */

static bool method_idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0;
}

static bool text_clean(const char *s, bool allow_space)
{
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f || (!allow_space && ch == ' '))
            return false;
    }
    return true;
}

static int build_request(petrel_http_client_t *c, const petrel_http_req_t *rq, const char *method,
                         struct dbuf *d)
{
    const char *path = rq->path != NULL ? rq->path : "";
    for (const char *m = method; *m != '\0'; m++)
        if (!isupper((unsigned char)*m))
            return PETREL_EINVAL;
    if ((*path != '\0' && *path != '/') || !text_clean(path, false))
        return PETREL_EINVAL;
    dbuf_str(d, method);
    dbuf_str(d, " ");
    dbuf_str(d, c->prefix);
    dbuf_str(d, *path != '\0' ? path : (*c->prefix != '\0' ? "" : "/"));
    bool first = strchr(path, '?') == NULL;
    for (size_t i = 0; rq->query != NULL && rq->query[i] != NULL && rq->query[i + 1] != NULL;
         i += 2) {
        dbuf_str(d, first ? "?" : "&");
        first = false;
        dbuf_escaped(d, rq->query[i]);
        dbuf_str(d, "=");
        dbuf_escaped(d, rq->query[i + 1]);
    }
    dbuf_str(d, " HTTP/1.1\r\nHost: ");
    dbuf_str(d, c->host_hdr);
    dbuf_str(d, "\r\nUser-Agent: petrel/" PETREL_VERSION "\r\nAccept: application/json\r\n");
    dbuf_str(d, c->default_headers);
    for (size_t i = 0; i < rq->nheaders; i++) {
        const char *n = rq->headers[i].name, *v = rq->headers[i].value;
        if (n == NULL || *n == '\0' || v == NULL || !text_clean(n, false) ||
            strchr(n, ':') != NULL || !text_clean(v, true))
            return PETREL_EINVAL;
        dbuf_str(d, n);
        dbuf_str(d, ": ");
        dbuf_str(d, v);
        dbuf_str(d, "\r\n");
    }
    char *json = NULL;
    const void *body = rq->body;
    size_t blen = rq->body_len;
    const char *ctype = rq->content_type;
    if (rq->json != NULL) {
        json = json_dumps(rq->json, JSON_COMPACT);
        if (json == NULL)
            return PETREL_EINVAL;
        body = json;
        blen = strlen(json);
        ctype = "application/json";
    }
    if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0) {
        char cl[64];
        (void)snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body != NULL ? blen : 0);
        dbuf_str(d, cl);
        if (ctype != NULL && body != NULL) {
            if (!text_clean(ctype, true)) {
                free(json);
                return PETREL_EINVAL;
            }
            dbuf_str(d, "Content-Type: ");
            dbuf_str(d, ctype);
            dbuf_str(d, "\r\n");
        }
    }
    dbuf_str(d, "\r\n");
    if (body != NULL)
        dbuf_add(d, body, blen);
    free(json);
    return 0;
}

/* One attempt: a connection from the pool (or a new one), one exchange, the connection
 * back (pooled only when clean). *stale: a reused connection died before any response. */
static int attempt(struct call *cl, const struct dbuf *req, bool is_head, bool *stale)
{
    petrel_http_client_t *c = cl->c;
    struct conn *k = NULL;
    bool reused = false, clean = false;
    *stale = false;
    cl->phase = PH_CONNECT;
    cl->got_bytes = false;
    atomic_fetch_add(&c->requests_total, 1);
    petrel_fiber_set_await_kind("http pool");
    cl->pool_fail = false;
    int rc = pool_acquire(c, cl->deadline, &k, &reused);
    if (rc != 0) {
        cl->pool_fail = true;
        if (rc == PETREL_EPOOL)
            return call_fail(cl, rc, "no connection to %s free within %lld ms (pool_ms)", c->name,
                             (long long)c->pool_ms);
        return call_fail(cl, rc,
                         rc == PETREL_ETIMEDOUT ? "timeout waiting for a connection" : "cancelled");
    }
    if (k == NULL) {
        if (petrel__fiber_client_gone()) {
            /* Do not open a connection for a caller that left: when many clients hang up
             * at once, their closed calls' slots would otherwise become new connections. */
            pool_release(c, NULL, PETREL_HTTP_CLOSE_CANCELLED);
            return call_fail(cl, PETREL_ECANCELED, "cancelled: the client hung up");
        }
        rc = conn_connect(cl, &k);
        if (rc != 0) {
            pool_release(c, NULL, PETREL_HTTP_CLOSE_ERROR); /* a slot only: nothing to count */
            return rc;
        }
    } else {
        atomic_fetch_add(&c->reused_total, 1);
    }
    rc = exchange(cl, k, req, is_head, &clean);
    if (rc != 0 && reused && !cl->got_bytes && rc != PETREL_ETIMEDOUT && rc != PETREL_ECANCELED)
        *stale = true;
    int why = CLOSE_NONE;
    if (rc == PETREL_ETIMEDOUT)
        why = PETREL_HTTP_CLOSE_TIMEOUT;
    else if (rc == PETREL_ECANCELED)
        why = PETREL_HTTP_CLOSE_CANCELLED;
    else if (*stale)
        why = PETREL_HTTP_CLOSE_PEER; /* a kept-alive connection the server had closed */
    else if (rc != 0)
        why = PETREL_HTTP_CLOSE_ERROR;
    else if (!clean)
        why = PETREL_HTTP_CLOSE_NOT_REUSABLE;
    pool_release(c, k, why);
    return rc;
}

/* Takes a slot of the client's semaphore for the whole call, waiting like for a pooled
 * connection: up to pool_ms (PETREL_EPOOL), never past the call's deadline. */
static int sem_enter(struct call *cl)
{
    petrel_http_client_t *c = cl->c;
    int64_t left = cl->deadline - petrel_now_ms();
    bool deadline_first = left <= c->pool_ms;
    petrel_fiber_set_await_kind("http semaphore");
    int rc = petrel_sem_acquire(c->sem, deadline_first ? (left > 0 ? left : 0) : c->pool_ms);
    if (rc == 0)
        return 0;
    if (rc == PETREL_EOVERLOAD) {
        atomic_fetch_add(&c->timeouts, 1);
        if (deadline_first)
            return call_fail(cl, PETREL_ETIMEDOUT, "timeout waiting for semaphore %s",
                             petrel_sem_name(c->sem));
        return call_fail(cl, PETREL_EPOOL, "no slot of semaphore %s free within %lld ms (pool_ms)",
                         petrel_sem_name(c->sem), (long long)c->pool_ms);
    }
    return call_fail(cl, rc, "cancelled");
}

static bool status_retryable(const petrel_http_client_t *c, int status)
{
    for (size_t i = 0; i < c->nretry_statuses; i++)
        if (c->retry_statuses[i] == status)
            return true;
    return false;
}

int petrel_http_request(petrel_http_client_t *c, const petrel_http_req_t *rq,
                        petrel_http_res_t *res)
{
    memset(res, 0, sizeof(*res));
    PETREL_ASSERT(petrel_fiber_current() != NULL); /* awaiting outside a fiber */
    const char *method = rq->method != NULL ? rq->method : "GET";
    bool idem = method_idempotent(method);
    int64_t timeout = rq->timeout_ms > 0 ? rq->timeout_ms : c->total_ms;
    struct call cl = {.c = c, .deadline = petrel_now_ms() + timeout, .res = res};
    struct dbuf req = {0};
    int rc = build_request(c, rq, method, &req);
    if (rc != 0) {
        free(req.p);
        return call_fail(&cl, rc, "invalid request (method, path or header)");
    }
    bool is_head = strcmp(method, "HEAD") == 0;
    /* A cancelled caller or an open breaker fails at once, not after a semaphore wait. */
    if (c->sem != NULL) {
        if (petrel_cancelled())
            rc = call_fail(&cl, PETREL_ECANCELED, "cancelled");
        else if (breaker_rejects(c))
            rc = call_fail(&cl, PETREL_EBREAKER, "circuit breaker open for %s", c->name);
        else
            rc = sem_enter(&cl);
    }
    if (rc != 0) {
        free(req.p);
        res->error = rc;
        return rc;
    }
    bool free_retry = true; /* one immediate retry for a dead keep-alive connection */
    for (int i = 0;; i++) {
        res->attempts++;
        bool probe = false;
        if (petrel_cancelled()) {
            rc = call_fail(&cl, PETREL_ECANCELED, "cancelled");
            break;
        }
        if ((rc = breaker_allow(c, &probe)) != 0) {
            call_fail(&cl, rc, "circuit breaker open for %s", c->name);
            break;
        }
        bool stale = false;
        res_clear(res);
        res->error = 0;
        res->message[0] = '\0';
        rc = attempt(&cl, &req, is_head, &stale);
        int outcome;
        if (rc == 0)
            outcome = res->status >= 500 ? -1 : 1;
        else if (rc == PETREL_ECANCELED || rc == PETREL_EPOOL || rc == PETREL_ETOOBIG ||
                 cl.pool_fail)
            outcome = 0; /* not the upstream's fault (cancelled, local limits, pool wait) */
        else
            outcome = -1;
        if (rc == PETREL_ETIMEDOUT || rc == PETREL_EPOOL)
            atomic_fetch_add(&c->timeouts, 1);
        else if (rc != 0 && rc != PETREL_ECANCELED)
            atomic_fetch_add(&c->errors, 1);
        breaker_record(c, probe, outcome);
        if (rc == 0 && !(idem && status_retryable(c, res->status)))
            break;
        if (rc == PETREL_ECANCELED || rc == PETREL_ETOOBIG || rc == PETREL_EPOOL)
            break;
        if (stale && free_retry && idem) {
            free_retry = false;
            i--;
            continue;
        }
        /* Retry connection failures (not read timeouts: the upstream may be working on it)
         * and the configured statuses, for idempotent methods only. */
        bool retryable =
            idem && !cl.pool_fail &&
            (rc == 0 || cl.phase == PH_CONNECT || (rc != PETREL_ETIMEDOUT && !cl.got_bytes));
        if (!retryable || i >= c->retries)
            break;
        int64_t base = c->backoff_base_ms << (i < 20 ? i : 20);
        int64_t delay = base / 2 + (int64_t)(jitter_next() % (uint64_t)(base / 2 + 1));
        if (petrel_now_ms() + delay >= cl.deadline)
            break; /* never past the deadline: keep the last outcome */
        int src = petrel_sleep(delay);
        if (src != 0) {
            res_clear(res);
            rc = call_fail(&cl, src, "cancelled");
            break;
        }
        atomic_fetch_add(&c->retries_total, 1);
    }
    free(req.p);
    if (c->sem != NULL)
        (void)petrel_sem_release(c->sem);
    if (rc != 0) {
        res_clear(res);
        res->error = rc;
        return rc;
    }
    return 0;
}

int petrel_http_get(petrel_http_client_t *c, const char *path, petrel_http_res_t *res)
{
    petrel_http_req_t rq = {.method = "GET", .path = path};
    return petrel_http_request(c, &rq, res);
}

json_t *petrel_http_res_json(const petrel_http_res_t *res)
{
    if (res->body == NULL)
        return NULL;
    return json_loadb(res->body, res->body_len, JSON_DECODE_ANY, NULL);
}

const char *petrel_http_res_header(const petrel_http_res_t *res, const char *name)
{
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcasecmp(res->header_names[i], name) == 0)
            return res->header_values[i];
    return NULL;
}

void petrel_http_res_dispose(petrel_http_res_t *res)
{
    res_clear(res);
    memset(res, 0, sizeof(*res));
}

/* ------------------------------------------------------------------ */
/* stats                                                               */

void petrel_http_stats(petrel_http_client_t *c, petrel_http_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    out->open = c->open;
    out->idle = c->nidle;
    out->in_use = c->in_use;
    out->waiting = c->waiting;
    out->max_connections = c->max_connections;
    out->breaker = c->breaker;
    if (c->breaker == PETREL_BREAKER_OPEN &&
        petrel_now_ms() - c->opened_at_ms >= c->breaker_cooldown_ms)
        out->breaker = PETREL_BREAKER_HALF_OPEN; /* the next call will probe */
    pthread_mutex_unlock(&c->mu);
    out->connects_total = atomic_load(&c->connects_total);
    out->reused_total = atomic_load(&c->reused_total);
    out->requests_total = atomic_load(&c->requests_total);
    out->retries_total = atomic_load(&c->retries_total);
    out->timeouts = atomic_load(&c->timeouts);
    out->errors = atomic_load(&c->errors);
    for (int i = 0; i < PETREL_HTTP_CLOSE_REASONS; i++)
        out->closed[i] = atomic_load(&c->closed[i]);
}

const char *petrel_http_close_reason_name(petrel_http_close_reason_t r)
{
    static const char *const names[PETREL_HTTP_CLOSE_REASONS] = {
        "expired", "peer", "not_reusable", "pool_full", "timeout", "cancelled", "error"};
    return (unsigned)r < PETREL_HTTP_CLOSE_REASONS ? names[r] : "unknown";
}

json_t *petrel_http_stats_json(petrel_http_client_t *c)
{
    static const char *const bnames[] = {"closed", "open", "half_open"};
    petrel_http_stats_t s;
    petrel_http_stats(c, &s);
    json_t *closed = json_object();
    for (int i = 0; i < PETREL_HTTP_CLOSE_REASONS; i++)
        json_object_set_new(closed, petrel_http_close_reason_name((petrel_http_close_reason_t)i),
                            json_integer((json_int_t)s.closed[i]));
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:s}", "name", c->name,
                     "open", (json_int_t)s.open, "idle", (json_int_t)s.idle, "in_use",
                     (json_int_t)s.in_use, "waiting", (json_int_t)s.waiting, "max_connections",
                     (json_int_t)s.max_connections, "connects_total", (json_int_t)s.connects_total,
                     "reused_total", (json_int_t)s.reused_total, "requests_total",
                     (json_int_t)s.requests_total, "retries_total", (json_int_t)s.retries_total,
                     "timeouts", (json_int_t)s.timeouts, "errors", (json_int_t)s.errors, "closed",
                     closed, "breaker", bnames[s.breaker]);
}

/* Runs under reg_mu, so no client is freed meanwhile (lock order: reg_mu, then c->mu). */
static void client_collect(petrel_metrics_writer_t *w, petrel_http_client_t *c)
{
    petrel_http_stats_t s;
    petrel_http_stats(c, &s);
    static const char *const states[] = {"open", "idle", "in_use"};
    const int64_t conns[] = {s.open, s.idle, s.in_use};
    for (size_t i = 0; i < 3; i++) {
        const char *l[] = {"upstream", c->name, "state", states[i], NULL};
        petrel_metrics_gauge(w, "petrel_http_client_connections",
                             "Outbound connections per upstream: open (idle + in use + "
                             "connecting), idle in the keep-alive pool, in use",
                             l, (double)conns[i]);
    }
    const char *l[] = {"upstream", c->name, NULL};
    petrel_metrics_gauge(w, "petrel_http_client_max_connections",
                         "Process-wide cap on open connections (max_connections)", l,
                         (double)s.max_connections);
    petrel_metrics_gauge(w, "petrel_http_client_waiting", "Calls waiting for a free connection", l,
                         (double)s.waiting);
    petrel_metrics_gauge(w, "petrel_http_client_breaker_open",
                         "1 while the circuit breaker is open or half-open (calls fail fast)", l,
                         s.breaker != PETREL_BREAKER_CLOSED ? 1.0 : 0.0);
    petrel_metrics_counter(w, "petrel_http_client_connects_total", "TCP connections made", l,
                           (double)s.connects_total);
    petrel_metrics_counter(w, "petrel_http_client_reused_total",
                           "Attempts served on a kept-alive connection", l, (double)s.reused_total);
    petrel_metrics_counter(w, "petrel_http_client_requests_total", "Attempts sent", l,
                           (double)s.requests_total);
    petrel_metrics_counter(w, "petrel_http_client_retries_total", "Retries made", l,
                           (double)s.retries_total);
    petrel_metrics_counter(w, "petrel_http_client_timeouts_total",
                           "Attempts that timed out (any phase, pool wait included)", l,
                           (double)s.timeouts);
    petrel_metrics_counter(w, "petrel_http_client_errors_total",
                           "Attempts that failed otherwise (refused, reset, malformed, TLS)", l,
                           (double)s.errors);
    for (int i = 0; i < PETREL_HTTP_CLOSE_REASONS; i++) {
        const char *lr[] = {"upstream", c->name, "reason",
                            petrel_http_close_reason_name((petrel_http_close_reason_t)i), NULL};
        petrel_metrics_counter(w, "petrel_http_client_closed_total",
                               "Connections closed instead of pooled, by reason", lr,
                               (double)s.closed[i]);
    }
}

void petrel_http_metrics_collect(petrel_metrics_writer_t *w, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&reg_mu);
    /* Oldest first, so the samples keep the clients' creation order. */
    petrel_http_client_t *c = reg_head;
    while (c != NULL && c->reg_next != NULL)
        c = c->reg_next;
    for (; c != NULL; c = c->reg_prev)
        client_collect(w, c);
    pthread_mutex_unlock(&reg_mu);
}
