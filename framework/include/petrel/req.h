/*
 * petrel/req.h - the request a handler receives and the responses it sends.
 *
 * A petrel_req_t lives on its request's fiber until the handler returns and the
 * response is handed to the server. Memory from petrel_req_alloc() and every
 * string returned here is "arena": it lives until the request is finished;
 * never free it. A request whose client disconnected stays valid for its
 * handler (its awaits then return PETREL_ECANCELED); the response is dropped.
 */
#ifndef PETREL_REQ_H
#define PETREL_REQ_H

#include <stdbool.h>

#include <jansson.h>

#include "common.h"
#include "route.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct petrel_app petrel_app_t;

/** A list of strings (arena). */
typedef struct petrel_strv {
    const char **v;
    size_t n;
} petrel_strv_t;

/** A byte string view (borrowed or arena, as documented at the call). */
typedef struct petrel_str {
    const char *p;
    size_t len;
} petrel_str_t;

/* ---- request ---- */

/** Method ("GET", ...), path (without query, percent-decoded segments not applied), raw query.
 * Arena. */
PETREL_API const char *petrel_req_method(petrel_req_t *req);
PETREL_API petrel_str_t petrel_req_path(petrel_req_t *req);
PETREL_API petrel_str_t petrel_req_query_string(petrel_req_t *req);
/** The matched route declaration (borrowed), or NULL. */
PETREL_API const petrel_route_t *petrel_req_route(petrel_req_t *req);
/** The request id (X-Request-ID when sane, else generated). Arena. */
PETREL_API const char *petrel_req_id(petrel_req_t *req);
/** The app serving the request. Borrowed. */
PETREL_API petrel_app_t *petrel_req_app(petrel_req_t *req);
/** Index of the worker thread serving the request (0-based). */
PETREL_API int petrel_req_worker(petrel_req_t *req);
/** First value of request header `name` (case-insensitive), or NULL. Arena. */
PETREL_API const char *petrel_req_header(petrel_req_t *req, const char *name);
/** The peer's address as text ("127.0.0.1"). Arena. */
PETREL_API const char *petrel_req_peer(petrel_req_t *req);
/** Raw request body (arena; len 0 when none). */
PETREL_API petrel_str_t petrel_req_body(petrel_req_t *req);
/** Allocates `sz` bytes from the request arena (aborts on OOM; sized by the app, not input). */
PETREL_API void *petrel_req_alloc(petrel_req_t *req, size_t sz);
/** printf into the request arena. */
PETREL_API const char *petrel_req_sprintf(petrel_req_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- validated parameters (after the route's declaration was checked) ---- */

/** All validated path+query+header parameters as a JSON object. Borrowed (request-owned). */
PETREL_API json_t *petrel_params(petrel_req_t *req);
/** True when parameter `name` has a value (given, or defaulted). */
PETREL_API bool petrel_param_has(petrel_req_t *req, const char *name);
/** Typed accessors for a validated parameter (path, query or header); the
 * fallback is returned when the parameter has no value. Strings are arena. */
PETREL_API int64_t petrel_param_int(petrel_req_t *req, const char *name, int64_t fallback);
PETREL_API double petrel_param_float(petrel_req_t *req, const char *name, double fallback);
PETREL_API bool petrel_param_bool(petrel_req_t *req, const char *name, bool fallback);
PETREL_API const char *petrel_param_str(petrel_req_t *req, const char *name, const char *fallback);
/** A validated list parameter (PETREL_T_ARRAY), borrowed; NULL when absent. */
PETREL_API json_t *petrel_param_json(petrel_req_t *req, const char *name);
/** Raw, unvalidated query parameter lookups (first value / every value, percent-decoded). Arena. */
PETREL_API const char *petrel_query_raw(petrel_req_t *req, const char *name);
/** A comma-separated or repeated query parameter split into strings ("a,b,c" or a=..&a=..). Arena.
 */
PETREL_API petrel_strv_t petrel_query_list(petrel_req_t *req, const char *name);
/** The validated JSON body (defaults applied), borrowed; NULL when the route has no body. */
PETREL_API json_t *petrel_body(petrel_req_t *req);

/* ---- responses: each returns 0 so a handler can `return petrel_json(...)` ---- */

/** Adds a response header (copied). Returns 0, or PETREL_EINVAL for a bad name/value. */
PETREL_API int petrel_resp_header(petrel_req_t *req, const char *name, const char *value);
/** Answers `status` with `body` serialised as JSON. Steals `body` (a NULL body is sent as null). */
PETREL_API int petrel_json(petrel_req_t *req, int status, json_t *body);
/** Answers `status` with bytes (copied) and the given content type. */
PETREL_API int petrel_send(petrel_req_t *req, int status, const char *content_type,
                           const void *body, size_t len);
/** Answers `status` with {"detail": detail}. */
PETREL_API int petrel_error(petrel_req_t *req, int status, const char *detail);
/** Answers `status` with {"detail": detail_json}; steals detail_json. */
PETREL_API int petrel_error_json(petrel_req_t *req, int status, json_t *detail);
/** Answers `status` with no body (204, 304). */
PETREL_API int petrel_empty(petrel_req_t *req, int status);

/* ---- JSON text, as petrel sends it ---- */

/**
 * Serialises `json` exactly as petrel answers (and as Starlette's JSONResponse, i.e.
 * Python's json.dumps(ensure_ascii=False, separators=(",", ":")), would): compact, object
 * keys in insertion order, UTF-8 unescaped, only '"', '\\' and C0 controls escaped (as
 * \n-style pairs or \u00xx, lowercase hex), integers in decimal and reals as Python's
 * repr(): the shortest digits that round-trip, so 0.1 is "0.1", 42.0 is "42.0" and 1e16 is
 * "1e+16". A NULL json is written as null. `json` is borrowed; cb(buffer, size, data) is
 * called for each piece, as with jansson's json_dump_callback(). Never awaits.
 * Returns 0, PETREL_EINVAL when cb failed or a real is not finite (jansson cannot normally
 * hold one), or PETREL_ETOOBIG for containers nested deeper than 65536.
 */
PETREL_API PETREL_NODISCARD int petrel_json_dump(const json_t *json, json_dump_callback_t cb,
                                                 void *data);
/** petrel_json_dump() into a NUL-terminated string; *len (may be NULL) gets its length.
 * Owned: free(). NULL on the errors of petrel_json_dump(). */
PETREL_API char *petrel_json_dumps(const json_t *json, size_t *len);
/** Python's repr(float) of d ("42.0", "0.1", "1e-05", "1e+16", "-0.0"; "inf", "nan"), e.g.
 * for building text a FastAPI handler would f-string. Writes at most len bytes, NUL
 * included, into buf (32 always suffice); returns the full length. Never fails. */
PETREL_API size_t petrel_float_repr(double d, char *buf, size_t len);

/**
 * Rich detail for the last failure on this request (SQLSTATE, upstream status,
 * message). Arena; NULL when none.
 */
typedef struct petrel_error {
    int code;
    int http_status;
    const char *message;
    const char *detail;
} petrel_error_t;
PETREL_API const petrel_error_t *petrel_last_error(petrel_req_t *req);
/** Records `code` and a message as the request's last error; returns `code`. */
PETREL_API int petrel_set_error(petrel_req_t *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
