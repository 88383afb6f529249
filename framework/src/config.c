/*
 * config.c - the declared-key configuration store: YAML file loading with
 * libyaml's document API, PETREL_* environment overrides, typed reads, and
 * the framework's own key table.
 *
 * Everything here runs once at startup on one thread, so the data structures
 * are plain arrays searched linearly; the server copies the values it needs
 * into its own structs.
 *
 * Precedence, lowest first: declared default, YAML file, environment,
 * petrel_config_set() calls made afterwards (CLI flags).
 *
 * Environment mapping: PETREL_ + the path upper-cased with '.' -> '_'. A "*"
 * segment matches a section name of one or more characters, which may contain
 * underscores and is lower-cased ("PETREL_UPSTREAMS_WEATHER_API_BASE_URL" ->
 * "upstreams.weather_api.base_url"). When several declared keys match, a key
 * without wildcards wins, then the one with the longest fixed text. Variables
 * that start with PETREL_ but match no key are errors, except the
 * non-configuration variables used by scripts and tests: PETREL_CONFIG (the
 * config file path, read by the app), PETREL_TEST_* and PETREL_BENCH_*.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include <petrel/config.h>

#include "db_int.h"
#include "http_int.h"
#include "limits_int.h"

extern char **environ;

/* Most "*" segments one key may have; the environment matcher records one
 * name per segment. */
#define CFG_MAX_WILD 8

/* A parsed value; which member is meaningful depends on the key's type. */
struct cfg_value {
    char *s;
    int64_t i;
    double f;
    bool b;
    char **list; /* NULL-terminated so an empty list is still a valid array */
    size_t n;
};

struct cfg_decl {
    const petrel_cfg_key_t *key;
    size_t nseg;
    size_t nwild;
    size_t fixed_len; /* characters outside "*" segments, to rank env matches */
    char *env;        /* upper-snake path with '*' segments kept, "UPSTREAMS_*_BASE_URL" */
    struct cfg_value dflt;
};

struct cfg_entry {
    char *path; /* concrete, wildcards replaced by names */
    struct cfg_decl *decl;
    struct cfg_value v;
};

/* Everything a load may change, so a failed load can be rolled back. */
struct cfg_state {
    struct cfg_entry *entries;
    size_t nentries;
    /* Concrete paths of map sections seen in a file ("upstreams.weather"), so
     * a section written as `weather: {}` still shows up in map_names(). */
    char **sections;
    size_t nsections;
};

struct petrel_config {
    struct cfg_decl *decls;
    size_t ndecls;
    struct cfg_state st;
    /* Arrays handed out by petrel_config_map_names(); they stay valid until
     * petrel_config_free(), as the header promises. Held through a pointer
     * because map_names() takes a const config yet must record them. */
    struct cfg_given *given;
};

struct cfg_given {
    char ***arrays;
    size_t n;
};

/* Non-configuration PETREL_* variables; a trailing '*' means "prefix". */
static const char *const cfg_env_allow[] = {"PETREL_CONFIG", "PETREL_TEST_*", "PETREL_BENCH_*"};

static const char *const cfg_log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const cfg_tls_versions[] = {"TLSv1.2", "TLSv1.3", NULL};

static const petrel_cfg_key_t cfg_framework_keys[] = {
    {"server.host", PETREL_CFG_STR, "127.0.0.1", "address to listen on", 0, 0, NULL},
    {"server.port", PETREL_CFG_INT, "8000", "TCP port to listen on (0 = ephemeral)", 0, 65535,
     NULL},
    {"server.workers", PETREL_CFG_INT, "0",
     "worker threads, each with its own loop (0 = number of CPUs)", 0, 256, NULL},
    {"server.backlog", PETREL_CFG_INT, "1024", "listen(2) backlog of each worker's socket", 1,
     65535, NULL},
    {"server.max_connections", PETREL_CFG_INT, "10000",
     "open client connections allowed, process-wide", 1, 1000000, NULL},
    {"server.max_body_bytes", PETREL_CFG_INT, "1048576",
     "largest request body accepted; larger bodies get 413", 0, 1073741824, NULL},
    {"server.max_header_bytes", PETREL_CFG_INT, "16384",
     "largest request line + headers accepted; larger requests get 431", 1024, 409600, NULL},
    {"server.request_timeout_ms", PETREL_CFG_INT, "30000",
     "handler deadline (0 = none; a route's timeout_ms overrides)", 0, 86400000, NULL},
    {"server.io_timeout_ms", PETREL_CFG_INT, "30000",
     "default timeout of socket waits that pass PETREL_TIMEOUT_DEFAULT", 1, 86400000, NULL},
    {"server.keepalive_timeout_ms", PETREL_CFG_INT, "10000",
     "idle time before a keep-alive client connection is closed", 0, 86400000, NULL},
    {"server.startup_timeout_s", PETREL_CFG_FLOAT, "60",
     "time the startup hooks may take before the server gives up (0 = none)", 0, 3600, NULL},
    {"server.shutdown_timeout_s", PETREL_CFG_FLOAT, "10",
     "on SIGTERM/SIGINT, time in-flight requests and the work queue get to finish", 0, 3600, NULL},
    {"server.fiber_stack_kb", PETREL_CFG_INT, "64", "stack size of each fiber, in KiB", 16, 8192,
     NULL},
    {"server.fiber_pool_max", PETREL_CFG_INT, "1024", "idle fiber stacks kept per worker", 0,
     1000000, NULL},
    {"server.slow_callback_ms", PETREL_CFG_INT, "100",
     "log a fiber that runs this long without awaiting (0 = off)", 0, 86400000, NULL},
    {"server.name", PETREL_CFG_STR, "petrel", "Server response header (empty = none)", 0, 0, NULL},
    {"server.http2", PETREL_CFG_BOOL, "true", "offer HTTP/2 (ALPN h2 with TLS)", 0, 0, NULL},
    {"server.tls.cert_file", PETREL_CFG_STR, NULL, "PEM certificate chain; set to enable TLS", 0, 0,
     NULL},
    {"server.tls.key_file", PETREL_CFG_STR, NULL, "PEM private key for server.tls.cert_file", 0, 0,
     NULL},
    {"server.tls.min_version", PETREL_CFG_STR, "TLSv1.2", "oldest TLS version accepted", 0, 0,
     cfg_tls_versions},
    {"server.metrics", PETREL_CFG_BOOL, "true",
     "serve Prometheus metrics at GET /metrics and count requests per route", 0, 0, NULL},
    {"server.server_timing", PETREL_CFG_BOOL, "false",
     "add a Server-Timing header (run, wait per await kind, total) to every response", 0, 0, NULL},
    {"server.docs_assets_dir", PETREL_CFG_STR, "web/node_modules",
     "directory holding the swagger-ui-dist and redoc npm packages served by /docs and /redoc", 0,
     0, NULL},
    {"debug", PETREL_CFG_BOOL, "false", "debug mode: enables /debug/tasks and verbose errors", 0, 0,
     NULL},
    {"log.level", PETREL_CFG_STR, "info", "lowest level written", 0, 0, cfg_log_levels},
    {"log.access", PETREL_CFG_BOOL, "true", "write one access record per request", 0, 0, NULL},
};

