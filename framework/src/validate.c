/*
 * validate.c - request validation: path, query and header parameters and the
 * JSON body, checked against a route's declaration and reported in FastAPI's
 * 422 "detail" shape with Pydantic v2's exact error types, messages and
 * contexts.
 *
 * Everything that can be computed from the declaration (defaults, bounds, enum
 * texts) is compiled once into a plan by petrel__vplan_new() at router_add
 * time; per request only the inputs are parsed.
 *
 * Conversions follow pydantic-core in lax mode on Python objects (FastAPI
 * validates the result of json.loads, not JSON text): str -> int strips
 * whitespace, a '+', leading zeros, a ".000" tail and single underscores;
 * str -> float is Rust's f64 grammar (inf/nan included); str -> bool takes the
 * 0/off/f/false/n/no and 1/on/t/true/y/yes spellings. petrel integers are
 * 64-bit: a value outside int64 answers int_parsing_size where Python would
 * have accepted a big int.
 */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/common.h>

#include "router_int.h"
#include "uuid_int.h"

enum { B_LE, B_LT, B_GE, B_GT, B_COUNT }; /* pydantic-core's check order */

struct bound {
    const char *text; /* as pydantic-core prints it, for the message */
    char *owned;      /* text, when it had to be reformatted (float fields) */
    json_t *val;      /* parsed, for ctx */
    bool is_int;
    int64_t i;
    double d;
};

struct vfield {
    const petrel_field_t *f;
    json_t *dflt;
    bool has[B_COUNT];
    struct bound b[B_COUNT];
    char *expected; /* enum: "'a', 'b' or 'c'" */
    char *alias;    /* header fields: the HTTP name, also used in loc */
    struct vfield *items;
    struct vfield *fields;
    size_t nfields;
};

struct petrel__vplan {
    size_t npath, nquery, nheader;
    struct vfield path[PETREL_MAX_PATH];
    struct vfield query[PETREL_MAX_QUERY];
    struct vfield header[PETREL_MAX_QUERY];
    struct vfield *body;
    bool body_required;
    bool trivial;
};

struct vctx {
    json_t *errs;
    json_t *loc; /* the location being validated; pushed and popped while descending */
};

#define VALIDATE_MAX_DEPTH 32

/* ---------------------------------------------------------------- plan */

static void validate_field_dispose(struct vfield *v)
{
    json_decref(v->dflt);
    for (int i = 0; i < B_COUNT; i++) {
        json_decref(v->b[i].val);
        free(v->b[i].owned);
    }
    free(v->expected);
    free(v->alias);
    if (v->items != NULL) {
        validate_field_dispose(v->items);
        free(v->items);
    }
    for (size_t i = 0; i < v->nfields; i++)
        validate_field_dispose(&v->fields[i]);
    free(v->fields);
    memset(v, 0, sizeof(*v));
}

static char *validate_enum_expected(const char *const *vals)
{
    size_t n = 0, cap = 1;
    for (; vals[n] != NULL; n++)
        cap += strlen(vals[n]) + 6;
    char *s = petrel_xmalloc(cap);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(s + o, cap - o, "%s'%s'", sep, vals[i]);
        PETREL_ASSERT(w >= 0 && (size_t)w < cap - o);
        o += (size_t)w;
    }
    s[o] = '\0';
    return s;
}

static int validate_compile(struct vfield *v, const petrel_field_t *f, int depth, char *err,
                            size_t errlen)
{
    const char *texts[B_COUNT] = {f->le, f->lt, f->ge, f->gt};
    static const char *const names[B_COUNT] = {"le", "lt", "ge", "gt"};
    json_error_t je;
    memset(v, 0, sizeof(*v));
    v->f = f;
    if (depth > VALIDATE_MAX_DEPTH) {
        snprintf(err, errlen, "field '%s': schema nested deeper than %d", f->name ? f->name : "",
                 VALIDATE_MAX_DEPTH);
        return PETREL_EINVAL;
    }
    if (f->dflt != NULL) {
        v->dflt = json_loads(f->dflt, JSON_DECODE_ANY, &je);
        if (v->dflt == NULL) {
            snprintf(err, errlen, "field '%s': default %s is not valid JSON (%s)",
                     f->name ? f->name : "", f->dflt, je.text);
            return PETREL_EINVAL;
        }
    }
    for (int i = 0; i < B_COUNT; i++) {
        if (texts[i] == NULL)
            continue;
        json_t *j = json_loads(texts[i], JSON_DECODE_ANY, &je);
        if (!json_is_number(j)) {
            json_decref(j);
            snprintf(err, errlen, "field '%s': bound %s=%s is not a JSON number",
                     f->name ? f->name : "", names[i], texts[i]);
            return PETREL_EINVAL;
        }
        v->has[i] = true;
        v->b[i].text = texts[i];
        v->b[i].val = j;
        v->b[i].is_int = json_is_integer(j);
        v->b[i].i = json_is_integer(j) ? json_integer_value(j) : 0;
        v->b[i].d = json_number_value(j);
        if (f->type == PETREL_T_FLOAT) {
            /* pydantic-core keeps a float field's bounds as f64: Path(gt=3) on a float reports
             * ctx {"gt": 3.0} and prints the bound with Rust's f64 Display ("3", "0.5"). */
            char buf[PETREL__FLOAT_FIXED_MAX];
            petrel__float_fixed(v->b[i].d, buf, sizeof(buf));
            json_decref(v->b[i].val);
            v->b[i].val = json_real(v->b[i].d);
            v->b[i].is_int = false;
            v->b[i].owned = petrel_xstrdup(buf);
            v->b[i].text = v->b[i].owned;
        }
    }
    if (f->enum_values != NULL && f->enum_values[0] != NULL)
        v->expected = validate_enum_expected(f->enum_values);
    if (f->type == PETREL_T_ARRAY && f->items != NULL) {
        v->items = petrel_xcalloc(1, sizeof(*v->items));
        if (validate_compile(v->items, f->items, depth + 1, err, errlen) != 0)
            return PETREL_EINVAL;
    }
    if (f->type == PETREL_T_OBJECT && f->fields != NULL) {
        size_t n = 0;
        while (f->fields[n].name != NULL)
            n++;
        v->fields = petrel_xcalloc(n + 1, sizeof(*v->fields));
        for (size_t i = 0; i < n; i++) {
            v->nfields = i + 1;
            if (validate_compile(&v->fields[i], &f->fields[i], depth + 1, err, errlen) != 0)
                return PETREL_EINVAL;
        }
    }
    return 0;
}

