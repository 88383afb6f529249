/*
 * task.c - child tasks of a request: spawning them on fibers of the request's
 * worker, joining them (gather, task groups, wait_for, bounded fan-out) and
 * cancelling them when their request's handler ends.
 *
 * A task has two lives that end separately: its *outcome* (done, err, result)
 * and its *fiber*. A join that times out, a failing sibling in a group or the
 * end of the parent's handler settle the outcome at once (ECANCELED or
 * ETIMEDOUT) and cancel the fiber; the fiber then unwinds on its own, running
 * its defers (which give back connections and slots), and only then drops its
 * reference on the request. That reference is what keeps the request arena -
 * where task handles, messages and the child's own data live - valid for as
 * long as any child runs.
 */
#include "petrel/task.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fiber_int.h"
#include "server_int.h"

/* Per-request task bookkeeping, in the request arena. */
struct petrel__req_tasks {
    size_t live;     /* children whose fiber still runs */
    size_t max_live; /* petrel_task_limit() */
    h2o_linklist_t running;
    bool parent_done; /* the handler returned: no more spawns */
};

/* Someone waiting on a set of tasks (gather, wait_for, map_bounded); on its stack. */
struct joinwait {
    petrel_fiber_t *fiber;
    size_t remaining; /* tasks of the set whose outcome is not settled */
    bool any;         /* wake on every settled task, not only the last */
};

struct petrel_group {
    petrel_req_t *req;
    petrel_task_t *head, *tail;
    size_t n, remaining;
    petrel_task_t *failed;
    petrel_fiber_t *waiter;
};

struct petrel_task {
    petrel_req_t *req;
    petrel_fiber_t *fiber; /* NULL once the fiber finished (or never started) */
    petrel_task_fn fn;
    void *arg;
    bool done; /* outcome settled */
    int err;
    const char *msg;
    json_t *result;
    /* what the body reported, copied to the outcome if nothing settled it first */
    int body_err;
    const char *body_msg;
    h2o_linklist_t link; /* in req tasks->running while the fiber runs */
    struct joinwait *jw;
    petrel_group_t *group;
    petrel_task_t *group_next;
};

static void task_settle(petrel_task_t *t, int err, const char *msg, json_t *result);

/* ------------------------------------------------------------------ */
/* per-request state                                                   */

/* The handler (or its fiber) ends: no child may outlive it. */
static void tasks_on_parent_exit(void *arg)
{
    petrel_req_t *req = arg;
    struct petrel__req_tasks *ts = req->tasks;
    ts->parent_done = true;
    /* Settling never unlinks (the fibers do that when they finish), so this walk is safe
     * even though settling one task may settle its group's siblings. */
    for (h2o_linklist_t *l = ts->running.next; l != &ts->running; l = l->next) {
        petrel_task_t *t = H2O_STRUCT_FROM_MEMBER(petrel_task_t, link, l);
        task_settle(t, PETREL_ECANCELED, "cancelled: the request ended", NULL);
    }
}

static struct petrel__req_tasks *req_tasks(petrel_req_t *req)
{
    if (req->tasks != NULL)
        return req->tasks;
    struct petrel__req_tasks *ts = h2o_mem_alloc_pool(&req->arena, sizeof(*ts));
    memset(ts, 0, sizeof(*ts));
    ts->max_live = PETREL_TASKS_PER_REQUEST;
    h2o_linklist_init_anchor(&ts->running);
    req->tasks = ts;
    /* Registered on the handler's fiber, after the server's own defer, so it runs first:
     * children are cancelled while the request is still fully alive. */
    if (petrel_fiber_current() == req->fiber && req->fiber != NULL)
        petrel_defer(tasks_on_parent_exit, req);
    return ts;
}

void petrel_task_limit(petrel_req_t *req, size_t max_live)
{
    req_tasks(req)->max_live = max_live;
}

/* ------------------------------------------------------------------ */
/* outcomes                                                            */

