/*
 * petrel/app.h - the application: routes, lifespan hooks, configuration and
 * the server that runs them (petrel's FastAPI() + uvicorn.run()).
 */
#ifndef PETREL_APP_H
#define PETREL_APP_H

#include <stdbool.h>

#include "common.h"
#include "config.h"
#include "route.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct petrel_app petrel_app_t;
typedef struct petrel_server petrel_server_t;

/** A lifespan hook: runs on a fiber (it may await); returns 0 or a negative code to abort startup.
 */
typedef int (*petrel_hook_cb)(petrel_app_t *app, void *arg);

/** Creates an app. `title`/`version` are borrowed (OpenAPI info). Owned: petrel_app_free(). */
PETREL_API petrel_app_t *petrel_app_new(const char *title, const char *version);
PETREL_API void petrel_app_free(petrel_app_t *app);
/** Adds `n` routes (borrowed; must outlive the app). Returns 0, or PETREL_EINVAL with a log
 * line for a bad template or a conflicting declaration. */
PETREL_API PETREL_NODISCARD int petrel_app_add_routes(petrel_app_t *app,
                                                      const petrel_route_t *routes, size_t n);
/** Lifespan: startup hooks run in order on a fiber before the app is ready; shutdown hooks
 * run in reverse order after the last request. */
PETREL_API void petrel_app_on_startup(petrel_app_t *app, petrel_hook_cb cb, void *arg);
PETREL_API void petrel_app_on_shutdown(petrel_app_t *app, petrel_hook_cb cb, void *arg);
/** A per-worker hook: runs on worker `worker`'s own loop, on a fiber (it may await). Use it for
 * resources that belong to one event loop (database connections, client sockets). */
typedef int (*petrel_worker_hook_cb)(petrel_app_t *app, int worker, void *arg);
/** Worker start hooks run in order on every worker after the app's startup hooks and before the
 * app is ready; a non-zero return aborts startup. Worker stop hooks run in reverse order on
 * every worker after the drain, before the app's shutdown hooks. */
PETREL_API void petrel_app_on_worker_start(petrel_app_t *app, petrel_worker_hook_cb cb, void *arg);
PETREL_API void petrel_app_on_worker_stop(petrel_app_t *app, petrel_worker_hook_cb cb, void *arg);
/** Index (0-based) of the worker thread the caller runs on; -1 elsewhere (control thread,
 * other threads). */
PETREL_API int petrel_worker_index(void);
/** Number of worker threads of the app's running server (0 when not serving). Limits that are
 * per-loop by nature (database connections) are split across this many workers. */
PETREL_API int petrel_app_workers(const petrel_app_t *app);

/**
 * A readiness check for GET /readyz, called once the server is ready. It runs on the request's
 * fiber (it may await; keep it short and bounded). Returns 0 when ready; otherwise it writes a
 * short reason into `reason` (len bytes) and /readyz answers 503 {"status":"not_ready",
 * "reason":...} with Retry-After.
 */
typedef int (*petrel_readiness_cb)(petrel_app_t *app, char *reason, size_t len, void *arg);
/** Sets (or with NULL clears) the app's readiness check; `arg` is borrowed. Not an await. */
PETREL_API void petrel_app_set_readiness(petrel_app_t *app, petrel_readiness_cb cb, void *arg);

/** The app's configuration (declare app keys on it before loading). Borrowed. */
PETREL_API petrel_config_t *petrel_app_config(petrel_app_t *app);
/** App-wide user state for handlers (FastAPI's app.state). */
PETREL_API void petrel_app_set_state(petrel_app_t *app, void *state);
PETREL_API void *petrel_app_state(petrel_app_t *app);
/** Title and version given at creation. */
PETREL_API const char *petrel_app_title(const petrel_app_t *app);
PETREL_API const char *petrel_app_version(const petrel_app_t *app);
/** The registered routes, for tooling. Returns the i-th route or NULL past the end. */
PETREL_API const petrel_route_t *petrel_app_route_at(const petrel_app_t *app, size_t i);

/**
 * The standard command line: `serve [--config FILE]`, `routes`, `--help`,
 * `--version`. Returns the process exit status: 0 ok, 1 runtime failure
 * (startup hook failed, bind failed), 2 usage or configuration error.
 * `extra` handles app-specific commands (may be NULL): it returns -1 when it
 * does not know argv[1].
 */
PETREL_API int petrel_app_main(petrel_app_t *app, int argc, char **argv,
                               int (*extra)(petrel_app_t *app, int argc, char **argv));
/** Lists an app command (one `extra` handles) in --help: `usage` ("migrate up|down"), `what`. */
PETREL_API void petrel_app_describe_command(petrel_app_t *app, const char *usage, const char *what);

/**
 * Starts serving in background threads per the app's loaded config: binds,
 * runs startup hooks, returns once ready (or failed). Owned: petrel_server_stop().
 * On failure returns NULL and writes one line into err.
 */
PETREL_API petrel_server_t *petrel_server_start(petrel_app_t *app, char *err, size_t errlen);
/** The bound TCP port (useful with server.port 0). */
PETREL_API int petrel_server_port(const petrel_server_t *srv);
/** Graceful stop: stop accepting, drain in-flight requests up to server.shutdown_timeout_s,
 * run shutdown hooks, join threads, free. Returns 0, or PETREL_ETIMEDOUT when requests
 * had to be abandoned. */
PETREL_API int petrel_server_stop(petrel_server_t *srv);
/** Blocks until SIGTERM/SIGINT, then petrel_server_stop(). A second SIGINT exits at once. */
PETREL_API int petrel_server_run_until_signal(petrel_server_t *srv);

#ifdef __cplusplus
}
#endif
#endif