petrel__vplan_t *petrel__vplan_new(const petrel_route_t *route, const petrel_field_t *path_args,
                                   size_t nargs, char *err, size_t errlen)
{
    petrel__vplan_t *p = petrel_xcalloc(1, sizeof(*p));
    for (size_t i = 0; i < nargs && i < PETREL_MAX_PATH; i++) {
        p->npath = i + 1;
        if (validate_compile(&p->path[i], &path_args[i], 0, err, errlen) != 0)
            goto fail;
    }
    for (size_t i = 0; i < PETREL_MAX_QUERY && route->query[i].name != NULL; i++) {
        const petrel_field_t *f = &route->query[i];
        struct vfield *v;
        if (f->in == PETREL_IN_HEADER)
            v = &p->header[p->nheader++];
        else
            v = &p->query[p->nquery++];
        if (validate_compile(v, f, 0, err, errlen) != 0)
            goto fail;
        if (f->in == PETREL_IN_HEADER) {
            /* FastAPI's Header() converts underscores: user_agent is read from, and reported
             * at, "user-agent". */
            v->alias = petrel_xstrdup(f->name);
            for (char *a = v->alias; *a != '\0'; a++)
                *a = *a == '_' ? '-' : *a;
        }
    }
    if (route->body != NULL) {
        p->body = petrel_xcalloc(1, sizeof(*p->body));
        if (validate_compile(p->body, route->body, 0, err, errlen) != 0)
            goto fail;
        /* FastAPI: a body parameter is required unless it is Optional or has a default. */
        p->body_required = !route->body->nullable && route->body->dflt == NULL;
    }
    p->trivial = p->npath == 0 && p->nquery == 0 && p->nheader == 0 && p->body == NULL;
    return p;
fail:
    petrel__vplan_free(p);
    return NULL;
}

void petrel__vplan_free(petrel__vplan_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->npath; i++)
        validate_field_dispose(&p->path[i]);
    for (size_t i = 0; i < p->nquery; i++)
        validate_field_dispose(&p->query[i]);
    for (size_t i = 0; i < p->nheader; i++)
        validate_field_dispose(&p->header[i]);
    if (p->body != NULL) {
        validate_field_dispose(p->body);
        free(p->body);
    }
    free(p);
}

/* ---------------------------------------------------------------- text helpers */

/* Length of the well-formed UTF-8 sequence at s (what jansson also accepts), or the length of
 * the maximal ill-formed subpart negated, which Python's errors="replace" turns into one
 * U+FFFD. */
static long validate_u8seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return -1;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= len)
            return -(long)k;
        unsigned char d = s[k];
        if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf))
            return -(long)k;
    }
    return (long)need + 1;
}

/* Returns s when it is valid UTF-8, else a repaired copy in *tmp (free it) - the str Python
 * would hold after decoding with errors="replace". */
static const char *validate_pystr(const char *s, size_t len, size_t *olen, char **tmp)
{
    size_t i = 0;
    *tmp = NULL;
    while (i < len) {
        long n = validate_u8seq((const unsigned char *)s + i, len - i);
        if (n < 0)
            break;
        i += (size_t)n;
    }
    if (i == len) {
        *olen = len;
        return s;
    }
    char *d = petrel_xmalloc(len * 3 + 1);
    size_t o = 0;
    memcpy(d, s, i);
    o = i;
    while (i < len) {
        long n = validate_u8seq((const unsigned char *)s + i, len - i);
        if (n > 0) {
            memcpy(d + o, s + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        } else {
            memcpy(d + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += (size_t)-n;
        }
    }
    d[o] = '\0';
    *tmp = d;
    *olen = o;
    return d;
}

static size_t validate_codepoints(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* Rust's char::is_whitespace at s, returning its byte length or 0. */
static size_t validate_ws(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    if (len >= 1 && (u[0] == ' ' || (u[0] >= 0x09 && u[0] <= 0x0d)))
        return 1;
    if (len >= 2 && u[0] == 0xc2 && (u[1] == 0x85 || u[1] == 0xa0))
        return 2;
    if (len >= 3 && u[0] == 0xe1 && u[1] == 0x9a && u[2] == 0x80)
        return 3;
    if (len >= 3 && u[0] == 0xe2 && u[1] == 0x80 &&
        (u[2] <= 0x8a || u[2] == 0xa8 || u[2] == 0xa9 || u[2] == 0xaf))
        return 3;
    if (len >= 3 && u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0x9f)
        return 3;
    if (len >= 3 && u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80)
        return 3;
    return 0;
}

static void validate_trim(const char **s, size_t *len)
{
    size_t n;
    while (*len > 0 && (n = validate_ws(*s, *len)) > 0) {
        *s += n;
        *len -= n;
    }
    /* Trailing: step back over the last (possibly multi-byte) character. */
    for (;;) {
        size_t back = 0;
        for (size_t k = 1; k <= 3 && k <= *len; k++) {
            if (validate_ws(*s + *len - k, k) == k) {
                back = k;
                break;
            }
        }
        if (back == 0)
            return;
        *len -= back;
    }
}

/* ---------------------------------------------------------------- numbers */

/* A JSON integer literal in full (what jiter's NumberInt accepts). 0 ok, 1 not an int,
 * 2 out of int64 range. */
static int validate_json_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    if (i >= len || s[i] < '0' || s[i] > '9' || (s[i] == '0' && i + 1 < len))
        return 1;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    bool over = false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    if (over)
        return 2;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* pydantic-core's strip_leading_zeros: returns the offset to keep, or -1 for "invalid". */
static long validate_strip_zeros(const char *s, size_t len)
{
    if (len == 0)
        return -1;
    if (s[0] != '0')
        return (s[0] >= '1' && s[0] <= '9') || s[0] == '-' ? 0 : -1;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (c == '0' || c == '_')
            continue;
        if ((c >= '1' && c <= '9') || c == '-')
            return (long)i;
        if (c == '.')
            return (long)i - 1;
        return -1;
    }
    return (long)len - 1;
}

/* str -> int as pydantic-core's str_as_int. 0 ok, 1 int_parsing, 2 int_parsing_size. */
static int validate_str_int(const char *s0, size_t len0, int64_t *out)
{
    int rc = validate_json_int(s0, len0, out);
    if (rc != 1)
        return rc;
    const char *s = s0;
    size_t len = len0;
    bool neg = false;
    validate_trim(&s, &len);
    if (len > 0 && s[0] == '+') {
        if (len > 1 && s[1] == '-')
            return 1;
        s++;
        len--;
    }
    if (len > 0 && s[0] == '-') {
        if (len > 1 && (s[1] == '-' || s[1] == '+'))
            return 1;
        neg = true;
        s++;
        len--;
    }
    long z = validate_strip_zeros(s, len);
    if (z < 0)
        return 1;
    s += z;
    len -= (size_t)z;
    const char *dot = memchr(s, '.', len);
    if (dot != NULL && (size_t)(dot - s) + 1 < len) {
        bool zeros = true;
        for (const char *p = dot + 1; p < s + len; p++)
            zeros = zeros && *p == '0';
        if (zeros)
            len = (size_t)(dot - s);
    }
    char buf[128];
    size_t o = 0;
    if (len + 2 > sizeof(buf))
        return validate_json_int(s, len, out) == 2 ? 2 : 1;
    if (neg)
        buf[o++] = '-';
    bool under = memchr(s, '_', len) != NULL;
    bool under_ok = under && s[0] != '_' && s[len - 1] != '_';
    for (size_t i = 0; under_ok && i + 1 < len; i++)
        under_ok = !(s[i] == '_' && s[i + 1] == '_');
    if (under_ok) {
        for (size_t i = 0; i < len; i++) {
            if (s[i] != '_')
                buf[o++] = s[i];
        }
    } else {
        if (len == len0)
            return 1; /* nothing was cleaned: the first parse already said no */
        memcpy(buf + o, s, len);
        o += len;
    }
    return validate_json_int(buf, o, out);
}

static locale_t validate_c_locale;
static pthread_once_t validate_locale_once = PTHREAD_ONCE_INIT;

static void validate_locale_init(void)
{
    validate_c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    PETREL_ASSERT(validate_c_locale != (locale_t)0);
}

/* Rust's f64::from_str grammar; strtod would also take hex floats and "infinit". */
static bool validate_rust_float(const char *s, size_t len, double *out)
{
    char buf[512];
    size_t i = 0;
    if (len == 0 || len >= sizeof(buf))
        return false;
    bool neg = s[0] == '-';
    if (s[0] == '+' || s[0] == '-')
        i++;
    size_t rest = len - i;
    if ((rest == 3 && strncasecmp(s + i, "inf", 3) == 0) ||
        (rest == 8 && strncasecmp(s + i, "infinity", 8) == 0)) {
        *out = neg ? -INFINITY : INFINITY;
        return true;
    }
    if (rest == 3 && strncasecmp(s + i, "nan", 3) == 0) {
        *out = NAN;
        return true;
    }
    size_t digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            digits++;
        }
    }
    if (digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ed = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            ed++;
        }
        if (ed == 0)
            return false;
    }
    if (i != len)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    pthread_once(&validate_locale_once, validate_locale_init);
    *out = strtod_l(buf, NULL, validate_c_locale);
    return true;
}

