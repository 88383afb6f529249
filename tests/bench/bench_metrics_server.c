/*
 * bench_metrics_server.c - a database-free petrel server for bench_metrics.sh:
 * GET /json only (TechEmpower's JSON test), configured like petrel-app
 * (`serve --config FILE`, PETREL_* environment overrides), so the benchmark
 * measures the framework's per-request cost with server.metrics on and off.
 */
#include <petrel/petrel.h>

/* GET /json: TechEmpower JSON serialisation test. */
static int hello_json(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:s}", "message", "Hello, World!"));
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/json", hello_json, .summary = "Hello world as JSON"),
};

int main(int argc, char **argv)
{
    petrel_app_t *app = petrel_app_new("bench-metrics", PETREL_VERSION);
    if (petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])) != 0)
        return 2;
    int rc = petrel_app_main(app, argc, argv, NULL);
    petrel_app_free(app);
    return rc;
}
