/*
 * test_parity.c - the real petrel-parity binary against FastAPI's own tests:
 * every case of FastAPI's tests/test_path.py and tests/test_query.py (commit
 * 44c849c4, FastAPI 0.141 on Pydantic v2), plus the conversions Pydantic v2
 * documents for the same declarations, checked over HTTP on loopback.
 *
 * Expected bodies are what FastAPI writes: Starlette's JSONResponse is
 * json.dumps(..., separators=(",", ":"), ensure_ascii=False), so every body is
 * compared byte for byte (which also pins float spelling such as 42.0 and
 * 3.0 in ctx) and, for a readable diff, as parsed JSON.
 *
 * Notes on the Python side that decide the bytes:
 * - A float field's bounds are f64 in pydantic-core: Path(gt=3) on `float`
 *   reports ctx {"gt": 3.0}; on `int` {"gt": 3}. Messages print the bound with
 *   Rust's f64 Display, "greater than 3" in both cases.
 * - A float result is sent with Python's repr(): 42.0, 0.1, 1e+16, -0.0.
 * - FastAPI redirects /query/list/ to /query/list (307); petrel serves the
 *   paths without the slash only, so the cases below request those.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <petrel/common.h>
#include <petrel/req.h>

#include "support.h"

#define PARITY_BINARY PETREL_BINARY_DIR "/petrel-parity"

static support_proc_t proc;
static bool proc_started;
static int port;

static void parity_start(void)
{
    static char port_env[64];
    port = support_free_port();
    cr_assert_gt(port, 0);
    snprintf(port_env, sizeof(port_env), "PETREL_SERVER_PORT=%d", port);
    const char *env[] = {port_env, "PETREL_SERVER_WORKERS=1", NULL};
    const char *argv[] = {PARITY_BINARY, "serve", "--config", SUPPORT_TEST_CONFIG, NULL};
    cr_assert_eq(support_spawn(&proc, argv, env), 0, "cannot start %s", PARITY_BINARY);
    proc_started = true;
    /* /healthz answers as soon as the port is bound, while startup still runs (routes say
     * 503 "Service is starting" then); /readyz waits for the end of startup. */
    if (support_wait_status(port, "/healthz", 200, 15000) != 0 ||
        support_wait_status(port, "/readyz", 200, 15000) != 0) {
        char *err = support_proc_stderr(&proc);
        cr_assert_fail("petrel-parity did not become ready on port %d\nstderr: %.2000s", port, err);
    }
}

/* Also runs when a test failed: SIGTERM to the child's pid, then SIGKILL if it lingers. */
static void parity_stop(void)
{
    if (!proc_started)
        return;
    if (!proc.exited) {
        support_signal(&proc, SIGTERM);
        (void)support_wait_exit(&proc, 5000);
    }
    support_proc_cleanup(&proc);
    proc_started = false;
}

TestSuite(parity, .init = parity_start, .fini = parity_stop, .timeout = 60);

/* GET target; expects `status` and exactly the bytes of `body` (compact JSON). */
static void expect(const char *target, int status, const char *body)
{
    petrel_test_res_t *r = support_get(port, target, 5000);
    cr_expect_eq(r->status, status, "GET %s: status %d, want %d (body %s)", target, r->status,
                 status, r->body);
    const char *ct = petrel_test_res_header(r, "content-type");
    cr_expect(ct != NULL && strcmp(ct, "application/json") == 0, "GET %s: content-type %s", target,
              ct ? ct : "(none)");
    cr_expect(support_json_eq(r->json, body, target), "GET %s: JSON differs", target);
    cr_expect(r->body_len == strlen(body) && memcmp(r->body, body, r->body_len) == 0,
              "GET %s: bytes differ\n  got:  %.*s\n  want: %s", target, (int)r->body_len, r->body,
              body);
    petrel_test_res_free(r);
}

static void expect_ok(const char *target, const char *body)
{
    expect(target, 200, body);
}

/* ---- FastAPI's 422 documents, built the way FastAPI writes them */

#define DETAIL(...) "{\"detail\":[" __VA_ARGS__ "]}"
#define ERR(TYPE, LOC, MSG, INPUT)                                                                 \
    "{\"type\":\"" TYPE "\",\"loc\":" LOC ",\"msg\":\"" MSG "\",\"input\":" INPUT "}"
