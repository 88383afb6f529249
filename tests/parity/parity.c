/*
 * parity.c - petrel-parity: FastAPI's own test application (tests/main.py, the
 * routes exercised by tests/test_path.py and tests/test_query.py) rewritten on
 * petrel's public API, so the two can be compared response for response. The
 * route list is /work/shared/FASTAPI-PARITY-ROUTES.md; each declaration below
 * carries the FastAPI signature it mirrors.
 *
 * Usage is petrel-app's: `petrel-parity serve [--config FILE]`, `routes`,
 * `--help`, `--version`, with PETREL_* environment overrides.
 */
#include <string.h>

#include <petrel/petrel.h>

/* Every path route returns its validated item_id unchanged: a string for str, an integer
 * for int, a real (sent as 42.0) for float, true/false for bool - what FastAPI's
 * `return item_id` serialises. */
static int echo_item(petrel_req_t *req)
{
    json_t *v = petrel_param_json(req, "item_id");
    return petrel_json(req, 200, v != NULL ? json_incref(v) : json_null());
}

/* GET /text: return "Hello World" */
static int get_text(petrel_req_t *req)
{
    return petrel_json(req, 200, json_string("Hello World"));
}

/* The query routes' f"foo bar {query}", or "foo bar" when query is None. The value is
 * the validated one: a str verbatim (it may hold NUL bytes, so lengths are kept), an int
 * in decimal. */
static int foo_bar(petrel_req_t *req)
{
    static const char prefix[] = "foo bar";
    json_t *v = petrel_param_json(req, "query");
    if (v == NULL || json_is_null(v))
        return petrel_json(req, 200, json_string(prefix));
    const char *text;
    size_t len;
    char num[32];
    if (json_is_string(v)) {
        text = json_string_value(v);
        len = json_string_length(v);
    } else if (json_is_integer(v)) {
        len = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        text = num;
    } else if (json_is_real(v)) {
        len = petrel_float_repr(json_real_value(v), num, sizeof(num));
        text = num;
    } else {
        text = json_is_true(v) ? "True" : "False";
        len = strlen(text);
    }
    size_t total = sizeof(prefix) + len; /* prefix, a space, the value */
    char *s = petrel_req_alloc(req, total);
    memcpy(s, prefix, sizeof(prefix) - 1);
    s[sizeof(prefix) - 1] = ' ';
    memcpy(s + sizeof(prefix), text, len);
    return petrel_json(req, 200, json_stringn(s, total));
}

/* GET /query/frozenset: ",".join(map(str, sorted(query))). The validated set is already
 * distinct and ascending. */
static int get_query_type_frozenset(petrel_req_t *req)
{
    json_t *set = petrel_param_json(req, "query");
    size_t n = json_array_size(set);
    char *s = petrel_req_alloc(req, n * 21 + 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(s + off, 22, "%s%" JSON_INTEGER_FORMAT, i > 0 ? "," : "",
                         json_integer_value(json_array_get(set, i)));
        off += (size_t)w;
    }
    s[off] = '\0';
    return petrel_json(req, 200, json_stringn(s, off));
}

/* GET /query/list and /query/list-default: return device_ids (list[int]). */
static int get_query_list(petrel_req_t *req)
{
    json_t *ids = petrel_param_json(req, "device_ids");
    return petrel_json(req, 200, ids != NULL ? json_incref(ids) : json_array());
}

/* Path routes: `item_id: T = Path(...)`. The template gives the name, path_params the type
 * and constraints, as FastAPI's annotation and Path() do. */
#define PATH_ROUTE(PATH, NAME, TYPE, ...)                                                          \
    {                                                                                              \
        .method = "GET", .path = (PATH), .handler = echo_item, .name = (NAME),                     \
        .path_params = {PETREL_P("item_id", TYPE, __VA_ARGS__)},                                   \
    }

/* Query routes answering "foo bar [<query>]". */
#define QUERY_ROUTE(PATH, NAME, FIELD)                                                             \
    {                                                                                              \
        .method = "GET", .path = (PATH), .handler = foo_bar, .name = (NAME), .query = {FIELD},     \
    }

