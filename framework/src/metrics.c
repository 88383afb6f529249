/*
 * metrics.c - the metrics registry: per-worker request counters and
 * histograms (indexed by route id), loop stall and fiber gauges, the stall
 * detector's log line, "where the time goes" per request (Server-Timing and
 * the access record's run/wait fields), app collectors, and GET /metrics in
 * the Prometheus text format 0.0.4.
 *
 * The hot path (one response) costs a pointer-hash lookup for the route id
 * and a handful of relaxed loads/stores into arrays that only the worker
 * writes; no lock and no allocation. A scrape sums every worker's arrays.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log_int.h"
#include "metrics_int.h"
#include "petrel/db.h"
#include "petrel/http.h"
#include "petrel/limits.h"
#include "petrel/log.h"
#include "petrel/queue.h"

/* ------------------------------------------------------------------ */
/* counters and histograms                                             */

#define NB 13
static const int64_t bucket_ns[NB] = {1000000,    2500000,    5000000,    10000000,  25000000,
                                      50000000,   100000000,  250000000,  500000000, 1000000000,
                                      2500000000, 5000000000, 10000000000};
static const char *const bucket_le[NB] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                          "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                          "2.5",   "5",      "10"};

struct hist {
    uint64_t b[NB + 1]; /* per bucket, not cumulative; b[NB] is above the last bound */
    uint64_t sum_ns;
};

/* Only the owning worker writes; relaxed atomics keep a concurrent scrape defined
 * behaviour while compiling to plain loads and stores. */
static inline void cnt_add(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline uint64_t cnt_get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void hist_observe(struct hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    size_t i = 0;
    while (i < NB && ns > bucket_ns[i])
        i++;
    cnt_add(&h->b[i], 1);
    cnt_add(&h->sum_ns, (uint64_t)ns);
}

static void hist_merge(struct hist *into, const struct hist *h)
{
    for (size_t i = 0; i <= NB; i++)
        into->b[i] += cnt_get(&h->b[i]);
    into->sum_ns += cnt_get(&h->sum_ns);
}

/* Status codes with their own counter slot; others count under their class ("5xx"). */
static const int status_slots[] = {200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400,
                                   401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 415,
                                   416, 422, 429, 431, 499, 500, 501, 502, 503, 504};
#define NEXACT (sizeof(status_slots) / sizeof(status_slots[0]))
#define NSLOTS (NEXACT + 5) /* + 1xx..5xx */
static uint8_t status_slot_of[600];
static pthread_once_t status_once = PTHREAD_ONCE_INIT;

static void status_table_init(void)
{
    for (int s = 0; s < 600; s++)
        status_slot_of[s] = (uint8_t)(NEXACT + (s >= 100 ? s / 100 - 1 : 0));
    for (size_t i = 0; i < NEXACT; i++)
        status_slot_of[status_slots[i]] = (uint8_t)i;
}

static size_t status_slot(int status)
{
    if (status < 100 || status >= 600)
        return NEXACT + 4;
    return status_slot_of[status];
}

#define NWAITK 16

/* Methods an unmatched request (404, 405, 431) is counted under; the rest are "OTHER". */
static const char *const unm_methods[] = {"GET",    "HEAD",    "POST",  "PUT",
                                          "DELETE", "OPTIONS", "PATCH", "OTHER"};
#define NUNM (sizeof(unm_methods) / sizeof(unm_methods[0]))

struct petrel__wmetrics {
    uint64_t *req;               /* [route][2: declared method, HEAD][NSLOTS] */
    uint64_t unm[NUNM * NSLOTS]; /* unmatched requests: [method][NSLOTS] */
    struct hist *dur;            /* [route] */
    struct hist *run;            /* [route] */
    struct hist stall;           /* loop iterations' busy time */
    struct {
        const char *kind; /* a string literal; set once before nwaitk covers it */
        struct hist h;
    } waitk[NWAITK];
    size_t nwaitk;
    uint64_t slow;
    uint64_t fibers, pooled;
    uint64_t scrape_dummy;
};

struct petrel__metrics {
    petrel_server_t *srv;
    bool enabled, server_timing, access;
    size_t nroutes; /* route ids 0..nroutes-1; id nroutes is "<unmatched>" */
    const petrel_route_t **routes;
    size_t hcap; /* pointer hash: route -> id */
    const petrel_route_t **hkeys;
    uint32_t *hvals;
    petrel__wmetrics_t *w;
    int nworkers;
};

static __thread petrel__wmetrics_t *tl_wm;

static size_t ptr_hash(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 32) & (cap - 1);
}

