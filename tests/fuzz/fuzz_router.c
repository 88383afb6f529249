/*
 * fuzz_router.c - libFuzzer target for the route trie: request paths and
 * methods against a fixed table, arbitrary templates through router_add, and
 * the percent-decoding and query-string helpers.
 *
 * Input: byte 0 picks the mode, byte 1 the method, the rest is the text.
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

static const petrel_route_t fuzz_routes[] = {
    PETREL_ROUTE(GET, "/", fuzz_handler),
    PETREL_ROUTE(GET, "/items", fuzz_handler),
    PETREL_ROUTE(POST, "/items", fuzz_handler),
    PETREL_ROUTE(GET, "/items/{item_id:int}", fuzz_handler),
    PETREL_ROUTE(DELETE, "/items/{item_id:int}", fuzz_handler),
    PETREL_ROUTE(GET, "/items/special", fuzz_handler),
    PETREL_ROUTE(GET, "/items/{id}/tags/{tag}", fuzz_handler),
    PETREL_ROUTE(GET, "/files/{p:path}", fuzz_handler),
    PETREL_ROUTE(PUT, "/files/{name}/meta", fuzz_handler),
    PETREL_ROUTE(GET, "/u/{id:uuid}/x/{f:float}", fuzz_handler),
    PETREL_ROUTE(OPTIONS, "/a/b/c/d/e/f/g/{h}", fuzz_handler),
};

static const char *const fuzz_methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                           "PATCH", "DELETE", "OPTIONS", "BREW"};

static petrel__router_t *fuzz_table(void)
{
    static petrel__router_t *r;
    char err[256];
    if (r != NULL)
        return r;
    r = petrel__router_new();
    for (size_t i = 0; i < sizeof(fuzz_routes) / sizeof(fuzz_routes[0]); i++)
        PETREL_ASSERT(petrel__router_add(r, &fuzz_routes[i], err, sizeof(err)) == 0);
    return r;
}

static int fuzz_query_cb(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    size_t *total = ctx;
    *total += klen + vlen;
    (void)k;
    (void)v;
    return 0;
}

static void fuzz_match(const petrel__router_t *r, const char *method, const char *p, size_t n)
{
    char *scratch = malloc(n + 1);
    petrel__match_t m;
    int st = petrel__router_match(r, method, strlen(method), p, n, scratch, &m);
    PETREL_ASSERT(st == 0 || st == 404 || st == 405);
    PETREL_ASSERT(st == m.status);
    if (st == 0) {
        PETREL_ASSERT(m.route != NULL && m.nargs <= PETREL_MAX_PATH);
        for (size_t i = 0; i < m.nargs; i++) {
            PETREL_ASSERT(m.args[i].val >= scratch && m.args[i].val + m.args[i].len <= scratch + n);
            PETREL_ASSERT(m.args[i].field != NULL && m.args[i].field->name != NULL);
        }
    } else {
        PETREL_ASSERT(m.route == NULL);
        PETREL_ASSERT((st == 405) == (m.allow != NULL));
    }
    free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *method = fuzz_methods[data[1] % 8];
    const char *text = (const char *)data + 2;
    size_t n = size - 2;
    switch (data[0] % 3) {
    case 0:
        fuzz_match(fuzz_table(), method, text, n);
        break;
    case 1: {
        /* A template from the input must be rejected cleanly or then match itself. */
        char *tpl = malloc(n + 1), err[256];
        memcpy(tpl, text, n);
        tpl[n] = '\0';
        petrel_route_t rt = {.method = method, .path = tpl, .handler = fuzz_handler};
        petrel__router_t *r = petrel__router_new();
        if (petrel__router_add(r, &rt, err, sizeof(err)) == 0) {
            PETREL_ASSERT(petrel__router_count(r) == 1);
            PETREL_ASSERT(petrel__router_add(r, &rt, err, sizeof(err)) == PETREL_EINVAL);
        }
        fuzz_match(r, method, tpl, strlen(tpl));
        petrel__router_free(r);
        free(tpl);
        break;
    }
    default: {
        char *dst = malloc(n + 1);
        size_t total = 0;
        PETREL_ASSERT(petrel__pct_decode(dst, text, n, true) <= n);
        petrel__query_each(text, n, fuzz_query_cb, &total);
        PETREL_ASSERT(total <= n);
        free(dst);
        break;
    }
    }
    return 0;
}
