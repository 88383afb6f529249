/*
 * test_router.c - the route trie: templates, static-vs-parameter priority,
 * path tails, percent-decoding, 404/405 + Allow, HEAD, and add-time errors.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "router_int.h"

static int h_ok(petrel_req_t *req)
{
    (void)req;
    return 0;
}

static petrel__router_t *R;
static petrel__match_t M;
static char scratch[1024];
static char err[256];

static void setup(void)
{
    R = petrel__router_new();
}

static void teardown(void)
{
    petrel__router_free(R);
}

TestSuite(router, .init = setup, .fini = teardown, .timeout = 10);

#define ADD(ROUTE)                                                                                 \
    do {                                                                                           \
        static const petrel_route_t rt_ = ROUTE;                                                   \
        cr_assert_eq(petrel__router_add(R, &rt_, err, sizeof(err)), 0, "add: %s", err);            \
    } while (0)

static int match(const char *method, const char *path)
{
    return petrel__router_match(R, method, strlen(method), path, strlen(path), scratch, &M);
}

static void expect_arg(size_t i, const char *name, const char *val)
{
    cr_assert_lt(i, M.nargs);
    cr_assert_str_eq(M.args[i].field->name, name);
    cr_assert_eq(M.args[i].len, strlen(val), "arg %s: got '%.*s'", name, (int)M.args[i].len,
                 M.args[i].val);
    cr_assert(memcmp(M.args[i].val, val, M.args[i].len) == 0);
}

Test(router, matches_static_and_typed_parameter)
{
    ADD(PETREL_ROUTE(GET, "/items/{item_id:int}", h_ok));
    cr_assert_eq(match("GET", "/items/42"), 0);
    cr_assert_not_null(M.route);
    cr_assert_str_eq(M.route->path, "/items/{item_id:int}");
    cr_assert_eq(M.nargs, 1);
    expect_arg(0, "item_id", "42");
    cr_assert_eq(M.args[0].field->type, PETREL_T_INT);
    cr_assert_eq(M.args[0].field->in, PETREL_IN_PATH);
    cr_assert(M.args[0].field->required);
    cr_assert_not_null(M.plan);
}

Test(router, does_not_type_check_parameters)
{
    ADD(PETREL_ROUTE(GET, "/items/{item_id:int}", h_ok));
    cr_assert_eq(match("GET", "/items/abc"), 0);
    expect_arg(0, "item_id", "abc");
}

Test(router, plain_parameter_is_str_and_needs_one_nonempty_segment)
{
    ADD(PETREL_ROUTE(GET, "/users/{name}", h_ok));
    cr_assert_eq(match("GET", "/users/bob"), 0);
    cr_assert_eq(M.args[0].field->type, PETREL_T_STR);
    cr_assert_eq(match("GET", "/users/"), 404);
    cr_assert_eq(match("GET", "/users"), 404);
    cr_assert_eq(match("GET", "/users/bob/x"), 404);
}

Test(router, trailing_slash_does_not_match)
{
    ADD(PETREL_ROUTE(GET, "/items", h_ok));
    cr_assert_eq(match("GET", "/items"), 0);
    cr_assert_eq(match("GET", "/items/"), 404);
    cr_assert_eq(match("GET", "/item"), 404);
    cr_assert_eq(match("GET", "/itemsx"), 404);
}

Test(router, root_path_matches_only_root)
{
    ADD(PETREL_ROUTE(GET, "/", h_ok));
    cr_assert_eq(match("GET", "/"), 0);
    cr_assert_eq(match("GET", "//"), 404);
    cr_assert_eq(match("GET", ""), 404);
    cr_assert_eq(match("GET", "x"), 404);
}

Test(router, static_segment_beats_parameter_in_any_registration_order)
{
    ADD(PETREL_ROUTE(GET, "/users/{id}", h_ok, .summary = "param"));
    ADD(PETREL_ROUTE(GET, "/users/me", h_ok, .summary = "static"));
    cr_assert_eq(match("GET", "/users/me"), 0);
    cr_assert_str_eq(M.route->summary, "static");
    cr_assert_eq(M.nargs, 0);
    cr_assert_eq(match("GET", "/users/you"), 0);
    cr_assert_str_eq(M.route->summary, "param");
}

Test(router, backtracks_from_static_branch_to_parameter)
{
    ADD(PETREL_ROUTE(GET, "/users/me/settings", h_ok, .summary = "settings"));
    ADD(PETREL_ROUTE(GET, "/users/{id}/posts", h_ok, .summary = "posts"));
    cr_assert_eq(match("GET", "/users/me/posts"), 0);
    cr_assert_str_eq(M.route->summary, "posts");
    expect_arg(0, "id", "me");
    cr_assert_eq(match("GET", "/users/me/settings"), 0);
    cr_assert_str_eq(M.route->summary, "settings");
}

Test(router, full_match_elsewhere_beats_405_on_static_node)
{
    ADD(PETREL_ROUTE(POST, "/items/special", h_ok, .summary = "special"));
    ADD(PETREL_ROUTE(GET, "/items/{id}", h_ok, .summary = "item"));
    cr_assert_eq(match("GET", "/items/special"), 0);
    cr_assert_str_eq(M.route->summary, "item");
    cr_assert_eq(match("POST", "/items/special"), 0);
    cr_assert_str_eq(M.route->summary, "special");
    cr_assert_eq(match("DELETE", "/items/special"), 405);
    cr_assert_str_eq(M.allow, "POST");
}

Test(router, path_tail_takes_rest_including_slashes)
{
    ADD(PETREL_ROUTE(GET, "/files/{p:path}", h_ok));
    cr_assert_eq(match("GET", "/files/a/b/c.txt"), 0);
    expect_arg(0, "p", "a/b/c.txt");
    cr_assert_eq(M.args[0].field->type, PETREL_T_PATH);
    cr_assert_eq(match("GET", "/files/"), 0); /* Starlette's path convertor is ".*" */
    expect_arg(0, "p", "");
    cr_assert_eq(match("GET", "/files"), 404);
}