static void routes_add(petrel__metrics_t *m, const petrel_route_t *r, size_t *cap)
{
    if (m->nroutes == *cap) {
        *cap = *cap ? *cap * 2 : 32;
        m->routes = petrel_xrealloc(m->routes, *cap * sizeof(*m->routes));
    }
    m->routes[m->nroutes++] = r;
}

petrel__metrics_t *petrel__metrics_new(petrel_server_t *srv)
{
    pthread_once(&status_once, status_table_init);
    petrel__metrics_t *m = petrel_xcalloc(1, sizeof(*m));
    petrel_app_t *app = srv->app;
    m->srv = srv;
    m->enabled = petrel_config_bool(app->cfg, "server.metrics");
    m->server_timing = petrel_config_bool(app->cfg, "server.server_timing");
    m->access = petrel_config_bool(app->cfg, "log.access");
    size_t cap = 0, nb = 0;
    for (size_t i = 0; i < app->nroutes; i++)
        routes_add(m, app->routes[i], &cap);
    const petrel_route_t *b = petrel__builtin_routes(&nb);
    for (size_t i = 0; i < nb; i++)
        routes_add(m, &b[i], &cap);
    b = petrel__debug_routes(&nb);
    for (size_t i = 0; i < nb; i++)
        routes_add(m, &b[i], &cap);
    m->hcap = 64;
    while (m->hcap < m->nroutes * 2)
        m->hcap *= 2;
    m->hkeys = petrel_xcalloc(m->hcap, sizeof(*m->hkeys));
    m->hvals = petrel_xcalloc(m->hcap, sizeof(*m->hvals));
    for (size_t i = 0; i < m->nroutes; i++) {
        size_t h = ptr_hash(m->routes[i], m->hcap);
        while (m->hkeys[h] != NULL)
            h = (h + 1) & (m->hcap - 1);
        m->hkeys[h] = m->routes[i];
        m->hvals[h] = (uint32_t)i;
    }
    m->nworkers = srv->nworkers;
    m->w = petrel_xcalloc((size_t)m->nworkers, sizeof(*m->w));
    size_t nr = m->nroutes + 1;
    for (int i = 0; i < m->nworkers; i++) {
        m->w[i].req = petrel_xcalloc(nr * 2 * NSLOTS, sizeof(uint64_t));
        m->w[i].dur = petrel_xcalloc(nr, sizeof(struct hist));
        m->w[i].run = petrel_xcalloc(nr, sizeof(struct hist));
    }
    return m;
}

void petrel__metrics_free(petrel__metrics_t *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < m->nworkers; i++) {
        free(m->w[i].req);
        free(m->w[i].dur);
        free(m->w[i].run);
    }
    free(m->w);
    free(m->routes);
    free(m->hkeys);
    free(m->hvals);
    free(m);
}

petrel__wmetrics_t *petrel__metrics_worker(petrel__metrics_t *m, int i)
{
    return &m->w[i];
}

bool petrel__metrics_enabled(const petrel__metrics_t *m)
{
    return m->enabled;
}

static size_t route_id(const petrel__metrics_t *m, const petrel_route_t *r)
{
    if (r == NULL)
        return m->nroutes;
    size_t h = ptr_hash(r, m->hcap);
    while (m->hkeys[h] != NULL) {
        if (m->hkeys[h] == r)
            return m->hvals[h];
        h = (h + 1) & (m->hcap - 1);
    }
    return m->nroutes;
}

static void count_request(petrel__metrics_t *m, petrel__wmetrics_t *wm, size_t id, bool head,
                          int status, int64_t dur_ns)
{
    cnt_add(&wm->req[(id * 2 + (head ? 1 : 0)) * NSLOTS + status_slot(status)], 1);
    hist_observe(&wm->dur[id], dur_ns);
    (void)m;
}