/* The shortest decimal digits that read back as d (finite): Python's repr() and Rust's
 * Display both print these. Tries 1..17 significant digits, the first that round-trips
 * wins; printf and strtod run in the C locale whatever the app set. Returns the digit
 * count (trailing zeros dropped; "0" for zero) and the decimal exponent of the first
 * digit in *exp10. */
static int validate_float_digits(double d, char dig[24], int *exp10)
{
    char buf[48];
    pthread_once(&validate_locale_once, validate_locale_init);
    locale_t old = uselocale(validate_c_locale);
    for (int prec = 0; prec <= 16; prec++) {
        int w = snprintf(buf, sizeof(buf), "%.*e", prec, d);
        PETREL_ASSERT(w > 0 && (size_t)w < sizeof(buf));
        if (prec == 16 || strtod(buf, NULL) == d)
            break;
    }
    uselocale(old);
    int n = 0;
    const char *p = buf[0] == '-' ? buf + 1 : buf;
    for (; *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9')
            dig[n++] = *p;
    }
    *exp10 = (int)strtol(p + 1, NULL, 10);
    while (n > 1 && dig[n - 1] == '0')
        n--;
    dig[n] = '\0';
    return n;
}

/* Writes the digits with the decimal point at decpt (digits before it), padding with
 * zeros; `dot0` appends ".0" to an integral value. Returns the new offset. */
static size_t validate_float_place(char *o, size_t off, const char *dig, int n, int decpt,
                                   bool dot0)
{
    if (decpt <= 0) {
        o[off++] = '0';
        o[off++] = '.';
        for (int k = 0; k < -decpt; k++)
            o[off++] = '0';
        memcpy(o + off, dig, (size_t)n);
        return off + (size_t)n;
    }
    if (decpt < n) {
        memcpy(o + off, dig, (size_t)decpt);
        off += (size_t)decpt;
        o[off++] = '.';
        memcpy(o + off, dig + decpt, (size_t)(n - decpt));
        return off + (size_t)(n - decpt);
    }
    memcpy(o + off, dig, (size_t)n);
    off += (size_t)n;
    for (int k = n; k < decpt; k++)
        o[off++] = '0';
    if (dot0) {
        o[off++] = '.';
        o[off++] = '0';
    }
    return off;
}

size_t petrel__float_repr(double d, char *out, size_t len)
{
    char tmp[PETREL__FLOAT_REPR_MAX], dig[24];
    size_t off = 0;
    int e;
    if (isnan(d) || isinf(d)) {
        off = (size_t)snprintf(tmp, sizeof(tmp), "%s", isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
    } else {
        int n = validate_float_digits(d, dig, &e);
        if (signbit(d))
            tmp[off++] = '-';
        /* CPython's float_repr_style "short": exponent form outside 1e-4 <= |d| < 1e16. */
        if (e < -4 || e >= 16) {
            tmp[off++] = dig[0];
            if (n > 1) {
                tmp[off++] = '.';
                memcpy(tmp + off, dig + 1, (size_t)n - 1);
                off += (size_t)n - 1;
            }
            off += (size_t)snprintf(tmp + off, sizeof(tmp) - off, "e%c%02d", e < 0 ? '-' : '+',
                                    e < 0 ? -e : e);
        } else {
            off = validate_float_place(tmp, off, dig, n, e + 1, true);
        }
    }
    PETREL_ASSERT(off < sizeof(tmp));
    tmp[off] = '\0';
    if (len > 0)
        snprintf(out, len, "%s", tmp);
    return off;
}

size_t petrel__float_fixed(double d, char *out, size_t len)
{
    char tmp[PETREL__FLOAT_FIXED_MAX], dig[24];
    size_t off = 0;
    int e;
    if (isnan(d) || isinf(d)) {
        off = (size_t)snprintf(tmp, sizeof(tmp), "%s", isnan(d) ? "NaN" : d > 0 ? "inf" : "-inf");
    } else {
        int n = validate_float_digits(d, dig, &e);
        if (signbit(d))
            tmp[off++] = '-';
        off = validate_float_place(tmp, off, dig, n, e + 1, false);
    }
    PETREL_ASSERT(off < sizeof(tmp));
    tmp[off] = '\0';
    if (len > 0)
        snprintf(out, len, "%s", tmp);
    return off;
}

/* str -> float as pydantic-core's str_as_float: the trimmed text, else the untrimmed text
 * with single underscores between characters removed. */
static bool validate_str_float(const char *s, size_t len, double *out)
{
    const char *t = s;
    size_t tl = len;
    validate_trim(&t, &tl);
    if (validate_rust_float(t, tl, out))
        return true;
    if (len == 0 || len >= 512 || s[0] == '_' || s[len - 1] == '_' || !memchr(s, '_', len))
        return false;
    char buf[512];
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_' && i + 1 < len && s[i + 1] == '_')
            return false;
        if (s[i] != '_')
            buf[o++] = s[i];
    }
    return validate_rust_float(buf, o, out);
}

