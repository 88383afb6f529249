/*
 * req.c - the request API handlers use (accessors, validated parameters)
 * and response building: JSON is serialised straight into buffers from the
 * h2o request pool and handed to h2o as an iovec list, with an explicit
 * Content-Length, so a body is written once and never copied.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common_int.h"
#include "log_int.h"
#include "metrics_int.h"
#include "petrel/log.h"
#include "server_int.h"

const char *petrel_req_method(petrel_req_t *req)
{
    return req->method;
}

petrel_str_t petrel_req_path(petrel_req_t *req)
{
    return (petrel_str_t){req->path, req->plen};
}

petrel_str_t petrel_req_query_string(petrel_req_t *req)
{
    return (petrel_str_t){req->query != NULL ? req->query : "", req->qlen};
}

const petrel_route_t *petrel_req_route(petrel_req_t *req)
{
    return req->route;
}

const char *petrel_req_id(petrel_req_t *req)
{
    return req->reqid;
}

petrel_app_t *petrel_req_app(petrel_req_t *req)
{
    return req->w->srv->app;
}

int petrel_req_worker(petrel_req_t *req)
{
    return req->w->index;
}

void *petrel_req_alloc(petrel_req_t *req, size_t sz)
{
    return h2o_mem_alloc_pool(&req->arena, sz);
}

const char *petrel_req_sprintf(petrel_req_t *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return "";
    char *s = h2o_mem_alloc_pool(&req->arena, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *petrel_req_header(petrel_req_t *req, const char *name)
{
    if (req->h2o == NULL || name == NULL)
        return NULL;
    size_t n = strlen(name);
    char *lower = h2o_mem_alloc_pool(&req->arena, n + 1);
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    ssize_t i = h2o_find_header_by_str(&req->h2o->headers, lower, n, -1);
    if (i == -1)
        return NULL;
    h2o_iovec_t v = req->h2o->headers.entries[i].value;
    /* Copied: the value must outlive h2o's request if the client disconnects. */
    char *s = h2o_mem_alloc_pool(&req->arena, v.len + 1);
    memcpy(s, v.base, v.len);
    s[v.len] = '\0';
    return s;
}

const char *petrel_req_peer(petrel_req_t *req)
{
    if (req->h2o == NULL)
        return "";
    struct sockaddr_storage ss;
    socklen_t len = req->h2o->conn->callbacks->get_peername(req->h2o->conn, (struct sockaddr *)&ss);
    char *buf = h2o_mem_alloc_pool(&req->arena, INET6_ADDRSTRLEN);
    buf[0] = '\0';
    if (len == 0)
        return buf;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, INET6_ADDRSTRLEN);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, INET6_ADDRSTRLEN);
    return buf;
}

petrel_str_t petrel_req_body(petrel_req_t *req)
{
    if (!req->raw_body_copied) {
        /* Copy on first use: h2o's buffer is gone if the client disconnects. */
        if (req->h2o != NULL && req->raw_body.len > 0) {
            char *p = h2o_mem_alloc_pool(&req->arena, req->raw_body.len + 1);
            memcpy(p, req->raw_body.p, req->raw_body.len);
            p[req->raw_body.len] = '\0';
            req->raw_body.p = p;
        } else if (req->h2o == NULL) {
            req->raw_body = (petrel_str_t){"", 0};
        }
        req->raw_body_copied = true;
    }
    return req->raw_body.p != NULL ? req->raw_body : (petrel_str_t){"", 0};
}

/* ---- validated parameters ---- */

json_t *petrel_params(petrel_req_t *req)
{
    if (req->params == NULL)
        req->params = json_object();
    return req->params;
}

static json_t *param_get(petrel_req_t *req, const char *name)
{
    return req->params != NULL ? json_object_get(req->params, name) : NULL;
}

bool petrel_param_has(petrel_req_t *req, const char *name)
{
    json_t *v = param_get(req, name);
    return v != NULL && !json_is_null(v);
}

int64_t petrel_param_int(petrel_req_t *req, const char *name, int64_t fallback)
{
    json_t *v = param_get(req, name);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return fallback;
}