/* ---- small helpers ---- */

static void cfg_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *cfg_strndup(const char *s, size_t len)
{
    char *d = petrel_xmalloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* Quotes a user-supplied value for an error message: escapes what would make
 * the one-line message ambiguous and truncates long values. */
static void cfg_quote(const char *s, char *out, size_t outlen)
{
    size_t o = 0, i;
    out[o++] = '"';
    for (i = 0; s[i] != '\0' && o + 8 < outlen && i < 60; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (s[i] != '\0' && o + 5 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* Prints a number the shortest way that reads back exactly, so bounds appear
 * as "1073741824" and "0.5" rather than "1.07374e+09" or "0.50000000000000000". */
static void cfg_fmt_num(double d, char *out, size_t outlen)
{
    (void)snprintf(out, outlen, "%.15g", d);
    if (strtod(out, NULL) != d)
        (void)snprintf(out, outlen, "%.17g", d);
}

static void cfg_value_dispose(struct cfg_value *v)
{
    free(v->s);
    if (v->list != NULL) {
        for (size_t i = 0; i < v->n; i++)
            free(v->list[i]);
        free(v->list);
    }
    memset(v, 0, sizeof(*v));
}

static void cfg_value_copy(struct cfg_value *dst, const struct cfg_value *src)
{
    *dst = *src;
    dst->s = petrel_xstrdup(src->s);
    if (src->list != NULL) {
        dst->list = petrel_xcalloc(src->n + 1, sizeof(char *));
        for (size_t i = 0; i < src->n; i++)
            dst->list[i] = petrel_xstrdup(src->list[i]);
    }
}

static size_t cfg_count_segs(const char *path)
{
    size_t n = 1;
    for (const char *p = path; *p != '\0'; p++)
        n += *p == '.';
    return n;
}

/* Returns the i-th dot-separated segment of path and its length. */
static const char *cfg_seg(const char *path, size_t i, size_t *len)
{
    const char *p = path;
    for (; i > 0; i--) {
        p = strchr(p, '.');
        if (p == NULL)
            return NULL;
        p++;
    }
    const char *e = strchr(p, '.');
    *len = e != NULL ? (size_t)(e - p) : strlen(p);
    return p;
}

/* ---- value parsing: one function per type, shared by YAML, env and set() ---- */

static int cfg_parse_int(const struct cfg_decl *d, const char *text, int64_t *out, char *msg,
                         size_t msglen)
{
    char q[96];
    const petrel_cfg_key_t *k = d->key;
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    /* strtoll would skip leading spaces and accept "12abc" up to the
     * letters; insisting on digits only keeps "1.5" and "12abc" errors. */
    bool digits = *p != '\0';
    for (; *p != '\0'; p++)
        digits = digits && isdigit((unsigned char)*p);
    if (!digits) {
        cfg_quote(text, q, sizeof(q));
        cfg_err(msg, msglen, "expected an integer, got %s", q);
        return -1;
    }
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    bool bounded = !(k->min == 0 && k->max == 0);
    if (errno == ERANGE || (bounded && ((double)v < k->min || (double)v > k->max))) {
        char lo[32], hi[32];
        cfg_fmt_num(k->min, lo, sizeof(lo));
        cfg_fmt_num(k->max, hi, sizeof(hi));
        if (errno == ERANGE && !bounded)
            cfg_err(msg, msglen, "%s is out of the 64-bit integer range", text);
        else
            cfg_err(msg, msglen, "%s is out of range %s..%s", text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int cfg_parse_float(const struct cfg_decl *d, const char *text, double *out, char *msg,
                           size_t msglen)
{
    char q[96];
    const petrel_cfg_key_t *k = d->key;
    char *end = NULL;
    const char *p = text + (*text == '+' || *text == '-');
    /* strtod also takes "inf", "nan" and hex floats; none belongs in a
     * config file, so the text must start like a decimal number. */
    bool ok = isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]));
    double v = 0;
    if (ok) {
        errno = 0;
        v = strtod(text, &end);
        ok = *end == '\0' && errno == 0 && isfinite(v) && strpbrk(text, "xX") == NULL;
    }
    if (!ok) {
        cfg_quote(text, q, sizeof(q));
        cfg_err(msg, msglen, "expected a number, got %s", q);
        return -1;
    }
    if (!(k->min == 0 && k->max == 0) && (v < k->min || v > k->max)) {
        char lo[32], hi[32], val[32];
        cfg_fmt_num(k->min, lo, sizeof(lo));
        cfg_fmt_num(k->max, hi, sizeof(hi));
        cfg_fmt_num(v, val, sizeof(val));
        cfg_err(msg, msglen, "%s is out of range %s..%s", val, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int cfg_parse_bool(const char *text, bool *out, char *msg, size_t msglen)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    char q[96];
    cfg_quote(text, q, sizeof(q));
    cfg_err(msg, msglen, "expected a boolean (true/false, yes/no, on/off, 1/0), got %s", q);
    return -1;
}

static int cfg_check_choice(const struct cfg_decl *d, const char *text, char *msg, size_t msglen)
{
    const char *const *c = d->key->choices;
    if (c == NULL)
        return 0;
    for (size_t i = 0; c[i] != NULL; i++) {
        if (strcmp(c[i], text) == 0)
            return 0;
    }
    char q[96];
    cfg_quote(text, q, sizeof(q));
    size_t o = (size_t)snprintf(msg, msglen, "%s is not one of ", q);
    for (size_t i = 0; c[i] != NULL && o < msglen; i++)
        o += (size_t)snprintf(msg + o, msglen - o, "%s%s", i > 0 ? ", " : "", c[i]);
    return -1;
}

/* Splits a comma-separated list, trimming blanks around items and dropping
 * empty ones, so "a, b," and "a,b" mean the same. */
static void cfg_split_list(const char *text, struct cfg_value *v)
{
    size_t cap = 1;
    for (const char *p = text; *p != '\0'; p++)
        cap += *p == ',';
    v->list = petrel_xcalloc(cap + 1, sizeof(char *));
    v->n = 0;
    const char *p = text;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        const char *s = p;
        while (len > 0 && isspace((unsigned char)*s)) {
            s++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)s[len - 1]))
            len--;
        if (len > 0)
            v->list[v->n++] = cfg_strndup(s, len);
        if (e == NULL)
            break;
        p = e + 1;
    }
}

/*
 * Parses `text` for decl's type into *out. A NULL text means "null" (a YAML
 * null or an empty environment value): for str and strlist that unsets the
 * key, which the caller sees as *unset = true.
 */
static int cfg_parse_text(const struct cfg_decl *d, const char *text, struct cfg_value *out,
                          bool *unset, char *msg, size_t msglen)
{
    struct cfg_value v = {0};
    int ret = -1;
    *unset = false;
    if (text == NULL ||
        (*text == '\0' && (d->key->type == PETREL_CFG_STR || d->key->type == PETREL_CFG_STRLIST))) {
        if (d->key->type == PETREL_CFG_STR || d->key->type == PETREL_CFG_STRLIST) {
            *unset = true;
            return 0;
        }
        static const char *const what[] = {"", "", "an integer", "a number", "a boolean", ""};
        cfg_err(msg, msglen, "expected %s, got null", what[d->key->type]);
        return -1;
    }
    switch (d->key->type) {
    case PETREL_CFG_STR:
        if (cfg_check_choice(d, text, msg, msglen) != 0)
            goto out;
        v.s = petrel_xstrdup(text);
        break;
    case PETREL_CFG_INT:
        if (cfg_parse_int(d, text, &v.i, msg, msglen) != 0)
            goto out;
        break;
    case PETREL_CFG_FLOAT:
        if (cfg_parse_float(d, text, &v.f, msg, msglen) != 0)
            goto out;
        break;
    case PETREL_CFG_BOOL:
        if (cfg_parse_bool(text, &v.b, msg, msglen) != 0)
            goto out;
        break;
    case PETREL_CFG_STRLIST:
        cfg_split_list(text, &v);
        for (size_t i = 0; i < v.n; i++) {
            if (cfg_check_choice(d, v.list[i], msg, msglen) != 0)
                goto out;
        }
        break;
    }
    *out = v;
    memset(&v, 0, sizeof(v));
    ret = 0;
out:
    cfg_value_dispose(&v);
    return ret;
}

/* ---- declarations ---- */

static bool cfg_path_valid(const char *path)
{
    size_t seglen = 0;
    bool star = false;
    for (const char *p = path;; p++) {
        if (*p == '.' || *p == '\0') {
            if (seglen == 0 || (star && seglen != 1))
                return false;
            if (*p == '\0')
                return true;
            seglen = 0;
            star = false;
            continue;
        }
        if (*p == '*')
            star = true;
        else if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
        seglen++;
    }
}

/* True when the pattern's first `n` segments equal the other pattern's: used
 * to refuse a key that is also the parent of another ("a.b" and "a.b.c"). */
static bool cfg_pattern_prefix(const char *a, const char *b)
{
    size_t la = strlen(a);
    return strncmp(a, b, la) == 0 && b[la] == '.';
}

int petrel_config_declare(petrel_config_t *cfg, const petrel_cfg_key_t *keys, size_t n)
{
    size_t first = cfg->ndecls;
    char msg[256];
    cfg->decls = petrel_xrealloc(cfg->decls, (cfg->ndecls + n) * sizeof(*cfg->decls));
    for (size_t i = 0; i < n; i++) {
        const petrel_cfg_key_t *k = &keys[i];
        struct cfg_decl *d = &cfg->decls[cfg->ndecls];
        if (k->path == NULL || !cfg_path_valid(k->path) || k->type < PETREL_CFG_STR ||
            k->type > PETREL_CFG_STRLIST || k->min > k->max)
            goto fail;
        memset(d, 0, sizeof(*d));
        d->key = k;
        d->nseg = cfg_count_segs(k->path);
        d->env = petrel_xstrdup(k->path);
        for (char *p = d->env; *p != '\0'; p++) {
            if (*p == '*')
                d->nwild++;
            else
                d->fixed_len++;
            /* Paths are ASCII [a-z0-9_.*] (checked above), so this is toupper. */
            if (*p == '.')
                *p = '_';
            else if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        }
        if (d->nwild > CFG_MAX_WILD) {
            free(d->env);
            goto fail;
        }
        /* Two keys that collide in the environment ("a.b_c" and "a_b.c") could
         * never be told apart there, so they are refused as duplicates. */
        for (size_t j = 0; j < cfg->ndecls; j++) {
            const char *o = cfg->decls[j].key->path;
            if (strcmp(o, k->path) == 0 || strcmp(cfg->decls[j].env, d->env) == 0 ||
                cfg_pattern_prefix(o, k->path) || cfg_pattern_prefix(k->path, o)) {
                free(d->env);
                goto fail;
            }
        }
        bool unset;
        if (k->dflt != NULL &&
            cfg_parse_text(d, k->dflt, &d->dflt, &unset, msg, sizeof(msg)) != 0) {
            free(d->env);
            goto fail;
        }
        cfg->ndecls++;
    }
    return 0;
fail:
    /* All-or-nothing: drop the keys of this call that were already added. */
    while (cfg->ndecls > first) {
        struct cfg_decl *d = &cfg->decls[--cfg->ndecls];
        free(d->env);
        cfg_value_dispose(&d->dflt);
    }
    return PETREL_EINVAL;
}

petrel_config_t *petrel_config_new(void)
{
    petrel_config_t *cfg = petrel_xcalloc(1, sizeof(*cfg));
    cfg->given = petrel_xcalloc(1, sizeof(*cfg->given));
    int r = petrel_config_declare(cfg, cfg_framework_keys,
                                  sizeof(cfg_framework_keys) / sizeof(cfg_framework_keys[0]));
    PETREL_ASSERT(r == 0);
    /* Every module's keys are known to every config, so one file (config/test.yaml, a
     * production file) serves apps that use a module and apps that do not. */
    petrel__limits_declare(cfg); /* semaphores.*, rate_limits.*, queue.*, pools */
    r = petrel__db_declare(cfg); /* database.* */
    PETREL_ASSERT(r == 0);
    r = petrel__http_declare(cfg); /* upstreams.* */
    PETREL_ASSERT(r == 0);
    return cfg;
}

static void cfg_state_dispose(struct cfg_state *st)
{
    for (size_t i = 0; i < st->nentries; i++) {
        free(st->entries[i].path);
        cfg_value_dispose(&st->entries[i].v);
    }
    free(st->entries);
    for (size_t i = 0; i < st->nsections; i++)
        free(st->sections[i]);
    free(st->sections);
    memset(st, 0, sizeof(*st));
}

static void cfg_state_copy(struct cfg_state *dst, const struct cfg_state *src)
{
    dst->nentries = src->nentries;
    dst->entries = petrel_xcalloc(src->nentries, sizeof(*dst->entries));
    for (size_t i = 0; i < src->nentries; i++) {
        dst->entries[i].path = petrel_xstrdup(src->entries[i].path);
        dst->entries[i].decl = src->entries[i].decl;
        cfg_value_copy(&dst->entries[i].v, &src->entries[i].v);
    }
    dst->nsections = src->nsections;
    dst->sections = petrel_xcalloc(src->nsections, sizeof(char *));
    for (size_t i = 0; i < src->nsections; i++)
        dst->sections[i] = petrel_xstrdup(src->sections[i]);
}

void petrel_config_free(petrel_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->ndecls; i++) {
        free(cfg->decls[i].env);
        cfg_value_dispose(&cfg->decls[i].dflt);
    }
    free(cfg->decls);
    cfg_state_dispose(&cfg->st);
    for (size_t i = 0; i < cfg->given->n; i++) {
        for (char **p = cfg->given->arrays[i]; *p != NULL; p++)
            free(*p);
        free(cfg->given->arrays[i]);
    }
    free(cfg->given->arrays);
    free(cfg->given);
    free(cfg);
}

/* ---- matching concrete paths against declared patterns ---- */

/* Section names must survive the trip through an environment variable name
 * and must not contain the path separator. */
static bool cfg_name_valid(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/*
 * Compares the first `nseg` segments of a concrete path with a pattern.
 * Returns the number of wildcard segments used, or -1 on mismatch.
 */
static int cfg_match_segs(const char *pattern, const char *path, size_t nseg)
{
    int wild = 0;
    for (size_t i = 0; i < nseg; i++) {
        size_t pl, cl;
        const char *ps = cfg_seg(pattern, i, &pl);
        const char *cs = cfg_seg(path, i, &cl);
        if (ps == NULL || cs == NULL)
            return -1;
        if (pl == 1 && *ps == '*') {
            if (!cfg_name_valid(cs, cl))
                return -1;
            wild++;
        } else if (pl != cl || memcmp(ps, cs, pl) != 0) {
            return -1;
        }
    }
    return wild;
}

/* The declared key for a concrete path, preferring literal matches. */
static struct cfg_decl *cfg_find_decl(const petrel_config_t *cfg, const char *path)
{
    size_t nseg = cfg_count_segs(path);
    struct cfg_decl *best = NULL;
    int best_wild = 0;
    for (size_t i = 0; i < cfg->ndecls; i++) {
        struct cfg_decl *d = &cfg->decls[i];
        if (d->nseg != nseg)
            continue;
        int w = cfg_match_segs(d->key->path, path, nseg);
        if (w >= 0 && (best == NULL || w < best_wild)) {
            best = d;
            best_wild = w;
        }
    }
    return best;
}

/* True when `path` is a proper prefix of some declared key; *wild is set when
 * every such key reaches the last segment of path through a wildcard. */
static bool cfg_is_parent(const petrel_config_t *cfg, const char *path, bool *wild)
{
    size_t nseg = cfg_count_segs(path);
    bool found = false;
    *wild = true;
    for (size_t i = 0; i < cfg->ndecls; i++) {
        const struct cfg_decl *d = &cfg->decls[i];
        if (d->nseg <= nseg || cfg_match_segs(d->key->path, path, nseg) < 0)
            continue;
        size_t l = 0;
        const char *s = cfg_seg(d->key->path, nseg - 1, &l);
        found = true;
        if (!(l == 1 && *s == '*'))
            *wild = false;
    }
    return found;
}

static struct cfg_entry *cfg_find_entry(const struct cfg_state *st, const char *path)
{
    for (size_t i = 0; i < st->nentries; i++) {
        if (strcmp(st->entries[i].path, path) == 0)
            return &st->entries[i];
    }
    return NULL;
}

/* Stores a parsed value (stealing its contents), or removes the entry when
 * `unset`, so the declared default shows through again. */
static void cfg_store(struct cfg_state *st, struct cfg_decl *d, const char *path,
                      struct cfg_value *v, bool unset)
{
    struct cfg_entry *e = cfg_find_entry(st, path);
    if (unset) {
        if (e != NULL) {
            free(e->path);
            cfg_value_dispose(&e->v);
            *e = st->entries[--st->nentries];
        }
        return;
    }
    if (e == NULL) {
        st->entries = petrel_xrealloc(st->entries, (st->nentries + 1) * sizeof(*st->entries));
        e = &st->entries[st->nentries++];
        e->path = petrel_xstrdup(path);
        e->decl = d;
    } else {
        cfg_value_dispose(&e->v);
    }
    e->v = *v;
    memset(v, 0, sizeof(*v));
}

static void cfg_add_section(struct cfg_state *st, const char *path)
{
    for (size_t i = 0; i < st->nsections; i++) {
        if (strcmp(st->sections[i], path) == 0)
            return;
    }
    st->sections = petrel_xrealloc(st->sections, (st->nsections + 1) * sizeof(char *));
    st->sections[st->nsections++] = petrel_xstrdup(path);
}

/* ---- YAML ---- */

struct cfg_yaml {
    petrel_config_t *cfg;
    struct cfg_state *st;
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t errlen;
};

static bool cfg_yaml_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static const char *cfg_yaml_kind(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE ? "a mapping" : "a list";
}

static int cfg_yaml_leaf(struct cfg_yaml *y, struct cfg_decl *d, const char *path, yaml_node_t *n)
{
    static const char *const what[] = {"",         "a string",  "an integer",
                                       "a number", "a boolean", "a list of strings"};
    char msg[512];
    struct cfg_value v = {0};
    bool unset = false;
    size_t line = n->start_mark.line + 1;
    int ret = PETREL_ECONFIG;

    if (d->key->type == PETREL_CFG_STRLIST && n->type == YAML_SEQUENCE_NODE) {
        yaml_node_item_t *it = n->data.sequence.items.start;
        size_t cnt = (size_t)(n->data.sequence.items.top - it);
        v.list = petrel_xcalloc(cnt + 1, sizeof(char *));
        for (; it < n->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(y->doc, *it);
            if (item->type != YAML_SCALAR_NODE || cfg_yaml_is_null(item)) {
                cfg_err(y->err, y->errlen, "%s:%zu: %s: expected a list of strings", y->file,
                        (size_t)item->start_mark.line + 1, path);
                goto out;
            }
            const char *s = (const char *)item->data.scalar.value;
            if (cfg_check_choice(d, s, msg, sizeof(msg)) != 0) {
                cfg_err(y->err, y->errlen, "%s:%zu: %s: %s", y->file,
                        (size_t)item->start_mark.line + 1, path, msg);
                goto out;
            }
            v.list[v.n++] = petrel_xstrdup(s);
        }
    } else if (n->type != YAML_SCALAR_NODE) {
        cfg_err(y->err, y->errlen, "%s:%zu: %s: expected %s, got %s", y->file, line, path,
                what[d->key->type], cfg_yaml_kind(n));
        goto out;
    } else {
        const char *text = cfg_yaml_is_null(n) ? NULL : (const char *)n->data.scalar.value;
        if (cfg_parse_text(d, text, &v, &unset, msg, sizeof(msg)) != 0) {
            cfg_err(y->err, y->errlen, "%s:%zu: %s: %s", y->file, line, path, msg);
            goto out;
        }
    }
    cfg_store(y->st, d, path, &v, unset);
    ret = 0;
out:
    cfg_value_dispose(&v);
    return ret;
}

static int cfg_yaml_mapping(struct cfg_yaml *y, const char *prefix, yaml_node_t *map)
{
    int ret = 0;
    char *path = NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(y->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(y->doc, pr->value);
        size_t line = kn->start_mark.line + 1;
        ret = PETREL_ECONFIG;
        if (kn->type != YAML_SCALAR_NODE) {
            cfg_err(y->err, y->errlen, "%s:%zu: %s%sexpected a string key, got %s", y->file, line,
                    prefix, *prefix != '\0' ? ": " : "", cfg_yaml_kind(kn));
            goto out;
        }
        const char *k = (const char *)kn->data.scalar.value;
        free(path);
        size_t plen = strlen(prefix) + strlen(k) + 2;
        path = petrel_xmalloc(plen);
        (void)snprintf(path, plen, "%s%s%s", prefix, *prefix != '\0' ? "." : "", k);
        /* libyaml keeps duplicate keys; the second would silently win, which
         * hides mistakes, so they are reported. */
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pr; q++) {
            yaml_node_t *qk = yaml_document_get_node(y->doc, q->key);
            if (qk->type == YAML_SCALAR_NODE &&
                strcmp((const char *)qk->data.scalar.value, k) == 0) {
                cfg_err(y->err, y->errlen, "%s:%zu: %s: duplicate key", y->file, line, path);
                goto out;
            }
        }
        bool wild = false;
        bool parent = strchr(k, '.') == NULL && cfg_is_parent(y->cfg, path, &wild);
        struct cfg_decl *d = strchr(k, '.') == NULL ? cfg_find_decl(y->cfg, path) : NULL;
        if (parent && (vn->type == YAML_MAPPING_NODE || d == NULL)) {
            if (cfg_yaml_is_null(vn))
                continue; /* "section:" with nothing under it */
            if (vn->type != YAML_MAPPING_NODE) {
                cfg_err(y->err, y->errlen, "%s:%zu: %s: expected a mapping", y->file,
                        (size_t)vn->start_mark.line + 1, path);
                goto out;
            }
            if (wild)
                cfg_add_section(y->st, path);
            if ((ret = cfg_yaml_mapping(y, path, vn)) != 0)
                goto out;
        } else if (d != NULL) {
            if ((ret = cfg_yaml_leaf(y, d, path, vn)) != 0)
                goto out;
        } else {
            cfg_err(y->err, y->errlen, "%s:%zu: %s: unknown key", y->file, line, path);
            goto out;
        }
    }
    ret = 0;
out:
    free(path);
    return ret;
}

static int cfg_load_file(petrel_config_t *cfg, struct cfg_state *st, const char *file, char *err,
                         size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_parser = false, have_doc = false;
    int ret = PETREL_ECONFIG;
    FILE *fp = fopen(file, "rb");
    if (fp == NULL) {
        cfg_err(err, errlen, "%s: cannot open: %s", file, petrel_strerror(-errno));
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        cfg_err(err, errlen, "%s: cannot initialise the YAML parser", file);
        goto out;
    }
    have_parser = true;
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        const char *ctx = parser.context;
        cfg_err(err, errlen, "%s:%zu: YAML syntax error: %s%s%s%s", file,
                (size_t)parser.problem_mark.line + 1,
                parser.problem != NULL ? parser.problem : "malformed document",
                ctx != NULL ? " (" : "", ctx != NULL ? ctx : "", ctx != NULL ? ")" : "");
        goto out;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL && !cfg_yaml_is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            cfg_err(err, errlen, "%s:%zu: expected a mapping at the top level", file,
                    (size_t)root->start_mark.line + 1);
            goto out;
        }
        struct cfg_yaml y = {cfg, st, &doc, file, err, errlen};
        if (cfg_yaml_mapping(&y, "", root) != 0)
            goto out;
        /* A second document would be ignored silently; say so instead. */
        yaml_document_t doc2;
        if (!yaml_parser_load(&parser, &doc2)) {
            cfg_err(err, errlen, "%s:%zu: YAML syntax error: %s", file,
                    (size_t)parser.problem_mark.line + 1,
                    parser.problem != NULL ? parser.problem : "malformed document");
            goto out;
        }
        yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
        size_t line2 = r2 != NULL ? r2->start_mark.line + 1 : 0;
        yaml_document_delete(&doc2);
        if (r2 != NULL) {
            cfg_err(err, errlen, "%s:%zu: only one YAML document is allowed", file, line2);
            goto out;
        }
    }
    ret = 0;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    if (fp != NULL)
        (void)fclose(fp);
    return ret;
}