static void group_on_settled(petrel_group_t *g, petrel_task_t *t)
{
    g->remaining--;
    if (t->err != 0 && g->failed == NULL) {
        g->failed = t;
        /* TaskGroup semantics: the first failure cancels every sibling at once. */
        for (petrel_task_t *s = g->head; s != NULL; s = s->group_next)
            task_settle(s, PETREL_ECANCELED, "cancelled: a sibling task failed", NULL);
    }
    if (g->waiter != NULL && (g->failed != NULL || g->remaining == 0))
        petrel__fiber_wake(g->waiter, 0);
}

/* Fixes the task's outcome (once) and tells whoever waits on it. A task settled while its
 * fiber still runs is cancelled; its later result is dropped. Steals `result`. */
static void task_settle(petrel_task_t *t, int err, const char *msg, json_t *result)
{
    if (t->done) {
        json_decref(result);
        return;
    }
    t->done = true;
    t->err = err;
    t->msg = err != 0 ? (msg != NULL ? msg : petrel_strerror(err)) : NULL;
    t->result = err == 0 ? (result != NULL ? result : json_null()) : NULL;
    if (err != 0)
        json_decref(result);
    if (t->fiber != NULL && err != 0)
        petrel_fiber_cancel(t->fiber);
    struct joinwait *jw = t->jw;
    if (jw != NULL) {
        t->jw = NULL;
        jw->remaining--;
        if (jw->any || jw->remaining == 0)
            petrel__fiber_wake(jw->fiber, 0);
    }
    if (t->group != NULL)
        group_on_settled(t->group, t);
}

/* The request arena is being cleared: every fiber is gone, drop the results. */
static void task_dispose(void *p)
{
    petrel_task_t *t = p;
    json_decref(t->result);
}

static petrel_task_t *task_alloc(petrel_req_t *req, petrel_task_fn fn, void *arg)
{
    petrel_task_t *t = h2o_mem_alloc_shared(&req->arena, sizeof(*t), task_dispose);
    memset(t, 0, sizeof(*t));
    t->req = req;
    t->fn = fn;
    t->arg = arg;
    return t;
}

/* ------------------------------------------------------------------ */
/* the child's fiber                                                   */

/* The child's first defer, so it runs last: after the body's own defers gave back what
 * they held, and just before the fiber returns to the pool. */
static void task_on_exit(void *arg)
{
    petrel_task_t *t = arg;
    petrel_req_t *req = t->req;
    struct petrel__req_tasks *ts = req->tasks;
    t->fiber->user = NULL;
    t->fiber = NULL;
    h2o_linklist_unlink(&t->link);
    ts->live--;
    if (!t->done)
        task_settle(t, PETREL_ECANCELED, "task ended without a result", NULL);
    /* May free the arena (and t) when the handler already finished: last thing. */
    petrel__req_release(req);
}

static void task_main(void *arg)
{
    petrel_task_t *t = arg;
    petrel_defer(task_on_exit, t);
    if (t->done || petrel_cancelled())
        return; /* cancelled before it ever ran */
    t->body_err = 0;
    json_t *res = t->fn(t, t->arg);
    if (t->body_err != 0)
        task_settle(t, t->body_err, t->body_msg, res);
    else
        task_settle(t, 0, NULL, res);
}