static void observe_wait(petrel__wmetrics_t *wm, const char *kind, int64_t ns)
{
    size_t n = wm->nwaitk;
    for (size_t i = 0; i < n; i++) {
        if (wm->waitk[i].kind == kind || strcmp(wm->waitk[i].kind, kind) == 0) {
            hist_observe(&wm->waitk[i].h, ns);
            return;
        }
    }
    if (n == NWAITK)
        return;
    wm->waitk[n].kind = kind;
    hist_observe(&wm->waitk[n].h, ns);
    /* Publish the new slot after its kind is written, for a concurrent scrape. */
    __atomic_store_n(&wm->nwaitk, n + 1, __ATOMIC_RELEASE);
}

void petrel__metrics_attach(struct worker *w)
{
    petrel_server_t *srv = w->srv;
    tl_wm = &srv->metrics->w[w->index];
    if (srv->conf.slow_callback_ms > 0)
        petrel__sched_set_slow(w->sched, srv->conf.slow_callback_ms * 1000000,
                               petrel__metrics_slow_cb);
}

void petrel__metrics_loop(struct worker *w)
{
    petrel__wmetrics_t *wm = tl_wm;
    int64_t busy = petrel__sched_take_busy_ns(w->sched);
    if (busy > 0)
        hist_observe(&wm->stall, busy);
    __atomic_store_n(&wm->fibers, (uint64_t)petrel__sched_live(w->sched), __ATOMIC_RELAXED);
    __atomic_store_n(&wm->pooled, (uint64_t)petrel__sched_pooled(w->sched), __ATOMIC_RELAXED);
}

void petrel__metrics_inline(struct worker *w, const petrel_route_t *route, const char *method,
                            size_t mlen, int status, int64_t start_ns)
{
    petrel__metrics_t *m = w->srv->metrics;
    if (m == NULL || !m->enabled)
        return;
    petrel__wmetrics_t *wm = &m->w[w->index];
    size_t id = route_id(m, route);
    if (id == m->nroutes) {
        /* No route, so no declared method: count under the request's own. */
        size_t k = 0;
        while (k < NUNM - 1 &&
               !(strlen(unm_methods[k]) == mlen && memcmp(unm_methods[k], method, mlen) == 0))
            k++;
        cnt_add(&wm->unm[k * NSLOTS + status_slot(status)], 1);
        hist_observe(&wm->dur[id], petrel_now_ns() - start_ns);
        return;
    }
    bool head = mlen == 4 && memcmp(method, "HEAD", 4) == 0;
    count_request(m, wm, id, head, status, petrel_now_ns() - start_ns);
}

/* ------------------------------------------------------------------ */
/* where the time goes: one request                                    */

struct req_timing {
    int64_t total, run;
    size_t n;
    const char *kind[PETREL__WAIT_KINDS + 1];
    int64_t ns[PETREL__WAIT_KINDS + 1];
};

/* Every instant since the request arrived is either running (before its fiber started, or
 * in a run slice) or waiting (between slices, by the kind of the await), measured from the
 * same clock reads, so run + waits == total. */
static void req_timing(petrel_req_t *req, int64_t now, struct req_timing *t)
{
    petrel_fiber_t *f = req->fiber;
    t->total = now - req->start_ns;
    t->n = 0;
    if (f == NULL) {
        t->run = t->total;
        return;
    }
    t->run = (f->started_ns - req->start_ns) + petrel__fiber_run_ns(f, now);
    for (size_t i = 0; i < f->nwaits; i++) {
        t->kind[t->n] = f->waits[i].kind;
        t->ns[t->n++] = f->waits[i].ns;
    }
    if (f->state != PETREL__FIBER_RUNNING) {
        /* Answered while the fiber waits (a deadline's 504): the wait so far counts. */
        const char *k = f->await_kind != NULL ? f->await_kind : "queued";
        size_t i = 0;
        while (i < t->n && strcmp(t->kind[i], k) != 0)
            i++;
        if (i == t->n) {
            t->kind[t->n] = k;
            t->ns[t->n++] = 0;
        }
        t->ns[i] += now - f->parked_ns;
    }
}

static void server_timing_header(petrel_req_t *req, const struct req_timing *t)
{
    char buf[512];
    size_t o = 0;
    o += (size_t)snprintf(buf + o, sizeof(buf) - o, "run;dur=%.3f", (double)t->run / 1e6);
    for (size_t i = 0; i < t->n && o < sizeof(buf); i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, ", %s;dur=%.3f", t->kind[i],
                              (double)t->ns[i] / 1e6);
    if (o < sizeof(buf))
        snprintf(buf + o, sizeof(buf) - o, ", total;dur=%.3f", (double)t->total / 1e6);
    (void)petrel_resp_header(req, "Server-Timing", buf);
}

