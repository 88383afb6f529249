/*
 * app.c - the application object (routes, lifespan hooks, config, state) and
 * the standard command line (serve, routes, --help, --version).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log_int.h"
#include "petrel/log.h"
#include "petrel/openapi.h"
#include "server_int.h"

petrel_app_t *petrel_app_new(const char *title, const char *version)
{
    petrel_app_t *app = petrel_xcalloc(1, sizeof(*app));
    app->title = title;
    app->version = version;
    app->cfg = petrel_config_new();
    return app;
}

void petrel_app_free(petrel_app_t *app)
{
    if (app == NULL)
        return;
    free(app->routes);
    free(app->startup);
    free(app->shutdown);
    free(app->wstart);
    free(app->wstop);
    free(app->collectors);
    free(app->command_help);
    free(app->route_lims);
    petrel_config_free(app->cfg);
    free(app);
}

void petrel_app_describe_command(petrel_app_t *app, const char *usage, const char *what)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "  %-23s %s\n", usage, what);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) { /* cut: keep the line's end */
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    size_t old = app->command_help != NULL ? strlen(app->command_help) : 0;
    app->command_help = petrel_xrealloc(app->command_help, old + (size_t)n + 1);
    memcpy(app->command_help + old, line, (size_t)n + 1);
}

int petrel_app_add_routes(petrel_app_t *app, const petrel_route_t *routes, size_t n)
{
    /* Check the declarations now, so a bad template fails at startup with a
     * clear line rather than at the first request. */
    petrel__router_t *r = petrel__router_new();
    char err[256];
    int rc = 0;
    for (size_t i = 0; i < app->nroutes && rc == 0; i++)
        rc = petrel__router_add(r, app->routes[i], err, sizeof(err));
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = petrel__router_add(r, &routes[i], err, sizeof(err));
    petrel__router_free(r);
    if (rc != 0) {
        petrel_log(PETREL_LOG_ERROR, "bad route declaration: %s", err);
        return PETREL_EINVAL;
    }
    if (app->nroutes + n > app->routes_cap) {
        app->routes_cap = (app->nroutes + n) * 2;
        app->routes = petrel_xrealloc(app->routes, app->routes_cap * sizeof(*app->routes));
    }
    for (size_t i = 0; i < n; i++)
        app->routes[app->nroutes++] = &routes[i];
    return 0;
}

static void hook_push(struct hook **v, size_t *n, petrel_hook_cb cb, void *arg)
{
    *v = petrel_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n].cb = cb;
    (*v)[*n].arg = arg;
    (*n)++;
}

void petrel_app_on_startup(petrel_app_t *app, petrel_hook_cb cb, void *arg)
{
    hook_push(&app->startup, &app->nstartup, cb, arg);
}

void petrel_app_on_shutdown(petrel_app_t *app, petrel_hook_cb cb, void *arg)
{
    hook_push(&app->shutdown, &app->nshutdown, cb, arg);
}

static void whook_push(struct worker_hook **v, size_t *n, petrel_worker_hook_cb cb, void *arg)
{
    *v = petrel_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n].cb = cb;
    (*v)[*n].arg = arg;
    (*n)++;
}

void petrel_app_on_worker_start(petrel_app_t *app, petrel_worker_hook_cb cb, void *arg)
{
    whook_push(&app->wstart, &app->nwstart, cb, arg);
}

void petrel_app_on_worker_stop(petrel_app_t *app, petrel_worker_hook_cb cb, void *arg)
{
    whook_push(&app->wstop, &app->nwstop, cb, arg);
}

void petrel_app_set_readiness(petrel_app_t *app, petrel_readiness_cb cb, void *arg)
{
    app->readiness = cb;
    app->readiness_arg = arg;
}

int petrel_app_workers(const petrel_app_t *app)
{
    return app->server != NULL ? app->server->nworkers : 0;
}

petrel_config_t *petrel_app_config(petrel_app_t *app)
{
    return app->cfg;
}

void petrel_app_set_state(petrel_app_t *app, void *state)
{
    app->state = state;
}

void *petrel_app_state(petrel_app_t *app)
{
    return app->state;
}

const char *petrel_app_title(const petrel_app_t *app)
{
    return app->title;
}

const char *petrel_app_version(const petrel_app_t *app)
{
    return app->version;
}

const petrel_route_t *petrel_app_route_at(const petrel_app_t *app, size_t i)
{
    return i < app->nroutes ? app->routes[i] : NULL;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? petrel_xstrdup(s) : NULL;
}

