/*
 * router.c - the compiled route table: a segment trie from path templates to
 * per-method endpoints, and the request matcher used by server.c.
 *
 * Matching rules (documented in router_int.h's terms):
 * - Both templates and request paths are split after the leading '/' on every
 *   '/'; each piece is a segment, possibly empty ("/items/" has the segments
 *   "items" and ""), so a trailing slash never matches a template without one.
 * - At every trie node a static child is tried first, then the parameter child
 *   (one non-empty segment), then the path-tail child (the rest of the path,
 *   '/' included, possibly empty, as Starlette's `path` convertor). If the
 *   static branch does not lead to a route for the method, the search
 *   backtracks, so "/users/me" beats "/users/{id}" and "/users/me/x" can still
 *   reach "/users/{id}/x" - the result Starlette gives when specific routes
 *   are registered first, which is the common way to write them.
 * - A full match (path and method) anywhere wins over a path-only match; a
 *   path-only match answers 405 with that node's precomputed Allow value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/common.h>

#include "router_int.h"

enum {
    M_GET,
    M_HEAD,
    M_POST,
    M_PUT,
    M_PATCH,
    M_DELETE,
    M_OPTIONS,
    M_COUNT,
};

static const char *const router_method_names[M_COUNT] = {"GET",   "HEAD",   "POST",   "PUT",
                                                         "PATCH", "DELETE", "OPTIONS"};

/* A compiled route: the user's declaration plus the merged path parameter fields. */
struct croute {
    const petrel_route_t *route;
    bool trivial; /* its plan checks nothing */
    size_t nargs;
    petrel_field_t args[PETREL_MAX_PATH];
    char *names[PETREL_MAX_PATH];
    petrel__vplan_t *plan;
};

struct node {
    char *seg; /* static segment text (static children only) */
    size_t seglen;
    struct node **statics; /* sorted by (length, bytes) for binary search */
    size_t nstatics;
    struct node *param; /* one non-empty segment */
    struct node *tail;  /* the rest of the path */
    struct croute *eps[M_COUNT];
    char *allow;
};

/* Routes whose template has no parameter, by their whole path: a request for one is found
 * with one hash lookup instead of a trie walk. The walk tries static children first at
 * every level, so for such a path it would return the same endpoint. */
struct sentry {
    const char *path; /* the route's own template (routes are borrowed); NULL: free slot */
    size_t len;
    uint64_t hash;
    const struct node *n;
};

struct petrel__router {
    struct node root;
    size_t count;
    struct sentry *stab;
    size_t scap, sn; /* scap: a power of two, or 0 */
};

/* The state of one match attempt; collected segments are reset on backtrack. */
struct walk {
    const char *path;
    size_t len;
    int method;
    size_t nvals;
    const char *vals[PETREL_MAX_PATH];
    size_t vlens[PETREL_MAX_PATH];
    const struct node *partial; /* first node whose path matched but method did not */
};

static int router_method_index(const char *m, size_t len)
{
    /* Most requests are a GET. */
    if (len == 3 && memcmp(m, "GET", 3) == 0)
        return M_GET;
    for (int i = 0; i < M_COUNT; i++) {
        if (strlen(router_method_names[i]) == len && memcmp(router_method_names[i], m, len) == 0)
            return i;
    }
    return -1;
}

static int router_seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