Test(router, path_tail_has_lowest_priority)
{
    ADD(PETREL_ROUTE(GET, "/files/{p:path}", h_ok, .summary = "tail"));
    ADD(PETREL_ROUTE(GET, "/files/{name}/meta", h_ok, .summary = "meta"));
    ADD(PETREL_ROUTE(GET, "/files/index", h_ok, .summary = "index"));
    cr_assert_eq(match("GET", "/files/index"), 0);
    cr_assert_str_eq(M.route->summary, "index");
    cr_assert_eq(match("GET", "/files/x/meta"), 0);
    cr_assert_str_eq(M.route->summary, "meta");
    cr_assert_eq(match("GET", "/files/x/other"), 0);
    cr_assert_str_eq(M.route->summary, "tail");
    expect_arg(0, "p", "x/other");
}

Test(router, matches_percent_decoded_path)
{
    ADD(PETREL_ROUTE(GET, "/tags/{tag}", h_ok));
    ADD(PETREL_ROUTE(GET, "/caf\xc3\xa9", h_ok, .summary = "cafe"));
    cr_assert_eq(match("GET", "/tags/a%20b%2Bc"), 0);
    expect_arg(0, "tag", "a b+c");
    cr_assert_eq(match("GET", "/tags/a+b"), 0); /* '+' is literal in paths */
    expect_arg(0, "tag", "a+b");
    cr_assert_eq(match("GET", "/caf%C3%A9"), 0);
    cr_assert_str_eq(M.route->summary, "cafe");
    cr_assert_eq(match("GET", "/tags/%zz"), 0); /* invalid escapes stay literal */
    expect_arg(0, "tag", "%zz");
    /* An encoded slash is a separator once decoded, as in Starlette. */
    cr_assert_eq(match("GET", "/tags/a%2Fb"), 404);
}

Test(router, multiple_parameters_in_order)
{
    ADD(PETREL_ROUTE(GET, "/orgs/{org}/repos/{repo}/issues/{n:int}", h_ok));
    cr_assert_eq(match("GET", "/orgs/acme/repos/petrel/issues/7"), 0);
    cr_assert_eq(M.nargs, 3);
    expect_arg(0, "org", "acme");
    expect_arg(1, "repo", "petrel");
    expect_arg(2, "n", "7");
}

