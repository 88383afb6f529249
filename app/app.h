/*
 * app.h - the reference app's modules. main.c registers the core routes and
 * calls each module's init, which declares its config keys, routes and
 * lifespan hooks with petrel's public API only.
 */
#ifndef PETREL_APP_APP_H
#define PETREL_APP_APP_H

#include <petrel/petrel.h>

/* Each returns 0, or a negative PETREL_E* code (startup then exits 2). */

/** db_routes.c: the PostgreSQL pool (lifespan), TechEmpower DB routes, items CRUD, readiness
 * while migrations are pending. */
int app_db_init(petrel_app_t *app);
/** db_routes.c: `migrate up|down|status [N]`; petrel_app_main's `extra` (-1: not ours). */
int app_db_command(petrel_app_t *app, int argc, char **argv);

/** limits_routes.c: work queue, process-pool and limited routes (/api/jobs, /api/score,
 * /api/limited, /api/throttled), their job handler, pool function and default limits. */
int app_limits_init(petrel_app_t *app);

/** http_routes.c: shared upstream clients (lifespan), /api/price, /api/dashboard,
 * /api/upstreams, and the dev stubs (/_stub/..., only when dev.stubs is true). */
int app_http_init(petrel_app_t *app);

#endif
