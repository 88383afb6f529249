/*
 * test_openapi.c - the generated OpenAPI 3.1 document: every declared route and
 * parameter is listed with its schema (types, formats, bounds as written, lengths,
 * enums, defaults), bodies reference component schemas, operationIds follow FastAPI,
 * the validation components are FastAPI's exactly, the document validates with
 * openapi-spec-validator (or, without it, the npm validator in tests/tools/), and
 * `petrel-app openapi` prints a valid document too.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/openapi.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

static int h_ok(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static int get_item(petrel_req_t *req)
{
    return h_ok(req);
}

static int create_item(petrel_req_t *req)
{
    return h_ok(req);
}

static int user_file(petrel_req_t *req)
{
    return h_ok(req);
}

static int delete_item(petrel_req_t *req)
{
    return h_ok(req);
}

static const petrel_field_t item_fields[] = {
    PETREL_F_STR("name", .required = true, .min_length = 1, .max_length = 50),
    PETREL_F_FLOAT("price", .required = true, .gt = "0"),
    PETREL_F_STR("description", .nullable = true),
    PETREL_F("tags", PETREL_T_ARRAY, .items = &(const petrel_field_t){.type = PETREL_T_STR}),
    PETREL_F_END,
};

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/api/items/{item_id:int}", get_item, .summary = "Read one item",
                 .tags = {"items"},
                 .query = {PETREL_Q_INT("limit", .dflt = "10", .ge = "1", .le = "100"),
                           PETREL_Q_FLOAT("ratio", .gt = "0.5", .lt = "2.0"),
                           PETREL_Q_STR("q", .min_length = 3, .max_length = 8),
                           PETREL_Q_STR("color", .enum_values = PETREL_ENUM("red", "green"),
                                        .enum_name = "Color"),
                           PETREL_Q_LIST("ids", PETREL_T_INT),
                           PETREL_H("x_token", PETREL_T_STR, .required = true)}),
    PETREL_ROUTE(POST, "/api/items", create_item, .tags = {"items"},
                 .body = PETREL_OBJECT("Item", item_fields), .status_code = 201,
                 .response = PETREL_OBJECT("Item", item_fields),
                 .responses = {{409, "Item exists", NULL}}),
    PETREL_ROUTE(GET, "/api/users/{user_id:uuid}/files/{file:path}", user_file),
    PETREL_ROUTE(DELETE, "/api/items/{item_id:int}", delete_item, .status_code = 204),
    PETREL_ROUTE(GET, "/hidden", h_ok, .include_in_schema_false = true),
};

static petrel_app_t *app;
static petrel_testclient_t *tc;

static void start(void)
{
    app = petrel_app_new("test_openapi", "2.0");
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    static const char *const overrides[] = {"server.workers=1", NULL};
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc);
}

static void stop(void)
{
    petrel_test_stop(tc);
    petrel_app_free(app);
}

TestSuite(openapi, .init = start, .fini = stop, .timeout = 30);

/* A Python that has openapi_spec_validator: Debian's (/usr/bin/python3) first, then PATH's. */
static const char *validator_python(void)
{
    static const char *const cands[] = {"/usr/bin/python3", "python3"};
    for (size_t i = 0; i < 2; i++) {
        char cmd[256];
        int st;
        snprintf(cmd, sizeof(cmd), "%s -c 'import openapi_spec_validator' 2>/dev/null", cands[i]);
        free(support_run(cmd, &st));
        if (st == 0)
            return cands[i];
    }
    return NULL;
}

/* The Node.js fallback (Debian 12 packages no openapi-spec-validator and PyPI may be out
 * of reach): tests/tools/validate_openapi.mjs, its npm packages installed by
 * scripts/dev.sh deps. */
#define NODE_VALIDATOR PETREL_SOURCE_DIR "/tests/tools/validate_openapi.mjs"
#define NODE_VALIDATOR_PKG                                                                         \
    PETREL_SOURCE_DIR "/tests/tools/node_modules/@seriousme/openapi-schema-validator/package.json"

static bool have_node_validator(void)
{
    return support_have_command("node") && access(NODE_VALIDATOR_PKG, R_OK) == 0;
}