#define ERR_CTX(TYPE, LOC, MSG, INPUT, CTX)                                                        \
    "{\"type\":\"" TYPE "\",\"loc\":" LOC ",\"msg\":\"" MSG "\",\"input\":" INPUT ",\"ctx\":" CTX  \
    "}"

#define LOC_PATH "[\"path\",\"item_id\"]"
#define LOC_QUERY "[\"query\",\"query\"]"

#define MSG_INT "Input should be a valid integer, unable to parse string as an integer"
#define MSG_FLOAT "Input should be a valid number, unable to parse string as a number"
#define MSG_BOOL "Input should be a valid boolean, unable to interpret input"

#define INT_PARSING(LOC, IN) DETAIL(ERR("int_parsing", LOC, MSG_INT, "\"" IN "\""))
#define FLOAT_PARSING(IN) DETAIL(ERR("float_parsing", LOC_PATH, MSG_FLOAT, "\"" IN "\""))
#define BOOL_PARSING(IN) DETAIL(ERR("bool_parsing", LOC_PATH, MSG_BOOL, "\"" IN "\""))
#define MISSING(LOC) DETAIL(ERR("missing", LOC, "Field required", "null"))
/* A bound error on the path parameter: TYPE, words, bound as printed, input, ctx. */
#define BOUND(TYPE, WORDS, SHOWN, IN, CTX)                                                         \
    DETAIL(ERR_CTX(TYPE, LOC_PATH, "Input should be " WORDS " " SHOWN, "\"" IN "\"", CTX))

/* ---- plain routes and 404 */

Test(parity, text)
{
    expect_ok("/text", "\"Hello World\"");
}

Test(parity, nonexistent_is_404_not_found)
{
    expect("/nonexistent", 404, "{\"detail\":\"Not Found\"}");
    /* FastAPI would redirect these to the slash-less path; petrel answers 404. */
    expect("/path/int/", 404, "{\"detail\":\"Not Found\"}");
    expect("/path/a/b", 404, "{\"detail\":\"Not Found\"}");
}

/* ---- path parameters: str */

Test(parity, path_untyped_echoes_the_decoded_segment)
{
    expect_ok("/path/foobar", "\"foobar\"");
    expect_ok("/path/foo%20bar", "\"foo bar\"");
    expect_ok("/path/42", "\"42\"");
    expect_ok("/path/%C3%A9t%C3%A9", "\"\xc3\xa9t\xc3\xa9\"");
    /* json.dumps escapes C0 controls with lowercase hex and leaves the rest as UTF-8. */
    expect_ok("/path/%1F%22%5C", "\"\\u001f\\\"\\\\\"");
    expect_ok("/path/a+b", "\"a+b\"");
}

Test(parity, path_str)
{
    expect_ok("/path/str/foobar", "\"foobar\"");
    expect_ok("/path/str/42", "\"42\"");
    expect_ok("/path/str/True", "\"True\"");
}

Test(parity, path_param_optional_str)
{
    expect_ok("/path/param/foo", "\"foo\"");
}

/* ---- int */

Test(parity, path_int)
{
    expect("/path/int/foobar", 422, INT_PARSING(LOC_PATH, "foobar"));
    expect("/path/int/True", 422, INT_PARSING(LOC_PATH, "True"));
    expect_ok("/path/int/42", "42");
    expect("/path/int/42.5", 422, INT_PARSING(LOC_PATH, "42.5"));
    /* Pydantic's str -> int: leading zeros, a sign and a zero fraction are accepted. */
    expect_ok("/path/int/042", "42");
    expect_ok("/path/int/-7", "-7");
    expect_ok("/path/int/42.0", "42");
}

/* ---- float */

Test(parity, path_float)
{
    expect("/path/float/foobar", 422, FLOAT_PARSING("foobar"));
    expect("/path/float/True", 422, FLOAT_PARSING("True"));
    expect_ok("/path/float/42", "42.0");
    expect_ok("/path/float/42.5", "42.5");
}