static int validate_str_bool(const char *s, size_t len, bool *out)
{
    static const char *const no[] = {"0", "off", "f", "false", "n", "no"};
    static const char *const yes[] = {"1", "on", "t", "true", "y", "yes"};
    for (size_t i = 0; i < 6; i++) {
        if (strlen(no[i]) == len && strncasecmp(s, no[i], len) == 0) {
            *out = false;
            return 0;
        }
        if (strlen(yes[i]) == len && strncasecmp(s, yes[i], len) == 0) {
            *out = true;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- errors */

static void validate_err(struct vctx *c, const char *type, const char *msg, json_t *input,
                         json_t *ctx)
{
    json_t *e = json_object();
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "loc", json_copy(c->loc));
    json_object_set_new(e, "msg", json_string(msg));
    json_object_set_new(e, "input", input != NULL ? input : json_null());
    if (ctx != NULL)
        json_object_set_new(e, "ctx", ctx);
    json_array_append_new(c->errs, e);
}

static void validate_push_name(struct vctx *c, const char *name)
{
    json_array_append_new(c->loc, json_string(name));
}

static void validate_push_index(struct vctx *c, size_t i)
{
    json_array_append_new(c->loc, json_integer((json_int_t)i));
}

static void validate_pop(struct vctx *c)
{
    json_array_remove(c->loc, json_array_size(c->loc) - 1);
}

static json_t *validate_real(double d)
{
    /* jansson cannot hold inf/nan; keep Python's spelling so the value is not lost. */
    if (isnan(d))
        return json_string("nan");
    if (isinf(d))
        return json_string(d > 0 ? "inf" : "-inf");
    return json_real(d);
}

/* Numeric bounds in pydantic-core's order (le, lt, ge, gt); one error at most. */
static bool validate_bounds(struct vctx *c, const struct vfield *v, bool isint, int64_t iv,
                            double dv, json_t *input)
{
    static const char *const types[B_COUNT] = {"less_than_equal", "less_than", "greater_than_equal",
                                               "greater_than"};
    static const char *const words[B_COUNT] = {"less than or equal to", "less than",
                                               "greater than or equal to", "greater than"};
    static const char *const keys[B_COUNT] = {"le", "lt", "ge", "gt"};
    for (int k = 0; k < B_COUNT; k++) {
        if (!v->has[k])
            continue;
        const struct bound *b = &v->b[k];
        int cmp; /* -1, 0, 1; 2 = unordered (nan) */
        if (isint && b->is_int)
            cmp = iv < b->i ? -1 : iv > b->i ? 1 : 0;
        else {
            double x = isint ? (double)iv : dv;
            cmp = isnan(x) ? 2 : x < b->d ? -1 : x > b->d ? 1 : 0;
        }
        bool ok = k == B_LE   ? (cmp == -1 || cmp == 0)
                  : k == B_LT ? cmp == -1
                  : k == B_GE ? (cmp == 1 || cmp == 0)
                              : cmp == 1;
        if (ok)
            continue;
        char msg[256];
        snprintf(msg, sizeof(msg), "Input should be %s %s", words[k], b->text);
        json_t *ctx = json_object();
        json_object_set_new(ctx, keys[k], json_deep_copy(b->val));
        validate_err(c, types[k], msg, json_incref(input), ctx);
        return false;
    }
    return true;
}

static bool validate_enum(struct vctx *c, const struct vfield *v, const char *s, size_t len,
                          json_t *input)
{
    if (v->expected == NULL)
        return true;
    for (const char *const *e = v->f->enum_values; s != NULL && *e != NULL; e++) {
        if (strlen(*e) == len && memcmp(*e, s, len) == 0)
            return true;
    }
    char msg[1024];
    snprintf(msg, sizeof(msg), "Input should be %s", v->expected);
    json_t *ctx = json_object();
    json_object_set_new(ctx, "expected", json_string(v->expected));
    validate_err(c, "enum", msg, json_incref(input), ctx);
    return false;
}

static bool validate_strlen(struct vctx *c, const struct vfield *v, const char *s, size_t len,
                            json_t *input)
{
    const petrel_field_t *f = v->f;
    if (f->min_length <= 0 && f->max_length <= 0)
        return true;
    int64_t n = (int64_t)validate_codepoints(s, len);
    bool shortv = f->min_length > 0 && n < f->min_length;
    bool longv = !shortv && f->max_length > 0 && n > f->max_length;
    if (!shortv && !longv)
        return true;
    int64_t bound = shortv ? f->min_length : f->max_length;
    char msg[128];
    snprintf(msg, sizeof(msg), "String should have at %s %lld character%s",
             shortv ? "least" : "most", (long long)bound, bound == 1 ? "" : "s");
    json_t *ctx = json_object();
    json_object_set_new(ctx, shortv ? "min_length" : "max_length", json_integer((json_int_t)bound));
    validate_err(c, shortv ? "string_too_short" : "string_too_long", msg, json_incref(input), ctx);
    return false;
}

static void validate_uuid_err(struct vctx *c, const char *why, json_t *input)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "Input should be a valid UUID, %s", why);
    json_t *ctx = json_object();
    json_object_set_new(ctx, "error", json_string(why));
    validate_err(c, "uuid_parsing", msg, json_incref(input), ctx);
}

/* ---------------------------------------------------------------- values */

static const char MSG_INT_PARSING[] =
    "Input should be a valid integer, unable to parse string as an integer";
static const char MSG_INT_SIZE[] =
    "Unable to parse input string as an integer, exceeded maximum size";
static const char MSG_FLOAT_PARSING[] =
    "Input should be a valid number, unable to parse string as a number";
static const char MSG_BOOL_PARSING[] = "Input should be a valid boolean, unable to interpret input";

/* Converts a string (valid UTF-8) to the field's type; `input` (borrowed) is what errors
 * echo. Returns a new value, or NULL after recording an error. */
static json_t *validate_from_str(struct vctx *c, const struct vfield *v, petrel_type_t type,
                                 const char *s, size_t len, json_t *input)
{
    switch (type) {
    case PETREL_T_INT: {
        int64_t iv = 0;
        int rc = validate_str_int(s, len, &iv);
        if (rc != 0) {
            validate_err(c, rc == 2 ? "int_parsing_size" : "int_parsing",
                         rc == 2 ? MSG_INT_SIZE : MSG_INT_PARSING, json_incref(input), NULL);
            return NULL;
        }
        if (!validate_bounds(c, v, true, iv, 0, input))
            return NULL;
        return json_integer((json_int_t)iv);
    }
    case PETREL_T_FLOAT: {
        double d = 0;
        if (!validate_str_float(s, len, &d)) {
            validate_err(c, "float_parsing", MSG_FLOAT_PARSING, json_incref(input), NULL);
            return NULL;
        }
        if (v->f->finite && !isfinite(d)) {
            validate_err(c, "finite_number", "Input should be a finite number", json_incref(input),
                         NULL);
            return NULL;
        }
        if (!validate_bounds(c, v, false, 0, d, input))
            return NULL;
        return validate_real(d);
    }
    case PETREL_T_BOOL: {
        bool b = false;
        if (validate_str_bool(s, len, &b) != 0) {
            validate_err(c, "bool_parsing", MSG_BOOL_PARSING, json_incref(input), NULL);
            return NULL;
        }
        return json_boolean(b);
    }
    case PETREL_T_UUID: {
        char out[37], why[256];
        if (petrel__uuid_parse(s, len, out, why, sizeof(why)) != 0) {
            validate_uuid_err(c, why, input);
            return NULL;
        }
        return json_string(out);
    }
    default:
        if (!validate_enum(c, v, s, len, input) || !validate_strlen(c, v, s, len, input))
            return NULL;
        return json_stringn(s, len);
    }
}