double petrel_param_float(petrel_req_t *req, const char *name, double fallback)
{
    json_t *v = param_get(req, name);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

bool petrel_param_bool(petrel_req_t *req, const char *name, bool fallback)
{
    json_t *v = param_get(req, name);
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

const char *petrel_param_str(petrel_req_t *req, const char *name, const char *fallback)
{
    json_t *v = param_get(req, name);
    return json_is_string(v) ? json_string_value(v) : fallback;
}

json_t *petrel_param_json(petrel_req_t *req, const char *name)
{
    return param_get(req, name);
}

json_t *petrel_body(petrel_req_t *req)
{
    return req->body_json;
}

struct query_find {
    petrel_req_t *req;
    const char *name;
    size_t nlen;
    const char *first;
    petrel_strv_t *list;
    bool split_commas;
};

static void strv_push(petrel_req_t *req, petrel_strv_t *v, const char *s, size_t len)
{
    /* Grow by doubling inside the arena; old arrays are simply abandoned. */
    if ((v->n & (v->n - 1)) == 0) {
        size_t cap = v->n ? v->n * 2 : 4;
        const char **nv = h2o_mem_alloc_pool(&req->arena, cap * sizeof(*nv));
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof(*nv));
        v->v = nv;
    }
    char *c = h2o_mem_alloc_pool(&req->arena, len + 1);
    memcpy(c, s, len);
    c[len] = '\0';
    v->v[v->n++] = c;
}

static int query_find_cb(void *ctx, const char *k, size_t klen, const char *val, size_t vlen)
{
    struct query_find *qf = ctx;
    if (klen != qf->nlen || memcmp(k, qf->name, klen) != 0)
        return 0;
    if (qf->list == NULL) {
        char *c = h2o_mem_alloc_pool(&qf->req->arena, vlen + 1);
        memcpy(c, val, vlen);
        c[vlen] = '\0';
        qf->first = c;
        return 1;
    }
    size_t start = 0;
    for (size_t i = 0; i <= vlen; i++) {
        if (i == vlen || val[i] == ',') {
            if (i > start)
                strv_push(qf->req, qf->list, val + start, i - start);
            start = i + 1;
        }
    }
    return 0;
}

const char *petrel_query_raw(petrel_req_t *req, const char *name)
{
    struct query_find qf = {.req = req, .name = name, .nlen = strlen(name)};
    if (req->query != NULL)
        petrel__query_each(req->query, req->qlen, query_find_cb, &qf);
    return qf.first;
}

petrel_strv_t petrel_query_list(petrel_req_t *req, const char *name)
{
    petrel_strv_t out = {NULL, 0};
    struct query_find qf = {.req = req, .name = name, .nlen = strlen(name), .list = &out};
    if (req->query != NULL)
        petrel__query_each(req->query, req->qlen, query_find_cb, &qf);
    return out;
}

/* ---- responses ---- */

static const char *arena_copy_value(petrel_req_t *req, const char *v, size_t len)
{
    char *s = h2o_mem_alloc_pool(&req->arena, len + 1);
    memcpy(s, v, len + 1);
    return s;
}

static bool header_token_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
            return false;
    }
    return true;
}

static bool header_value_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n' || *s == '\0')
            return false;
    return true;
}