/* Returns the index of the static child equal to seg, or -(insertion point) - 1. */
static long router_find_static(const struct node *n, const char *seg, size_t len)
{
    size_t lo = 0, hi = n->nstatics;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = router_seg_cmp(n->statics[mid]->seg, n->statics[mid]->seglen, seg, len);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

/* FNV-1a: paths are short; the lookup compares the bytes anyway. */
static uint64_t router_path_hash(const char *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

static const struct node *router_static_find(const petrel__router_t *r, const char *p, size_t len)
{
    if (r->sn == 0)
        return NULL;
    uint64_t h = router_path_hash(p, len);
    for (size_t i = h & (r->scap - 1);; i = (i + 1) & (r->scap - 1)) {
        const struct sentry *e = &r->stab[i];
        if (e->path == NULL)
            return NULL;
        if (e->hash == h && e->len == len && memcmp(e->path, p, len) == 0)
            return e->n;
    }
}

static void router_static_put(struct sentry *tab, size_t cap, struct sentry e)
{
    size_t i = e.hash & (cap - 1);
    while (tab[i].path != NULL)
        i = (i + 1) & (cap - 1);
    tab[i] = e;
}

/* Records a parameterless template's node (once per path, whatever its methods). */
static void router_static_add(petrel__router_t *r, const char *path, const struct node *n)
{
    size_t len = strlen(path);
    if (router_static_find(r, path, len) != NULL)
        return;
    if ((r->sn + 1) * 2 > r->scap) { /* at most half full: short probe runs */
        size_t cap = r->scap ? r->scap * 2 : 16;
        struct sentry *tab = petrel_xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < r->scap; i++) {
            if (r->stab[i].path != NULL)
                router_static_put(tab, cap, r->stab[i]);
        }
        free(r->stab);
        r->stab = tab;
        r->scap = cap;
    }
    router_static_put(r->stab, r->scap, (struct sentry){path, len, router_path_hash(path, len), n});
    r->sn++;
}

static struct node *router_static_child(struct node *n, const char *seg, size_t len)
{
    long i = router_find_static(n, seg, len);
    if (i >= 0)
        return n->statics[i];
    size_t at = (size_t)(-i - 1);
    struct node *c = petrel_xcalloc(1, sizeof(*c));
    c->seg = petrel_xmalloc(len + 1);
    memcpy(c->seg, seg, len);
    c->seg[len] = '\0';
    c->seglen = len;
    n->statics = petrel_xrealloc(n->statics, (n->nstatics + 1) * sizeof(*n->statics));
    memmove(n->statics + at + 1, n->statics + at, (n->nstatics - at) * sizeof(*n->statics));
    n->statics[at] = c;
    n->nstatics++;
    return c;
}

static void router_node_dispose(struct node *n)
{
    for (size_t i = 0; i < n->nstatics; i++) {
        router_node_dispose(n->statics[i]);
        free(n->statics[i]);
    }
    free(n->statics);
    if (n->param != NULL) {
        router_node_dispose(n->param);
        free(n->param);
    }
    if (n->tail != NULL) {
        router_node_dispose(n->tail);
        free(n->tail);
    }
    for (int i = 0; i < M_COUNT; i++) {
        struct croute *c = n->eps[i];
        if (c == NULL)
            continue;
        for (size_t a = 0; a < c->nargs; a++)
            free(c->names[a]);
        petrel__vplan_free(c->plan);
        free(c);
    }
    free(n->allow);
    free(n->seg);
}

/* Allow lists the node's methods in a fixed order; HEAD appears whenever GET does. */
static void router_build_allow(struct node *n)
{
    char buf[96];
    size_t off = 0;
    for (int i = 0; i < M_COUNT; i++) {
        bool has = n->eps[i] != NULL || (i == M_HEAD && n->eps[M_GET] != NULL);
        if (!has)
            continue;
        int w = snprintf(buf + off, sizeof(buf) - off, "%s%s", off > 0 ? ", " : "",
                         router_method_names[i]);
        PETREL_ASSERT(w > 0 && (size_t)w < sizeof(buf) - off);
        off += (size_t)w;
    }
    buf[off] = '\0';
    free(n->allow);
    n->allow = petrel_xstrdup(buf);
}

petrel__router_t *petrel__router_new(void)
{
    return petrel_xcalloc(1, sizeof(petrel__router_t));
}

void petrel__router_free(petrel__router_t *r)
{
    if (r == NULL)
        return;
    router_node_dispose(&r->root);
    free(r->stab);
    free(r);
}

size_t petrel__router_count(const petrel__router_t *r)
{
    return r->count;
}

static int router_type_from_name(const char *t, size_t len, petrel_type_t *out)
{
    static const struct {
        const char *name;
        petrel_type_t type;
    } types[] = {{"str", PETREL_T_STR},   {"int", PETREL_T_INT},   {"float", PETREL_T_FLOAT},
                 {"uuid", PETREL_T_UUID}, {"path", PETREL_T_PATH}, {"bool", PETREL_T_BOOL}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strlen(types[i].name) == len && memcmp(types[i].name, t, len) == 0) {
            *out = types[i].type;
            return 0;
        }
    }
    return PETREL_EINVAL;
}