static petrel_task_t *task_spawn(petrel_req_t *req, petrel_group_t *g, petrel_task_fn fn, void *arg)
{
    PETREL_ASSERT(petrel_fiber_current() != NULL); /* spawning outside a fiber */
    struct petrel__req_tasks *ts = req_tasks(req);
    petrel_task_t *t = task_alloc(req, fn, arg);
    if (g != NULL) {
        t->group = g;
        if (g->tail != NULL)
            g->tail->group_next = t;
        else
            g->head = t;
        g->tail = t;
        g->n++;
        g->remaining++;
        if (g->failed != NULL) {
            task_settle(t, PETREL_ECANCELED, "cancelled: the task group already failed", NULL);
            return t;
        }
    }
    if (petrel_cancelled() || ts->parent_done || req->fiber == NULL) {
        task_settle(t, PETREL_ECANCELED, "cancelled before start", NULL);
        return t;
    }
    if (ts->live >= ts->max_live) {
        task_settle(t, PETREL_EOVERLOAD, "too many child tasks for one request", NULL);
        return t;
    }
    ts->live++;
    h2o_linklist_insert(&ts->running, &t->link);
    petrel__req_retain(req);
    t->fiber = petrel__fiber_new(petrel__sched_current(), task_main, t);
    t->fiber->user = req; /* log records carry the request id */
    petrel__fiber_schedule(t->fiber);
    return t;
}

petrel_task_t *petrel_spawn(petrel_req_t *req, petrel_task_fn fn, void *arg)
{
    return task_spawn(req, NULL, fn, arg);
}

json_t *petrel_task_fail(petrel_task_t *t, int code, const char *fmt, ...)
{
    t->body_err = code < 0 ? code : PETREL_EINTERNAL;
    if (fmt == NULL) {
        t->body_msg = petrel_strerror(t->body_err);
        return NULL;
    }
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        t->body_msg = petrel_strerror(t->body_err);
        return NULL;
    }
    char *buf = h2o_mem_alloc_pool(&t->req->arena, (size_t)n + 1);
    (void)vsnprintf(buf, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    t->body_msg = buf;
    return NULL;
}

petrel_req_t *petrel_task_req(petrel_task_t *t)
{
    return t->req;
}

bool petrel_task_done(const petrel_task_t *t)
{
    return t->done;
}

int petrel_task_error(const petrel_task_t *t)
{
    return t->done ? t->err : PETREL_EAGAIN;
}

const char *petrel_task_message(const petrel_task_t *t)
{
    return t->done ? t->msg : NULL;
}

json_t *petrel_task_result(const petrel_task_t *t)
{
    return t->done ? t->result : NULL;
}

json_t *petrel_task_json_or_error(const petrel_task_t *t)
{
    if (t->done && t->err == 0)
        return json_incref(t->result);
    int err = t->done ? t->err : PETREL_EAGAIN;
    return json_pack("{s:s,s:s}", "error", t->msg != NULL ? t->msg : petrel_strerror(err), "code",
                     petrel_err_name(err));
}

void petrel_task_cancel(petrel_task_t *t)
{
    task_settle(t, PETREL_ECANCELED, "cancelled", NULL);
}

/* ------------------------------------------------------------------ */
/* joins                                                               */

static int64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms < 0 ? -1 : petrel_now_ms() + timeout_ms;
}

/* Parks until woken, the deadline or cancellation; returns 0, ETIMEDOUT or ECANCELED. */
static int join_park(int64_t deadline, const char *kind)
{
    int64_t left = -1;
    if (deadline >= 0) {
        left = deadline - petrel_now_ms();
        if (left <= 0)
            return PETREL_ETIMEDOUT;
    }
    petrel_fiber_set_await_kind(kind);
    int rc = petrel__fiber_park(left);
    return rc == PETREL_ETIMEDOUT || rc == PETREL_ECANCELED ? rc : 0;
}

static const char *abandon_msg(int rc)
{
    return rc == PETREL_ETIMEDOUT ? "cancelled: the join timed out"
                                  : "cancelled: the waiting task was cancelled";
}