Test(router, different_parameter_names_share_a_node)
{
    ADD(PETREL_ROUTE(GET, "/a/{x}", h_ok, .summary = "x"));
    ADD(PETREL_ROUTE(GET, "/a/{y}/b", h_ok, .summary = "y"));
    cr_assert_eq(match("GET", "/a/1"), 0);
    expect_arg(0, "x", "1");
    cr_assert_eq(match("GET", "/a/2/b"), 0);
    expect_arg(0, "y", "2");
}

Test(router, method_not_allowed_lists_methods_in_fixed_order)
{
    ADD(PETREL_ROUTE(DELETE, "/items/{id}", h_ok));
    ADD(PETREL_ROUTE(PUT, "/items/{id}", h_ok));
    ADD(PETREL_ROUTE(GET, "/items/{id}", h_ok));
    ADD(PETREL_ROUTE(OPTIONS, "/items/{id}", h_ok));
    cr_assert_eq(match("POST", "/items/1"), 405);
    cr_assert_null(M.route);
    cr_assert_str_eq(M.allow, "GET, HEAD, PUT, DELETE, OPTIONS");
    cr_assert_eq(match("PATCH", "/items/1"), 405);
    cr_assert_eq(match("BREW", "/items/1"), 405);
}

Test(router, allow_without_get_has_no_head)
{
    ADD(PETREL_ROUTE(POST, "/jobs", h_ok));
    ADD(PETREL_ROUTE(PATCH, "/jobs", h_ok));
    cr_assert_eq(match("GET", "/jobs"), 405);
    cr_assert_str_eq(M.allow, "POST, PATCH");
    cr_assert_eq(match("HEAD", "/jobs"), 405);
}

Test(router, head_matches_get_route)
{
    ADD(PETREL_ROUTE(GET, "/json", h_ok));
    cr_assert_eq(match("HEAD", "/json"), 0);
    cr_assert_str_eq(M.route->method, "GET");
}

Test(router, unknown_path_is_404_without_allow)
{
    ADD(PETREL_ROUTE(GET, "/json", h_ok));
    cr_assert_eq(match("GET", "/nope"), 404);
    cr_assert_null(M.allow);
    cr_assert_null(M.route);
}

Test(router, rejects_unknown_parameter_type)
{
    static const petrel_route_t rt = PETREL_ROUTE(GET, "/x/{a:decimal}", h_ok);
    cr_assert_eq(petrel__router_add(R, &rt, err, sizeof(err)), PETREL_EINVAL);
    cr_assert(strstr(err, "unknown parameter type 'decimal'") != NULL, "%s", err);
    cr_assert_eq(petrel__router_count(R), 0);
    cr_assert_eq(match("GET", "/x/1"), 404);
}

Test(router, rejects_duplicate_method_and_template)
{
    ADD(PETREL_ROUTE(GET, "/x/{a}", h_ok));
    static const petrel_route_t dup = PETREL_ROUTE(GET, "/x/{a}", h_ok);
    cr_assert_eq(petrel__router_add(R, &dup, err, sizeof(err)), PETREL_EINVAL);
    cr_assert(strstr(err, "duplicate route GET /x/{a}") != NULL, "%s", err);
    ADD(PETREL_ROUTE(POST, "/x/{a}", h_ok));
    cr_assert_eq(petrel__router_count(R), 2);
}

Test(router, rejects_bad_templates)
{
    static const petrel_route_t bad[] = {
        PETREL_ROUTE(GET, "x", h_ok),
        PETREL_ROUTE(GET, "/f/{p:path}/more", h_ok),
        PETREL_ROUTE(GET, "/f/file-{id}.json", h_ok),
        PETREL_ROUTE(GET, "/f/{a}/{a}", h_ok),
        PETREL_ROUTE(GET, "/f/{}", h_ok),
        PETREL_ROUTE(GET, "/f/{1a}", h_ok),
        PETREL_ROUTE(BREW, "/f", h_ok),
        PETREL_ROUTE(GET, "/f/{a}", h_ok, .path_params = {PETREL_P("b", PETREL_T_INT)}),
        PETREL_ROUTE(GET, "/f/{a}", h_ok, .query = {PETREL_Q_INT("n", .ge = "one")}),
        PETREL_ROUTE(GET, "/f/{a}", h_ok, .query = {PETREL_Q_INT("n", .dflt = "{")}),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(petrel__router_add(R, &bad[i], err, sizeof(err)), PETREL_EINVAL, "#%zu", i);
        cr_assert_neq(err[0], '\0', "#%zu has no reason", i);
    }
    cr_assert_eq(petrel__router_count(R), 0);
    ADD(PETREL_ROUTE(GET, "/f/{a}", h_ok));
    cr_assert_eq(match("GET", "/f/1"), 0);
}