Test(parity, path_float_prints_python_repr)
{
    expect_ok("/path/float/0.1", "0.1");
    expect_ok("/path/float/0.3", "0.3");
    expect_ok("/path/float/1e3", "1000.0");
    expect_ok("/path/float/-0", "-0.0");
    expect_ok("/path/float/1e16", "1e+16");
    expect_ok("/path/float/0.00001", "1e-05");
    expect_ok("/path/float/123456789.125", "123456789.125");
    expect_ok("/path/float/0.30000000000000004", "0.30000000000000004");
}

/* ---- bool */

Test(parity, path_bool)
{
    expect("/path/bool/foobar", 422, BOOL_PARSING("foobar"));
    expect_ok("/path/bool/True", "true");
    expect("/path/bool/42", 422, BOOL_PARSING("42"));
    expect("/path/bool/42.5", 422, BOOL_PARSING("42.5"));
    expect_ok("/path/bool/1", "true");
    expect_ok("/path/bool/0", "false");
    expect_ok("/path/bool/true", "true");
    expect_ok("/path/bool/False", "false");
    expect_ok("/path/bool/false", "false");
}

Test(parity, path_bool_every_pydantic_spelling)
{
    static const char *const yes[] = {"yes", "YES", "on", "On", "t", "T", "y", "Y", "TRUE"};
    static const char *const no[] = {"no", "No", "off", "OFF", "f", "F", "n", "N", "FALSE"};
    char target[64];
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        snprintf(target, sizeof(target), "/path/bool/%s", yes[i]);
        expect_ok(target, "true");
        snprintf(target, sizeof(target), "/path/bool/%s", no[i]);
        expect_ok(target, "false");
    }
    expect("/path/bool/2", 422, BOOL_PARSING("2"));
    expect("/path/bool/yess", 422, BOOL_PARSING("yess"));
}

/* ---- string lengths */

Test(parity, path_param_minlength)
{
    expect_ok("/path/param-minlength/foo", "\"foo\"");
    expect("/path/param-minlength/fo", 422,
           DETAIL(ERR_CTX("string_too_short", LOC_PATH, "String should have at least 3 characters",
                          "\"fo\"", "{\"min_length\":3}")));
}

Test(parity, path_param_maxlength)
{
    expect_ok("/path/param-maxlength/foo", "\"foo\"");
    expect("/path/param-maxlength/foobar", 422,
           DETAIL(ERR_CTX("string_too_long", LOC_PATH, "String should have at most 3 characters",
                          "\"foobar\"", "{\"max_length\":3}")));
    /* Lengths count characters: three two-byte characters fit. */
    expect_ok("/path/param-maxlength/%C3%A9%C3%A9%C3%A9", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"");
}

Test(parity, path_param_min_maxlength)
{
    expect_ok("/path/param-min_maxlength/foo", "\"foo\"");
    expect("/path/param-min_maxlength/foobar", 422,
           DETAIL(ERR_CTX("string_too_long", LOC_PATH, "String should have at most 3 characters",
                          "\"foobar\"", "{\"max_length\":3}")));
    expect("/path/param-min_maxlength/f", 422,
           DETAIL(ERR_CTX("string_too_short", LOC_PATH, "String should have at least 2 characters",
                          "\"f\"", "{\"min_length\":2}")));
}

/* ---- float bounds: ctx holds the bound as a float */

Test(parity, path_param_gt)
{
    expect_ok("/path/param-gt/42", "42.0");
    expect("/path/param-gt/2", 422,
           BOUND("greater_than", "greater than", "3", "2", "{\"gt\":3.0}"));
    expect("/path/param-gt/3", 422,
           BOUND("greater_than", "greater than", "3", "3", "{\"gt\":3.0}"));
    expect("/path/param-gt/x", 422, FLOAT_PARSING("x"));
}

Test(parity, path_param_gt0)
{
    expect_ok("/path/param-gt0/0.05", "0.05");
    expect("/path/param-gt0/0", 422,
           BOUND("greater_than", "greater than", "0", "0", "{\"gt\":0.0}"));
}

Test(parity, path_param_ge)
{
    expect_ok("/path/param-ge/42", "42.0");
    expect_ok("/path/param-ge/3", "3.0");
    expect("/path/param-ge/2", 422,
           BOUND("greater_than_equal", "greater than or equal to", "3", "2", "{\"ge\":3.0}"));
}