int petrel__app_load_server_conf(petrel_app_t *app, struct server_conf *sc, char *err,
                                 size_t errlen)
{
    const petrel_config_t *c = app->cfg;
    (void)err;
    (void)errlen;
    sc->host = petrel_xstrdup(petrel_config_str(c, "server.host"));
    sc->port = (int)petrel_config_int(c, "server.port");
    sc->workers = (int)petrel_config_int(c, "server.workers");
    if (sc->workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        sc->workers = n > 0 ? (int)n : 1;
    }
    sc->max_connections = petrel_config_int(c, "server.max_connections");
    sc->max_body_bytes = petrel_config_int(c, "server.max_body_bytes");
    sc->max_header_bytes = petrel_config_int(c, "server.max_header_bytes");
    sc->request_timeout_ms = petrel_config_int(c, "server.request_timeout_ms");
    sc->io_timeout_ms = petrel_config_int(c, "server.io_timeout_ms");
    sc->keepalive_timeout_ms = petrel_config_int(c, "server.keepalive_timeout_ms");
    sc->shutdown_timeout_s = petrel_config_float(c, "server.shutdown_timeout_s");
    sc->startup_timeout_s = petrel_config_float(c, "server.startup_timeout_s");
    sc->backlog = (int)petrel_config_int(c, "server.backlog");
    sc->fiber_stack = (size_t)petrel_config_int(c, "server.fiber_stack_kb") * 1024;
    sc->fiber_pool_max = (size_t)petrel_config_int(c, "server.fiber_pool_max");
    sc->slow_callback_ms = petrel_config_int(c, "server.slow_callback_ms");
    sc->server_name = petrel_xstrdup(petrel_config_str(c, "server.name"));
    sc->http2 = petrel_config_bool(c, "server.http2");
    sc->tls_cert = dup_or_null(petrel_config_str(c, "server.tls.cert_file"));
    sc->tls_key = dup_or_null(petrel_config_str(c, "server.tls.key_file"));
    sc->tls_min_version = petrel_xstrdup(petrel_config_str(c, "server.tls.min_version"));
    sc->debug = petrel_config_bool(c, "debug");
    return 0;
}

void petrel__server_conf_dispose(struct server_conf *sc)
{
    free(sc->host);
    free(sc->server_name);
    free(sc->tls_cert);
    free(sc->tls_key);
    free(sc->tls_min_version);
    memset(sc, 0, sizeof(*sc));
}

/* ------------------------------------------------------------------ */
/* command line                                                        */

static void usage(const petrel_app_t *app, FILE *out, const char *prog)
{
    fprintf(out,
            "%s %s\n\n"
            "usage: %s <command> [options]\n\n"
            "commands:\n"
            "  serve [--config FILE]   serve HTTP until SIGTERM/SIGINT (graceful drain)\n"
            "  routes [--config FILE]  list routes: method, path, handler, limits\n"
            "  openapi [--config FILE] print the OpenAPI 3.1 document (JSON) on stdout\n"
            "  config-keys             print every configuration key as a Markdown table\n"
            "%s"
            "  --help                  this text\n"
            "  --version               print the version\n\n"
            "The config file defaults to $PETREL_CONFIG, else config/default.yaml when it exists.\n"
            "Every key can be overridden by environment: server.port -> PETREL_SERVER_PORT.\n\n"
            "exit status: 0 ok, 1 runtime failure (startup hook, bind), 2 usage or config "
            "error,\n"
            "             130 second SIGINT during shutdown\n",
            app->title, app->version, prog, app->command_help != NULL ? app->command_help : "");
}

static const char *config_path(int argc, char **argv, int *bad)
{
    *bad = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
            if (i + 1 >= argc) {
                *bad = 1;
                return NULL;
            }
            return argv[i + 1];
        }
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
        *bad = 1;
        return NULL;
    }
    const char *env = getenv("PETREL_CONFIG");
    if (env != NULL && *env != '\0')
        return env;
    return access("config/default.yaml", R_OK) == 0 ? "config/default.yaml" : NULL;
}

static int load_config(petrel_app_t *app, int argc, char **argv)
{
    int bad;
    const char *file = config_path(argc, argv, &bad);
    if (bad) {
        fprintf(stderr, "%s: bad arguments (see --help)\n", argv[0]);
        return 2;
    }
    char err[512];
    if (petrel_config_load(app->cfg, file, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "config error: %s\n", err);
        return 2;
    }
    return 0;
}

