/*
 * limits.c - the glue between the server and the process-wide limits: their
 * config keys, applying the config at server start (before any thread
 * exists, so the process pool can fork), and the per-route rate limit and
 * semaphore that run before a handler.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits_int.h"
#include "petrel/log.h"
#include "server_int.h"

static const petrel_cfg_key_t limits_keys[] = {
    {"semaphores.*.limit", PETREL_CFG_INT, "1", "slots of semaphore <name>, process-wide", 1,
     1000000, NULL},
    {"semaphores.*.acquire_timeout_ms", PETREL_CFG_INT, "1000",
     "wait for a slot before answering 503 (0 = do not wait)", 0, 86400000, NULL},
    {"rate_limits.*.rate", PETREL_CFG_FLOAT, "10", "tokens per second of rate limit <name>", 0, 0,
     NULL},
    {"rate_limits.*.burst", PETREL_CFG_FLOAT, "10", "bucket size (tokens) of rate limit <name>", 0,
     0, NULL},
    {"rate_limits.*.key", PETREL_CFG_STR, "global",
     "bucket per: global | client (peer address) | header:NAME", 0, 0, NULL},
    {"rate_limits.*.max_keys", PETREL_CFG_INT, "10000",
     "keyed buckets kept (least recently used evicted first)", 1, 10000000, NULL},
    {"queue.maxsize", PETREL_CFG_INT, "1000", "queued jobs allowed before put waits / 503", 1,
     10000000, NULL},
    {"queue.workers", PETREL_CFG_INT, "2", "consumer fibers, spread over the workers (0 = none)", 0,
     10000, NULL},
    {"queue.retry.base_ms", PETREL_CFG_INT, "100", "first retry delay (doubles per attempt)", 0,
     86400000, NULL},
    {"queue.retry.max_ms", PETREL_CFG_INT, "10000", "longest retry delay", 0, 86400000, NULL},
    {"queue.retry.max_attempts", PETREL_CFG_INT, "5", "attempts before a job is dead-lettered", 1,
     1000, NULL},
    {"queue.max_jobs_kept", PETREL_CFG_INT, "10000",
     "job statuses kept for GET (oldest finished dropped first)", 16, 10000000, NULL},
    {"process_pool.size", PETREL_CFG_INT, "0", "CPU worker processes forked at start (0 = none)", 0,
     1024, NULL},
    {"process_pool.job_timeout_ms", PETREL_CFG_INT, "10000",
     "default job timeout; the child is killed and replaced past it", 1, 86400000, NULL},
    {"process_pool.backlog", PETREL_CFG_INT, "64", "callers that may wait for a busy pool", 0,
     1000000, NULL},
    {"process_pool.max_msg_bytes", PETREL_CFG_INT, "1048576", "largest job input or result", 16,
     1073741824, NULL},
    {"process_pool.nice", PETREL_CFG_INT, "10",
     "niceness added to the CPU workers, so the event loops win the CPU (0 = same priority)", 0, 19,
     NULL},
    {"thread_pool.size", PETREL_CFG_INT, "4", "threads for blocking calls (to_thread)", 1, 1024,
     NULL},
};

void petrel__limits_declare(petrel_config_t *cfg)
{
    int r = petrel_config_declare(cfg, limits_keys, sizeof(limits_keys) / sizeof(limits_keys[0]));
    PETREL_ASSERT(r == 0);
}

struct petrel__route_lim {
    const petrel_route_t *route; /* NULL: empty slot */
    petrel_sem_t *sem;
    petrel_rate_t *rate;
};

static size_t route_hash(const petrel_route_t *r, size_t cap)
{
    uintptr_t x = (uintptr_t)r;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 7) & (cap - 1);
}

/* Resolves every limited route's semaphore and rate limiter once, so that a request to one
 * costs a table probe instead of a name search under the registries' mutexes. */
