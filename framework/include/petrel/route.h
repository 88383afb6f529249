/*
 * petrel/route.h - declarative routes: method, path template, parameters and
 * body schema. One declaration drives validation, dispatch and the OpenAPI
 * document.
 *
 * Every literal in a declaration (defaults, bounds) is written as JSON text
 * ("10", "3.5", "\"abc\"", "true"), so it keeps the exact spelling the user
 * wrote: Pydantic reports {"gt": 3} for a bound written 3 and {"gt": 3.0} for
 * one written 3.0, and the OpenAPI document shows it the same way.
 */
#ifndef PETREL_ROUTE_H
#define PETREL_ROUTE_H

#include <stdbool.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct petrel_req petrel_req_t;

/** A request handler: runs on the request's fiber; returns 0 after setting a
 * response (petrel_json() etc. return 0), or a negative PETREL_E* code, which
 * is answered with petrel_err_http_status(code). */
typedef int (*petrel_handler_cb)(petrel_req_t *req);

typedef enum petrel_type {
    PETREL_T_NONE = 0,
    PETREL_T_STR,
    PETREL_T_INT,
    PETREL_T_FLOAT,
    PETREL_T_BOOL,
    PETREL_T_UUID,
    PETREL_T_PATH,   /**< path parameter only: the rest of the path, '/' included */
    PETREL_T_ARRAY,  /**< JSON array, or a repeated query parameter */
    PETREL_T_OBJECT, /**< JSON object with declared fields */
    PETREL_T_ANY,    /**< any JSON value, not validated */
} petrel_type_t;

typedef enum petrel_in {
    PETREL_IN_QUERY = 0,
    PETREL_IN_PATH,
    PETREL_IN_HEADER,
    PETREL_IN_BODY,
} petrel_in_t;

typedef struct petrel_field petrel_field_t;

/**
 * One parameter or body field. Arrays of fields end with an entry whose name
 * is NULL (PETREL_F_END); petrel_route_t's fixed arrays may simply stop early.
 */
struct petrel_field {
    const char *name;
    petrel_type_t type;
    petrel_in_t in;
    bool required;    /**< absent -> 422 "missing" (path parameters are always required) */
    bool nullable;    /**< JSON null accepted (body fields) */
    bool unique;      /**< arrays: a set; duplicates dropped, order ascending for scalars */
    bool finite;      /**< float: "inf"/"nan" strings get 422 finite_number (Pydantic's
                           allow_inf_nan=False); JSON cannot carry them back out */
    const char *dflt; /**< JSON text of the default; NULL: no default (absent stays absent) */
    /* numeric bounds, JSON number text; NULL: unbounded */
    const char *gt, *ge, *lt, *le;
    /* string / array length bounds; -1 or 0 with has_ flags: see below */
    int64_t min_length;             /**< 0 = no minimum */
    int64_t max_length;             /**< 0 = no maximum */
    const char *const *enum_values; /**< NULL-terminated allowed strings (PETREL_ENUM) */
    const char *enum_name;          /**< schema name of the enum for OpenAPI/errors */
    const petrel_field_t *items;    /**< element schema for PETREL_T_ARRAY */
    const petrel_field_t *fields;   /**< member list for PETREL_T_OBJECT (ends with name NULL) */
    const char *schema_name;        /**< component name for an object schema ("Item") */
    const char *title;
    const char *description;
    const char *example; /**< JSON text */
};

#define PETREL_MAX_QUERY 16
#define PETREL_MAX_PATH 8
#define PETREL_MAX_TAGS 4
#define PETREL_MAX_RESPONSES 8

/** A documented non-default response (OpenAPI). */
typedef struct petrel_response_doc {
    int status;
    const char *description;
    const petrel_field_t *schema; /**< NULL: {"detail": ...} error shape */
} petrel_response_doc_t;

/** A route declaration, usually written with PETREL_ROUTE() in a file-scope array; it
 * must live for the app's lifetime. */
