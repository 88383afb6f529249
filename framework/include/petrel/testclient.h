/*
 * petrel/testclient.h - petrel's `with TestClient(app)`: start an app with its
 * lifespan on an ephemeral loopback port inside the calling process, and make
 * real HTTP/1.1 requests to it over real sockets. Blocking; for tests only.
 */
#ifndef PETREL_TESTCLIENT_H
#define PETREL_TESTCLIENT_H

#include <stdbool.h>

#include <jansson.h>

#include "app.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct petrel_testclient petrel_testclient_t;

/** A response. Owned: petrel_test_res_free(). */
typedef struct petrel_test_res {
    int status; /**< 0 when the request failed at the socket level */
    char *body; /**< NUL-terminated */
    size_t body_len;
    size_t nheaders;
    char **header_names; /**< lower-case */
    char **header_values;
    json_t *json; /**< parsed body when it is JSON, else NULL */
    double elapsed_ms;
} petrel_test_res_t;

/**
 * Loads `config_file` (NULL: defaults) plus `overrides` ("server.workers=1", NULL-terminated,
 * may be NULL) into the app's config with server.port 0 on 127.0.0.1, starts the server and
 * waits for startup. Returns NULL (and prints why) on failure. Owned: petrel_test_stop().
 */
PETREL_API petrel_testclient_t *petrel_test_start(petrel_app_t *app, const char *config_file,
                                                  const char *const *overrides);
/** Stops the server gracefully (shutdown hooks run) and frees the client. */
PETREL_API void petrel_test_stop(petrel_testclient_t *tc);
PETREL_API int petrel_test_port(const petrel_testclient_t *tc);

/**
 * Sends one request on a new connection and reads the response.
 * `headers` is NULL or a NULL-terminated list of "Name: value" strings; `body` may be NULL.
 */
PETREL_API petrel_test_res_t *petrel_test_request(petrel_testclient_t *tc, const char *method,
                                                  const char *target, const char *const *headers,
                                                  const char *body, size_t body_len);
PETREL_API petrel_test_res_t *petrel_test_get(petrel_testclient_t *tc, const char *target);
PETREL_API petrel_test_res_t *petrel_test_post_json(petrel_testclient_t *tc, const char *target,
                                                    const char *json_text);
/** Header value (case-insensitive name) or NULL. Borrowed from res. */
PETREL_API const char *petrel_test_res_header(const petrel_test_res_t *res, const char *name);
PETREL_API void petrel_test_res_free(petrel_test_res_t *res);

/** Connects a raw TCP socket to the server (for pipelining, disconnect tests). Owned: close(). */
PETREL_API int petrel_test_connect(const petrel_testclient_t *tc);
/** Reads one HTTP/1.1 response from fd (Content-Length or chunked). Owned: petrel_test_res_free().
 */
PETREL_API petrel_test_res_t *petrel_test_read_response(int fd, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