/* pydantic-core's float_as_int: 0 ok, else the error recorded by the caller. */
static int validate_float_int(double d, int64_t *out)
{
    if (isnan(d) || isinf(d))
        return 3;
    if (fmod(d, 1.0) != 0.0)
        return 1;
    if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0))
        return 2;
    *out = (int64_t)d;
    return 0;
}

static json_t *validate_value(struct vctx *c, const struct vfield *v, json_t *in, int depth);

static json_t *validate_int_value(struct vctx *c, const struct vfield *v, json_t *in)
{
    int64_t iv = 0;
    if (json_is_string(in))
        return validate_from_str(c, v, PETREL_T_INT, json_string_value(in), json_string_length(in),
                                 in);
    if (json_is_integer(in)) {
        iv = json_integer_value(in);
    } else if (json_is_boolean(in)) {
        iv = json_is_true(in);
    } else if (json_is_real(in)) {
        int rc = validate_float_int(json_real_value(in), &iv);
        if (rc == 1)
            validate_err(c, "int_from_float",
                         "Input should be a valid integer, got a number with a fractional part",
                         json_incref(in), NULL);
        else if (rc == 2)
            validate_err(c, "int_parsing_size", MSG_INT_SIZE, json_incref(in), NULL);
        else if (rc == 3)
            validate_err(c, "finite_number", "Input should be a finite number", json_incref(in),
                         NULL);
        if (rc != 0)
            return NULL;
    } else {
        validate_err(c, "int_type", "Input should be a valid integer", json_incref(in), NULL);
        return NULL;
    }
    if (!validate_bounds(c, v, true, iv, 0, in))
        return NULL;
    return json_integer((json_int_t)iv);
}

static json_t *validate_float_value(struct vctx *c, const struct vfield *v, json_t *in)
{
    double d;
    if (json_is_string(in))
        return validate_from_str(c, v, PETREL_T_FLOAT, json_string_value(in),
                                 json_string_length(in), in);
    if (json_is_number(in)) {
        d = json_number_value(in);
    } else if (json_is_boolean(in)) {
        d = json_is_true(in) ? 1.0 : 0.0;
    } else {
        validate_err(c, "float_type", "Input should be a valid number", json_incref(in), NULL);
        return NULL;
    }
    if (!validate_bounds(c, v, false, 0, d, in))
        return NULL;
    return validate_real(d);
}

static json_t *validate_bool_value(struct vctx *c, json_t *in)
{
    int64_t iv = -1;
    if (json_is_boolean(in))
        return json_incref(in);
    if (json_is_string(in)) {
        bool b;
        if (validate_str_bool(json_string_value(in), json_string_length(in), &b) == 0)
            return json_boolean(b);
    } else if (json_is_integer(in)) {
        iv = json_integer_value(in);
    } else if (!json_is_real(in) || validate_float_int(json_real_value(in), &iv) != 0) {
        validate_err(c, "bool_type", "Input should be a valid boolean", json_incref(in), NULL);
        return NULL;
    }
    if (iv == 0 || iv == 1)
        return json_boolean(iv == 1);
    validate_err(c, "bool_parsing", MSG_BOOL_PARSING, json_incref(in), NULL);
    return NULL;
}

static int validate_scalar_cmp(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    if (json_is_string(x) && json_is_string(y)) {
        size_t lx = json_string_length(x), ly = json_string_length(y);
        int r = memcmp(json_string_value(x), json_string_value(y), lx < ly ? lx : ly);
        return r != 0 ? r : (lx > ly) - (lx < ly);
    }
    if (json_is_integer(x) && json_is_integer(y)) {
        json_int_t i = json_integer_value(x), j = json_integer_value(y);
        return (i > j) - (i < j);
    }
    if (json_is_number(x) && json_is_number(y)) {
        double i = json_number_value(x), j = json_number_value(y);
        return (i > j) - (i < j);
    }
    if (json_is_boolean(x) && json_is_boolean(y))
        return json_is_true(x) - json_is_true(y);
    return (int)json_typeof(x) - (int)json_typeof(y);
}

/* A set: distinct values, ascending (a stable order for clients, unlike Python's hash order). */
static json_t *validate_set(json_t *arr)
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return arr;
    json_t **items = petrel_xmalloc(n * sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(arr, i);
    qsort(items, n, sizeof(*items), validate_scalar_cmp);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && json_equal(items[i], items[i - 1]))
            continue;
        json_array_append(out, items[i]);
    }
    free(items);
    json_decref(arr);
    return out;
}

static void validate_len_err(struct vctx *c, const char *ftype, bool too_long, size_t bound,
                             size_t actual, json_t *input)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "%s should have at %s %zu item%s after validation, not %zu", ftype,
             too_long ? "most" : "least", bound, bound == 1 ? "" : "s", actual);
    json_t *ctx = json_object();
    json_object_set_new(ctx, "field_type", json_string(ftype));
    json_object_set_new(ctx, too_long ? "max_length" : "min_length",
                        json_integer((json_int_t)bound));
    json_object_set_new(ctx, "actual_length", json_integer((json_int_t)actual));
    validate_err(c, too_long ? "too_long" : "too_short", msg, json_incref(input), ctx);
}

/* Lists and sets. `strings`: the elements are raw query/header strings. */
static json_t *validate_list(struct vctx *c, const struct vfield *v, json_t *in, bool strings,
                             int depth)
{
    const petrel_field_t *f = v->f;
    const char *ftype = f->unique ? "Set" : "List";
    if (!json_is_array(in)) {
        validate_err(c, f->unique ? "set_type" : "list_type",
                     f->unique ? "Input should be a valid set" : "Input should be a valid list",
                     json_incref(in), NULL);
        return NULL;
    }
    size_t n = json_array_size(in);
    /* pydantic-core stops at the first item past max_length, dropping item errors. */
    if (f->max_length > 0 && n > (size_t)f->max_length) {
        validate_len_err(c, ftype, true, (size_t)f->max_length, n, in);
        return NULL;
    }
    json_t *out = json_array();
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(in, i);
        json_t *r;
        validate_push_index(c, i);
        if (v->items == NULL)
            r = json_incref(el);
        else if (strings)
            r = validate_from_str(c, v->items, v->items->f->type, json_string_value(el),
                                  json_string_length(el), el);
        else
            r = validate_value(c, v->items, el, depth + 1);
        validate_pop(c);
        if (r == NULL)
            ok = false;
        else
            json_array_append_new(out, r);
    }
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    if (f->unique)
        out = validate_set(out);
    if (f->min_length > 0 && json_array_size(out) < (size_t)f->min_length) {
        validate_len_err(c, ftype, false, (size_t)f->min_length, json_array_size(out), in);
        json_decref(out);
        return NULL;
    }
    return out;
}