/*
 * Validates the document at `path` with openapi-spec-validator when a python3 has it,
 * else with the Node.js validator; neither is a failure, never a skip.
 * PETREL_TEST_OPENAPI_VALIDATOR=python or =node forces one (to test both paths).
 */
static void validate_file(const char *path)
{
    const char *force = getenv("PETREL_TEST_OPENAPI_VALIDATOR");
    bool want_py = true, want_node = true;
    if (force != NULL && *force != '\0') {
        cr_assert(strcmp(force, "python") == 0 || strcmp(force, "node") == 0,
                  "PETREL_TEST_OPENAPI_VALIDATOR must be python or node, not '%s'", force);
        want_py = strcmp(force, "python") == 0;
        want_node = !want_py;
    }
    const char *py = want_py ? validator_python() : NULL;
    bool node = py == NULL && want_node && have_node_validator();
    cr_assert(py != NULL || node,
              "no OpenAPI validator: neither a python3 with openapi_spec_validator nor node with "
              "the npm validator in tests/tools/node_modules (run scripts/dev.sh deps)%s",
              force != NULL && *force != '\0' ? " [PETREL_TEST_OPENAPI_VALIDATOR is set]" : "");
    char cmd[1024];
    if (py != NULL)
        snprintf(cmd, sizeof(cmd),
                 "%s -c 'import json,sys; from openapi_spec_validator import validate; "
                 "validate(json.load(open(sys.argv[1]))); print(\"VALID\")' %s 2>&1",
                 py, path);
    else
        snprintf(cmd, sizeof(cmd), "node %s %s 2>&1", NODE_VALIDATOR, path);
    int st;
    char *out = support_run(cmd, &st);
    cr_assert_eq(st, 0, "%s rejected the document: %s",
                 py != NULL ? "openapi-spec-validator" : "validate_openapi.mjs", out);
    cr_assert(strstr(out, "VALID") != NULL, "validator output: %s", out);
    free(out);
}

static json_t *fetch_doc(void)
{
    petrel_test_res_t *res = petrel_test_get(tc, "/openapi.json");
    cr_assert_eq(res->status, 200);
    cr_assert_not_null(res->json);
    json_t *doc = json_incref(res->json);
    petrel_test_res_free(res);
    return doc;
}

static json_t *param(json_t *op, const char *in, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get(op, "parameters"), i, p) {
        if (strcmp(json_string_value(json_object_get(p, "in")), in) == 0 &&
            strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return p;
    }
    cr_assert_fail("parameter %s in %s not listed", name, in);
    return NULL;
}

