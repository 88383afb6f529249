/*
 * http_routes.c - the reference app's outbound HTTP routes, on petrel's
 * public API only: GET /api/price/{ticker} (one upstream call through the
 * shared `prices` client), GET /api/dashboard?cities=a,b,c[&strict=true]
 * (concurrent fan-out to the `weather` client: partial results with gather,
 * all-or-nothing with a task group), GET /api/upstreams (client stats), and
 * the dev stubs /_stub/price/{ticker} and /_stub/weather/{city} that answer
 * only when dev.stubs is true, so the default config needs nothing external.
 *
 * The clients are created once in the lifespan and shared by every worker
 * (the seed's lesson: one pooled client, never one per request).
 */
#include <stdio.h>
#include <string.h>

#include <petrel/http.h>
#include <petrel/petrel.h>
#include <petrel/task.h>

#include "app.h"

#define DASHBOARD_MAX_CITIES 20
#define DASHBOARD_TIMEOUT_MS 3000

static petrel_http_client_t *prices, *weather;

static const petrel_cfg_key_t http_app_keys[] = {
    {"dev.stubs", PETREL_CFG_BOOL, "false",
     "serve /_stub/price and /_stub/weather (fake upstreams for development)", 0, 0, NULL},
};

/* ---- lifespan ---- */

static int make_client(petrel_config_t *cfg, const char *name, petrel_http_client_t **out)
{
    char key[96];
    (void)snprintf(key, sizeof(key), "upstreams.%s.base_url", name);
    if (petrel_config_str(cfg, key) == NULL && petrel_config_bool(cfg, "dev.stubs")) {
        /* No upstream configured in dev mode: use this server's own stubs. */
        char url[160];
        (void)snprintf(url, sizeof(url), "http://127.0.0.1:%lld/_stub",
                       (long long)petrel_config_int(cfg, "server.port"));
        char err[160];
        if (petrel_config_set(cfg, key, url, err, sizeof(err)) != 0) {
            petrel_log_error("%s", err);
            return PETREL_ECONFIG;
        }
    }
    if (petrel_config_str(cfg, key) == NULL) {
        petrel_log_warn("upstreams.%s.base_url is not set: its routes answer 503", name);
        return 0;
    }
    return petrel_http_client_from_config(cfg, name, out);
}

static int http_startup(petrel_app_t *app, void *arg)
{
    (void)arg;
    petrel_config_t *cfg = petrel_app_config(app);
    int rc = make_client(cfg, "prices", &prices);
    if (rc == 0)
        rc = make_client(cfg, "weather", &weather);
    return rc;
}

static int http_shutdown(petrel_app_t *app, void *arg)
{
    (void)app;
    (void)arg;
    petrel_http_client_free(prices);
    petrel_http_client_free(weather);
    prices = weather = NULL;
    return 0;
}

/* ---- helpers ---- */

/* The one mapping from a failed upstream call to our answer. */
static int upstream_status(int rc)
{
    switch (rc) {
    case PETREL_ETIMEDOUT:
        return 504;
    case PETREL_EBREAKER:
    case PETREL_EPOOL:
        return 503;
    default:
        return 502;
    }
}

static const char *upstream_detail(int rc)
{
    switch (rc) {
    case PETREL_ETIMEDOUT:
        return "Upstream timeout";
    case PETREL_EBREAKER:
        return "Upstream unavailable (circuit open)";
    case PETREL_EPOOL:
        return "Upstream busy";
    default:
        return "Upstream error";
    }
}

/* GETs `prefix` + escaped `name` on `c`; returns the JSON body of a 200 (new reference) or
 * NULL with *rc set (PETREL_EUPSTREAM for a bad status or body). */
static json_t *fetch(petrel_http_client_t *c, const char *prefix, const char *name, int *rc,
                     int *status)
{
    char esc[200], path[240];
    *status = 0;
    if (c == NULL) {
        *rc = PETREL_EBREAKER;
        return NULL;
    }
    if (petrel_http_escape(name, esc, sizeof(esc)) < 0) {
        *rc = PETREL_EINVAL;
        return NULL;
    }
    (void)snprintf(path, sizeof(path), "%s%s", prefix, esc);
    petrel_http_res_t res;
    *rc = petrel_http_get(c, path, &res);
    json_t *j = NULL;
    if (*rc == 0) {
        *status = res.status;
        j = res.status == 200 ? petrel_http_res_json(&res) : NULL;
        if (j == NULL)
            *rc = PETREL_EUPSTREAM;
    } else {
        petrel_log_warn("upstream %s%s failed: %s", petrel_http_client_name(c), path, res.message);
    }
    petrel_http_res_dispose(&res);
    return j;
}