bool petrel__metrics_response(petrel_req_t *req, int status, int64_t now, petrel__log_timing_t *out)
{
    petrel__metrics_t *m = req->w->srv->metrics;
    if (m == NULL)
        return false;
    struct req_timing t;
    req_timing(req, now, &t);
    if (m->enabled) {
        petrel__wmetrics_t *wm = &m->w[req->w->index];
        size_t id = route_id(m, req->route);
        bool head = req->mlen == 4 && memcmp(req->method, "HEAD", 4) == 0;
        count_request(m, wm, id, head, status, t.total);
        hist_observe(&wm->run[id], t.run);
        for (size_t i = 0; i < t.n; i++)
            observe_wait(wm, t.kind[i], t.ns[i]);
    }
    if (m->server_timing)
        server_timing_header(req, &t);
    if (!m->access)
        return false;
    out->run_ns = t.run;
    out->wait_ns = 0;
    out->n = 0;
    for (size_t i = 0; i < t.n && out->n < sizeof(out->kind) / sizeof(out->kind[0]); i++) {
        out->kind[out->n] = t.kind[i];
        out->ns[out->n++] = t.ns[i];
        out->wait_ns += t.ns[i];
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* stall detector                                                      */

void petrel__metrics_slow_cb(petrel_fiber_t *f, int64_t slice_ns)
{
    if (tl_wm != NULL)
        cnt_add(&tl_wm->slow, 1);
    petrel_req_t *req = f->user;
    json_t *fields = json_pack("{s:f,s:f}", "duration_ms", (double)slice_ns / 1e6, "threshold_ms",
                               req != NULL ? (double)req->w->srv->conf.slow_callback_ms : 0.0);
    if (req != NULL) {
        json_object_set_new(fields, "route", json_string(req->route->path));
        json_object_set_new(fields, "method", json_string(req->route->method));
        json_object_set_new(fields, "worker", json_integer(req->w->index));
    }
    if (f->await_file != NULL)
        json_object_set_new(fields, "next_await",
                            json_sprintf("%s:%d", f->await_file, f->await_line));
    /* The record carries the request id itself: the fiber is still the current one. */
    petrel_logj(PETREL_LOG_WARN, "slow callback: a fiber ran without awaiting", fields);
}

/* ------------------------------------------------------------------ */
/* the text format writer                                              */

struct fam {
    char *name, *help;
    const char *type;
    char *buf;
    size_t len, cap;
};

struct petrel_metrics_writer {
    struct fam *f;
    size_t n, cap;
};

static bool name_ok(const char *s)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return false;
    return true;
}

static void fam_put(struct fam *f, const char *s, size_t len)
{
    if (f->len + len + 1 > f->cap) {
        f->cap = (f->len + len + 1) * 2;
        f->buf = petrel_xrealloc(f->buf, f->cap);
    }
    memcpy(f->buf + f->len, s, len);
    f->len += len;
    f->buf[f->len] = '\0';
}

static void fam_puts(struct fam *f, const char *s)
{
    fam_put(f, s, strlen(s));
}

static struct fam *wr_family(petrel_metrics_writer_t *w, const char *name, const char *type,
                             const char *help)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->f[i].name, name) == 0)
            return &w->f[i];
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 32;
        w->f = petrel_xrealloc(w->f, w->cap * sizeof(*w->f));
    }
    struct fam *f = &w->f[w->n++];
    memset(f, 0, sizeof(*f));
    f->name = petrel_xstrdup(name);
    f->help = petrel_xstrdup(help != NULL ? help : "");
    f->type = type;
    return f;
}

static void put_label_value(struct fam *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            fam_puts(f, "\\\\");
        else if (*v == '"')
            fam_puts(f, "\\\"");
        else if (*v == '\n')
            fam_puts(f, "\\n");
        else
            fam_put(f, v, 1);
    }
}