Test(parity, path_param_lt)
{
    expect("/path/param-lt/42", 422, BOUND("less_than", "less than", "3", "42", "{\"lt\":3.0}"));
    expect_ok("/path/param-lt/2", "2.0");
}

Test(parity, path_param_lt0)
{
    expect_ok("/path/param-lt0/-1", "-1.0");
    expect("/path/param-lt0/0", 422, BOUND("less_than", "less than", "0", "0", "{\"lt\":0.0}"));
}

Test(parity, path_param_le)
{
    expect("/path/param-le/42", 422,
           BOUND("less_than_equal", "less than or equal to", "3", "42", "{\"le\":3.0}"));
    expect_ok("/path/param-le/3", "3.0");
    expect_ok("/path/param-le/2", "2.0");
}

Test(parity, path_param_lt_gt)
{
    expect_ok("/path/param-lt-gt/2", "2.0");
    expect("/path/param-lt-gt/4", 422, BOUND("less_than", "less than", "3", "4", "{\"lt\":3.0}"));
    expect("/path/param-lt-gt/0", 422,
           BOUND("greater_than", "greater than", "1", "0", "{\"gt\":1.0}"));
}

Test(parity, path_param_le_ge)
{
    expect_ok("/path/param-le-ge/2", "2.0");
    expect_ok("/path/param-le-ge/1", "1.0");
    expect_ok("/path/param-le-ge/3", "3.0");
    expect("/path/param-le-ge/4", 422,
           BOUND("less_than_equal", "less than or equal to", "3", "4", "{\"le\":3.0}"));
    expect("/path/param-le-ge/0.5", 422,
           BOUND("greater_than_equal", "greater than or equal to", "1", "0.5", "{\"ge\":1.0}"));
}

/* ---- int bounds: ctx holds the bound as an int */

Test(parity, path_param_lt_int)
{
    expect_ok("/path/param-lt-int/2", "2");
    expect("/path/param-lt-int/42", 422, BOUND("less_than", "less than", "3", "42", "{\"lt\":3}"));
    expect("/path/param-lt-int/2.7", 422, INT_PARSING(LOC_PATH, "2.7"));
}

Test(parity, path_param_gt_int)
{
    expect_ok("/path/param-gt-int/42", "42");
    expect("/path/param-gt-int/2", 422,
           BOUND("greater_than", "greater than", "3", "2", "{\"gt\":3}"));
    expect("/path/param-gt-int/2.7", 422, INT_PARSING(LOC_PATH, "2.7"));
}

Test(parity, path_param_le_int)
{
    expect("/path/param-le-int/42", 422,
           BOUND("less_than_equal", "less than or equal to", "3", "42", "{\"le\":3}"));
    expect_ok("/path/param-le-int/3", "3");
    expect_ok("/path/param-le-int/2", "2");
    expect("/path/param-le-int/2.7", 422, INT_PARSING(LOC_PATH, "2.7"));
}

Test(parity, path_param_ge_int)
{
    expect_ok("/path/param-ge-int/42", "42");
    expect_ok("/path/param-ge-int/3", "3");
    expect("/path/param-ge-int/2", 422,
           BOUND("greater_than_equal", "greater than or equal to", "3", "2", "{\"ge\":3}"));
    expect("/path/param-ge-int/2.7", 422, INT_PARSING(LOC_PATH, "2.7"));
}

Test(parity, path_param_lt_gt_int)
{
    expect_ok("/path/param-lt-gt-int/2", "2");
    expect("/path/param-lt-gt-int/4", 422, BOUND("less_than", "less than", "3", "4", "{\"lt\":3}"));
    expect("/path/param-lt-gt-int/0", 422,
           BOUND("greater_than", "greater than", "1", "0", "{\"gt\":1}"));
    expect("/path/param-lt-gt-int/2.7", 422, INT_PARSING(LOC_PATH, "2.7"));
}

Test(parity, path_param_le_ge_int)
{
    expect_ok("/path/param-le-ge-int/2", "2");
    expect_ok("/path/param-le-ge-int/1", "1");
    expect_ok("/path/param-le-ge-int/3", "3");
    expect("/path/param-le-ge-int/4", 422,
           BOUND("less_than_equal", "less than or equal to", "3", "4", "{\"le\":3}"));
    expect("/path/param-le-ge-int/0", 422,
           BOUND("greater_than_equal", "greater than or equal to", "1", "0", "{\"ge\":1}"));
    expect("/path/param-le-ge-int/2.7", 422, INT_PARSING(LOC_PATH, "2.7"));
}

