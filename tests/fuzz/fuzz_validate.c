/*
 * fuzz_validate.c - libFuzzer target for request validation: path, query,
 * header and JSON body of one input against a route that uses every field
 * type. Every answer must be either a params object or a well-formed detail
 * array whose entries carry type, loc, msg and input.
 *
 * Input: path segment, query string, header value and body separated by 0xff
 * bytes (missing parts are absent).
 */
#include <stdlib.h>
#include <string.h>

#include <petrel/common.h>

#include "router_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_handler(petrel_req_t *req)
{
    (void)req;
    return 0;
}

static const petrel_field_t fuzz_dims[] = {PETREL_F_INT("w", .required = true, .ge = "0"),
                                           PETREL_F_FLOAT("h", .lt = "1e3"), PETREL_F_END};
static const petrel_field_t fuzz_tag = {.type = PETREL_T_STR, .max_length = 8};
static const petrel_field_t fuzz_fields[] = {
    PETREL_F_STR("name", .required = true, .min_length = 1, .max_length = 20),
    PETREL_F_FLOAT("price", .required = true, .gt = "0"),
    PETREL_F_STR("kind", .enum_values = (const char *const[]){"a", "b", "c", NULL}),
    PETREL_F_INT("qty", .dflt = "1", .le = "100"),
    PETREL_F_BOOL("active", .nullable = true),
    PETREL_F("id", PETREL_T_UUID),
    PETREL_F("tags", PETREL_T_ARRAY, .items = &fuzz_tag, .min_length = 1, .max_length = 4),
    PETREL_F("set", PETREL_T_ARRAY, .unique = true,
             .items = &(const petrel_field_t){.type = PETREL_T_FLOAT}),
    PETREL_F("dims", PETREL_T_OBJECT, .fields = fuzz_dims),
    PETREL_F("extra", PETREL_T_ANY),
    PETREL_F_END,
};
static const petrel_route_t fuzz_route =
    PETREL_ROUTE(POST, "/items/{id:int}/{u:uuid}/{rest:path}", fuzz_handler,
                 .query = {PETREL_Q_INT("limit", .dflt = "10", .ge = "1", .le = "100"),
                           PETREL_Q_BOOL("b"), PETREL_Q_FLOAT("f"),
                           PETREL_Q_STR("s", .enum_values = (const char *const[]){"x", NULL}),
                           PETREL_Q_LIST("ids", PETREL_T_INT, .max_length = 5),
                           PETREL_H("x_token", PETREL_T_UUID)},
                 .body = PETREL_OBJECT("Item", fuzz_fields));

static const char *fuzz_hdr_val;
static size_t fuzz_hdr_len;

static const char *fuzz_hdr(void *ctx, const char *name, size_t *len)
{
    (void)ctx;
    (void)name;
    *len = fuzz_hdr_len;
    return fuzz_hdr_val;
}

static void fuzz_split(const char **p, size_t *n, const char **part, size_t *plen)
{
    const char *sep = memchr(*p, 0xff, *n);
    *part = *p;
    *plen = sep ? (size_t)(sep - *p) : *n;
    *p = sep ? sep + 1 : *p + *n;
    *n = sep ? *n - *plen - 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static petrel__router_t *r;
    char err[256];
    if (r == NULL) {
        r = petrel__router_new();
        PETREL_ASSERT(petrel__router_add(r, &fuzz_route, err, sizeof(err)) == 0);
    }
    const char *p = (const char *)data, *seg, *q, *h, *b;
    size_t n = size, seglen, qlen, hlen, blen;
    fuzz_split(&p, &n, &seg, &seglen);
    fuzz_split(&p, &n, &q, &qlen);
    fuzz_split(&p, &n, &h, &hlen);
    b = p;
    blen = n;
    bool has_body = size % 2 == 0;
    fuzz_hdr_val = hlen > 0 ? h : NULL;
    fuzz_hdr_len = hlen;

    /* Segment bytes go into the first two parameters and the tail verbatim. */
    char *path = malloc(seglen * 3 + 64), *scratch = malloc(seglen * 3 + 64);
    size_t half = seglen / 2;
    int w = snprintf(path, seglen * 3 + 64, "/items/%.*s/%.*s/%.*s", (int)half, seg,
                     (int)(seglen - half), seg + half, (int)seglen, seg);
    petrel__match_t m;
    if (petrel__router_match(r, "POST", 4, path, (size_t)w, scratch, &m) == 0) {
        json_t *params = NULL, *body = NULL;
        json_t *errs =
            petrel__validate(&m, q, qlen, fuzz_hdr, NULL, b, blen, has_body, &params, &body);
        if (errs != NULL) {
            PETREL_ASSERT(json_is_array(errs) && json_array_size(errs) > 0);
            PETREL_ASSERT(params == NULL && body == NULL);
            size_t i;
            json_t *e;
            json_array_foreach (errs, i, e) {
                PETREL_ASSERT(json_is_string(json_object_get(e, "type")));
                PETREL_ASSERT(json_is_array(json_object_get(e, "loc")));
                PETREL_ASSERT(json_is_string(json_object_get(e, "msg")));
                PETREL_ASSERT(json_object_get(e, "input") != NULL);
            }
            char *s = json_dumps(errs, JSON_COMPACT);
            PETREL_ASSERT(s != NULL);
            free(s);
            json_decref(errs);
        } else {
            PETREL_ASSERT(json_is_object(params));
            PETREL_ASSERT(json_is_integer(json_object_get(params, "limit")));
            json_decref(params);
            json_decref(body);
        }
    }
    free(path);
    free(scratch);
    return 0;
}
