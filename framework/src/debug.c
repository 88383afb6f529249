/*
 * debug.c - the live task monitor (aiomonitor's ps / where / cancel), served
 * only when `debug: true`:
 *   GET  /debug/tasks              every in-flight request on every worker
 *   GET  /debug/tasks/{id}         one of them
 *   POST /debug/tasks/{id}/cancel  answer its client 503 and cancel its fiber
 *
 * A request belongs to its worker's thread, so the monitor never reads another
 * worker's requests itself: it posts a callback to each worker's scheduler
 * (petrel__sched_post), which snapshots or cancels there and posts the result
 * back to wake the asking fiber. Task ids are "<worker>-<fiber id>".
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"
#include "petrel/fiber.h"
#include "petrel/req.h"

/* One monitor call in flight across workers; refcounted because the asking fiber may
 * give up (timeout, cancellation) before every worker answered. */
struct dbg_call {
    pthread_mutex_t mu;
    int refs;
    int pending;
    json_t *items; /* snapshots appended by the workers */
    uint64_t want_fiber;
    int want_worker; /* -1: every worker */
    bool cancel;
    int cancelled; /* how many requests were cancelled */
    petrel__sched_t *origin;
    petrel_fiber_t *waiter;     /* NULL once the asker stopped waiting */
    const petrel_fiber_t *self; /* the asking fiber, left out of listings */
};

static void dbg_unref(struct dbg_call *c)
{
    pthread_mutex_lock(&c->mu);
    int r = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (r > 0)
        return;
    json_decref(c->items);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static json_t *dbg_snapshot(struct worker *w, petrel_req_t *req, int64_t now)
{
    petrel_fiber_t *f = req->fiber;
    int64_t run = (f->started_ns - req->start_ns) + petrel__fiber_run_ns(f, now);
    int64_t wait = 0;
    json_t *waits = json_object();
    for (size_t i = 0; i < f->nwaits; i++) {
        json_object_set_new(waits, f->waits[i].kind, json_real((double)f->waits[i].ns / 1e6));
        wait += f->waits[i].ns;
    }
    const char *state = f->state == PETREL__FIBER_RUNNING ? "running"
                        : f->state == PETREL__FIBER_READY ? "ready"
                                                          : "waiting";
    if (f->state == PETREL__FIBER_PARKED)
        wait += now - f->parked_ns;
    json_t *o = json_pack(
        "{s:s,s:i,s:s,s:s,s:s,s:s,s:f,s:f,s:f,s:o,s:b}", "id",
        petrel_req_sprintf(req, "%d-%" PRIu64, w->index, f->id), "worker", w->index, "method",
        req->route->method, "route", req->route->path, "request_id", req->reqid, "state", state,
        "age_ms", (double)(now - req->start_ns) / 1e6, "run_ms", (double)run / 1e6, "wait_ms",
        (double)wait / 1e6, "waits_ms", waits, "cancelled", f->cancelled);
    if (f->state == PETREL__FIBER_PARKED) {
        json_t *aw = json_pack("{s:s,s:f}", "kind", f->await_kind ? f->await_kind : "unknown",
                               "for_ms", (double)(now - f->parked_ns) / 1e6);
        if (f->await_file != NULL)
            json_object_set_new(aw, "site", json_sprintf("%s:%d", f->await_file, f->await_line));
        json_object_set_new(o, "await", aw);
    }
    return o;
}

static void dbg_wake(void *arg)
{
    struct dbg_call *c = arg;
    pthread_mutex_lock(&c->mu);
    petrel_fiber_t *f = c->waiter;
    pthread_mutex_unlock(&c->mu);
    if (f != NULL)
        petrel__fiber_wake(f, 0);
    dbg_unref(c);
}

/* Runs on each worker's own thread. */
struct dbg_visit {
    struct dbg_call *c;
    struct worker *w;
};

static void dbg_on_worker(void *arg)
{
    struct dbg_visit *v = arg;
    struct dbg_call *c = v->c;
    struct worker *w = v->w;
    free(v);
    int64_t now = petrel_now_ns();
    json_t *found = json_array();
    int cancelled = 0;
    for (h2o_linklist_t *n = w->reqs.next; n != &w->reqs; n = n->next) {
        petrel_req_t *req = H2O_STRUCT_FROM_MEMBER(petrel_req_t, link, n);
        if (req->fiber == NULL || (c->want_fiber != 0 && req->fiber->id != c->want_fiber))
            continue;
        if (req->fiber == c->self)
            continue; /* the monitor's own request */
        if (c->cancel) {
            /* As a deadline does: answer first, then cancel; the handler's awaits fail and
             * its defers give back what it holds. */
            if (req->h2o != NULL && !req->responded)
                petrel__req_send_error(req, 503, "Cancelled by the task monitor");
            petrel_fiber_cancel(req->fiber);
            cancelled++;
        }
        json_array_append_new(found, dbg_snapshot(w, req, now));
    }
    pthread_mutex_lock(&c->mu);
    json_array_extend(c->items, found);
    c->cancelled += cancelled;
    bool last = --c->pending == 0;
    pthread_mutex_unlock(&c->mu);
    json_decref(found);
    if (last)
        petrel__sched_post(c->origin, dbg_wake, c); /* passes this visit's reference on */
    else
        dbg_unref(c);
}

/* Asks the chosen workers and waits (1 s at most) for their snapshots. Owned result. */
static struct dbg_call *dbg_ask(petrel_req_t *req, int worker, uint64_t fiber, bool cancel)
{
    petrel_server_t *srv = req->w->srv;
    struct dbg_call *c = petrel_xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    c->items = json_array();
    c->want_fiber = fiber;
    c->want_worker = worker;
    c->cancel = cancel;
    c->origin = req->w->sched;
    c->waiter = petrel_fiber_current();
    c->self = c->waiter;
    int first = worker >= 0 ? worker : 0, last = worker >= 0 ? worker : srv->nworkers - 1;
    c->pending = last - first + 1;
    c->refs = 1 + c->pending;
    for (int i = first; i <= last; i++) {
        struct dbg_visit *v = petrel_xmalloc(sizeof(*v));
        v->c = c;
        v->w = &srv->workers[i];
        petrel__sched_post(srv->workers[i].sched, dbg_on_worker, v);
    }
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool done = c->pending == 0;
        pthread_mutex_unlock(&c->mu);
        if (done)
            break;
        petrel_fiber_set_await_kind("debug");
        if (petrel__fiber_park(1000) != 0)
            break;
    }
    pthread_mutex_lock(&c->mu);
    c->waiter = NULL;
    pthread_mutex_unlock(&c->mu);
    return c;
}