/* ---- query parameters */

Test(parity, query_required_untyped)
{
    expect("/query", 422, MISSING(LOC_QUERY));
    expect_ok("/query?query=baz", "\"foo bar baz\"");
    expect("/query?not_declared=baz", 422, MISSING(LOC_QUERY));
    /* Starlette's QueryParams.get() takes the last of repeated keys; blanks are kept. */
    expect_ok("/query?query=a&query=b", "\"foo bar b\"");
    expect_ok("/query?query=", "\"foo bar \"");
    expect_ok("/query?query=a+b%26c", "\"foo bar a b&c\"");
}

Test(parity, query_optional)
{
    expect_ok("/query/optional", "\"foo bar\"");
    expect_ok("/query/optional?query=baz", "\"foo bar baz\"");
    expect_ok("/query/optional?not_declared=baz", "\"foo bar\"");
}

Test(parity, query_int)
{
    expect("/query/int", 422, MISSING(LOC_QUERY));
    expect_ok("/query/int?query=42", "\"foo bar 42\"");
    expect("/query/int?query=42.5", 422, INT_PARSING(LOC_QUERY, "42.5"));
    expect("/query/int?query=baz", 422, INT_PARSING(LOC_QUERY, "baz"));
    expect("/query/int?not_declared=baz", 422, MISSING(LOC_QUERY));
    /* The converted int is formatted, not the text: "042" is 42. */
    expect_ok("/query/int?query=042", "\"foo bar 42\"");
    expect("/query/int?query=", 422, INT_PARSING(LOC_QUERY, ""));
}

Test(parity, query_int_optional)
{
    expect_ok("/query/int/optional", "\"foo bar\"");
    expect_ok("/query/int/optional?query=50", "\"foo bar 50\"");
    expect("/query/int/optional?query=foo", 422, INT_PARSING(LOC_QUERY, "foo"));
}

Test(parity, query_int_default)
{
    expect_ok("/query/int/default", "\"foo bar 10\"");
    expect_ok("/query/int/default?query=50", "\"foo bar 50\"");
    expect("/query/int/default?query=foo", 422, INT_PARSING(LOC_QUERY, "foo"));
}

Test(parity, query_param)
{
    expect_ok("/query/param", "\"foo bar\"");
    expect_ok("/query/param?query=50", "\"foo bar 50\"");
}

Test(parity, query_param_required)
{
    expect("/query/param-required", 422, MISSING(LOC_QUERY));
    expect_ok("/query/param-required?query=50", "\"foo bar 50\"");
}

Test(parity, query_param_required_int)
{
    expect("/query/param-required/int", 422, MISSING(LOC_QUERY));
    expect_ok("/query/param-required/int?query=50", "\"foo bar 50\"");
    expect("/query/param-required/int?query=foo", 422, INT_PARSING(LOC_QUERY, "foo"));
}

Test(parity, query_frozenset)
{
    expect_ok("/query/frozenset?query=1&query=1&query=2", "\"1,2\"");
    expect_ok("/query/frozenset?query=10&query=2&query=-3", "\"-3,2,10\"");
    expect("/query/frozenset", 422, MISSING(LOC_QUERY));
    expect("/query/frozenset?query=1&query=x", 422, INT_PARSING("[\"query\",\"query\",1]", "x"));
}

Test(parity, query_list)
{
    expect_ok("/query/list?device_ids=1&device_ids=2", "[1,2]");
    expect_ok("/query/list?device_ids=2&device_ids=1&device_ids=2", "[2,1,2]");
    expect("/query/list", 422, MISSING("[\"query\",\"device_ids\"]"));
    expect("/query/list?device_ids=1&device_ids=a&device_ids=2.5", 422,
           DETAIL(ERR("int_parsing", "[\"query\",\"device_ids\",1]", MSG_INT, "\"a\"") "," ERR(
               "int_parsing", "[\"query\",\"device_ids\",2]", MSG_INT, "\"2.5\"")));
}