int petrel_resp_header(petrel_req_t *req, const char *name, const char *value)
{
    if (name == NULL || value == NULL || !header_token_ok(name) || !header_value_ok(value))
        return PETREL_EINVAL;
    if (req->nhdrs == req->hdrs_cap) {
        size_t cap = req->hdrs_cap ? req->hdrs_cap * 2 : 8;
        struct resp_header *nh = h2o_mem_alloc_pool(&req->arena, cap * sizeof(*nh));
        if (req->nhdrs)
            memcpy(nh, req->hdrs, req->nhdrs * sizeof(*nh));
        req->hdrs = nh;
        req->hdrs_cap = cap;
    }
    size_t nlen = strlen(name), vlen = strlen(value);
    char *n = h2o_mem_alloc_pool(&req->arena, nlen + 1);
    for (size_t i = 0; i <= nlen; i++)
        n[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    req->hdrs[req->nhdrs++] =
        (struct resp_header){n, arena_copy_value(req, value, vlen), nlen, vlen};
    if (nlen == 6 && memcmp(n, "server", 6) == 0)
        req->own_server = true;
    return 0;
}

/* ---- JSON text ---- */

size_t petrel_float_repr(double d, char *buf, size_t len)
{
    return petrel__float_repr(d, buf, len);
}

/* Where serialised text goes: a callback fed from a stack buffer (petrel_json_dump), or
 * h2o pool chunks that become the response's iovecs, written in place (set_json). */
struct jpool {
    h2o_mem_pool_t *pool;
    h2o_iovec_t vec[16];
    size_t n, total;
    size_t grow; /* the next chunk's size unless a piece needs more */
};

struct jout {
    char *buf;
    size_t n, cap;
    int rc;
    json_dump_callback_t cb; /* callback mode */
    void *data;
    struct jpool *pool; /* pool mode */
    char stack[512];    /* callback mode's buffer */
};

/* Pool mode: the chunk being written is complete. (A chunk is only opened for bytes about
 * to be written, so none is left empty.) */
static void jout_pool_close(struct jout *o)
{
    struct jpool *p = o->pool;
    if (o->n > 0) {
        p->vec[p->n - 1].len = o->n;
        p->total += o->n;
    }
    o->n = 0;
}

/* Pool mode: opens a chunk with room for at least `need` bytes. Chunks grow geometrically so
 * a large body takes few iovecs; the first stays under a quarter of h2o's 4 KiB pool chunk,
 * which h2o would malloc apart. */
static void jout_pool_open(struct jout *o, size_t need)
{
    struct jpool *p = o->pool;
    if (p->n == sizeof(p->vec) / sizeof(p->vec[0])) {
        o->rc = PETREL_ETOOBIG;
        o->n = o->cap = 0; /* every later put takes the slow path, which stops at rc */
        return;
    }
    /* The geometric size goes on regardless of a big string's own chunk. */
    size_t cap = p->grow > need ? p->grow : need;
    if (p->grow < ((size_t)1 << 40))
        p->grow *= 4;
    o->buf = h2o_mem_alloc_pool(p->pool, cap);
    o->cap = cap;
    o->n = 0;
    p->vec[p->n++] = h2o_iovec_init(o->buf, 0);
}

static void jout_flush(struct jout *o)
{
    if (o->pool != NULL) {
        jout_pool_close(o);
        return;
    }
    if (o->n > 0 && o->rc == 0 && o->cb(o->buf, o->n, o->data) != 0)
        o->rc = PETREL_EINVAL;
    o->n = 0;
}

static void jout_put_slow(struct jout *o, const char *s, size_t len);

/* The common piece fits the buffer: inline, a fixed-size copy for literals. */
static inline void jout_put(struct jout *o, const char *s, size_t len)
{
    if (len > o->cap - o->n) {
        jout_put_slow(o, s, len);
        return;
    }
    memcpy(o->buf + o->n, s, len);
    o->n += len;
}

static void jout_put_slow(struct jout *o, const char *s, size_t len)
{
    if (o->rc != 0)
        return;
    jout_flush(o);
    if (o->pool != NULL) {
        jout_pool_open(o, len);
        if (o->rc != 0)
            return;
    } else if (len > o->cap) {
        if (o->rc == 0 && o->cb(s, len, o->data) != 0)
            o->rc = PETREL_EINVAL;
        return;
    }
    memcpy(o->buf + o->n, s, len);
    o->n += len;
}

/* A string as Python's json.dumps(ensure_ascii=False) writes it: only '"', '\\' and the C0
 * controls are escaped, the latter as \n-style pairs or \u00xx with lowercase hex
 * (jansson writes uppercase). */
static void jout_string_rest(struct jout *o, const char *s, size_t len, size_t run);

static inline void jout_string(struct jout *o, const char *s, size_t len)
{
    if (len + 2 <= o->cap - o->n) {
        /* Short strings (keys, most values), inline: the run needing no escape is copied as
         * it is checked; the first byte that does sends the rest down the general path. */
        char *d = o->buf + o->n;
        d[0] = '"';
        size_t run = petrel__json_plain_copy(d + 1, s, len, false);
        if (run == len) {
            d[len + 1] = '"';
            o->n += len + 2;
            return;
        }
        o->n += 1 + run;
        jout_string_rest(o, s, len, run);
        return;
    }
    jout_put(o, "\"", 1);
    jout_string_rest(o, s, len, 0);
}

/* The string from s[run] on (its opening quote is out), escapes and all. */
static void jout_string_rest(struct jout *o, const char *s, size_t len, size_t run)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = run; i < len; i++) {
        i += petrel__json_plain_run(s + i, len - i, false);
        if (i == len)
            break;
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t elen = 2;
        jout_put(o, s + run, i - run);
        run = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        jout_put(o, esc, elen);
    }
    jout_put(o, s + run, len - run);
    jout_put(o, "\"", 1);
}