static int dbg_parse_id(const char *id, int nworkers, int *worker, uint64_t *fiber)
{
    char *end;
    long w = strtol(id, &end, 10);
    if (end == id || *end != '-' || w < 0 || w >= nworkers)
        return PETREL_ENOTFOUND;
    const char *p = end + 1;
    unsigned long long f = strtoull(p, &end, 10);
    if (end == p || *end != '\0' || f == 0)
        return PETREL_ENOTFOUND;
    *worker = (int)w;
    *fiber = (uint64_t)f;
    return 0;
}

static int dbg_reply(petrel_req_t *req, struct dbg_call *c, bool one)
{
    pthread_mutex_lock(&c->mu);
    json_t *items = json_deep_copy(c->items);
    int cancelled = c->cancelled;
    pthread_mutex_unlock(&c->mu);
    dbg_unref(c);
    if (!one)
        return petrel_json(
            req, 200, json_pack("{s:i,s:o}", "count", (int)json_array_size(items), "tasks", items));
    if (json_array_size(items) == 0) {
        json_decref(items);
        return petrel_error(req, 404, "Task not found");
    }
    json_t *t = json_incref(json_array_get(items, 0));
    json_decref(items);
    if (cancelled > 0)
        json_object_set_new(t, "cancelled", json_true());
    return petrel_json(req, 200, t);
}

static int debug_tasks(petrel_req_t *req)
{
    return dbg_reply(req, dbg_ask(req, -1, 0, false), false);
}

static int debug_task(petrel_req_t *req)
{
    int w;
    uint64_t f;
    if (dbg_parse_id(petrel_param_str(req, "task_id", ""), req->w->srv->nworkers, &w, &f) != 0)
        return petrel_error(req, 404, "Task not found");
    return dbg_reply(req, dbg_ask(req, w, f, false), true);
}

static int debug_task_cancel(petrel_req_t *req)
{
    int w;
    uint64_t f;
    if (dbg_parse_id(petrel_param_str(req, "task_id", ""), req->w->srv->nworkers, &w, &f) != 0)
        return petrel_error(req, 404, "Task not found");
    return dbg_reply(req, dbg_ask(req, w, f, true), true);
}

static const petrel_route_t debug_routes[] = {
    PETREL_ROUTE(GET, "/debug/tasks", debug_tasks, .include_in_schema_false = true,
                 .timeout_ms = 5000),
    PETREL_ROUTE(GET, "/debug/tasks/{task_id}", debug_task, .include_in_schema_false = true,
                 .timeout_ms = 5000),
    PETREL_ROUTE(POST, "/debug/tasks/{task_id}/cancel", debug_task_cancel,
                 .include_in_schema_false = true, .timeout_ms = 5000),
};

const petrel_route_t *petrel__debug_routes(size_t *n)
{
    *n = sizeof(debug_routes) / sizeof(debug_routes[0]);
    return debug_routes;
}