int petrel_gather(petrel_task_t *const *tasks, size_t n, int64_t timeout_ms)
{
    petrel_fiber_t *self = petrel_fiber_current();
    PETREL_ASSERT(self != NULL); /* awaiting outside a fiber */
    struct joinwait jw = {.fiber = self};
    for (size_t i = 0; i < n; i++) {
        if (!tasks[i]->done) {
            tasks[i]->jw = &jw;
            jw.remaining++;
        }
    }
    int64_t deadline = deadline_of(timeout_ms);
    int rc = 0;
    while (jw.remaining > 0 && rc == 0)
        rc = join_park(deadline, "gather");
    for (size_t i = 0; i < n; i++) {
        if (tasks[i]->jw == &jw) {
            tasks[i]->jw = NULL;
            task_settle(tasks[i], rc, abandon_msg(rc), NULL);
        }
    }
    return rc;
}

petrel_group_t *petrel_group_new(petrel_req_t *req)
{
    petrel_group_t *g = h2o_mem_alloc_pool(&req->arena, sizeof(*g));
    memset(g, 0, sizeof(*g));
    g->req = req;
    return g;
}

petrel_task_t *petrel_group_spawn(petrel_group_t *g, petrel_task_fn fn, void *arg)
{
    return task_spawn(g->req, g, fn, arg);
}

int petrel_group_wait(petrel_group_t *g, int64_t timeout_ms)
{
    petrel_fiber_t *self = petrel_fiber_current();
    PETREL_ASSERT(self != NULL);
    int64_t deadline = deadline_of(timeout_ms);
    int rc = 0;
    g->waiter = self;
    while (g->failed == NULL && g->remaining > 0 && rc == 0)
        rc = join_park(deadline, "task group");
    g->waiter = NULL;
    if (g->failed != NULL)
        return g->failed->err;
    if (rc != 0) {
        for (petrel_task_t *s = g->head; s != NULL; s = s->group_next)
            task_settle(s, rc, abandon_msg(rc), NULL);
        return rc;
    }
    return 0;
}

petrel_task_t *petrel_group_failed(const petrel_group_t *g)
{
    return g->failed;
}

petrel_task_t *petrel_group_task(const petrel_group_t *g, size_t i)
{
    petrel_task_t *t = g->head;
    while (t != NULL && i-- > 0)
        t = t->group_next;
    return t;
}

size_t petrel_group_size(const petrel_group_t *g)
{
    return g->n;
}

int petrel_wait_for(petrel_req_t *req, petrel_task_fn fn, void *arg, int64_t timeout_ms,
                    json_t **out)
{
    petrel_task_t *t = petrel_spawn(req, fn, arg);
    int rc = petrel_gather(&t, 1, timeout_ms);
    if (rc != 0)
        return rc;
    if (t->err != 0)
        return t->err;
    if (out != NULL)
        *out = json_incref(t->result);
    return 0;
}

int petrel_map_bounded(petrel_req_t *req, size_t n, size_t k, petrel_task_fn fn, void *const *args,
                       petrel_task_t **out, int64_t timeout_ms)
{
    if (k == 0)
        return PETREL_EINVAL;
    petrel_fiber_t *self = petrel_fiber_current();
    PETREL_ASSERT(self != NULL);
    struct joinwait jw = {.fiber = self, .any = true};
    int64_t deadline = deadline_of(timeout_ms);
    size_t next = 0;
    int rc = 0;
    while (rc == 0 && (next < n || jw.remaining > 0)) {
        /* jw.remaining counts the children in flight: top up to k. */
        while (next < n && jw.remaining < k) {
            petrel_task_t *t = petrel_spawn(req, fn, args[next]);
            out[next++] = t;
            if (!t->done) {
                t->jw = &jw;
                jw.remaining++;
            }
        }
        if (jw.remaining > 0)
            rc = join_park(deadline, "map_bounded");
    }
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < next; i++) {
        if (out[i]->jw == &jw) {
            out[i]->jw = NULL;
            task_settle(out[i], rc, abandon_msg(rc), NULL);
        }
    }
    for (size_t i = next; i < n; i++) {
        out[i] = task_alloc(req, fn, args[i]);
        task_settle(out[i], rc, "not started: the fan-out ended", NULL);
    }
    return rc;
}
