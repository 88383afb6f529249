/*
 * server_int.h - private: the app, the server, its workers and the request
 * object shared by server.c (loops, dispatch, lifecycle), req.c (request and
 * response API) and app.c (declarations and the command line).
 */
#ifndef PETREL_SERVER_INT_H
#define PETREL_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <h2o.h>

#include "fiber_int.h"
#include "petrel/app.h"
#include "petrel/req.h"
#include "router_int.h"

struct hook {
    petrel_hook_cb cb;
    void *arg;
};

struct worker_hook {
    petrel_worker_hook_cb cb;
    void *arg;
};

struct petrel_app {
    const char *title, *version;
    const petrel_route_t **routes;
    size_t nroutes, routes_cap;
    struct hook *startup, *shutdown;
    size_t nstartup, nshutdown;
    struct worker_hook *wstart, *wstop;
    size_t nwstart, nwstop;
    petrel_config_t *cfg;
    void *state;
    petrel_server_t *server;              /* running server, or NULL */
    struct petrel__collector *collectors; /* metrics collectors (metrics.c) */
    size_t ncollectors;
    petrel_readiness_cb readiness;
    void *readiness_arg;
    char *command_help; /* the app's own commands, for --help (petrel_app_describe_command) */
    /* Routes' semaphores and rate limiters, resolved by name at server start (limits.c):
     * an open-addressing table keyed by route, read-only while serving. */
    struct petrel__route_lim *route_lims;
    size_t route_lims_cap; /* a power of two, or 0 */
};

enum server_state {
    SERVER_STARTING = 0,
    SERVER_READY,
    SERVER_DRAINING,
    SERVER_STOPPED,
};

/* Values read from the config once at start, so the hot path never parses. */
struct server_conf {
    char *host;
    int port;
    int workers;
    int64_t max_connections;
    int64_t max_body_bytes;
    int64_t max_header_bytes;
    int64_t request_timeout_ms;
    int64_t io_timeout_ms;
    int64_t keepalive_timeout_ms;
    double shutdown_timeout_s;
    double startup_timeout_s;
    int backlog;
    size_t fiber_stack;
    size_t fiber_pool_max;
    int64_t slow_callback_ms;
    char *server_name;
    bool http2;
    char *tls_cert, *tls_key, *tls_min_version;
    bool debug;
};

struct worker {
    int index;
    petrel_server_t *srv;
    pthread_t thread;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
    petrel__sched_t *sched;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    _Atomic int stop; /* loop exits when set */
    _Atomic int close_listener;
    _Atomic int cancel_all;
    _Atomic int run_hooks;  /* 1: run worker start hooks, 2: run worker stop hooks */
    _Atomic int hooks_done; /* set when the requested hooks finished */
    int hooks_rc;
    bool hooks_running;
    _Atomic long inflight;   /* request fibers alive on this worker */
    _Atomic long conns;      /* client connections open on this worker */
    bool abandoned;          /* connections outlived the stop grace: the loop is kept */
    bool started;            /* its thread was created (it owns listen_fd from then on) */
    pthread_mutex_t poke_mu; /* guards pokes against the queue's teardown */
    bool pokes_open;
    h2o_linklist_t reqs; /* live petrel_req_t, for cancel-all */
    uint64_t reqid_seq;
    uint64_t reqid_salt;
    /* Released requests kept for reuse (loop thread only): no malloc per request. */
    struct petrel_req *req_cache;
    int nreq_cache;
    bool req_cache_closed; /* after teardown: release frees */
};

struct petrel_server {
    petrel_app_t *app;
    struct server_conf conf;
    h2o_iovec_t server_hdr; /* the Server header's value; len 0: none */
    petrel__router_t *router;
    struct petrel__metrics *metrics; /* counters per worker (metrics.c) */
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;
    SSL_CTX *ssl_ctx;
    struct worker *workers;
    int nworkers;
    int port;
    _Atomic int state;
    _Atomic long connections;
    /* control thread: runs lifespan hooks on its own loop */
    pthread_t control;
    h2o_evloop_t *control_loop;
    petrel__sched_t *control_sched;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int startup_done;  /* 1 ok, -1 failed */
    int workers_ready; /* workers whose loop is up */
    int stop_requested;
    int stop_result;
    int control_done;
    char err[256];
};

struct resp_header {
    const char *name, *value;
    size_t nlen, vlen;
};

struct petrel_req {
    h2o_req_t *h2o; /* NULL once h2o disposed it (client gone or response finished) */
    struct worker *w;
    petrel_fiber_t *fiber;
    const petrel_route_t *route;
    h2o_mem_pool_t arena;
    h2o_linklist_t link; /* in worker->reqs */
    int refs;            /* the fiber and h2o each hold one */
    bool responded;      /* a response was handed to h2o */
    bool has_response;   /* the handler set one */
    bool timed_out;
    int status;
    const char *content_type;
    size_t ctlen;
    h2o_iovec_t *body; /* body chunks in the h2o pool */
    size_t nbody, body_len;
    struct resp_header *hdrs;
    size_t nhdrs, hdrs_cap;
    bool own_server; /* the handler set Server: it replaces the configured one */
    json_t *params;
    json_t *body_json;
    petrel_error_t last_error;
    bool has_error;
    const char *reqid;
    size_t reqid_len;
    char *method;
    size_t mlen;
    char *path; /* raw path without query, NUL-terminated (arena) */
    size_t plen;
    char *query; /* raw query or NULL (arena) */
    size_t qlen;
    char *scratch;         /* decoded path for router args (arena) */
    petrel_str_t raw_body; /* copied to the arena on first access */
    bool raw_body_copied;
    int64_t start_ns;
    petrel__timer_t deadline;
    bool deadline_armed;   /* once: a deadline that fired is not armed again */
    petrel__fdwatch_t hup; /* HTTP/1: notices a client that hangs up mid-handler */
    bool client_gone;
    struct petrel__req_tasks *tasks; /* child tasks (task.c), NULL until the first spawn */
    /* From here on, not cleared on reuse. The router sets every field of the match it
     * reads (args up to nargs). */
    petrel__match_t match;
    h2o_iovec_t body_inl[2]; /* a serialised body's iovecs when it has at most two chunks */
    /* The path, decoded path, query, method and generated id when they fit, so most
     * requests never take a chunk for their arena. */
    char inl[192];
};

/* server.c: child tasks keep their request alive with a reference each. */
void petrel__req_retain(petrel_req_t *req);
void petrel__req_release(petrel_req_t *req);

/* server.c: the request the calling fiber serves (request and child-task fibers), or NULL. */
petrel_req_t *petrel__current_req(void);

/* req.c */
void petrel__req_send(petrel_req_t *req);
void petrel__req_send_error(petrel_req_t *req, int status, const char *detail);
void petrel__req_finish_response(petrel_req_t *req, int status, const char *ctype, size_t ctlen,
                                 h2o_iovec_t *bufs, size_t nbufs, size_t total);
/* app.c */
int petrel__app_load_server_conf(petrel_app_t *app, struct server_conf *sc, char *err,
                                 size_t errlen);
void petrel__server_conf_dispose(struct server_conf *sc);

/* server.c: petrel's own routes (health, docs, metrics), in declaration order. */
const petrel_route_t *petrel__builtin_routes(size_t *n);
/* openapi.c: /openapi.json, /docs, /redoc and their static assets */
int petrel__openapi_route(petrel_req_t *req);
int petrel__docs_route(petrel_req_t *req);
int petrel__redoc_route(petrel_req_t *req);
int petrel__static_route(petrel_req_t *req);

#endif