static json_t *validate_object(struct vctx *c, const struct vfield *v, json_t *in, int depth)
{
    if (!json_is_object(in)) {
        if (v->f->schema_name != NULL)
            validate_err(c, "model_attributes_type",
                         "Input should be a valid dictionary or object to extract fields from",
                         json_incref(in), NULL);
        else
            validate_err(c, "dict_type", "Input should be a valid dictionary", json_incref(in),
                         NULL);
        return NULL;
    }
    /* Undeclared members and ANY values are shared with the parsed body, which the caller
     * drops afterwards, rather than copied: a deep copy would recurse as deep as the input. */
    if (v->f->fields == NULL)
        return json_incref(in);
    json_t *out = json_object();
    bool ok = true;
    for (size_t i = 0; i < v->nfields; i++) {
        const struct vfield *fv = &v->fields[i];
        const char *name = fv->f->name;
        json_t *val = json_object_get(in, name);
        validate_push_name(c, name);
        if (val == NULL) {
            if (fv->f->required) {
                /* Pydantic reports a missing model field with the whole object as input. */
                validate_err(c, "missing", "Field required", json_incref(in), NULL);
                ok = false;
            } else if (fv->dflt != NULL) {
                json_object_set_new(out, name, json_deep_copy(fv->dflt));
            }
        } else {
            json_t *r = validate_value(c, fv, val, depth + 1);
            if (r == NULL)
                ok = false;
            else
                json_object_set_new(out, name, r);
        }
        validate_pop(c);
    }
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Validates one JSON value (a body or a body field). Returns a new value or NULL. */
static json_t *validate_value(struct vctx *c, const struct vfield *v, json_t *in, int depth)
{
    const petrel_field_t *f = v->f;
    if (json_is_null(in) && f->nullable)
        return json_null();
    if (depth > VALIDATE_MAX_DEPTH)
        return json_incref(in);
    switch (f->type) {
    case PETREL_T_INT:
        return validate_int_value(c, v, in);
    case PETREL_T_FLOAT:
        return validate_float_value(c, v, in);
    case PETREL_T_BOOL:
        return validate_bool_value(c, in);
    case PETREL_T_UUID:
        if (!json_is_string(in)) {
            validate_err(c, "uuid_type", "UUID input should be a string, bytes or UUID object",
                         json_incref(in), NULL);
            return NULL;
        }
        return validate_from_str(c, v, PETREL_T_UUID, json_string_value(in), json_string_length(in),
                                 in);
    case PETREL_T_STR:
    case PETREL_T_PATH:
        if (v->expected != NULL && !json_is_string(in)) {
            validate_enum(c, v, NULL, 0, in);
            return NULL;
        }
        if (!json_is_string(in)) {
            validate_err(c, "string_type", "Input should be a valid string", json_incref(in), NULL);
            return NULL;
        }
        return validate_from_str(c, v, PETREL_T_STR, json_string_value(in), json_string_length(in),
                                 in);
    case PETREL_T_ARRAY:
        return validate_list(c, v, in, false, depth);
    case PETREL_T_OBJECT:
        return validate_object(c, v, in, depth);
    default:
        return json_incref(in);
    }
}

/* ---------------------------------------------------------------- JSON syntax errors */

static size_t validate_pyws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static bool validate_isdigit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool validate_ishex(char ch)
{
    return validate_isdigit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static unsigned validate_hex4(const char *p)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char ch = p[k];
        v = v << 4 | (unsigned)(validate_isdigit(ch) ? ch - '0'
                                : ch >= 'a'          ? ch - 'a' + 10
                                                     : ch - 'A' + 10);
    }
    return v;
}

/* CPython's scanstring (strict): returns true and the index after the closing quote, or
 * false with the error. `b` is the index of the opening quote. */
static bool validate_pystring(const char *s, size_t n, size_t b, size_t *end, size_t *pos,
                              const char **msg)
{
    size_t i = b + 1;
    for (;;) {
        while (i < n && s[i] != '"' && s[i] != '\\') {
            if ((unsigned char)s[i] <= 0x1f) {
                *pos = i;
                *msg = "Invalid control character at";
                return false;
            }
            i++;
        }
        if (i >= n) {
            *pos = b;
            *msg = "Unterminated string starting at";
            return false;
        }
        if (s[i] == '"') {
            *end = i + 1;
            return true;
        }
        i++; /* past the backslash */
        if (i >= n) {
            *pos = b;
            *msg = "Unterminated string starting at";
            return false;
        }
        if (s[i] != 'u') {
            if (strchr("\"\\/bfnrt", s[i]) == NULL || s[i] == '\0') {
                *pos = i - 1;
                *msg = "Invalid \\escape";
                return false;
            }
            i++;
            continue;
        }
        size_t e = i + 5; /* index after the four hex digits */
        if (e > n) {      /* CPython 3.14; 3.9-3.13 used >= here */
            *pos = i;
            *msg = "Invalid \\uXXXX escape";
            return false;
        }
        for (size_t k = i + 1; k < e; k++) {
            if (!validate_ishex(s[k])) {
                *pos = i;
                *msg = "Invalid \\uXXXX escape";
                return false;
            }
        }
        unsigned u = validate_hex4(s + i + 1);
        i = e;
        if (u >= 0xd800 && u <= 0xdbff && e + 6 < n && s[e] == '\\' && s[e + 1] == 'u') {
            for (size_t k = e + 2; k < e + 6; k++) {
                if (!validate_ishex(s[k])) {
                    *pos = e + 1;
                    *msg = "Invalid \\uXXXX escape";
                    return false;
                }
            }
            unsigned u2 = validate_hex4(s + e + 2);
            if (u2 >= 0xdc00 && u2 <= 0xdfff)
                i = e + 6;
        }
    }
}