static void route_lims_build(petrel_app_t *app)
{
    free(app->route_lims);
    app->route_lims = NULL;
    app->route_lims_cap = 0;
    size_t n = 0;
    for (size_t i = 0; i < app->nroutes; i++)
        n += app->routes[i]->max_concurrent != NULL || app->routes[i]->rate_limit != NULL;
    if (n == 0)
        return;
    size_t cap = 8;
    while (cap < n * 2)
        cap *= 2;
    app->route_lims = petrel_xcalloc(cap, sizeof(*app->route_lims));
    app->route_lims_cap = cap;
    for (size_t i = 0; i < app->nroutes; i++) {
        const petrel_route_t *r = app->routes[i];
        if (r->max_concurrent == NULL && r->rate_limit == NULL)
            continue;
        size_t h = route_hash(r, cap);
        while (app->route_lims[h].route != NULL)
            h = (h + 1) & (cap - 1);
        app->route_lims[h].route = r;
        app->route_lims[h].sem = petrel_sem_find(r->max_concurrent);
        app->route_lims[h].rate = petrel_rate_find(r->rate_limit);
    }
}

static const struct petrel__route_lim *route_lims_get(const petrel_app_t *app,
                                                      const petrel_route_t *r)
{
    if (app->route_lims_cap == 0)
        return NULL;
    size_t h = route_hash(r, app->route_lims_cap);
    while (app->route_lims[h].route != NULL) {
        if (app->route_lims[h].route == r)
            return &app->route_lims[h];
        h = (h + 1) & (app->route_lims_cap - 1);
    }
    return NULL;
}

int petrel__limits_start(petrel_app_t *app, int nworkers, char *err, size_t errlen)
{
    const petrel_config_t *cfg = app->cfg;
    petrel__sem_configure(cfg);
    if (petrel__rate_configure(cfg, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < app->nroutes; i++) {
        const petrel_route_t *r = app->routes[i];
        if (r->max_concurrent != NULL && petrel_sem_find(r->max_concurrent) == NULL) {
            snprintf(err, errlen,
                     "route %s %s: max_concurrent \"%s\" names no semaphore (declare "
                     "semaphores.%s.limit)",
                     r->method, r->path, r->max_concurrent, r->max_concurrent);
            return -1;
        }
        if (r->rate_limit != NULL && petrel_rate_find(r->rate_limit) == NULL) {
            snprintf(err, errlen,
                     "route %s %s: rate_limit \"%s\" names no rate limiter (declare "
                     "rate_limits.%s.rate)",
                     r->method, r->path, r->rate_limit, r->rate_limit);
            return -1;
        }
    }
    route_lims_build(app);
    petrel__queue_configure(app, nworkers);
    petrel__threadpool_configure(cfg);
    /* Last: the pool forks, and the children should see every registration. */
    return petrel__procpool_start(cfg, err, errlen);
}

int petrel__route_limits_enter(petrel_req_t *req)
{
    const petrel_route_t *r = req->route;
    if (r->rate_limit == NULL && r->max_concurrent == NULL)
        return 0;
    const struct petrel__route_lim *lim = route_lims_get(req->w->srv->app, r);
    if (r->rate_limit != NULL) {
        petrel_rate_t *rl = lim != NULL ? lim->rate : petrel_rate_find(r->rate_limit);
        if (rl != NULL) {
            const char *key = NULL;
            const char *hdr = petrel__rate_header(rl);
            if (hdr != NULL)
                key = petrel_req_header(req, hdr);
            else if (petrel__rate_keyed_by_client(rl))
                key = petrel_req_peer(req);
            int64_t wait_ms = 0;
            if (petrel_rate_try_acquire(rl, key, &wait_ms) != 0) {
                /* Retry-After is whole seconds; round up so a client that
                 * honours it finds a token. */
                char ra[24];
                snprintf(ra, sizeof(ra), "%lld", (long long)((wait_ms + 999) / 1000));
                petrel_resp_header(req, "Retry-After", ra);
                petrel__req_send_error(req, 429, "Rate limit exceeded");
                return PETREL_ERATELIMIT;
            }
        }
    }
    if (r->max_concurrent != NULL) {
        petrel_sem_t *sem = lim != NULL ? lim->sem : petrel_sem_find(r->max_concurrent);
        if (sem != NULL) {
            int rc = petrel_sem_acquire(sem, PETREL_TIMEOUT_DEFAULT);
            if (rc == PETREL_EOVERLOAD) {
                petrel_resp_header(req, "Retry-After", "1");
                petrel__req_send_error(req, 503, "Too many concurrent requests");
            }
            return rc;
        }
    }
    return 0;
}