/* Writes a scalar, or the opening bracket of a container (returns true then). */
static bool jout_open(struct jout *o, const json_t *j)
{
    char num[PETREL__FLOAT_REPR_MAX];
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        jout_put(o, "{", 1);
        return true;
    case JSON_ARRAY:
        jout_put(o, "[", 1);
        return true;
    case JSON_STRING:
        jout_string(o, json_string_value(j), json_string_length(j));
        return false;
    case JSON_INTEGER: {
        /* By hand: snprintf costs more than the rest of a small row's serialisation. */
        json_int_t v = json_integer_value(j);
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        char *e = num + sizeof(num), *p = e;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (v < 0)
            *--p = '-';
        jout_put(o, p, (size_t)(e - p));
        return false;
    }
    case JSON_REAL: {
        double d = json_real_value(j);
        if (isnan(d) || isinf(d)) { /* json.dumps(allow_nan=False) refuses these too */
            o->rc = PETREL_EINVAL;
            return false;
        }
        size_t w = petrel__float_repr(d, num, sizeof(num));
        jout_put(o, num, w);
        return false;
    }
    case JSON_TRUE:
        jout_put(o, "true", 4);
        return false;
    case JSON_FALSE:
        jout_put(o, "false", 5);
        return false;
    default:
        jout_put(o, "null", 4);
        return false;
    }
}

/* Far above jansson's parse limit (2048), so a 422 echoing a parsed body always fits. */
#define JOUT_MAX_DEPTH 65536

/* jansson's iterator API takes a mutable object although iterating never changes it. */
static json_t *jout_mut(const json_t *j)
{
    return (json_t *)(uintptr_t)j;
}

/* One open container: arrays walk by index, objects by jansson's insertion-ordered iterator. */
#define JOUT_INLINE_DEPTH 8

struct jframe {
    const json_t *j;
    void *iter;
    size_t idx;
};

static int jout_dump(struct jout *o, const json_t *json)
{
    /* Iterative: handlers run on small fiber stacks and may send back deep documents. The
     * first levels live on the stack: no allocation for the common document. */
    struct jframe inline_st[JOUT_INLINE_DEPTH];
    struct jframe *st = inline_st;
    size_t depth = 0, cap = JOUT_INLINE_DEPTH;
    const json_t *next = json != NULL ? json : json_null();
    while (o->rc == 0) {
        if (next != NULL) {
            if (jout_open(o, next)) {
                if (depth == JOUT_MAX_DEPTH) {
                    o->rc = PETREL_ETOOBIG;
                    break;
                }
                if (depth == cap) {
                    cap *= 2;
                    if (st == inline_st) {
                        st = petrel_xmalloc(cap * sizeof(*st));
                        memcpy(st, inline_st, sizeof(inline_st));
                    } else {
                        st = petrel_xrealloc(st, cap * sizeof(*st));
                    }
                }
                st[depth++] = (struct jframe){
                    next, json_is_object(next) ? json_object_iter(jout_mut(next)) : NULL, 0};
            }
            next = NULL;
        }
        if (depth == 0)
            break;
        struct jframe *f = &st[depth - 1];
        if (json_is_array(f->j)) {
            if (f->idx < json_array_size(f->j)) {
                if (f->idx > 0)
                    jout_put(o, ",", 1);
                next = json_array_get(f->j, f->idx++);
                continue;
            }
            jout_put(o, "]", 1);
        } else {
            if (f->iter != NULL) {
                if (f->idx++ > 0)
                    jout_put(o, ",", 1);
                const char *k = json_object_iter_key(f->iter);
                jout_string(o, k, json_object_iter_key_len(f->iter));
                jout_put(o, ":", 1);
                next = json_object_iter_value(f->iter);
                f->iter = json_object_iter_next(jout_mut(f->j), f->iter);
                continue;
            }
            jout_put(o, "}", 1);
        }
        depth--;
    }
    jout_flush(o);
    int rc = o->rc;
    if (st != inline_st)
        free(st);
    return rc;
}