/* CPython's number matcher: returns the end index, or 0 when no number starts at i. */
static size_t validate_pynumber(const char *s, size_t n, size_t i)
{
    size_t end_idx = n - 1;
    if (s[i] == '-') {
        i++;
        if (i > end_idx)
            return 0;
    }
    if (s[i] >= '1' && s[i] <= '9') {
        i++;
        while (i <= end_idx && validate_isdigit(s[i]))
            i++;
    } else if (s[i] == '0') {
        i++;
    } else {
        return 0;
    }
    if (i < end_idx && s[i] == '.' && validate_isdigit(s[i + 1])) {
        i += 2;
        while (i <= end_idx && validate_isdigit(s[i]))
            i++;
    }
    if (i < end_idx && (s[i] == 'e' || s[i] == 'E')) {
        size_t e_start = i++;
        if (i < end_idx && (s[i] == '-' || s[i] == '+'))
            i++;
        while (i <= end_idx && validate_isdigit(s[i]))
            i++;
        if (!validate_isdigit(s[i - 1]))
            i = e_start;
    }
    return i;
}

static bool validate_lit(const char *s, size_t n, size_t i, const char *lit)
{
    size_t l = strlen(lit);
    return i + l <= n && memcmp(s + i, lit, l) == 0;
}

#define PYJSON_MAX_DEPTH 4096

/* Finds where and why Python's json.loads() (CPython 3.14) rejects s: returns true with the byte
 * offset and message, or false when Python would accept it (NaN, big numbers, lone
 * surrogates, deep nesting: jansson-only failures). Iterative: request bodies may nest
 * deeply and fiber stacks are small. */