/* The README's configuration table is this output (a test keeps them equal). */
static void print_config_keys(const petrel_app_t *app)
{
    static const char *const tnames[] = {"", "str", "int", "float", "bool", "list"};
    printf("| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
    const petrel_cfg_key_t *k;
    for (size_t i = 0; (k = petrel_config_key_at(app->cfg, i)) != NULL; i++) {
        char dflt[96];
        if (k->dflt != NULL && k->dflt[0] != '\0')
            snprintf(dflt, sizeof(dflt), "`%s`", k->dflt);
        else
            snprintf(dflt, sizeof(dflt), "(none)");
        char range[96] = "";
        if (k->min != 0 || k->max != 0)
            snprintf(range, sizeof(range), " (%.15g..%.15g)", k->min, k->max);
        if (k->choices != NULL) {
            size_t n = (size_t)snprintf(range, sizeof(range), " (");
            for (size_t c = 0; k->choices[c] != NULL && n < sizeof(range); c++)
                n += (size_t)snprintf(range + n, sizeof(range) - n, "%s%s", c ? ", " : "",
                                      k->choices[c]);
            if (n < sizeof(range))
                snprintf(range + n, sizeof(range) - n, ")");
        }
        printf("| `%s` | %s | %s | %s%s |\n", k->path,
               (size_t)k->type < sizeof(tnames) / sizeof(tnames[0]) ? tnames[k->type] : "?", dflt,
               k->help != NULL ? k->help : "", range);
    }
}

static void print_routes(const petrel_app_t *app)
{
    printf("%-7s %-40s %-24s %s\n", "METHOD", "PATH", "HANDLER", "LIMITS");
    for (size_t i = 0; i < app->nroutes; i++) {
        const petrel_route_t *r = app->routes[i];
        char limits[256];
        size_t n = 0;
        limits[0] = '\0';
        if (r->timeout_ms > 0)
            n += (size_t)snprintf(limits + n, sizeof(limits) - n, "timeout=%lldms ",
                                  (long long)r->timeout_ms);
        else if (r->timeout_ms < 0)
            n += (size_t)snprintf(limits + n, sizeof(limits) - n, "timeout=none ");
        if (r->max_concurrent != NULL && n < sizeof(limits))
            n += (size_t)snprintf(limits + n, sizeof(limits) - n, "max_concurrent=%s ",
                                  r->max_concurrent);
        if (r->rate_limit != NULL && n < sizeof(limits))
            snprintf(limits + n, sizeof(limits) - n, "rate_limit=%s", r->rate_limit);
        printf("%-7s %-40s %-24s %s\n", r->method, r->path, r->name ? r->name : "-", limits);
    }
    /* petrel's own routes: health, metrics, docs, and the task monitor (404 unless debug). */
    size_t nb = 0;
    const petrel_route_t *b = petrel__builtin_routes(&nb);
    for (size_t i = 0; i < nb; i++)
        printf("%-7s %-40s %-24s %s\n", b[i].method, b[i].path, "(builtin)", "");
}

int petrel_app_main(petrel_app_t *app, int argc, char **argv,
                    int (*extra)(petrel_app_t *app, int argc, char **argv))
{
    const char *prog = argc > 0 ? argv[0] : "petrel";
    if (argc < 2) {
        usage(app, stderr, prog);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(app, stdout, prog);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("%s %s (petrel %s)\n", app->title, app->version, PETREL_VERSION);
        return 0;
    }
    if (strcmp(cmd, "config-keys") == 0) {
        print_config_keys(app);
        return 0;
    }
    if (strcmp(cmd, "routes") == 0) {
        int rc = load_config(app, argc, argv);
        if (rc != 0)
            return rc;
        print_routes(app);
        return 0;
    }
    if (strcmp(cmd, "openapi") == 0) {
        int rc = load_config(app, argc, argv);
        if (rc != 0)
            return rc;
        char *doc = petrel_openapi_dumps(app, true, NULL);
        if (doc == NULL) {
            fprintf(stderr, "openapi: a route declaration has an invalid literal\n");
            return 1;
        }
        puts(doc);
        free(doc);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) {
        int rc = load_config(app, argc, argv);
        if (rc != 0)
            return rc;
        char err[512];
        petrel_server_t *srv = petrel_server_start(app, err, sizeof(err));
        if (srv == NULL) {
            petrel_log(PETREL_LOG_ERROR, "startup failed: %s", err);
            fprintf(stderr, "startup failed: %s\n", err);
            return 1;
        }
        petrel_server_run_until_signal(srv);
        return 0;
    }
    if (extra != NULL) {
        int rc = extra(app, argc, argv);
        if (rc >= 0)
            return rc;
    }
    fprintf(stderr, "%s: unknown command '%s' (see --help)\n", prog, cmd);
    return 2;
}