static bool router_ident_ok(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Overlays a path_params entry on the template-derived field: constraints and docs, and the
 * type when the entry names one (e.g. PETREL_T_BOOL for "{flag}"). */
static void router_merge_field(petrel_field_t *dst, const petrel_field_t *extra)
{
    if (extra->type != PETREL_T_NONE)
        dst->type = extra->type;
    dst->gt = extra->gt;
    dst->ge = extra->ge;
    dst->lt = extra->lt;
    dst->le = extra->le;
    dst->min_length = extra->min_length;
    dst->max_length = extra->max_length;
    dst->enum_values = extra->enum_values;
    dst->enum_name = extra->enum_name;
    dst->title = extra->title;
    dst->description = extra->description;
    dst->example = extra->example;
}

/* Parses the template into trie insertion steps and the route's path arguments. */
static int router_compile(petrel__router_t *r, const petrel_route_t *route, struct croute *c,
                          struct node **leaf, char *err, size_t errlen)
{
    const char *p = route->path;
    struct node *n = &r->root;
    if (p == NULL || p[0] != '/') {
        snprintf(err, errlen, "path template '%s' must start with '/'", p ? p : "(null)");
        return PETREL_EINVAL;
    }
    p++;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        const char *open = memchr(p, '{', len);
        const char *close = memchr(p, '}', len);
        if (open == NULL && close == NULL) {
            n = router_static_child(n, p, len);
        } else {
            if (open != p || close != p + len - 1) {
                snprintf(err, errlen,
                         "%s: a parameter must be a whole path segment ('{name}' or "
                         "'{name:type}')",
                         route->path);
                return PETREL_EINVAL;
            }
            const char *name = p + 1;
            size_t inner = len - 2;
            const char *colon = memchr(name, ':', inner);
            size_t nlen = colon ? (size_t)(colon - name) : inner;
            petrel_type_t type = PETREL_T_STR;
            if (colon != NULL && router_type_from_name(colon + 1, inner - nlen - 1, &type) != 0) {
                snprintf(err, errlen,
                         "%s: unknown parameter type '%.*s' (use str, int, float, bool, uuid or "
                         "path)",
                         route->path, (int)(inner - nlen - 1), colon + 1);
                return PETREL_EINVAL;
            }
            if (!router_ident_ok(name, nlen)) {
                snprintf(err, errlen, "%s: bad parameter name '%.*s'", route->path, (int)nlen,
                         name);
                return PETREL_EINVAL;
            }
            for (size_t i = 0; i < c->nargs; i++) {
                if (strlen(c->names[i]) == nlen && memcmp(c->names[i], name, nlen) == 0) {
                    snprintf(err, errlen, "%s: duplicate parameter '%.*s'", route->path, (int)nlen,
                             name);
                    return PETREL_EINVAL;
                }
            }
            if (c->nargs == PETREL_MAX_PATH) {
                snprintf(err, errlen, "%s: more than %d path parameters", route->path,
                         PETREL_MAX_PATH);
                return PETREL_EINVAL;
            }
            if (type == PETREL_T_PATH && slash != NULL) {
                snprintf(err, errlen, "%s: a '{%.*s:path}' parameter must be the last segment",
                         route->path, (int)nlen, name);
                return PETREL_EINVAL;
            }
            char *nm = petrel_xmalloc(nlen + 1);
            memcpy(nm, name, nlen);
            nm[nlen] = '\0';
            c->names[c->nargs] = nm;
            petrel_field_t *f = &c->args[c->nargs++];
            memset(f, 0, sizeof(*f));
            f->name = nm;
            f->type = type;
            f->in = PETREL_IN_PATH;
            f->required = true;
            struct node **slot = type == PETREL_T_PATH ? &n->tail : &n->param;
            if (*slot == NULL)
                *slot = petrel_xcalloc(1, sizeof(**slot));
            n = *slot;
        }
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    for (size_t i = 0; i < PETREL_MAX_PATH && route->path_params[i].name != NULL; i++) {
        const petrel_field_t *e = &route->path_params[i];
        size_t a = 0;
        while (a < c->nargs && strcmp(c->args[a].name, e->name) != 0)
            a++;
        if (a == c->nargs) {
            snprintf(err, errlen, "%s: path_params entry '%s' is not a parameter of the template",
                     route->path, e->name);
            return PETREL_EINVAL;
        }
        router_merge_field(&c->args[a], e);
    }
    *leaf = n;
    return 0;
}

/* Removes nodes left without routes by a failed add, so a rejected declaration leaves no
 * trace; returns true when n itself is now empty. */
static bool router_prune(struct node *n)
{
    for (size_t i = 0; i < n->nstatics;) {
        if (router_prune(n->statics[i])) {
            router_node_dispose(n->statics[i]);
            free(n->statics[i]);
            memmove(n->statics + i, n->statics + i + 1,
                    (n->nstatics - i - 1) * sizeof(*n->statics));
            n->nstatics--;
        } else {
            i++;
        }
    }
    if (n->param != NULL && router_prune(n->param)) {
        router_node_dispose(n->param);
        free(n->param);
        n->param = NULL;
    }
    if (n->tail != NULL && router_prune(n->tail)) {
        router_node_dispose(n->tail);
        free(n->tail);
        n->tail = NULL;
    }
    for (int i = 0; i < M_COUNT; i++) {
        if (n->eps[i] != NULL)
            return false;
    }
    return n->nstatics == 0 && n->param == NULL && n->tail == NULL;
}

int petrel__router_add(petrel__router_t *r, const petrel_route_t *route, char *err, size_t errlen)
{
    int rc = PETREL_EINVAL;
    struct node *leaf = NULL;
    struct croute *c = petrel_xcalloc(1, sizeof(*c));
    c->route = route;
    int mi = route->method ? router_method_index(route->method, strlen(route->method)) : -1;
    if (mi < 0) {
        snprintf(err, errlen, "%s: unsupported method '%s'", route->path ? route->path : "",
                 route->method ? route->method : "(null)");
        goto out;
    }
    if (router_compile(r, route, c, &leaf, err, errlen) != 0)
        goto out;
    if (leaf->eps[mi] != NULL) {
        snprintf(err, errlen, "duplicate route %s %s", route->method, route->path);
        goto out;
    }
    c->plan = petrel__vplan_new(route, c->args, c->nargs, err, errlen);
    if (c->plan == NULL)
        goto out;
    c->trivial = petrel__vplan_trivial(c->plan);
    leaf->eps[mi] = c;
    if (c->nargs == 0)
        router_static_add(r, route->path, leaf);
    c = NULL;
    router_build_allow(leaf);
    r->count++;
    rc = 0;
out:
    if (c != NULL) {
        for (size_t a = 0; a < c->nargs; a++)
            free(c->names[a]);
        free(c);
        (void)router_prune(&r->root);
    }
    return rc;
}

static const struct croute *router_endpoint(const struct node *n, int method)
{
    if (method < 0)
        return NULL;
    if (n->eps[method] != NULL)
        return n->eps[method];
    if (method == M_HEAD)
        return n->eps[M_GET];
    return NULL;
}

static bool router_has_any(const struct node *n)
{
    for (int i = 0; i < M_COUNT; i++) {
        if (n->eps[i] != NULL)
            return true;
    }
    return false;
}

/* Depth-first search from n with the path remainder starting at `pos` (just after a '/', or
 * at len when every segment is consumed: `done`). Recursion depth is bounded by the trie's
 * depth, never by the request. */
static const struct croute *router_walk(const struct node *n, struct walk *w, size_t pos, bool done)
{
    if (done) {
        const struct croute *c = router_endpoint(n, w->method);
        if (c != NULL)
            return c;
        if (w->partial == NULL && router_has_any(n))
            w->partial = n;
        return NULL;
    }
    const char *seg = w->path + pos;
    const char *slash = memchr(seg, '/', w->len - pos);
    size_t slen = slash ? (size_t)(slash - seg) : w->len - pos;
    size_t next = slash ? pos + slen + 1 : w->len;
    bool ndone = slash == NULL;
    size_t saved = w->nvals;
    if (n->nstatics > 0) {
        long i = router_find_static(n, seg, slen);
        if (i >= 0) {
            const struct croute *c = router_walk(n->statics[i], w, next, ndone);
            if (c != NULL)
                return c;
        }
    }
    if (n->param != NULL && slen > 0 && saved < PETREL_MAX_PATH) {
        w->vals[saved] = seg;
        w->vlens[saved] = slen;
        w->nvals = saved + 1;
        const struct croute *c = router_walk(n->param, w, next, ndone);
        if (c != NULL)
            return c;
        w->nvals = saved;
    }
    if (n->tail != NULL && saved < PETREL_MAX_PATH) {
        w->vals[saved] = seg;
        w->vlens[saved] = w->len - pos;
        w->nvals = saved + 1;
        const struct croute *c = router_walk(n->tail, w, w->len, true);
        if (c != NULL)
            return c;
        w->nvals = saved;
    }
    return NULL;
}

int petrel__router_match(const petrel__router_t *r, const char *method, size_t mlen,
                         const char *path, size_t plen, char *scratch, petrel__match_t *m)
{
    struct walk w;
    m->route = NULL;
    m->allow = NULL;
    m->nargs = 0;
    m->plan = NULL;
    m->trivial = false;
    size_t len = petrel__pct_decode(scratch, path, plen, false);
    if (len == 0 || scratch[0] != '/') {
        m->status = 404;
        return m->status;
    }
    int mi = router_method_index(method, mlen);
    const struct node *sn = router_static_find(r, scratch, len);
    const struct croute *c = sn != NULL ? router_endpoint(sn, mi) : NULL;
    if (c != NULL) {
        m->status = 0;
        m->route = c->route;
        m->plan = c->plan;
        m->trivial = c->trivial;
        return 0;
    }
    w.path = scratch;
    w.len = len;
    w.method = mi;
    w.nvals = 0;
    w.partial = NULL;
    c = router_walk(&r->root, &w, 1, false);
    if (c == NULL) {
        if (w.partial != NULL) {
            m->status = 405;
            m->allow = w.partial->allow;
        } else {
            m->status = 404;
        }
        return m->status;
    }
    m->status = 0;
    m->route = c->route;
    m->plan = c->plan;
    m->trivial = c->trivial;
    m->nargs = c->nargs;
    for (size_t i = 0; i < c->nargs; i++) {
        m->args[i].field = &c->args[i];
        m->args[i].val = w.vals[i];
        m->args[i].len = w.vlens[i];
    }
    return 0;
}

static int router_hex(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

size_t petrel__pct_decode(char *dst, const char *src, size_t len, bool plus)
{
    size_t o = 0, i = 0;
    if (!plus) {
        /* A path: usually no escape at all, so the bytes before the first '%' are one copy. */
        const char *pct = memchr(src, '%', len);
        i = o = pct != NULL ? (size_t)(pct - src) : len;
        memcpy(dst, src, i);
    }
    for (; i < len; i++) {
        char ch = src[i];
        if (ch == '%' && i + 2 < len) {
            int hi = router_hex((unsigned char)src[i + 1]);
            int lo = router_hex((unsigned char)src[i + 2]);
            if (hi >= 0 && lo >= 0) {
                dst[o++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
        }
        dst[o++] = plus && ch == '+' ? ' ' : ch;
    }
    dst[o] = '\0';
    return o;
}

void petrel__query_each(const char *q, size_t qlen,
                        int (*cb)(void *ctx, const char *k, size_t klen, const char *v,
                                  size_t vlen),
                        void *ctx)
{
    char stackbuf[512];
    char *buf = stackbuf;
    size_t cap = sizeof(stackbuf);
    size_t i = 0;
    while (i < qlen) {
        const char *amp = memchr(q + i, '&', qlen - i);
        size_t plen = amp ? (size_t)(amp - (q + i)) : qlen - i;
        const char *pair = q + i;
        i += plen + 1;
        /* parse_qsl(keep_blank_values=True) skips empty pieces and reads "k" as "k=". */
        if (plen == 0)
            continue;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        size_t vlen = eq ? plen - klen - 1 : 0;
        if (plen + 2 > cap) {
            if (buf != stackbuf)
                free(buf);
            cap = plen + 2;
            buf = petrel_xmalloc(cap);
        }
        size_t dk = petrel__pct_decode(buf, pair, klen, true);
        size_t dv = petrel__pct_decode(buf + dk + 1, eq ? eq + 1 : "", vlen, true);
        if (cb(ctx, buf, dk, buf + dk + 1, dv) != 0)
            break;
    }
    if (buf != stackbuf)
        free(buf);
}
