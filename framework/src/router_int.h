/*
 * router_int.h - private: the compiled route table and request validation.
 * Used by server.c; implemented by router.c (matching) and validate.c
 * (parameters, body, FastAPI/Pydantic v2 error documents).
 */
#ifndef PETREL_ROUTER_INT_H
#define PETREL_ROUTER_INT_H

#include <stdbool.h>

#include <jansson.h>

#include "petrel/route.h"

typedef struct petrel__router petrel__router_t;
/** A route's validation plan: defaults, bounds and enum texts parsed once at add time. */
typedef struct petrel__vplan petrel__vplan_t;

/** One path parameter slice of a matched request. */
typedef struct petrel__path_arg {
    const petrel_field_t *field; /**< name + type + constraints (template type merged with
                                      route->path_params); owned by the router */
    const char *val;             /**< percent-decoded value; points into the caller's buffer */
    size_t len;
} petrel__path_arg_t;

typedef struct petrel__match {
    const petrel_route_t *route; /**< NULL when status != 0 */
    int status;                  /**< 0 matched; 404 no path; 405 path matched, method did not */
    const char *allow;           /**< for 405: "GET, HEAD, POST" (owned by the router) */
    size_t nargs;
    petrel__path_arg_t args[PETREL_MAX_PATH];
    const petrel__vplan_t *plan; /**< the route's validation plan (owned by the router); NULL:
                                      petrel__validate compiles a temporary one per call */
    bool trivial;                /**< the plan checks nothing: petrel__validate may be skipped */
} petrel__match_t;

petrel__router_t *petrel__router_new(void);
void petrel__router_free(petrel__router_t *r);
/** Adds a route (borrowed). Returns 0, or PETREL_EINVAL with a reason in err (bad template,
 * unknown parameter type, duplicate method+path). */
int petrel__router_add(petrel__router_t *r, const petrel_route_t *route, char *err, size_t errlen);
/**
 * Matches method + path. `path` is the raw request path without the query string;
 * it is percent-decoded into `scratch` (capacity >= plen + 1) and matched there,
 * as Starlette does; m->args point into scratch. HEAD matches GET routes.
 * Never allocates. Returns m->status.
 */
int petrel__router_match(const petrel__router_t *r, const char *method, size_t mlen,
                         const char *path, size_t plen, char *scratch, petrel__match_t *m);
/** Number of routes. */
size_t petrel__router_count(const petrel__router_t *r);

/** Header lookup used by validation for PETREL_IN_HEADER fields: returns NULL when absent. */
typedef const char *(*petrel__header_cb)(void *ctx, const char *name, size_t *len);

/**
 * Validates a matched request against its route declaration.
 * - path args (from m), query string `query` (raw, without '?'), headers via hdr, and the
 *   body (`body`, `blen`; `has_body` false when the request had none).
 * On success returns NULL and sets *params (NULL for a route that declares no parameter and
 * no body, else a new object: every path/query/header parameter
 * that has a value, converted: int -> json integer, float -> real, bool -> true/false,
 * str/uuid/path -> string, list -> array; defaults applied) and *body_out (the parsed body
 * with defaults applied, or NULL when the route declares no body). Both owned by the caller.
 * On failure returns a new JSON array: the FastAPI "detail" list of every error, in
 * Pydantic v2's exact shape; *params and *body_out are left NULL.
 */
json_t *petrel__validate(const petrel__match_t *m, const char *query, size_t qlen,
                         petrel__header_cb hdr, void *hdr_ctx, const char *body, size_t blen,
                         bool has_body, json_t **params, json_t **body_out);

/**
 * Compiles a route's validation plan (used by petrel__router_add): parses every default and
 * bound once. path_args are the merged path parameter fields (borrowed; must outlive the plan).
 * Returns NULL with a reason in err when a default or bound is not valid JSON.
 * Owned: free with petrel__vplan_free().
 */
petrel__vplan_t *petrel__vplan_new(const petrel_route_t *route, const petrel_field_t *path_args,
                                   size_t nargs, char *err, size_t errlen);
void petrel__vplan_free(petrel__vplan_t *p);
/** True when the plan has nothing to check: no parameter of any kind and no body. */
bool petrel__vplan_trivial(const petrel__vplan_t *p);

/** Python's repr(float) of d: the shortest digits that round-trip, "42.0", "0.1", "1e+16",
 * "1e-05", "-0.0" ("inf"/"nan" for non-finite values). Writes at most len bytes (NUL
 * included) into out; returns the full length. PETREL__FLOAT_REPR_MAX always suffices. */
#define PETREL__FLOAT_REPR_MAX 32
size_t petrel__float_repr(double d, char *out, size_t len);
/** Rust's f64 Display of d, as pydantic-core prints float bounds in messages: the shortest
 * round-trip digits, never an exponent, no ".0" ("3", "0.5", "100000000000000000000"). */
#define PETREL__FLOAT_FIXED_MAX 400
size_t petrel__float_fixed(double d, char *out, size_t len);

/** Percent-decodes `src` into dst (capacity >= len + 1); `plus` turns '+' into ' ' (query).
 * Returns the decoded length. Invalid escapes are kept literally. */
size_t petrel__pct_decode(char *dst, const char *src, size_t len, bool plus);

/** Calls cb for each key=value pair of a raw query string, both percent-decoded
 * (into a scratch buffer of the callee); stops when cb returns nonzero. */
void petrel__query_each(const char *q, size_t qlen,
                        int (*cb)(void *ctx, const char *k, size_t klen, const char *v,
                                  size_t vlen),
                        void *ctx);

#endif
