/*
 * test_docs.c - /docs (Swagger UI) and /redoc (ReDoc) rendered by a real
 * browser: headless Chromium loads the pages from petrel, which serves the
 * npm assets itself (web/node_modules, installed by scripts/dev.sh), and the
 * app's operations must appear in the rendered DOM. Also: the assets are
 * served with their types, and the container files pass their lint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

static int get_item(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:i}", "id", 1));
}

static int list_items(petrel_req_t *req)
{
    return petrel_json(req, 200, json_array());
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/api/items/{item_id:int}", get_item, .summary = "Read one item",
                 .tags = {"items"}),
    PETREL_ROUTE(GET, "/api/items", list_items, .summary = "List the items", .tags = {"items"},
                 .query = {PETREL_Q_INT("limit", .dflt = "10", .ge = "1", .le = "100")}),
};

static petrel_app_t *app;
static petrel_testclient_t *tc;

static void start(void)
{
    app = petrel_app_new("docs-test-app", "1.0");
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    static const char *const overrides[] = {
        "server.workers=2", "server.docs_assets_dir=" PETREL_SOURCE_DIR "/web/node_modules", NULL};
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc);
}

static void stop(void)
{
    petrel_test_stop(tc);
    petrel_app_free(app);
}

TestSuite(docs, .init = start, .fini = stop, .timeout = 60);

static const char *chromium(void)
{
    if (support_have_command("chromium"))
        return "chromium";
    if (support_have_command("chromium-browser"))
        return "chromium-browser";
    return NULL;
}

/* The DOM after scripts ran, as headless Chromium dumps it. Owned. */
static char *render(const char *path)
{
    const char *browser = chromium();
    cr_assert_not_null(browser, "chromium is not installed (scripts/dev.sh deps installs it)");
    char profile[256];
    cr_assert_eq(support_mkdtemp(profile, sizeof(profile)), 0);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "timeout 40 %s --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
             "--disable-background-networking --disable-component-update --disable-sync "
             "--no-first-run --user-data-dir=%s --virtual-time-budget=10000 --dump-dom "
             "http://127.0.0.1:%d%s 2>/dev/null",
             browser, profile, petrel_test_port(tc), path);
    int st;
    char *dom = support_run(cmd, &st);
    support_rmtree(profile);
    cr_assert_eq(st, 0, "chromium failed (%d)", st);
    return dom;
}

Test(docs, assets_are_served_locally)
{
    static const struct {
        const char *path, *ctype;
    } assets[] = {
        {"/docs/static/swagger-ui/swagger-ui-bundle.js", "application/javascript"},
        {"/docs/static/swagger-ui/swagger-ui.css", "text/css"},
        {"/docs/static/redoc/redoc.standalone.js", "application/javascript"},
    };
    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
        petrel_test_res_t *res = petrel_test_get(tc, assets[i].path);
        cr_assert_eq(res->status, 200, "%s: %d (npm install in web/?)", assets[i].path,
                     res->status);
        cr_assert_str_eq(petrel_test_res_header(res, "content-type"), assets[i].ctype);
        cr_assert(res->body_len > 10000);
        petrel_test_res_free(res);
    }
}

Test(docs, swagger_ui_renders_the_operations)
{
    char *dom = render("/docs");
    cr_assert(strstr(dom, "swagger-ui") != NULL, "no Swagger UI in: %.500s", dom);
    cr_assert(strstr(dom, "Read one item") != NULL, "operation summary missing: %.2000s", dom);
    cr_assert(strstr(dom, "List the items") != NULL);
    cr_assert(strstr(dom, "/api/items/{item_id}") != NULL);
    cr_assert(strstr(dom, "docs-test-app") != NULL);
    free(dom);
}

Test(docs, redoc_renders_the_operations)
{
    char *dom = render("/redoc");
    cr_assert(strstr(dom, "Read one item") != NULL, "operation summary missing: %.2000s", dom);
    cr_assert(strstr(dom, "List the items") != NULL);
    free(dom);
}

Test(docs, container_files_pass_the_lint)
{
    int st;
    char *out = support_run(PETREL_SOURCE_DIR "/scripts/lint_container.sh 2>&1", &st);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}
