/*
 * main.c - petrel-app, the reference JSON REST service built on petrel's
 * public API only. This file holds the core routes (TechEmpower hello world,
 * the sleep route showing fiber concurrency) and the entry point.
 */
#include <petrel/petrel.h>

#include "app.h"

/* GET /json: TechEmpower JSON serialisation test: a new object per request, serialised
 * by petrel. Built with jansson's _nocheck constructors because the literals are known
 * to be valid UTF-8: json_pack("{s:s}", ...) would parse its format and re-validate
 * both strings on every request, which costs as much as the rest of the handler. */
static int hello_json(petrel_req_t *req)
{
    json_t *body = json_object();
    json_object_set_new_nocheck(body, "message", json_string_nocheck("Hello, World!"));
    return petrel_json(req, 200, body);
}

/* GET /plaintext: TechEmpower plaintext test. */
static int hello_plaintext(petrel_req_t *req)
{
    static const char body[] = "Hello, World!";
    return petrel_send(req, 200, "text/plain", body, sizeof(body) - 1);
}

/* GET /api/sleep?ms=N: awaits a sleep; hundreds run at once on one worker. */
static int api_sleep(petrel_req_t *req)
{
    int64_t ms = petrel_param_int(req, "ms", 1);
    int64_t t0 = petrel_now_ms();
    int rc = petrel_sleep(ms);
    if (rc != 0)
        return rc;
    return petrel_json(req, 200,
                       json_pack("{s:I,s:I}", "slept_ms", (json_int_t)ms, "elapsed_ms",
                                 (json_int_t)(petrel_now_ms() - t0)));
}

/* GET /api/block?ms=N: runs N ms without awaiting, stalling its worker's loop, to show the
 * stall detector (server.slow_callback_ms) at work. Debug mode only: 404 otherwise. */
static int api_block(petrel_req_t *req)
{
    if (!petrel_config_bool(petrel_app_config(petrel_req_app(req)), "debug"))
        return petrel_error(req, 404, "Not Found");
    int64_t ms = petrel_param_int(req, "ms", 200);
    int64_t until = petrel_now_ns() + ms * 1000000;
    while (petrel_now_ns() < until)
        ; /* deliberately blocking: this is what not to do in a handler */
    return petrel_json(req, 200, json_pack("{s:I}", "blocked_ms", (json_int_t)ms));
}

static const petrel_route_t core_routes[] = {
    PETREL_ROUTE(GET, "/json", hello_json, .summary = "Hello world as JSON",
                 .tags = {"techempower"}),
    PETREL_ROUTE(GET, "/plaintext", hello_plaintext, .summary = "Hello world as text",
                 .tags = {"techempower"}),
    PETREL_ROUTE(GET, "/api/sleep", api_sleep, .summary = "Await a sleep of ms milliseconds",
                 .tags = {"demo"},
                 .query = {PETREL_Q_INT("ms", .required = true, .ge = "1", .le = "10000",
                                        .description = "milliseconds to sleep")}),
    PETREL_ROUTE(GET, "/api/block", api_block,
                 .summary = "Block the loop for ms milliseconds (debug mode only)",
                 .tags = {"demo"}, .include_in_schema_false = true,
                 .query = {PETREL_Q_INT("ms", .dflt = "200", .ge = "1", .le = "5000")}),
};

int main(int argc, char **argv)
{
    petrel_app_t *app = petrel_app_new("petrel-app", PETREL_VERSION);
    if (petrel_app_add_routes(app, core_routes, sizeof(core_routes) / sizeof(core_routes[0])) != 0)
        return 2;
    /* module inits: one line each */
    if (app_limits_init(app) != 0)
        return 2;
    if (app_db_init(app) != 0)
        return 2;
    if (app_http_init(app) != 0)
        return 2;
    petrel_app_describe_command(app, "migrate up|down|status",
                                "apply, revert ([N] steps) or list migrations [--config FILE]");
    int rc = petrel_app_main(app, argc, argv, app_db_command);
    petrel_app_free(app);
    return rc;
}