/* ---- GET /api/price/{ticker} ---- */

static int api_price(petrel_req_t *req)
{
    int rc, status;
    json_t *j = fetch(prices, "/price/", petrel_param_str(req, "ticker", ""), &rc, &status);
    if (j != NULL)
        return petrel_json(req, 200, j);
    if (rc == PETREL_EUPSTREAM && status == 404)
        return petrel_error(req, 404, "Unknown ticker");
    if (upstream_status(rc) == 503)
        petrel_resp_header(req, "Retry-After", "1");
    return petrel_error(req, upstream_status(rc), upstream_detail(rc));
}

/* ---- GET /api/dashboard ---- */

static json_t *fetch_weather(petrel_task_t *t, void *arg)
{
    int rc, status;
    json_t *j = fetch(weather, "/weather/", arg, &rc, &status);
    if (j == NULL)
        return petrel_task_fail(t, rc, "%s", status ? "Upstream error" : upstream_detail(rc));
    return j;
}

static int api_dashboard(petrel_req_t *req)
{
    petrel_strv_t cities = petrel_query_list(req, "cities");
    if (cities.n == 0 || cities.n > DASHBOARD_MAX_CITIES) {
        json_t *input = json_array();
        for (size_t i = 0; i < cities.n; i++)
            json_array_append_new(input, json_string(cities.v[i]));
        char msg[96];
        (void)snprintf(msg, sizeof(msg),
                       cities.n == 0 ? "List should have at least 1 item after validation, not 0"
                                     : "List should have at most %d items after validation, "
                                       "not %zu",
                       DASHBOARD_MAX_CITIES, cities.n);
        return petrel_error_json(req, 422,
                                 json_pack("[{s:s,s:[s,s],s:s,s:o}]", "type",
                                           cities.n == 0 ? "too_short" : "too_long", "loc", "query",
                                           "cities", "msg", msg, "input", input));
    }
    bool strict = petrel_param_bool(req, "strict", false);
    petrel_task_t *t[DASHBOARD_MAX_CITIES];
    json_t *out = json_object();
    if (strict) {
        petrel_group_t *g = petrel_group_new(req);
        for (size_t i = 0; i < cities.n; i++)
            t[i] = petrel_group_spawn(g, fetch_weather, (void *)(uintptr_t)cities.v[i]);
        int rc = petrel_group_wait(g, DASHBOARD_TIMEOUT_MS);
        if (rc != 0) {
            json_decref(out);
            petrel_task_t *f = petrel_group_failed(g);
            int code = f != NULL ? petrel_task_error(f) : rc;
            return petrel_error(
                req, upstream_status(code),
                petrel_req_sprintf(req, "%s (%s)", upstream_detail(code),
                                   f != NULL ? (const char *)"a city failed" : "timeout"));
        }
        for (size_t i = 0; i < cities.n; i++)
            json_object_set(out, cities.v[i], petrel_task_result(t[i]));
        return petrel_json(req, 200, json_pack("{s:o,s:i}", "cities", out, "errors", 0));
    }
    for (size_t i = 0; i < cities.n; i++)
        t[i] = petrel_spawn(req, fetch_weather, (void *)(uintptr_t)cities.v[i]);
    int rc = petrel_gather(t, cities.n, DASHBOARD_TIMEOUT_MS);
    if (rc == PETREL_ECANCELED) {
        json_decref(out);
        return rc;
    }
    int errors = 0;
    for (size_t i = 0; i < cities.n; i++) {
        errors += petrel_task_error(t[i]) != 0;
        json_object_set_new(out, cities.v[i], petrel_task_json_or_error(t[i]));
    }
    return petrel_json(req, 200, json_pack("{s:o,s:i}", "cities", out, "errors", errors));
}

/* ---- GET /api/upstreams ---- */

static int api_upstreams(petrel_req_t *req)
{
    json_t *out = json_object();
    if (prices != NULL)
        json_object_set_new(out, "prices", petrel_http_stats_json(prices));
    if (weather != NULL)
        json_object_set_new(out, "weather", petrel_http_stats_json(weather));
    return petrel_json(req, 200, out);
}