Test(openapi, document_validates)
{
    json_t *doc = fetch_doc();
    char dir[256], path[300];
    cr_assert_eq(support_mkdtemp(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/openapi.json", dir);
    cr_assert_eq(json_dump_file(doc, path, 0), 0);
    validate_file(path);
    support_rmtree(dir);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    cr_assert(support_json_eq(json_object_get(doc, "info"),
                              "{\"title\":\"test_openapi\",\"version\":\"2.0\"}", "info"));
    json_decref(doc);
}

Test(openapi, every_route_and_parameter_is_listed)
{
    json_t *doc = fetch_doc();
    json_t *paths = json_object_get(doc, "paths");
    json_t *get = json_object_get(json_object_get(paths, "/api/items/{item_id}"), "get");
    cr_assert_not_null(get);
    cr_assert_not_null(json_object_get(json_object_get(paths, "/api/items/{item_id}"), "delete"));
    cr_assert_not_null(json_object_get(json_object_get(paths, "/api/items"), "post"));
    cr_assert_not_null(
        json_object_get(json_object_get(paths, "/api/users/{user_id}/files/{file}"), "get"));
    cr_assert_null(json_object_get(paths, "/hidden"));
    cr_assert_null(json_object_get(paths, "/openapi.json"));
    cr_assert_null(json_object_get(paths, "/docs"));
    cr_assert_not_null(json_object_get(paths, "/healthz"));

    cr_assert_str_eq(json_string_value(json_object_get(get, "operationId")),
                     "get_item_api_items__item_id__get");
    cr_assert_str_eq(json_string_value(json_object_get(get, "summary")), "Read one item");
    cr_assert(support_json_eq(json_object_get(get, "tags"), "[\"items\"]", "tags"));
    cr_assert_eq(json_array_size(json_object_get(get, "parameters")), 7);

    cr_assert(support_json_eq(param(get, "path", "item_id"),
                              "{\"name\":\"item_id\",\"in\":\"path\",\"required\":true,"
                              "\"schema\":{\"type\":\"integer\",\"title\":\"Item Id\"}}",
                              "item_id"));
    cr_assert(support_json_eq(param(get, "query", "limit"),
                              "{\"name\":\"limit\",\"in\":\"query\",\"required\":false,"
                              "\"schema\":{\"type\":\"integer\",\"maximum\":100,\"minimum\":1,"
                              "\"default\":10,\"title\":\"Limit\"}}",
                              "limit"));
    /* Bounds keep their spelling: 0.5 and 2.0 stay reals. */
    cr_assert(support_json_eq(json_object_get(param(get, "query", "ratio"), "schema"),
                              "{\"anyOf\":[{\"type\":\"number\",\"exclusiveMaximum\":2.0,"
                              "\"exclusiveMinimum\":0.5},{\"type\":\"null\"}],\"title\":\"Ratio\"}",
                              "ratio"));
    cr_assert(support_json_eq(json_object_get(param(get, "query", "q"), "schema"),
                              "{\"anyOf\":[{\"type\":\"string\",\"maxLength\":8,\"minLength\":3},"
                              "{\"type\":\"null\"}],\"title\":\"Q\"}",
                              "q"));
    cr_assert(support_json_eq(json_object_get(param(get, "query", "color"), "schema"),
                              "{\"anyOf\":[{\"$ref\":\"#/components/schemas/Color\"},"
                              "{\"type\":\"null\"}],\"title\":\"Color\"}",
                              "color"));
    cr_assert(support_json_eq(json_object_get(param(get, "query", "ids"), "schema"),
                              "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},"
                              "\"title\":\"Ids\"}",
                              "ids"));
    json_t *tok = param(get, "header", "x-token");
    cr_assert(json_is_true(json_object_get(tok, "required")));

    json_t *uf =
        json_object_get(json_object_get(paths, "/api/users/{user_id}/files/{file}"), "get");
    cr_assert(support_json_eq(json_object_get(param(uf, "path", "user_id"), "schema"),
                              "{\"type\":\"string\",\"format\":\"uuid\",\"title\":\"User Id\"}",
                              "uuid"));
    param(uf, "path", "file");

    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    cr_assert(support_json_eq(
        json_object_get(schemas, "Color"),
        "{\"enum\":[\"red\",\"green\"],\"title\":\"Color\",\"type\":\"string\"}", "Color"));
    json_decref(doc);
}

Test(openapi, bodies_responses_and_validation_components)
{
    json_t *doc = fetch_doc();
    json_t *paths = json_object_get(doc, "paths");
    json_t *post = json_object_get(json_object_get(paths, "/api/items"), "post");
    cr_assert_str_eq(json_string_value(json_object_get(post, "operationId")),
                     "create_item_api_items_post");
    cr_assert(support_json_eq(json_object_get(post, "requestBody"),
                              "{\"content\":{\"application/json\":{\"schema\":"
                              "{\"$ref\":\"#/components/schemas/Item\"}}},\"required\":true}",
                              "requestBody"));
    json_t *responses = json_object_get(post, "responses");
    cr_assert(support_json_eq(json_object_get(responses, "201"),
                              "{\"description\":\"Successful Response\",\"content\":"
                              "{\"application/json\":{\"schema\":"
                              "{\"$ref\":\"#/components/schemas/Item\"}}}}",
                              "201"));
    cr_assert_not_null(json_object_get(responses, "409"));
    cr_assert(support_json_eq(json_object_get(responses, "422"),
                              "{\"description\":\"Validation Error\",\"content\":"
                              "{\"application/json\":{\"schema\":"
                              "{\"$ref\":\"#/components/schemas/HTTPValidationError\"}}}}",
                              "422"));
    /* No parameters, no body: no 422 (FastAPI does the same). */
    json_t *hz = json_object_get(json_object_get(paths, "/healthz"), "get");
    cr_assert_null(json_object_get(json_object_get(hz, "responses"), "422"));
    /* 204 has no content. */
    json_t *del = json_object_get(json_object_get(paths, "/api/items/{item_id}"), "delete");
    cr_assert_null(
        json_object_get(json_object_get(json_object_get(del, "responses"), "204"), "content"));

    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    cr_assert(support_json_eq(
        json_object_get(schemas, "Item"),
        "{\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":50,\"minLength\":1,"
        "\"title\":\"Name\"},\"price\":{\"type\":\"number\",\"exclusiveMinimum\":0,"
        "\"title\":\"Price\"},\"description\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":"
        "\"null\"}],\"title\":\"Description\"},\"tags\":{\"items\":{\"type\":\"string\"},"
        "\"type\":\"array\",\"title\":\"Tags\"}},\"type\":\"object\",\"required\":[\"name\","
        "\"price\"],\"title\":\"Item\"}",
        "Item"));
    cr_assert(
        support_json_eq(json_object_get(schemas, "HTTPValidationError"),
                        "{\"properties\":{\"detail\":{\"items\":{\"$ref\":\"#/components/schemas/"
                        "ValidationError\"},\"title\":\"Detail\",\"type\":\"array\"}},"
                        "\"title\":\"HTTPValidationError\",\"type\":\"object\"}",
                        "HTTPValidationError"));
    cr_assert(support_json_eq(
        json_object_get(schemas, "ValidationError"),
        "{\"properties\":{\"loc\":{\"items\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":"
        "\"integer\"}]},\"title\":\"Location\",\"type\":\"array\"},\"msg\":{\"title\":"
        "\"Message\",\"type\":\"string\"},\"type\":{\"title\":\"Error Type\",\"type\":"
        "\"string\"},\"input\":{\"title\":\"Input\"},\"ctx\":{\"title\":\"Context\","
        "\"type\":\"object\"}},\"required\":[\"loc\",\"msg\",\"type\"],\"title\":"
        "\"ValidationError\",\"type\":\"object\"}",
        "ValidationError"));
    json_decref(doc);
}

Test(openapi, docs_pages_are_served)
{
    petrel_test_res_t *res = petrel_test_get(tc, "/docs");
    cr_assert_eq(res->status, 200);
    cr_assert(strstr(res->body, "SwaggerUIBundle") != NULL);
    cr_assert(strstr(res->body, "test_openapi - Swagger UI") != NULL);
    petrel_test_res_free(res);
    res = petrel_test_get(tc, "/redoc");
    cr_assert_eq(res->status, 200);
    cr_assert(strstr(res->body, "<redoc spec-url=\"/openapi.json\">") != NULL);
    petrel_test_res_free(res);
    res = petrel_test_get(tc, "/docs/static/..%2f..%2fetc%2fpasswd");
    cr_assert_eq(res->status, 404);
    petrel_test_res_free(res);
}

/* The CLI prints the reference app's document; it validates and lists the app's routes. */
Test(openapi, cli_prints_a_valid_document)
{
    char dir[256], path[300], cmd[1024];
    cr_assert_eq(support_mkdtemp(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/cli.json", dir);
    snprintf(cmd, sizeof(cmd), "%s openapi --config %s > %s", SUPPORT_APP_BINARY,
             SUPPORT_TEST_CONFIG, path);
    int st;
    free(support_run(cmd, &st));
    cr_assert_eq(st, 0);
    validate_file(path);
    json_t *doc = json_load_file(path, 0, NULL);
    cr_assert_not_null(doc);
    json_t *paths = json_object_get(doc, "paths");
    cr_assert_not_null(json_object_get(paths, "/json"));
    cr_assert_not_null(json_object_get(paths, "/api/sleep"));
    json_decref(doc);
    support_rmtree(dir);
}