Test(parity, query_list_default)
{
    expect_ok("/query/list-default?device_ids=1&device_ids=2", "[1,2]");
    expect_ok("/query/list-default", "[]");
    expect_ok("/query/list-default?other=1", "[]");
}

/* ---- process: the CLI petrel-app has, and a clean stop (in a sanitizer build the exit
 * status also carries LeakSanitizer's verdict) */

Test(parity, sigterm_stops_cleanly)
{
    expect_ok("/query/int/default", "\"foo bar 10\"");
    support_signal(&proc, SIGTERM);
    int st = support_wait_exit(&proc, 10000);
    char *err = support_proc_stderr(&proc);
    cr_expect_eq(st, 0, "exit status %d\nstderr: %.3000s", st, err);
    free(err);
}

static int run_cli(const char *arg, char **out)
{
    support_proc_t p;
    /* An explicit config: the working directory's config/default.yaml is petrel-app's. */
    const char *argv[] = {PARITY_BINARY, arg, "--config", SUPPORT_TEST_CONFIG, NULL};
    if (strcmp(arg, "routes") != 0)
        argv[2] = NULL;
    cr_assert_eq(support_spawn(&p, argv, NULL), 0);
    int st = support_wait_exit(&p, 20000);
    *out = support_proc_stdout(&p);
    support_proc_cleanup(&p);
    return st;
}

Test(parity_cli, routes_version_help)
{
    char *out;
    cr_expect_eq(run_cli("routes", &out), 0);
    int lines = 0;
    for (const char *c = out; *c != '\0'; c++)
        lines += *c == '\n';
    /* a header, the 35 parity routes and petrel's 7 own (health, metrics, OpenAPI, docs) */
    cr_expect_eq(lines, 43, "routes printed:\n%s", out);
    cr_expect_not_null(strstr(out, "/openapi.json"));
    cr_expect_not_null(strstr(out, "/path/param-le-ge-int/{item_id}"));
    cr_expect_not_null(strstr(out, "get_query_list_default"));
    free(out);
    cr_expect_eq(run_cli("--version", &out), 0);
    cr_expect_not_null(strstr(out, PETREL_VERSION), "--version printed: %s", out);
    free(out);
    cr_expect_eq(run_cli("--help", &out), 0);
    cr_expect_not_null(strstr(out, "serve"), "--help printed: %s", out);
    free(out);
}

/* ---- the serialiser behind every response, called directly */

static void expect_dump(json_t *j, const char *want)
{
    size_t len = 0;
    char *got = petrel_json_dumps(j, &len);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want);
    cr_expect_eq(len, strlen(want));
    free(got);
    json_decref(j);
}

Test(json_text, matches_python_json_dumps)
{
    expect_dump(json_real(0.1), "0.1");
    expect_dump(json_real(42), "42.0");
    expect_dump(json_real(1e22), "1e+22");
    expect_dump(json_integer(-42), "-42");
    expect_dump(json_pack("{s:[i,f,b,n],s:s}", "a", 1, 2.5, 1, "b", "x\ny\x7f"),
                "{\"a\":[1,2.5,true,null],\"b\":\"x\\ny\x7f\"}");
    expect_dump(json_pack("{s:{},s:[]}", "z", "a"), "{\"z\":{},\"a\":[]}");
    expect_dump(json_stringn("\x00\x01\x1f\b\f\r\t/\xc3\xa9", 10),
                "\"\\u0000\\u0001\\u001f\\b\\f\\r\\t/\xc3\xa9\"");
    expect_dump(NULL, "null");
}

Test(json_text, deep_nesting_does_not_recurse)
{
    json_t *root = json_array(), *cur = root;
    for (int i = 0; i < 10000; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    size_t len = 0;
    char *got = petrel_json_dumps(root, &len);
    cr_assert_not_null(got);
    cr_expect_eq(len, 20002);
    cr_expect_eq(got[0], '[');
    cr_expect_eq(got[len - 1], ']');
    free(got);
    json_decref(root);
}

Test(json_text, float_repr_for_handlers)
{
    char buf[32];
    cr_expect_eq(petrel_float_repr(2.5, buf, sizeof(buf)), 3);
    cr_expect_str_eq(buf, "2.5");
    petrel_float_repr(1e-7, buf, sizeof(buf));
    cr_expect_str_eq(buf, "1e-07");
}