static const petrel_route_t parity_routes[] = {
    PETREL_ROUTE(GET, "/text", get_text),

    /* def get_id(item_id): no annotation, the decoded segment is echoed as str */
    PATH_ROUTE("/path/{item_id}", "get_id", PETREL_T_STR, .title = "Item Id"),
    PATH_ROUTE("/path/str/{item_id}", "get_str_id", PETREL_T_STR),
    PATH_ROUTE("/path/int/{item_id}", "get_int_id", PETREL_T_INT),
    PATH_ROUTE("/path/float/{item_id}", "get_float_id", PETREL_T_FLOAT),
    PATH_ROUTE("/path/bool/{item_id}", "get_bool_id", PETREL_T_BOOL),
    /* item_id: str | None = Path() */
    PATH_ROUTE("/path/param/{item_id}", "get_path_param_id", PETREL_T_STR, .nullable = true),
    PATH_ROUTE("/path/param-minlength/{item_id}", "get_path_param_min_length", PETREL_T_STR,
               .min_length = 3),
    PATH_ROUTE("/path/param-maxlength/{item_id}", "get_path_param_max_length", PETREL_T_STR,
               .max_length = 3),
    PATH_ROUTE("/path/param-min_maxlength/{item_id}", "get_path_param_min_max_length", PETREL_T_STR,
               .min_length = 2, .max_length = 3),
    PATH_ROUTE("/path/param-gt/{item_id}", "get_path_param_gt", PETREL_T_FLOAT, .gt = "3"),
    PATH_ROUTE("/path/param-gt0/{item_id}", "get_path_param_gt0", PETREL_T_FLOAT, .gt = "0"),
    PATH_ROUTE("/path/param-ge/{item_id}", "get_path_param_ge", PETREL_T_FLOAT, .ge = "3"),
    PATH_ROUTE("/path/param-lt/{item_id}", "get_path_param_lt", PETREL_T_FLOAT, .lt = "3"),
    PATH_ROUTE("/path/param-lt0/{item_id}", "get_path_param_lt0", PETREL_T_FLOAT, .lt = "0"),
    PATH_ROUTE("/path/param-le/{item_id}", "get_path_param_le", PETREL_T_FLOAT, .le = "3"),
    PATH_ROUTE("/path/param-lt-gt/{item_id}", "get_path_param_lt_gt", PETREL_T_FLOAT, .lt = "3",
               .gt = "1"),
    PATH_ROUTE("/path/param-le-ge/{item_id}", "get_path_param_le_ge", PETREL_T_FLOAT, .le = "3",
               .ge = "1"),
    PATH_ROUTE("/path/param-lt-int/{item_id}", "get_path_param_lt_int", PETREL_T_INT, .lt = "3"),
    PATH_ROUTE("/path/param-gt-int/{item_id}", "get_path_param_gt_int", PETREL_T_INT, .gt = "3"),
    PATH_ROUTE("/path/param-le-int/{item_id}", "get_path_param_le_int", PETREL_T_INT, .le = "3"),
    PATH_ROUTE("/path/param-ge-int/{item_id}", "get_path_param_ge_int", PETREL_T_INT, .ge = "3"),
    PATH_ROUTE("/path/param-lt-gt-int/{item_id}", "get_path_param_lt_gt_int", PETREL_T_INT,
               .lt = "3", .gt = "1"),
    PATH_ROUTE("/path/param-le-ge-int/{item_id}", "get_path_param_le_ge_int", PETREL_T_INT,
               .le = "3", .ge = "1"),

    /* def get_query(query): required, untyped (str) */
    QUERY_ROUTE("/query", "get_query", PETREL_Q_STR("query", .required = true)),
    /* def get_query_optional(query=None) */
    QUERY_ROUTE("/query/optional", "get_query_optional", PETREL_Q_STR("query", .nullable = true)),
    /* def get_query_type(query: int) */
    QUERY_ROUTE("/query/int", "get_query_type", PETREL_Q_INT("query", .required = true)),
    /* def get_query_type_optional(query: int | None = None) */
    QUERY_ROUTE("/query/int/optional", "get_query_type_optional",
                PETREL_Q_INT("query", .nullable = true)),
    /* def get_query_type_int_default(query: int = 10) */
    QUERY_ROUTE("/query/int/default", "get_query_type_int_default",
                PETREL_Q_INT("query", .dflt = "10")),
    /* def get_query_param(query=Query(default=None)) */
    QUERY_ROUTE("/query/param", "get_query_param", PETREL_Q_STR("query", .nullable = true)),
    /* def get_query_param_required(query=Query()) */
    QUERY_ROUTE("/query/param-required", "get_query_param_required",
                PETREL_Q_STR("query", .required = true)),
    /* def get_query_param_required_type(query: int = Query()) */
    QUERY_ROUTE("/query/param-required/int", "get_query_param_required_type",
                PETREL_Q_INT("query", .required = true)),
    /* query: frozenset[int] = Query(...) */
    PETREL_ROUTE(GET, "/query/frozenset", get_query_type_frozenset,
                 .query = {PETREL_Q_LIST("query", PETREL_T_INT, .required = true, .unique = true)}),
    /* device_ids: list[int] = Query() */
    PETREL_ROUTE(GET, "/query/list", get_query_list,
                 .query = {PETREL_Q_LIST("device_ids", PETREL_T_INT, .required = true)}),
    /* device_ids: list[int] = Query(default=[]) */
    {.method = "GET",
     .path = "/query/list-default",
     .handler = get_query_list,
     .name = "get_query_list_default",
     .query = {PETREL_Q_LIST("device_ids", PETREL_T_INT, .dflt = "[]")}},
};

int main(int argc, char **argv)
{
    petrel_app_t *app = petrel_app_new("petrel-parity", PETREL_VERSION);
    if (petrel_app_add_routes(app, parity_routes,
                              sizeof(parity_routes) / sizeof(parity_routes[0])) != 0) {
        petrel_app_free(app);
        return 2;
    }
    int rc = petrel_app_main(app, argc, argv, NULL);
    petrel_app_free(app);
    return rc;
}