static bool validate_pyjson_error(const char *s, size_t n, size_t *pos, const char **msg)
{
    unsigned char stack[PYJSON_MAX_DEPTH / 8];
    size_t depth = 0, i = validate_pyws(s, n, 0);
    enum { VALUE, KEY, AFTER } st = VALUE;
#define PY_FAIL(P, M)                                                                              \
    do {                                                                                           \
        *pos = (P);                                                                                \
        *msg = (M);                                                                                \
        return true;                                                                               \
    } while (0)
    for (;;) {
        if (st == VALUE) {
            size_t e;
            if (i >= n)
                PY_FAIL(i, "Expecting value");
            char ch = s[i];
            if (ch == '"') {
                if (!validate_pystring(s, n, i, &e, pos, msg))
                    return true;
                i = e;
            } else if (ch == '{' || ch == '[') {
                if (depth == PYJSON_MAX_DEPTH)
                    return false;
                if (ch == '{')
                    stack[depth / 8] |= (unsigned char)(1u << (depth % 8));
                else
                    stack[depth / 8] &= (unsigned char)~(1u << (depth % 8));
                depth++;
                i = validate_pyws(s, n, i + 1);
                if (i < n && s[i] == (ch == '{' ? '}' : ']')) {
                    depth--;
                    i++;
                } else {
                    st = ch == '{' ? KEY : VALUE;
                    continue;
                }
            } else if (validate_lit(s, n, i, "null") || validate_lit(s, n, i, "true")) {
                i += 4;
            } else if (validate_lit(s, n, i, "false")) {
                i += 5;
            } else if (validate_lit(s, n, i, "NaN")) {
                i += 3;
            } else if (validate_lit(s, n, i, "Infinity")) {
                i += 8;
            } else if (validate_lit(s, n, i, "-Infinity")) {
                i += 9;
            } else if ((e = validate_pynumber(s, n, i)) != 0) {
                i = e;
            } else {
                PY_FAIL(i, "Expecting value");
            }
            st = AFTER;
        } else if (st == KEY) {
            size_t e;
            if (i >= n || s[i] != '"')
                PY_FAIL(i, "Expecting property name enclosed in double quotes");
            if (!validate_pystring(s, n, i, &e, pos, msg))
                return true;
            i = validate_pyws(s, n, e);
            if (i >= n || s[i] != ':')
                PY_FAIL(i, "Expecting ':' delimiter");
            i = validate_pyws(s, n, i + 1);
            st = VALUE;
        } else {
            if (depth == 0) {
                i = validate_pyws(s, n, i);
                if (i != n)
                    PY_FAIL(i, "Extra data");
                return false;
            }
            bool obj = (stack[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
            char close = obj ? '}' : ']';
            i = validate_pyws(s, n, i);
            if (i < n && s[i] == close) {
                depth--;
                i++;
                continue;
            }
            if (i >= n || s[i] != ',')
                PY_FAIL(i, "Expecting ',' delimiter");
            size_t comma = i;
            i = validate_pyws(s, n, i + 1);
            if (i < n && s[i] == close)
                PY_FAIL(comma, obj ? "Illegal trailing comma before end of object"
                                   : "Illegal trailing comma before end of array");
            st = obj ? KEY : VALUE;
        }
    }
#undef PY_FAIL
}

/* FastAPI answers a body json.loads() rejects with this single error, before validating
 * anything else. */
static json_t *validate_json_invalid(const char *s, size_t n, const json_error_t *je)
{
    size_t pos = 0;
    const char *msg = NULL;
    if (!validate_pyjson_error(s, n, &pos, &msg)) {
        /* Python would have parsed it (NaN, an integer beyond 64 bits, ...): report where
         * jansson stopped, in the same shape. */
        pos = je->position <= (int)n ? (size_t)je->position : n;
        msg = "Expecting value";
    }
    json_t *e = json_object();
    json_object_set_new(e, "type", json_string("json_invalid"));
    json_object_set_new(e, "loc",
                        json_pack("[sI]", "body", (json_int_t)validate_codepoints(s, pos)));
    json_object_set_new(e, "msg", json_string("JSON decode error"));
    json_object_set_new(e, "input", json_object());
    json_object_set_new(e, "ctx", json_pack("{ss}", "error", msg));
    json_t *errs = json_array();
    json_array_append_new(errs, e);
    return errs;
}

/* ---------------------------------------------------------------- parameters */

struct qstate {
    const petrel__vplan_t *plan;
    json_t *vals[PETREL_MAX_QUERY]; /* scalar: last string; list: array of strings */
};

static int validate_query_cb(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    struct qstate *q = ctx;
    for (size_t i = 0; i < q->plan->nquery; i++) {
        const petrel_field_t *f = q->plan->query[i].f;
        if (strlen(f->name) != klen || memcmp(f->name, k, klen) != 0)
            continue;
        char *tmp;
        size_t len;
        const char *s = validate_pystr(v, vlen, &len, &tmp);
        json_t *str = json_stringn(s, len);
        free(tmp);
        if (f->type == PETREL_T_ARRAY) {
            if (q->vals[i] == NULL)
                q->vals[i] = json_array();
            json_array_append_new(q->vals[i], str);
        } else {
            /* Starlette's QueryParams.get() returns the last value of a repeated key. */
            json_decref(q->vals[i]);
            q->vals[i] = str;
        }
    }
    return 0;
}

/* Validates one path/query/header parameter whose raw value is `raw` (a string, an array
 * of strings for lists, or NULL when absent). */
static void validate_param(struct vctx *c, const struct vfield *v, json_t *raw, json_t *params,
                           bool *ok)
{
    const petrel_field_t *f = v->f;
    validate_push_name(c, v->alias != NULL ? v->alias : f->name);
    if (raw == NULL) {
        if (f->required || f->in == PETREL_IN_PATH) {
            validate_err(c, "missing", "Field required", NULL, NULL);
            *ok = false;
        } else if (v->dflt != NULL) {
            json_object_set_new(params, f->name, json_deep_copy(v->dflt));
        }
    } else {
        json_t *r;
        if (f->type == PETREL_T_ARRAY)
            r = validate_list(c, v, raw, true, 0);
        else
            r = validate_from_str(c, v, f->type, json_string_value(raw), json_string_length(raw),
                                  raw);
        if (r == NULL)
            *ok = false;
        else
            json_object_set_new(params, f->name, r);
    }
    validate_pop(c);
}

static json_t *validate_header_raw(const struct vfield *hv, petrel__header_cb hdr, void *ctx)
{
    const petrel_field_t *f = hv->f;
    size_t len = 0;
    if (hdr == NULL)
        return NULL;
    const char *v = hdr(ctx, hv->alias, &len);
    if (v == NULL)
        return NULL;
    char *tmp;
    size_t olen;
    const char *s = validate_pystr(v, len, &olen, &tmp);
    json_t *str = json_stringn(s, olen);
    free(tmp);
    if (f->type != PETREL_T_ARRAY)
        return str;
    json_t *arr = json_array();
    json_array_append_new(arr, str);
    return arr;
}

/* Python's email.message content type: main/sub, lowercased, parameters dropped; a value
 * without a '/' counts as text/plain. */
static bool body_is_json(petrel__header_cb hdr, void *ctx)
{
    size_t len = 0;
    const char *ct = hdr != NULL ? hdr(ctx, "content-type", &len) : NULL;
    if (ct == NULL || len == 0)
        return true; /* FastAPI: `if not content_type_value`, an empty one included */
    size_t i = 0, end;
    while (i < len && (ct[i] == ' ' || ct[i] == '\t'))
        i++;
    end = i;
    while (end < len && ct[end] != ';')
        end++;
    while (end > i && (ct[end - 1] == ' ' || ct[end - 1] == '\t'))
        end--;
    const char *slash = memchr(ct + i, '/', end - i);
    if (slash == NULL)
        return false;
    size_t mlen = (size_t)(slash - (ct + i));
    const char *sub = slash + 1;
    size_t slen = (size_t)(ct + end - sub);
    if (memchr(sub, '/', slen) != NULL)
        return false; /* "a/b/c" is no type at all: email.message says text/plain */
    if (mlen != 11 || strncasecmp(ct + i, "application", 11) != 0)
        return false;
    return (slen == 4 && strncasecmp(sub, "json", 4) == 0) ||
           (slen >= 5 && strncasecmp(sub + slen - 5, "+json", 5) == 0);
}

bool petrel__vplan_trivial(const petrel__vplan_t *p)
{
    return p->trivial;
}

json_t *petrel__validate(const petrel__match_t *m, const char *query, size_t qlen,
                         petrel__header_cb hdr, void *hdr_ctx, const char *body, size_t blen,
                         bool has_body, json_t **params, json_t **body_out)
{
    const petrel__vplan_t *plan = m->plan;
    petrel__vplan_t *own = NULL;
    json_t *errs = NULL, *out = NULL, *bin = NULL, *bout = NULL;
    struct vctx c = {NULL, NULL};
    struct qstate q;
    bool ok = true;
    char err[256];
    petrel_field_t args[PETREL_MAX_PATH];
    *params = NULL;
    *body_out = NULL;
    if (plan == NULL) {
        for (size_t i = 0; i < m->nargs; i++)
            args[i] = *m->args[i].field;
        own = petrel__vplan_new(m->route, args, m->nargs, err, sizeof(err));
        PETREL_ASSERT(own != NULL);
        plan = own;
    }
    if (plan->trivial)
        goto out; /* no parameters: *params stays NULL (req.c creates it on demand) */
    /* FastAPI parses the body as JSON only without a Content-Type or with a JSON one
     * (application/json, application/<x>+json); otherwise the model sees the raw text. */
    if (plan->body != NULL && has_body && blen > 0 && !body_is_json(hdr, hdr_ctx)) {
        char *tmp;
        size_t len;
        const char *txt = validate_pystr(body, blen, &len, &tmp);
        bin = json_stringn(txt, len);
        free(tmp);
    } else if (plan->body != NULL && has_body && blen > 0) {
        /* FastAPI reads the body first: undecodable JSON is the only error reported. */
        const char *b = body;
        size_t n = blen;
        json_error_t je;
        if (n >= 3 && memcmp(b, "\xef\xbb\xbf", 3) == 0) { /* json.loads(bytes) drops a BOM */
            b += 3;
            n -= 3;
        }
        bin = json_loadb(b, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (bin == NULL) {
            errs = validate_json_invalid(b, n, &je);
            goto out;
        }
    }
    out = json_object();
    c.errs = json_array();
    c.loc = json_array();
    json_array_append_new(c.loc, json_string("path"));
    for (size_t i = 0; i < plan->npath && i < m->nargs; i++) {
        char *tmp;
        size_t len;
        const char *s = validate_pystr(m->args[i].val, m->args[i].len, &len, &tmp);
        json_t *raw = json_stringn(s, len);
        free(tmp);
        validate_param(&c, &plan->path[i], raw, out, &ok);
        json_decref(raw);
    }
    json_array_set_new(c.loc, 0, json_string("query"));
    memset(&q, 0, sizeof(q));
    q.plan = plan;
    if (plan->nquery > 0 && query != NULL)
        petrel__query_each(query, qlen, validate_query_cb, &q);
    for (size_t i = 0; i < plan->nquery; i++) {
        validate_param(&c, &plan->query[i], q.vals[i], out, &ok);
        json_decref(q.vals[i]);
    }
    json_array_set_new(c.loc, 0, json_string("header"));
    for (size_t i = 0; i < plan->nheader; i++) {
        json_t *raw = validate_header_raw(&plan->header[i], hdr, hdr_ctx);
        validate_param(&c, &plan->header[i], raw, out, &ok);
        json_decref(raw);
    }
    if (plan->body != NULL) {
        json_array_set_new(c.loc, 0, json_string("body"));
        if (bin == NULL || json_is_null(bin)) {
            /* FastAPI treats an absent body and a JSON null alike. */
            if (plan->body_required) {
                validate_err(&c, "missing", "Field required", NULL, NULL);
                ok = false;
            } else {
                bout = plan->body->dflt ? json_deep_copy(plan->body->dflt) : json_null();
            }
        } else {
            bout = validate_value(&c, plan->body, bin, 0);
            ok = ok && bout != NULL;
        }
    }
    if (!ok) {
        errs = c.errs;
        c.errs = NULL;
        goto out;
    }
    *params = out;
    out = NULL;
    *body_out = bout;
    bout = NULL;
out:
    json_decref(c.errs);
    json_decref(c.loc);
    json_decref(out);
    json_decref(bin);
    json_decref(bout);
    petrel__vplan_free(own);
    return errs;
}