Test(router, merges_path_params_constraints_and_type_override)
{
    ADD(PETREL_ROUTE(GET, "/flags/{flag}/{n:int}", h_ok,
                     .path_params = {PETREL_P("n", PETREL_T_NONE, .ge = "1", .le = "10"),
                                     PETREL_P("flag", PETREL_T_BOOL, .description = "on?")}));
    cr_assert_eq(match("GET", "/flags/yes/3"), 0);
    const petrel_field_t *flag = M.args[0].field, *n = M.args[1].field;
    cr_assert_eq(flag->type, PETREL_T_BOOL);
    cr_assert_str_eq(flag->description, "on?");
    cr_assert_eq(flag->in, PETREL_IN_PATH);
    cr_assert(flag->required);
    cr_assert_eq(n->type, PETREL_T_INT);
    cr_assert_str_eq(n->ge, "1");
    cr_assert_str_eq(n->le, "10");
}

Test(router, counts_routes)
{
    cr_assert_eq(petrel__router_count(R), 0);
    ADD(PETREL_ROUTE(GET, "/a", h_ok));
    ADD(PETREL_ROUTE(POST, "/a", h_ok));
    ADD(PETREL_ROUTE(GET, "/b/{x}", h_ok));
    cr_assert_eq(petrel__router_count(R), 3);
}

Test(router, many_routes_all_match)
{
    static petrel_route_t routes[300];
    static char paths[300][48];
    for (int i = 0; i < 300; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/r%d/{id:int}/s%d", i % 37, i);
        routes[i] = (petrel_route_t){.method = "GET", .path = paths[i], .handler = h_ok};
        cr_assert_eq(petrel__router_add(R, &routes[i], err, sizeof(err)), 0, "%s", err);
    }
    for (int i = 0; i < 300; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/r%d/%d/s%d", i % 37, i * 7, i);
        cr_assert_eq(match("GET", p), 0, "%s", p);
        cr_assert_eq(M.route, &routes[i]);
    }
}

Test(router, pct_decode_handles_plus_and_bad_escapes)
{
    char out[64];
    cr_assert_eq(petrel__pct_decode(out, "a+b%41%4", 8, true), 6);
    cr_assert_str_eq(out, "a bA%4");
    cr_assert_eq(petrel__pct_decode(out, "a+b%41%", 7, false), 5);
    cr_assert_str_eq(out, "a+bA%");
    cr_assert_eq(petrel__pct_decode(out, "%00x", 4, false), 2);
    cr_assert_eq(out[0], '\0');
    cr_assert_eq(out[1], 'x');
}

struct pairs {
    char buf[512];
    size_t n;
};

static int collect_cb(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    struct pairs *p = ctx;
    p->n += (size_t)snprintf(p->buf + p->n, sizeof(p->buf) - p->n, "[%.*s=%.*s]", (int)klen, k,
                             (int)vlen, v);
    return 0;
}

Test(router, query_each_follows_parse_qsl_keep_blank_values)
{
    struct pairs p = {.n = 0};
    const char *q = "a=1&&b&c=&=d&e=x%3Dy+z&a=2";
    petrel__query_each(q, strlen(q), collect_cb, &p);
    cr_assert_str_eq(p.buf, "[a=1][b=][c=][=d][e=x=y z][a=2]");
}

static int stop_cb(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    (void)k;
    (void)klen;
    (void)v;
    (void)vlen;
    return ++*(int *)ctx == 2;
}

Test(router, query_each_stops_when_callback_asks)
{
    int n = 0;
    petrel__query_each("a=1&b=2&c=3", 11, stop_cb, &n);
    cr_assert_eq(n, 2);
}