/* ---- environment ---- */

/* A section name found in an environment variable name. */
struct cfg_capture {
    const char *s;
    size_t len;
};

/* Matches env text against an upper-snake pattern in which "*" stands for a
 * non-empty name of [A-Z0-9_]; records each name in caps. */
static bool cfg_env_match(const char *pat, const char *s, struct cfg_capture *caps, size_t ncap)
{
    for (; *pat != '*'; pat++, s++) {
        if (*pat != *s)
            return false;
        if (*pat == '\0')
            return true;
    }
    if (ncap == CFG_MAX_WILD)
        return false;
    /* Shortest name first; a longer one is tried when the rest of the
     * pattern fails to match, so names may contain underscores. */
    for (size_t len = 1; s[len - 1] != '\0'; len++) {
        unsigned char c = (unsigned char)s[len - 1];
        if (!(isupper(c) || isdigit(c) || c == '_'))
            return false;
        caps[ncap].s = s;
        caps[ncap].len = len;
        if (cfg_env_match(pat + 1, s + len, caps, ncap + 1))
            return true;
    }
    return false;
}

/* Builds the concrete path from a declared pattern and the captured names,
 * lower-cased. Returns false when it does not fit. */
static bool cfg_env_path(const char *pattern, const struct cfg_capture *caps, char *out,
                         size_t outlen)
{
    size_t o = 0, c = 0;
    for (const char *p = pattern; *p != '\0'; p++) {
        if (*p == '*' && c == CFG_MAX_WILD)
            return false;
        size_t len = *p == '*' ? caps[c].len : 1;
        if (o + len >= outlen)
            return false;
        if (*p == '*') {
            for (size_t i = 0; i < len; i++)
                out[o++] = (char)tolower((unsigned char)caps[c].s[i]);
            c++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return true;
}

static bool cfg_env_allowed(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(cfg_env_allow) / sizeof(cfg_env_allow[0]); i++) {
        const char *a = cfg_env_allow[i];
        size_t al = strlen(a);
        if (a[al - 1] == '*' ? (len >= al - 1 && memcmp(name, a, al - 1) == 0)
                             : (len == al && memcmp(name, a, al) == 0))
            return true;
    }
    return false;
}

static int cfg_load_env(petrel_config_t *cfg, struct cfg_state *st, char *const *envp, char *err,
                        size_t errlen)
{
    char path[512], tmp[512], msg[512];
    struct cfg_capture caps[CFG_MAX_WILD] = {{NULL, 0}};
    int ret = PETREL_ECONFIG;
    char *name = NULL;
    for (; *envp != NULL; envp++) {
        const char *eq = strchr(*envp, '=');
        if (strncmp(*envp, "PETREL_", 7) != 0 || eq == NULL)
            continue;
        size_t nlen = (size_t)(eq - *envp);
        free(name);
        name = cfg_strndup(*envp, nlen);
        const char *value = eq + 1;
        struct cfg_decl *best = NULL;
        for (size_t i = 0; i < cfg->ndecls; i++) {
            struct cfg_decl *d = &cfg->decls[i];
            if (best != NULL && (d->nwild > best->nwild ||
                                 (d->nwild == best->nwild && d->fixed_len <= best->fixed_len)))
                continue;
            if (!cfg_env_match(d->env, name + 7, caps, 0) ||
                !cfg_env_path(d->key->path, caps, tmp, sizeof(tmp)))
                continue;
            memcpy(path, tmp, sizeof(path));
            best = d;
        }
        if (best == NULL) {
            if (cfg_env_allowed(name, nlen))
                continue;
            cfg_err(err, errlen, "environment: %s: does not match any configuration key", name);
            goto out;
        }
        struct cfg_value v = {0};
        bool unset;
        if (cfg_parse_text(best, value, &v, &unset, msg, sizeof(msg)) != 0) {
            cfg_err(err, errlen, "environment: %s: %s", name, msg);
            goto out;
        }
        cfg_store(st, best, path, &v, unset);
    }
    ret = 0;
out:
    free(name);
    return ret;
}

int petrel_config_load(petrel_config_t *cfg, const char *file, char *const *envp, char *err,
                       size_t errlen)
{
    /* Work on a copy so that a failed load leaves cfg as it was. */
    struct cfg_state st;
    int ret;
    cfg_state_copy(&st, &cfg->st);
    if (file != NULL && (ret = cfg_load_file(cfg, &st, file, err, errlen)) != 0)
        goto out;
    if ((ret = cfg_load_env(cfg, &st, envp != NULL ? envp : environ, err, errlen)) != 0)
        goto out;
    cfg_state_dispose(&cfg->st);
    cfg->st = st;
    memset(&st, 0, sizeof(st));
out:
    cfg_state_dispose(&st);
    return ret;
}

int petrel_config_set(petrel_config_t *cfg, const char *path, const char *value, char *err,
                      size_t errlen)
{
    char msg[512];
    struct cfg_decl *d = cfg_find_decl(cfg, path);
    if (d == NULL) {
        cfg_err(err, errlen, "%s: unknown key", path);
        return PETREL_ECONFIG;
    }
    struct cfg_value v = {0};
    bool unset;
    if (cfg_parse_text(d, value, &v, &unset, msg, sizeof(msg)) != 0) {
        cfg_err(err, errlen, "%s: %s", path, msg);
        return PETREL_ECONFIG;
    }
    cfg_store(&cfg->st, d, path, &v, unset);
    return 0;
}

/* ---- reads ---- */

/* Reading an undeclared key or with the wrong type is a bug in the caller,
 * not a configuration error, so it stops the program where it is found. */
static const struct cfg_value *cfg_read(const petrel_config_t *cfg, const char *path,
                                        petrel_cfg_type_t type)
{
    const struct cfg_entry *e = cfg_find_entry(&cfg->st, path);
    const struct cfg_decl *d = e != NULL ? e->decl : cfg_find_decl(cfg, path);
    if (d == NULL) {
        (void)fprintf(stderr, "petrel: configuration key \"%s\" was read but never declared\n",
                      path);
        abort();
    }
    if (d->key->type != type) {
        (void)fprintf(stderr, "petrel: configuration key \"%s\" read with the wrong type\n", path);
        abort();
    }
    return e != NULL ? &e->v : &d->dflt;
}

const char *petrel_config_str(const petrel_config_t *cfg, const char *path)
{
    return cfg_read(cfg, path, PETREL_CFG_STR)->s;
}

int64_t petrel_config_int(const petrel_config_t *cfg, const char *path)
{
    return cfg_read(cfg, path, PETREL_CFG_INT)->i;
}

double petrel_config_float(const petrel_config_t *cfg, const char *path)
{
    return cfg_read(cfg, path, PETREL_CFG_FLOAT)->f;
}

bool petrel_config_bool(const petrel_config_t *cfg, const char *path)
{
    return cfg_read(cfg, path, PETREL_CFG_BOOL)->b;
}

const char *const *petrel_config_strlist(const petrel_config_t *cfg, const char *path, size_t *n)
{
    static const char *const empty[] = {NULL};
    const struct cfg_value *v = cfg_read(cfg, path, PETREL_CFG_STRLIST);
    *n = v->n;
    return v->list != NULL ? (const char *const *)v->list : empty;
}

bool petrel_config_isset(const petrel_config_t *cfg, const char *path)
{
    return cfg_find_entry(&cfg->st, path) != NULL;
}

/* Adds the segment after `prefix` in `path` to names, once; the caller has
 * checked that this segment is a section name. */
static void cfg_collect_name(const char *path, const char *prefix, size_t nprefix, char ***names,
                             size_t *n)
{
    size_t plen = strlen(prefix), l;
    if (strncmp(path, prefix, plen) != 0 || path[plen] != '.')
        return;
    const char *s = cfg_seg(path, nprefix, &l);
    if (s == NULL)
        return;
    for (size_t i = 0; i < *n; i++) {
        if (strlen((*names)[i]) == l && memcmp((*names)[i], s, l) == 0)
            return;
    }
    *names = petrel_xrealloc(*names, (*n + 2) * sizeof(char *));
    (*names)[(*n)++] = cfg_strndup(s, l);
    (*names)[*n] = NULL;
}

const char *const *petrel_config_map_names(const petrel_config_t *cfg, const char *prefix,
                                           size_t *n)
{
    size_t nprefix = cfg_count_segs(prefix);
    size_t plen = strlen(prefix);
    char **names = petrel_xcalloc(1, sizeof(char *));
    size_t cnt = 0;
    /* Sections first: they are in file order, which is the order a user
     * expects names back in. Only sections reached through a "*" segment
     * were recorded, so the last segment is a name. */
    for (size_t i = 0; i < cfg->st.nsections; i++) {
        const char *sec = cfg->st.sections[i];
        if (cfg_count_segs(sec) == nprefix + 1 && strncmp(sec, prefix, plen) == 0 &&
            sec[plen] == '.')
            cfg_collect_name(sec, prefix, nprefix, &names, &cnt);
    }
    for (size_t i = 0; i < cfg->st.nentries; i++) {
        const struct cfg_entry *e = &cfg->st.entries[i];
        size_t l;
        const char *ps = cfg_seg(e->decl->key->path, nprefix, &l);
        if (ps != NULL && l == 1 && *ps == '*')
            cfg_collect_name(e->path, prefix, nprefix, &names, &cnt);
    }
    struct cfg_given *g = cfg->given;
    g->arrays = petrel_xrealloc(g->arrays, (g->n + 1) * sizeof(char **));
    g->arrays[g->n++] = names;
    *n = cnt;
    return (const char *const *)names;
}

const petrel_cfg_key_t *petrel_config_key_at(const petrel_config_t *cfg, size_t i)
{
    return i < cfg->ndecls ? cfg->decls[i].key : NULL;
}
