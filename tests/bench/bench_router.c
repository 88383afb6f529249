/*
 * bench_router.c - route lookup cost against table size. Registers 10, 100,
 * 500 and 1000 routes of REST-like shapes, matches a fixed mix of request paths
 * (hits with parameters, static hits, 405s and 404s) for about a second per
 * size, and prints ns/match. A trie keeps the cost O(path depth): the last
 * column stays near 1x while the route count grows 100x.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/common.h>

#include "router_int.h"

#define MAX_ROUTES 1000
#define NPATHS 64

static int bench_handler(petrel_req_t *req)
{
    (void)req;
    return 0;
}

static petrel_route_t routes[MAX_ROUTES];
static char route_paths[MAX_ROUTES][96];

/* Five shapes per resource, as a CRUD API has: list/create, one item, a sub-collection,
 * a static action next to the item parameter, and a path tail. */
static size_t bench_fill(size_t n)
{
    static const char *const shapes[] = {"", "/{id:int}", "/{id:int}/items/{item:uuid}", "/search",
                                         "/files/{p:path}"};
    static const char *const methods[] = {"GET", "PUT", "GET", "POST", "GET"};
    for (size_t i = 0; i < n; i++) {
        size_t res = i / 5, shape = i % 5;
        snprintf(route_paths[i], sizeof(route_paths[i]), "/api/v1/res%zu%s", res, shapes[shape]);
        routes[i] = (petrel_route_t){
            .method = methods[shape], .path = route_paths[i], .handler = bench_handler};
    }
    return n;
}

static void bench_paths(size_t nroutes, char paths[NPATHS][128], const char *meth[NPATHS])
{
    size_t nres = nroutes / 5;
    for (size_t i = 0; i < NPATHS; i++) {
        size_t res = (i * 7919) % nres;
        meth[i] = "GET";
        switch (i % 8) {
        case 0:
            snprintf(paths[i], 128, "/api/v1/res%zu", res);
            break;
        case 1:
            snprintf(paths[i], 128, "/api/v1/res%zu/%zu", res, i * 31);
            meth[i] = "PUT";
            break;
        case 2:
            snprintf(paths[i], 128, "/api/v1/res%zu/%zu/items/0b7e6f1c-7c1d-4b7a-9a57-1c2d3e4f5a6b",
                     res, i);
            break;
        case 3:
            snprintf(paths[i], 128, "/api/v1/res%zu/search", res);
            meth[i] = "POST";
            break;
        case 4:
            snprintf(paths[i], 128, "/api/v1/res%zu/files/a/b/c%zu.txt", res, i);
            break;
        case 5:
            snprintf(paths[i], 128, "/api/v1/res%zu/%zu", res, i); /* 405: GET on a PUT route */
            break;
        case 6:
            snprintf(paths[i], 128, "/api/v1/res%zu/nothing/here", res); /* 404 */
            break;
        default:
            snprintf(paths[i], 128, "/api/v1/res%zu/caf%%C3%%A9/items/x", res); /* decoded 404 */
            break;
        }
    }
}

int main(void)
{
    static const size_t sizes[] = {10, 100, 500, 1000};
    static char paths[NPATHS][128];
    static const char *meth[NPATHS];
    char scratch[256], err[256];
    double first = 0;
    int rc = 0;
    printf("%8s %12s %10s %10s   %s\n", "routes", "matches", "ns/match", "vs 10", "statuses");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = bench_fill(sizes[s]);
        petrel__router_t *r = petrel__router_new();
        for (size_t i = 0; i < n; i++) {
            if (petrel__router_add(r, &routes[i], err, sizeof(err)) != 0) {
                fprintf(stderr, "add %s: %s\n", routes[i].path, err);
                return 1;
            }
        }
        bench_paths(n, paths, meth);
        size_t plen[NPATHS], mlen[NPATHS];
        int counts[3] = {0, 0, 0};
        for (size_t i = 0; i < NPATHS; i++) {
            petrel__match_t m;
            plen[i] = strlen(paths[i]);
            mlen[i] = strlen(meth[i]);
            int st = petrel__router_match(r, meth[i], mlen[i], paths[i], plen[i], scratch, &m);
            counts[st == 0 ? 0 : st == 405 ? 1 : 2]++;
        }
        uint64_t matches = 0;
        volatile int sink = 0;
        int64_t t0 = petrel_now_ns(), t1;
        do {
            for (int rep = 0; rep < 1000; rep++) {
                for (size_t i = 0; i < NPATHS; i++) {
                    petrel__match_t m;
                    sink +=
                        petrel__router_match(r, meth[i], mlen[i], paths[i], plen[i], scratch, &m);
                }
            }
            matches += 1000 * NPATHS;
            t1 = petrel_now_ns();
        } while (t1 - t0 < 1000000000LL);
        double ns = (double)(t1 - t0) / (double)matches;
        if (s == 0)
            first = ns;
        printf("%8zu %12llu %10.1f %9.2fx   %d ok / %d 405 / %d 404\n", n,
               (unsigned long long)matches, ns, ns / first, counts[0], counts[1], counts[2]);
        petrel__router_free(r);
        (void)sink;
    }
    return rc;
}