static void put_value(struct fam *f, double v)
{
    char num[64];
    if (isnan(v))
        snprintf(num, sizeof(num), "NaN");
    else if (isinf(v))
        snprintf(num, sizeof(num), v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(num, sizeof(num), "%.0f", v);
    else
        snprintf(num, sizeof(num), "%.17g", v);
    fam_puts(f, num);
}

/* One sample line: name+suffix{labels[,le="..."]} value */
static void wr_sample(struct fam *f, const char *suffix, const char *const *labels, const char *le,
                      double v)
{
    fam_puts(f, f->name);
    fam_puts(f, suffix);
    bool any = false;
    for (size_t i = 0; labels != NULL && labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
        if (!name_ok(labels[i]))
            continue;
        fam_puts(f, any ? "," : "{");
        any = true;
        fam_puts(f, labels[i]);
        fam_puts(f, "=\"");
        put_label_value(f, labels[i + 1]);
        fam_puts(f, "\"");
    }
    if (le != NULL) {
        fam_puts(f, any ? ",le=\"" : "{le=\"");
        fam_puts(f, le);
        fam_puts(f, "\"");
        any = true;
    }
    fam_puts(f, any ? "} " : " ");
    put_value(f, v);
    fam_puts(f, "\n");
}

void petrel_metrics_gauge(petrel_metrics_writer_t *w, const char *name, const char *help,
                          const char *const *labels, double value)
{
    if (name_ok(name))
        wr_sample(wr_family(w, name, "gauge", help), "", labels, NULL, value);
}

void petrel_metrics_counter(petrel_metrics_writer_t *w, const char *name, const char *help,
                            const char *const *labels, double value)
{
    if (name_ok(name))
        wr_sample(wr_family(w, name, "counter", help), "", labels, NULL, value);
}

static void wr_hist(petrel_metrics_writer_t *w, const char *name, const char *help,
                    const char *const *labels, const struct hist *h)
{
    struct fam *f = wr_family(w, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < NB; i++) {
        cum += h->b[i];
        wr_sample(f, "_bucket", labels, bucket_le[i], (double)cum);
    }
    cum += h->b[NB];
    wr_sample(f, "_bucket", labels, "+Inf", (double)cum);
    wr_sample(f, "_sum", labels, NULL, (double)h->sum_ns / 1e9);
    wr_sample(f, "_count", labels, NULL, (double)cum);
}

static char *wr_finish(petrel_metrics_writer_t *w, size_t *len)
{
    struct fam out = {0};
    for (size_t i = 0; i < w->n; i++) {
        struct fam *f = &w->f[i];
        fam_puts(&out, "# HELP ");
        fam_puts(&out, f->name);
        fam_puts(&out, " ");
        for (const char *p = f->help; *p; p++) {
            if (*p == '\\')
                fam_puts(&out, "\\\\");
            else if (*p == '\n')
                fam_puts(&out, "\\n");
            else
                fam_put(&out, p, 1);
        }
        fam_puts(&out, "\n# TYPE ");
        fam_puts(&out, f->name);
        fam_puts(&out, " ");
        fam_puts(&out, f->type);
        fam_puts(&out, "\n");
        if (f->len > 0)
            fam_put(&out, f->buf, f->len);
        free(f->name);
        free(f->help);
        free(f->buf);
    }
    free(w->f);
    *len = out.len;
    return out.buf;
}

/* ------------------------------------------------------------------ */
/* collectors and the scrape                                           */

void petrel_metrics_add_collector(petrel_app_t *app, petrel_metrics_collect_cb cb, void *arg)
{
    app->collectors =
        petrel_xrealloc(app->collectors, (app->ncollectors + 1) * sizeof(*app->collectors));
    app->collectors[app->ncollectors].cb = cb;
    app->collectors[app->ncollectors].arg = arg;
    app->ncollectors++;
}

static const char *status_label(size_t slot, char *buf, size_t len)
{
    if (slot < NEXACT)
        snprintf(buf, len, "%d", status_slots[slot]);
    else
        snprintf(buf, len, "%zuxx", slot - NEXACT + 1);
    return buf;
}

static void scrape_requests(petrel__metrics_t *m, petrel_metrics_writer_t *w)
{
    size_t nr = m->nroutes + 1;
    for (size_t id = 0; id < nr; id++) {
        const char *route = id < m->nroutes ? m->routes[id]->path : "<unmatched>";
        int nm = id < m->nroutes ? 2 : (int)NUNM;
        for (int hm = 0; hm < nm; hm++) {
            const char *method = id == m->nroutes ? unm_methods[hm]
                                 : hm             ? "HEAD"
                                                  : m->routes[id]->method;
            for (size_t s = 0; s < NSLOTS; s++) {
                uint64_t n = 0;
                for (int k = 0; k < m->nworkers; k++)
                    n += cnt_get(id == m->nroutes
                                     ? &m->w[k].unm[(size_t)hm * NSLOTS + s]
                                     : &m->w[k].req[(id * 2 + (size_t)hm) * NSLOTS + s]);
                if (n == 0)
                    continue;
                char st[16];
                const char *labels[] = {"route", route,    "method",
                                        method,  "status", status_label(s, st, sizeof(st)),
                                        NULL};
                petrel_metrics_counter(w, "petrel_http_requests_total",
                                       "HTTP requests answered, by route template, method and "
                                       "status",
                                       labels, (double)n);
            }
        }
    }
    for (int which = 0; which < 2; which++) {
        for (size_t id = 0; id < nr; id++) {
            struct hist h = {0};
            for (int k = 0; k < m->nworkers; k++)
                hist_merge(&h, which == 0 ? &m->w[k].dur[id] : &m->w[k].run[id]);
            uint64_t total = 0;
            for (size_t i = 0; i <= NB; i++)
                total += h.b[i];
            if (total == 0)
                continue;
            /* By route and method: routes that share a template (GET/PUT/DELETE
             * /items/{id}) must not collide in one series. */
            const char *labels[] = {"route", id < m->nroutes ? m->routes[id]->path : "<unmatched>",
                                    "method", id < m->nroutes ? m->routes[id]->method : "ANY",
                                    NULL};
            if (which == 0)
                wr_hist(w, "petrel_http_request_duration_seconds",
                        "Time from request arrival to response start, by route and method", labels,
                        &h);
            else
                wr_hist(w, "petrel_http_request_run_seconds",
                        "Time a request spent running on its fiber (not awaiting), by route and "
                        "method",
                        labels, &h);
        }
    }
    /* Wait time by await kind, merged across workers by name. */
    const char *kinds[NWAITK * 4];
    size_t nk = 0;
    for (int k = 0; k < m->nworkers; k++) {
        size_t n = __atomic_load_n(&m->w[k].nwaitk, __ATOMIC_ACQUIRE);
        for (size_t i = 0; i < n; i++) {
            size_t j = 0;
            while (j < nk && strcmp(kinds[j], m->w[k].waitk[i].kind) != 0)
                j++;
            if (j == nk && nk < sizeof(kinds) / sizeof(kinds[0]))
                kinds[nk++] = m->w[k].waitk[i].kind;
        }
    }
    for (size_t j = 0; j < nk; j++) {
        struct hist h = {0};
        for (int k = 0; k < m->nworkers; k++) {
            size_t n = __atomic_load_n(&m->w[k].nwaitk, __ATOMIC_ACQUIRE);
            for (size_t i = 0; i < n; i++)
                if (strcmp(kinds[j], m->w[k].waitk[i].kind) == 0)
                    hist_merge(&h, &m->w[k].waitk[i].h);
        }
        const char *labels[] = {"kind", kinds[j], NULL};
        wr_hist(w, "petrel_http_request_wait_seconds",
                "Time a request spent awaiting, by await kind (db, http, sleep, ...)", labels, &h);
    }
}

static void scrape_runtime(petrel__metrics_t *m, petrel_metrics_writer_t *w)
{
    petrel_server_t *srv = m->srv;
    long inflight = 0;
    uint64_t slow = 0;
    for (int k = 0; k < srv->nworkers; k++)
        inflight += atomic_load(&srv->workers[k].inflight);
    petrel_metrics_gauge(w, "petrel_http_requests_in_flight", "Requests being handled", NULL,
                         (double)inflight);
    petrel_metrics_gauge(w, "petrel_http_connections", "Client connections open", NULL,
                         (double)atomic_load(&srv->connections));
    for (int k = 0; k < m->nworkers; k++) {
        char wi[16];
        snprintf(wi, sizeof(wi), "%d", k);
        const char *labels[] = {"worker", wi, NULL};
        struct hist h = {0};
        hist_merge(&h, &m->w[k].stall);
        wr_hist(w, "petrel_loop_stall_seconds",
                "Per event-loop iteration, time spent running fibers and callbacks", labels, &h);
        petrel_metrics_gauge(w, "petrel_fibers", "Live fibers (requests, tasks, consumers)", labels,
                             (double)cnt_get(&m->w[k].fibers));
        petrel_metrics_gauge(w, "petrel_fiber_stacks_pooled", "Idle fiber stacks kept for reuse",
                             labels, (double)cnt_get(&m->w[k].pooled));
        slow += cnt_get(&m->w[k].slow);
    }
    petrel_metrics_counter(w, "petrel_slow_callbacks_total",
                           "Fiber run slices longer than server.slow_callback_ms", NULL,
                           (double)slow);
}

static void scrape_process(petrel_metrics_writer_t *w)
{
    long page = sysconf(_SC_PAGESIZE);
    FILE *fp = fopen("/proc/self/statm", "re");
    if (fp != NULL) {
        unsigned long size = 0, rss = 0;
        if (fscanf(fp, "%lu %lu", &size, &rss) == 2)
            petrel_metrics_gauge(w, "process_resident_memory_bytes",
                                 "Resident memory size in bytes.", NULL,
                                 (double)rss * (double)page);
        (void)fclose(fp);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        size_t n = 0;
        for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
            if (e->d_name[0] != '.')
                n++;
        (void)closedir(d);
        petrel_metrics_gauge(w, "process_open_fds", "Number of open file descriptors.", NULL,
                             (double)(n > 0 ? n - 1 : 0)); /* minus the directory's own fd */
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        petrel_metrics_counter(w, "process_cpu_seconds_total",
                               "Total user and system CPU time spent in seconds.", NULL,
                               (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
}

/* petrel's own pools and limits, read through their public stats calls (all thread-safe
 * snapshots). HTTP clients have no registry to walk: the http module (or the app) exports
 * them with a collector. */
static void sem_collect(petrel_sem_t *sem, void *arg)
{
    petrel_metrics_writer_t *w = arg;
    petrel_sem_stats_t st;
    petrel_sem_stats(sem, &st);
    const char *l[] = {"name", petrel_sem_name(sem), NULL};
    petrel_metrics_gauge(w, "petrel_semaphore_limit", "Slots of the semaphore", l,
                         (double)st.limit);
    petrel_metrics_gauge(w, "petrel_semaphore_in_use", "Slots held now", l, (double)st.in_use);
    petrel_metrics_gauge(w, "petrel_semaphore_waiting", "Fibers queued for a slot", l,
                         (double)st.waiting);
    petrel_metrics_counter(w, "petrel_semaphore_acquired_total", "Slots granted", l,
                           (double)st.acquired);
    petrel_metrics_counter(w, "petrel_semaphore_rejected_total",
                           "Acquires that failed (timeout, try_acquire)", l, (double)st.rejected);
    petrel_metrics_counter(w, "petrel_semaphore_wait_seconds_total",
                           "Time granted acquires spent queued", l, (double)st.wait_ns_total / 1e9);
}

static void scrape_modules(petrel_metrics_writer_t *w)
{
    petrel_sem_foreach(sem_collect, w);
    petrel_http_metrics_collect(w, NULL); /* every live outbound HTTP client */
    petrel_db_stats_t db;
    petrel_db_stats(&db);
    if (db.capacity > 0) {
        petrel_metrics_gauge(w, "petrel_db_pool_size", "Open connections", NULL, (double)db.size);
        petrel_metrics_gauge(w, "petrel_db_pool_idle", "Idle connections", NULL, (double)db.idle);
        petrel_metrics_gauge(w, "petrel_db_pool_checked_out", "Connections held by fibers", NULL,
                             (double)db.checked_out);
        petrel_metrics_gauge(w, "petrel_db_pool_overflow", "Connections beyond pool_size", NULL,
                             (double)db.overflow);
        petrel_metrics_gauge(w, "petrel_db_pool_waiting", "Fibers waiting for a connection", NULL,
                             (double)db.waiting);
        petrel_metrics_gauge(w, "petrel_db_pool_capacity", "pool_size + max_overflow", NULL,
                             (double)db.capacity);
        petrel_metrics_counter(w, "petrel_db_pool_timeouts_total", "Acquires that timed out", NULL,
                               (double)db.timeouts);
        petrel_metrics_counter(w, "petrel_db_connects_total", "Successful connects", NULL,
                               (double)db.connects);
        petrel_metrics_counter(w, "petrel_db_errors_total",
                               "Failed connects, lost connections, query errors", NULL,
                               (double)db.errors);
        petrel_metrics_counter(w, "petrel_db_invalidated_total", "Connections discarded", NULL,
                               (double)db.invalidated);
    }
    petrel_queue_stats_t q;
    petrel_queue_stats(&q);
    if (q.maxsize > 0) {
        petrel_metrics_gauge(w, "petrel_queue_maxsize", "Queue capacity", NULL, (double)q.maxsize);
        petrel_metrics_gauge(w, "petrel_queue_depth", "Jobs queued or waiting for a retry", NULL,
                             (double)q.depth);
        petrel_metrics_gauge(w, "petrel_queue_running", "Jobs running", NULL, (double)q.running);
        petrel_metrics_gauge(w, "petrel_queue_put_waiting", "Producers waiting for space", NULL,
                             (double)q.put_waiting);
        petrel_metrics_counter(w, "petrel_queue_enqueued_total", "Jobs accepted", NULL,
                               (double)q.enqueued);
        petrel_metrics_counter(w, "petrel_queue_rejected_total", "Puts refused", NULL,
                               (double)q.rejected);
        petrel_metrics_counter(w, "petrel_queue_succeeded_total", "Jobs succeeded", NULL,
                               (double)q.succeeded);
        petrel_metrics_counter(w, "petrel_queue_retries_total", "Attempts retried", NULL,
                               (double)q.retries);
        petrel_metrics_counter(w, "petrel_queue_dead_letters_total",
                               "Jobs failed after max_attempts", NULL, (double)q.dead_letters);
    }
    petrel_procpool_stats_t pp;
    petrel_procpool_stats(&pp);
    if (pp.size > 0) {
        petrel_metrics_gauge(w, "petrel_procpool_size", "Configured children", NULL,
                             (double)pp.size);
        petrel_metrics_gauge(w, "petrel_procpool_alive", "Children running", NULL,
                             (double)pp.alive);
        petrel_metrics_gauge(w, "petrel_procpool_busy", "Children running a job", NULL,
                             (double)pp.busy);
        petrel_metrics_gauge(w, "petrel_procpool_waiting", "Callers queued for a child", NULL,
                             (double)pp.waiting);
        petrel_metrics_counter(w, "petrel_procpool_jobs_total", "Jobs finished", NULL,
                               (double)pp.jobs);
        petrel_metrics_counter(w, "petrel_procpool_failed_total", "Jobs failed", NULL,
                               (double)pp.failed);
        petrel_metrics_counter(w, "petrel_procpool_restarts_total", "Replacement children", NULL,
                               (double)pp.restarts);
    }
    petrel_threadpool_stats_t tp;
    petrel_threadpool_stats(&tp);
    if (tp.size > 0) {
        petrel_metrics_gauge(w, "petrel_threadpool_size", "Threads", NULL, (double)tp.size);
        petrel_metrics_gauge(w, "petrel_threadpool_busy", "Threads running a job", NULL,
                             (double)tp.busy);
        petrel_metrics_gauge(w, "petrel_threadpool_queued", "Jobs waiting for a thread", NULL,
                             (double)tp.queued);
        petrel_metrics_counter(w, "petrel_threadpool_jobs_total", "Jobs finished", NULL,
                               (double)tp.jobs);
    }
}

int petrel__metrics_route(petrel_req_t *req)
{
    petrel_server_t *srv = req->w->srv;
    petrel__metrics_t *m = srv->metrics;
    if (m == NULL || !m->enabled)
        return petrel_error(req, 404, "Not Found");
    petrel_metrics_writer_t w = {0};
    scrape_requests(m, &w);
    scrape_runtime(m, &w);
    scrape_process(&w);
    scrape_modules(&w);
    petrel_app_t *app = srv->app;
    for (size_t i = 0; i < app->ncollectors; i++)
        app->collectors[i].cb(&w, app->collectors[i].arg);
    size_t len = 0;
    char *text = wr_finish(&w, &len);
    int rc =
        petrel_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", text ? text : "", len);
    free(text);
    return rc;
}