typedef struct petrel_route {
    const char *method; /**< "GET", "POST", ... (HEAD is answered for every GET route) */
    const char *path;   /**< template: "/items/{item_id:int}", "/files/{p:path}" */
    petrel_handler_cb handler;
    const char *name; /**< handler name: operationId and `petrel-app routes` */
    const char *summary;
    const char *description;
    const char *tags[PETREL_MAX_TAGS];
    /** Query (and header) parameters. */
    petrel_field_t query[PETREL_MAX_QUERY];
    /** Optional extra constraints for path parameters, matched by name. A path
     * parameter without an entry here gets its type from the template. */
    petrel_field_t path_params[PETREL_MAX_PATH];
    /** JSON body schema (type PETREL_T_OBJECT usually); NULL: no body expected. */
    const petrel_field_t *body;
    /** Response schema for the success status (OpenAPI); NULL: any JSON. */
    const petrel_field_t *response;
    int status_code; /**< success status for docs; 0 = 200 */
    petrel_response_doc_t responses[PETREL_MAX_RESPONSES];
    int64_t timeout_ms;           /**< 0 = server.request_timeout_ms; <0 = none */
    const char *max_concurrent;   /**< name of a semaphore guarding the route, or NULL */
    const char *rate_limit;       /**< name of a rate limiter guarding the route, or NULL */
    bool include_in_schema_false; /**< true: left out of OpenAPI */
    bool deprecated;
} petrel_route_t;

#define PETREL_ROUTE(METHOD, PATH, HANDLER, ...)                                                   \
    {                                                                                              \
        .method = #METHOD, .path = (PATH), .handler = (HANDLER), .name = #HANDLER, __VA_ARGS__     \
    }

#define PETREL_ENUM(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Field helpers: PETREL_Q_INT("limit", .dflt = "10", .ge = "1", .le = "100") */
#define PETREL_Q(NAME, TYPE, ...)                                                                  \
    {                                                                                              \
        .name = (NAME), .type = (TYPE), .in = PETREL_IN_QUERY, __VA_ARGS__                         \
    }
#define PETREL_Q_STR(NAME, ...) PETREL_Q(NAME, PETREL_T_STR, __VA_ARGS__)
#define PETREL_Q_INT(NAME, ...) PETREL_Q(NAME, PETREL_T_INT, __VA_ARGS__)
#define PETREL_Q_FLOAT(NAME, ...) PETREL_Q(NAME, PETREL_T_FLOAT, __VA_ARGS__)
#define PETREL_Q_BOOL(NAME, ...) PETREL_Q(NAME, PETREL_T_BOOL, __VA_ARGS__)
#define PETREL_Q_UUID(NAME, ...) PETREL_Q(NAME, PETREL_T_UUID, __VA_ARGS__)
/** Repeated query key collected into a list: PETREL_Q_LIST("ids", PETREL_T_INT, .required = true)
 */
#define PETREL_Q_LIST(NAME, ITEMTYPE, ...)                                                         \
    PETREL_Q(NAME, PETREL_T_ARRAY, .items = &(const petrel_field_t){.type = (ITEMTYPE)},           \
             __VA_ARGS__)
#define PETREL_H(NAME, TYPE, ...)                                                                  \
    {                                                                                              \
        .name = (NAME), .type = (TYPE), .in = PETREL_IN_HEADER, __VA_ARGS__                        \
    }
#define PETREL_P(NAME, TYPE, ...)                                                                  \
    {                                                                                              \
        .name = (NAME), .type = (TYPE), .in = PETREL_IN_PATH, __VA_ARGS__                          \
    }

/* Body fields */
#define PETREL_F(NAME, TYPE, ...)                                                                  \
    {                                                                                              \
        .name = (NAME), .type = (TYPE), .in = PETREL_IN_BODY, __VA_ARGS__                          \
    }
#define PETREL_F_STR(NAME, ...) PETREL_F(NAME, PETREL_T_STR, __VA_ARGS__)
#define PETREL_F_INT(NAME, ...) PETREL_F(NAME, PETREL_T_INT, __VA_ARGS__)
#define PETREL_F_FLOAT(NAME, ...) PETREL_F(NAME, PETREL_T_FLOAT, __VA_ARGS__)
#define PETREL_F_BOOL(NAME, ...) PETREL_F(NAME, PETREL_T_BOOL, __VA_ARGS__)
#define PETREL_F_END                                                                               \
    {                                                                                              \
        .name = NULL                                                                               \
    }
/** An object schema usable as .body / .items / .response: PETREL_OBJECT("Item", fields) */
#define PETREL_OBJECT(SCHEMA_NAME, FIELDS)                                                         \
    (&(const petrel_field_t){.type = PETREL_T_OBJECT,                                              \
                             .in = PETREL_IN_BODY,                                                 \
                             .schema_name = (SCHEMA_NAME),                                         \
                             .fields = (FIELDS)})

#ifdef __cplusplus
}
#endif
#endif