/* ---- dev stubs ---- */

/* delay_ms, jitter_ms, fail. Returns 1 when it answered already, 0 to go on, or < 0. */
static int stub_common(petrel_req_t *req)
{
    if (!petrel_config_bool(petrel_app_config(petrel_req_app(req)), "dev.stubs"))
        return petrel_error(req, 404, "Not Found") == 0 ? 1 : -1;
    int64_t delay = petrel_param_int(req, "delay_ms", 0);
    int64_t jitter = petrel_param_int(req, "jitter_ms", 0);
    if (jitter > 0)
        delay += (petrel_now_ns() / 1000) % jitter;
    if (delay > 0) {
        int rc = petrel_sleep(delay);
        if (rc != 0)
            return rc;
    }
    int64_t fail = petrel_param_int(req, "fail", 0);
    if (fail >= 400)
        return petrel_error(req, (int)fail, "stub failure") == 0 ? 1 : -1;
    return 0;
}

static unsigned name_hash(const char *s)
{
    unsigned h = 0;
    for (; *s != '\0'; s++)
        h = h * 31 + (unsigned char)*s;
    return h;
}

static int stub_price(petrel_req_t *req)
{
    int rc = stub_common(req);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    const char *t = petrel_param_str(req, "ticker", "");
    unsigned h = name_hash(t);
    return petrel_json(
        req, 200, json_pack("{s:s,s:f}", "ticker", t, "price", 10 + h % 990 + (h % 100) / 100.0));
}

static int stub_weather(petrel_req_t *req)
{
    int rc = stub_common(req);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    const char *c = petrel_param_str(req, "city", "");
    return petrel_json(req, 200,
                       json_pack("{s:s,s:i}", "city", c, "temp_c", (int)(name_hash(c) % 40) - 5));
}

#define STUB_QUERY                                                                                 \
    .query = {PETREL_Q_INT("delay_ms", .dflt = "0", .ge = "0", .le = "60000"),                     \
              PETREL_Q_INT("jitter_ms", .dflt = "0", .ge = "0", .le = "60000"),                    \
              PETREL_Q_INT("fail", .dflt = "0", .ge = "0", .le = "599")}

static const petrel_route_t http_routes[] = {
    PETREL_ROUTE(GET, "/api/price/{ticker:str}", api_price, .summary = "Price from the upstream",
                 .tags = {"upstream"},
                 .path_params = {PETREL_P("ticker", PETREL_T_STR, .max_length = 32)},
                 .responses = {{502, "Upstream error"},
                               {503, "Circuit breaker open or upstream pool busy"},
                               {504, "Upstream timeout"}}),
    PETREL_ROUTE(GET, "/api/dashboard", api_dashboard,
                 .summary = "Weather for several cities at once (concurrent fan-out)",
                 .tags = {"upstream"},
                 .query = {PETREL_Q_STR("cities", .required = true,
                                        .description = "comma-separated, at most 20"),
                           PETREL_Q_BOOL("strict", .dflt = "false",
                                         .description = "all-or-nothing (task group)")}),
    PETREL_ROUTE(GET, "/api/upstreams", api_upstreams, .summary = "Outbound HTTP client stats",
                 .tags = {"ops"}),
    PETREL_ROUTE(GET, "/_stub/price/{ticker:str}", stub_price, STUB_QUERY,
                 .include_in_schema_false = true, .timeout_ms = -1),
    PETREL_ROUTE(GET, "/_stub/weather/{city:str}", stub_weather, STUB_QUERY,
                 .include_in_schema_false = true, .timeout_ms = -1),
};

int app_http_init(petrel_app_t *app)
{
    petrel_config_t *cfg = petrel_app_config(app);
    int rc =
        petrel_config_declare(cfg, http_app_keys, sizeof(http_app_keys) / sizeof(http_app_keys[0]));
    if (rc == 0)
        rc = petrel_app_add_routes(app, http_routes, sizeof(http_routes) / sizeof(http_routes[0]));
    if (rc != 0)
        return rc;
    petrel_app_on_startup(app, http_startup, NULL);
    petrel_app_on_shutdown(app, http_shutdown, NULL);
    return 0;
}