int petrel_json_dump(const json_t *json, json_dump_callback_t cb, void *data)
{
    struct jout o;
    o.buf = o.stack;
    o.n = 0;
    o.cap = sizeof(o.stack);
    o.rc = 0;
    o.cb = cb;
    o.data = data;
    o.pool = NULL;
    return jout_dump(&o, json);
}

struct jbuf {
    char *p;
    size_t n, cap;
};

static int dumps_cb(const char *buf, size_t size, void *data)
{
    struct jbuf *b = data;
    if (b->n + size + 1 > b->cap) {
        while (b->n + size + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 256;
        b->p = petrel_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, buf, size);
    b->n += size;
    b->p[b->n] = '\0';
    return 0;
}

char *petrel_json_dumps(const json_t *json, size_t *len)
{
    struct jbuf b = {NULL, 0, 0};
    if (petrel_json_dump(json, dumps_cb, &b) != 0) {
        free(b.p);
        return NULL;
    }
    if (len != NULL)
        *len = b.n;
    return b.p;
}

static int set_json(petrel_req_t *req, int status, json_t *body)
{
    if (req->h2o == NULL || req->responded) {
        json_decref(body);
        return 0;
    }
    /* Serialised once, in place, into the h2o pool chunks handed to h2o_send. vec[] is filled
     * in order and read only up to n: left uncleared. */
    struct jpool p;
    struct jout o;
    p.pool = &req->h2o->pool;
    p.n = p.total = 0;
    p.grow = 960;
    o.n = o.cap = 0;
    o.rc = 0;
    o.pool = &p;
    jout_pool_open(&o, 0);
    int rc = jout_dump(&o, body);
    json_decref(body);
    if (rc != 0)
        /* The handler's bug, not the client's: a 500 when the handler passes this on. */
        return petrel_set_error(req, PETREL_EINTERNAL, "%s",
                                rc == PETREL_ETOOBIG
                                    ? "response body too large to serialise"
                                    : "response body is not JSON (NaN or Infinity)");
    req->status = status;
    req->content_type = "application/json";
    req->ctlen = sizeof("application/json") - 1;
    req->nbody = p.n;
    req->body =
        p.n <= 2 ? req->body_inl : h2o_mem_alloc_pool(&req->h2o->pool, p.n * sizeof(h2o_iovec_t));
    memcpy(req->body, p.vec, p.n * sizeof(h2o_iovec_t));
    req->body_len = p.total;
    req->has_response = true;
    return 0;
}

int petrel_json(petrel_req_t *req, int status, json_t *body)
{
    return set_json(req, status, body);
}

int petrel_error(petrel_req_t *req, int status, const char *detail)
{
    return set_json(req, status, json_pack("{s:s}", "detail", detail != NULL ? detail : ""));
}

int petrel_error_json(petrel_req_t *req, int status, json_t *detail)
{
    return set_json(req, status,
                    json_pack("{s:o}", "detail", detail != NULL ? detail : json_null()));
}

int petrel_send(petrel_req_t *req, int status, const char *content_type, const void *body,
                size_t len)
{
    if (req->h2o == NULL || req->responded)
        return 0;
    req->status = status;
    req->ctlen = content_type != NULL ? strlen(content_type) : 0;
    req->content_type =
        content_type != NULL ? arena_copy_value(req, content_type, req->ctlen) : NULL;
    req->body = h2o_mem_alloc_pool(&req->h2o->pool, sizeof(h2o_iovec_t));
    req->body[0].base = h2o_mem_alloc_pool(&req->h2o->pool, len ? len : 1);
    memcpy(req->body[0].base, body, len);
    req->body[0].len = len;
    req->nbody = 1;
    req->body_len = len;
    req->has_response = true;
    return 0;
}

int petrel_empty(petrel_req_t *req, int status)
{
    if (req->h2o == NULL || req->responded)
        return 0;
    req->status = status;
    req->content_type = NULL;
    req->ctlen = 0;
    req->nbody = 0;
    req->body_len = 0;
    req->has_response = true;
    return 0;
}

/* A response header into space already reserved; h2o never writes through a header's name. */
static h2o_iovec_t reqid_name = {(char *)"x-request-id", sizeof("x-request-id") - 1};

static inline void hdr_push(h2o_headers_t *hs, h2o_iovec_t *name, const char *v, size_t len)
{
    h2o_header_t *slot = hs->entries + hs->size++;
    slot->name = name;
    slot->orig_name = NULL;
    slot->value = h2o_iovec_init(v, len);
}

void petrel__req_finish_response(petrel_req_t *req, int status, const char *ctype, size_t ctlen,
                                 h2o_iovec_t *bufs, size_t nbufs, size_t total)
{
    static h2o_generator_t gen = {NULL, NULL};
    h2o_req_t *h = req->h2o;
    if (h == NULL || req->responded)
        return;
    /* Counts the request and adds Server-Timing while headers can still be added. */
    petrel__log_timing_t timing;
    int64_t now = petrel_now_ns(); /* one reading for the metrics, Server-Timing and the log */
    bool timed = petrel__metrics_response(req, status, now, &timing);
    req->responded = true;
    h->res.status = status;
    h->res.reason = petrel__reason_phrase(status);
    /* RFC 9110 8.6: no Content-Length on a 204 (nor on a 304: it would describe the
     * representation, which we do not know here). */
    h->res.content_length = status == 204 || status == 304 ? SIZE_MAX : total;
    /* One reservation; entries written in place. */
    h2o_vector_reserve(&h->pool, &h->res.headers, h->res.headers.size + req->nhdrs + 3);
    if (ctype != NULL)
        hdr_push(&h->res.headers, &H2O_TOKEN_CONTENT_TYPE->buf, ctype, ctlen);
    hdr_push(&h->res.headers, &reqid_name, req->reqid, req->reqid_len);
    if (req->w->srv->server_hdr.len > 0 && !req->own_server)
        hdr_push(&h->res.headers, &H2O_TOKEN_SERVER->buf, req->w->srv->server_hdr.base,
                 req->w->srv->server_hdr.len);
    for (size_t i = 0; i < req->nhdrs; i++)
        h2o_add_header_by_str(&h->pool, &h->res.headers, req->hdrs[i].name, req->hdrs[i].nlen, 1,
                              NULL, req->hdrs[i].value, req->hdrs[i].vlen);
    h2o_start_response(h, &gen);
    /* h2o's HTTP/1 writer does not drop the body of a HEAD response itself:
     * keep Content-Length, send no bytes. */
    bool head = h->method.len == 4 && memcmp(h->method.base, "HEAD", 4) == 0;
    bool bodiless = head || status == 204 || status == 304;
    h2o_send(h, bufs, bodiless ? 0 : nbufs, H2O_SEND_STATE_FINAL);
    petrel__log_access(req->reqid, req->reqid_len, req->method, req->mlen, req->path, req->plen,
                       status, now - req->start_ns, req->w->index, now, timed ? &timing : NULL,
                       NULL);
}

void petrel__req_send(petrel_req_t *req)
{
    petrel__req_finish_response(req, req->status, req->content_type, req->ctlen, req->body,
                                req->nbody, req->body_len);
}

void petrel__req_send_error(petrel_req_t *req, int status, const char *detail)
{
    req->has_response = false;
    if (set_json(req, status, json_pack("{s:s}", "detail", detail)) == 0 && req->has_response)
        petrel__req_send(req);
}

const petrel_error_t *petrel_last_error(petrel_req_t *req)
{
    return req->has_error ? &req->last_error : NULL;
}

int petrel_set_error(petrel_req_t *req, int code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    req->last_error.code = code;
    req->last_error.http_status = petrel_err_http_status(code);
    req->last_error.message = arena_copy_value(req, buf, strlen(buf));
    req->last_error.detail = NULL;
    req->has_error = true;
    return code;
}
