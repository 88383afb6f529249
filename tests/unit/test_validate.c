/*
 * test_validate.c - request validation against FastAPI 0.1xx + Pydantic v2:
 * every error type, message, ctx and loc, error ordering, conversions and
 * defaults. Expected documents are compact JSON with keys in insertion order.
 */
#include <stdlib.h>
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
static json_t *params, *body_out, *errs;
static const char *hdr_name, *hdr_val;

static void setup(void)
{
    R = petrel__router_new();
    params = body_out = errs = NULL;
    hdr_name = hdr_val = NULL;
}

static void teardown(void)
{
    json_decref(params);
    json_decref(body_out);
    json_decref(errs);
    petrel__router_free(R);
}

TestSuite(validate, .init = setup, .fini = teardown, .timeout = 10);

/* The declaration lives in the test function's scope, as long as the router uses it;
 * automatic storage lets it hold the compound literals PETREL_ENUM and friends expand to. */
#define ADD(...)                                                                                   \
    const petrel_route_t rt_ = __VA_ARGS__;                                                        \
    cr_assert_eq(petrel__router_add(R, &rt_, err, sizeof(err)), 0, "add: %s", err)

static const char *hdr_cb(void *ctx, const char *name, size_t *len)
{
    (void)ctx;
    if (hdr_name == NULL || strcasecmp(name, hdr_name) != 0)
        return NULL;
    *len = strlen(hdr_val);
    return hdr_val;
}

static char *dump(const json_t *j)
{
    /* 15 significant digits print 0.3 as Python's repr does; the default 17 would not. */
    return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                             JSON_REAL_PRECISION(15));
}

/* Runs a request; returns the error document (or NULL) as compact JSON text. */
static void run(const char *method, const char *path, const char *query, const char *body)
{
    json_decref(params);
    json_decref(body_out);
    json_decref(errs);
    params = body_out = NULL;
    cr_assert_eq(petrel__router_match(R, method, strlen(method), path, strlen(path), scratch, &M),
                 0, "no match for %s", path);
    errs = petrel__validate(&M, query, query ? strlen(query) : 0, hdr_cb, NULL, body,
                            body ? strlen(body) : 0, body != NULL, &params, &body_out);
}

static void expect_errors(const char *expected)
{
    cr_assert_not_null(errs, "expected errors %s", expected);
    cr_assert_null(params);
    cr_assert_null(body_out);
    char *got = dump(errs);
    cr_assert_str_eq(got, expected);
    free(got);
}

static void expect_params(const char *expected)
{
    char *e = errs ? dump(errs) : NULL;
    cr_assert_null(errs, "unexpected errors %s", e ? e : "");
    free(e);
    char *got = dump(params);
    cr_assert_str_eq(got, expected);
    free(got);
}

static void expect_body(const char *expected)
{
    cr_assert_null(errs);
    char *got = dump(body_out);
    cr_assert_str_eq(got, expected);
    free(got);
}

/* ---- fast path */

Test(validate, route_without_params_returns_no_params_object)
{
    /* Nothing to validate: no object is made (req.c creates one on demand), so the
     * hot path of a parameterless route allocates nothing here. */
    ADD(PETREL_ROUTE(GET, "/json", h_ok));
    run("GET", "/json", "a=1", "{not json");
    cr_assert_null(errs);
    cr_assert_null(params);
    cr_assert_null(body_out);
}

Test(validate, route_without_body_never_parses_one)
{
    ADD(PETREL_ROUTE(GET, "/q", h_ok, .query = {PETREL_Q_INT("n", .dflt = "1")}));
    run("GET", "/q", "", "{broken");
    expect_params("{\"n\":1}");
    cr_assert_null(body_out);
}

/* ---- path params */

Test(validate, path_int_parsing_error)
{
    ADD(PETREL_ROUTE(GET, "/items/{item_id:int}", h_ok));
    run("GET", "/items/abc", NULL, NULL);
    expect_errors(
        "[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"item_id\"],\"msg\":\"Input should "
        "be a valid integer, unable to parse string as an integer\",\"input\":\"abc\"}]");
    run("GET", "/items/42.5", NULL, NULL);
    expect_errors(
        "[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"item_id\"],\"msg\":\"Input should "
        "be a valid integer, unable to parse string as an integer\",\"input\":\"42.5\"}]");
    run("GET", "/items/42", NULL, NULL);
    expect_params("{\"item_id\":42}");
}

Test(validate, str_to_int_follows_pydantic_core)
{
    ADD(PETREL_ROUTE(GET, "/i/{n:int}", h_ok));
    static const struct {
        const char *in;
        long long out;
    } ok[] = {{"%2B7", 7},     {"-3", -3},
              {"007", 7},      {"-007", -7},
              {"42.0", 42},    {"42.000", 42},
              {"1_000", 1000}, {"%20%2042%09", 42},
              {"0", 0},        {"-0", 0},
              {"0_0", 0},      {"00.0", 0},
              {"1_0.00", 10},  {"9223372036854775807", INT64_MAX}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char p[64], want[64];
        snprintf(p, sizeof(p), "/i/%s", ok[i].in);
        run("GET", p, NULL, NULL);
        snprintf(want, sizeof(want), "{\"n\":%lld}", ok[i].out);
        expect_params(want);
    }
    static const char *const bad[] = {"42.",  "4_2_", "_42", "4__2", "+-1", "--1", "-+1",
                                      "0x1A", "1e3",  "",    " ",    "4 2", "%2B", "1.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char p[64];
        snprintf(p, sizeof(p), "/i/%s", bad[i]);
        if (bad[i][0] == '\0') {
            cr_assert_eq(petrel__router_match(R, "GET", 3, p, strlen(p), scratch, &M), 404);
            continue;
        }
        run("GET", p, NULL, NULL);
        cr_assert_not_null(errs, "%s accepted", bad[i]);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(errs, 0), "type")),
                         "int_parsing", "%s", bad[i]);
    }
}

Test(validate, int_outside_int64_is_parsing_size)
{
    ADD(PETREL_ROUTE(GET, "/i/{n:int}", h_ok));
    run("GET", "/i/9223372036854775808", NULL, NULL);
    expect_errors("[{\"type\":\"int_parsing_size\",\"loc\":[\"path\",\"n\"],\"msg\":\"Unable to "
                  "parse input string as an integer, exceeded maximum "
                  "size\",\"input\":\"9223372036854775808\"}]");
    run("GET", "/i/-9223372036854775808", NULL, NULL);
    expect_params("{\"n\":-9223372036854775808}");
}

Test(validate, path_uuid_normalised_and_errors)
{
    ADD(PETREL_ROUTE(GET, "/u/{id:uuid}", h_ok));
    static const char *const ok[] = {"A1A2A3A4-B1B2-C1C2-D1D2-D3D4D5D6D7D8",
                                     "a1a2a3a4b1b2c1c2d1d2d3d4d5d6d7d8",
                                     "%7Ba1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8%7D",
                                     "urn:uuid:a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8"};
    for (size_t i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof(p), "/u/%s", ok[i]);
        run("GET", p, NULL, NULL);
        expect_params("{\"id\":\"a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8\"}");
    }
    run("GET", "/u/not-a-uuid", NULL, NULL);
    expect_errors("[{\"type\":\"uuid_parsing\",\"loc\":[\"path\",\"id\"],\"msg\":\"Input should be "
                  "a valid UUID, invalid character: expected an optional prefix of `urn:uuid:` "
                  "followed by [0-9a-fA-F-], found `n` at 1\",\"input\":\"not-a-uuid\",\"ctx\":{"
                  "\"error\":\"invalid character: expected an optional prefix of `urn:uuid:` "
                  "followed by [0-9a-fA-F-], found `n` at 1\"}}]");
}

static const char *uuid_error(const char *raw)
{
    static char buf[512];
    char p[256];
    snprintf(p, sizeof(p), "/u/%s", raw);
    run("GET", p, NULL, NULL);
    cr_assert_not_null(errs, "%s accepted", raw);
    json_t *ctx = json_object_get(json_array_get(errs, 0), "ctx");
    snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(ctx, "error")));
    return buf;
}

Test(validate, uuid_errors_match_rust_uuid_crate)
{
    ADD(PETREL_ROUTE(GET, "/u/{id:uuid}", h_ok));
    cr_assert_str_eq(uuid_error("1234"),
                     "invalid length: expected length 32 for simple format, found 4");
    cr_assert_str_eq(uuid_error("a1a2a3a4-b1b2"), "invalid group count: expected 5, found 2");
    cr_assert_str_eq(uuid_error("a1a2a3a-b1b2-c1c2-d1d2-d3d4d5d6d7d8"),
                     "invalid group length in group 0: expected 8, found 7");
    cr_assert_str_eq(uuid_error("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8a"),
                     "invalid group length in group 4: expected 12, found 13");
    cr_assert_str_eq(uuid_error("3fa85f64-5717-4562-b3fc-2c963f66afaz"),
                     "invalid character: expected an optional prefix of `urn:uuid:` followed by "
                     "[0-9a-fA-F-], found `z` at 36");
    cr_assert_str_eq(uuid_error("%7Ba1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7dx%7D"),
                     "invalid character: expected an optional prefix of `urn:uuid:` followed by "
                     "[0-9a-fA-F-], found `x` at 37");
    cr_assert_str_eq(uuid_error("%C3%A9"),
                     "invalid character: expected an optional prefix of `urn:uuid:` followed by "
                     "[0-9a-fA-F-], found `\xc3\xa9` at 1");
    cr_assert_str_eq(uuid_error("urn:uuid:a1a2a3a4b1b2c1c2d1d2d3d4d5d6d7d8"),
                     "invalid group count: expected 5, found 1");
}

Test(validate, path_str_constraints_from_path_params)
{
    ADD(PETREL_ROUTE(
        GET, "/t/{ticker}", h_ok,
        .path_params = {PETREL_P("ticker", PETREL_T_STR, .min_length = 2, .max_length = 5)}));
    run("GET", "/t/A", NULL, NULL);
    expect_errors(
        "[{\"type\":\"string_too_short\",\"loc\":[\"path\",\"ticker\"],\"msg\":\"String "
        "should have at least 2 characters\",\"input\":\"A\",\"ctx\":{\"min_length\":2}}]");
    run("GET", "/t/ABCDEF", NULL, NULL);
    expect_errors("[{\"type\":\"string_too_long\",\"loc\":[\"path\",\"ticker\"],\"msg\":\"String "
                  "should have at most 5 characters\",\"input\":\"ABCDEF\",\"ctx\":{\"max_length\":"
                  "5}}]");
    /* Five code points, ten bytes. */
    run("GET", "/t/%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9", NULL, NULL);
    expect_params("{\"ticker\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}");
}

Test(validate, length_message_is_singular_for_one)
{
    ADD(PETREL_ROUTE(
        GET, "/s", h_ok,
        .query = {PETREL_Q_STR("a", .min_length = 1), PETREL_Q_STR("b", .max_length = 1)}));
    run("GET", "/s", "a=&b=xy", NULL);
    expect_errors(
        "[{\"type\":\"string_too_short\",\"loc\":[\"query\",\"a\"],\"msg\":\"String should "
        "have at least 1 character\",\"input\":\"\",\"ctx\":{\"min_length\":1}},{\"type\":"
        "\"string_too_long\",\"loc\":[\"query\",\"b\"],\"msg\":\"String should have at "
        "most 1 character\",\"input\":\"xy\",\"ctx\":{\"max_length\":1}}]");
}

Test(validate, path_tail_is_string)
{
    ADD(PETREL_ROUTE(GET, "/files/{p:path}", h_ok));
    run("GET", "/files/a/b%20c", NULL, NULL);
    expect_params("{\"p\":\"a/b c\"}");
}

/* ---- query params */

Test(validate, query_missing_required)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok, .query = {PETREL_Q_STR("q", .required = true)}));
    run("GET", "/s", NULL, NULL);
    expect_errors("[{\"type\":\"missing\",\"loc\":[\"query\",\"q\"],\"msg\":\"Field "
                  "required\",\"input\":null}]");
    run("GET", "/s", "q=", NULL);
    expect_params("{\"q\":\"\"}");
}

Test(validate, query_decoding_plus_and_last_value_wins)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok, .query = {PETREL_Q_STR("q"), PETREL_Q_INT("n")}));
    run("GET", "/s", "q=a+b%26c&n=1&n=2", NULL);
    expect_params("{\"q\":\"a b&c\",\"n\":2}");
}

Test(validate, query_defaults_and_absent_optional)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok,
                     .query = {PETREL_Q_INT("limit", .dflt = "10", .ge = "1", .le = "100"),
                               PETREL_Q_STR("q"), PETREL_Q_BOOL("flag", .dflt = "false"),
                               PETREL_Q_FLOAT("f", .dflt = "0.5")}));
    run("GET", "/s", "", NULL);
    expect_params("{\"limit\":10,\"flag\":false,\"f\":0.5}");
    run("GET", "/s", "limit=5&q=x&flag=on&f=2", NULL);
    expect_params("{\"limit\":5,\"q\":\"x\",\"flag\":true,\"f\":2.0}");
}

/* pydantic-core keeps an int field's bounds as ints and a float field's as f64: ctx holds
 * 3 or 3.0 and the message prints the f64 with Rust's Display, so "3.0" reads "3". */
Test(validate, numeric_bounds_take_the_field_type_in_ctx_and_message)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok,
                     .query = {PETREL_Q_INT("a", .gt = "3"), PETREL_Q_FLOAT("b", .ge = "3.0"),
                               PETREL_Q_FLOAT("c", .lt = "0.5"), PETREL_Q_INT("d", .le = "100")}));
    run("GET", "/s", "a=3&b=2.5&c=0.5&d=101", NULL);
    expect_errors(
        "[{\"type\":\"greater_than\",\"loc\":[\"query\",\"a\"],\"msg\":\"Input should be greater "
        "than 3\",\"input\":\"3\",\"ctx\":{\"gt\":3}},{\"type\":\"greater_than_equal\",\"loc\":["
        "\"query\",\"b\"],\"msg\":\"Input should be greater than or equal to "
        "3\",\"input\":\"2.5\",\"ctx\":{\"ge\":3.0}},{\"type\":\"less_than\",\"loc\":[\"query\","
        "\"c\"],\"msg\":\"Input should be less than 0.5\",\"input\":\"0.5\",\"ctx\":{\"lt\":0.5}},{"
        "\"type\":\"less_than_equal\",\"loc\":[\"query\",\"d\"],\"msg\":\"Input should be less "
        "than or equal to 100\",\"input\":\"101\",\"ctx\":{\"le\":100}}]");
    run("GET", "/s", "a=4&b=3&c=0.49&d=100", NULL);
    expect_params("{\"a\":4,\"b\":3.0,\"c\":0.49,\"d\":100}");
}

Test(validate, bounds_checked_in_pydantic_order_le_lt_ge_gt)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok, .query = {PETREL_Q_FLOAT("x", .gt = "5", .le = "1")}));
    run("GET", "/s", "x=3", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(errs, 0), "type")),
                     "less_than_equal");
    cr_assert_eq(json_array_size(errs), 1);
    run("GET", "/s", "x=nan", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(errs, 0), "type")),
                     "less_than_equal");
}

Test(validate, body_is_parsed_as_json_only_for_json_content_types)
{
    static const petrel_field_t fields[] = {PETREL_F_STR("name", .required = true), PETREL_F_END};
    ADD(PETREL_ROUTE(POST, "/b", h_ok, .body = PETREL_OBJECT("B", fields)));
    static const char *const json_types[] = {NULL, "", "application/json",
                                             " Application/JSON ; charset=utf-8",
                                             "application/vnd.api+json"};
    for (size_t i = 0; i < sizeof(json_types) / sizeof(json_types[0]); i++) {
        hdr_name = json_types[i] != NULL ? "content-type" : NULL;
        hdr_val = json_types[i];
        run("POST", "/b", NULL, "{\"name\":\"x\"}");
        cr_assert_null(errs, "%s refused", json_types[i] ? json_types[i] : "(none)");
        expect_body("{\"name\":\"x\"}");
    }
    /* FastAPI hands the model the raw text for any other type (curl -d sends a form type). */
    static const char *const other[] = {"text/plain", "application/x-www-form-urlencoded",
                                        "application/jsonx", "json", "application/a/+json"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        hdr_name = "content-type";
        hdr_val = other[i];
        run("POST", "/b", NULL, "{\"name\":\"x\"}");
        expect_errors("[{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],\"msg\":\"Input "
                      "should be a valid dictionary or object to extract fields from\",\"input\":"
                      "\"{\\\"name\\\":\\\"x\\\"}\"}]");
    }
}

Test(validate, finite_fields_refuse_inf_and_nan_like_allow_inf_nan_false)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok, .query = {PETREL_Q_FLOAT("x", .finite = true, .gt = "0")}));
    run("GET", "/s", "x=inf", NULL);
    expect_errors("[{\"type\":\"finite_number\",\"loc\":[\"query\",\"x\"],\"msg\":\"Input "
                  "should be a finite number\",\"input\":\"inf\"}]");
    run("GET", "/s", "x=NaN", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(errs, 0), "type")),
                     "finite_number");
    run("GET", "/s", "x=2.5", NULL);
    expect_params("{\"x\":2.5}");
}

Test(validate, float_parsing_follows_rust_grammar)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok, .query = {PETREL_Q_FLOAT("x")}));
    static const struct {
        const char *in, *out;
    } ok[] = {{"1e3", "1000.0"},   {"%2B.5", "0.5"},          {"5.", "5.0"},
              {"-2", "-2.0"},      {"1_0.5", "10.5"},         {"+3E-1", "0.3"},
              {"+inf", "\"inf\""}, {"-Infinity", "\"-inf\""}, {"NaN", "\"nan\""},
              {"%20%201.5", "1.5"}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char q[64], want[64];
        snprintf(q, sizeof(q), "x=%s", ok[i].in);
        run("GET", "/s", q, NULL);
        snprintf(want, sizeof(want), "{\"x\":%s}", ok[i].out);
        expect_params(want);
    }
    static const char *const bad[] = {"",   ".",   "e5",    "1e",      "0x10", "1__0",
                                      "_1", "abc", "1.2.3", "infinit", "1,5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char q[64];
        snprintf(q, sizeof(q), "x=%s", bad[i]);
        run("GET", "/s", q, NULL);
        cr_assert_not_null(errs, "%s accepted", bad[i]);
    }
    run("GET", "/s", "x=abc", NULL);
    expect_errors(
        "[{\"type\":\"float_parsing\",\"loc\":[\"query\",\"x\"],\"msg\":\"Input should be "
        "a valid number, unable to parse string as a number\",\"input\":\"abc\"}]");
}

Test(validate, bool_spellings)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok, .query = {PETREL_Q_BOOL("b")}));
    static const char *const t[] = {"1", "on", "t", "TRUE", "y", "Yes"};
    static const char *const f[] = {"0", "OFF", "f", "false", "N", "no"};
    for (size_t i = 0; i < 6; i++) {
        char q[32];
        snprintf(q, sizeof(q), "b=%s", t[i]);
        run("GET", "/s", q, NULL);
        expect_params("{\"b\":true}");
        snprintf(q, sizeof(q), "b=%s", f[i]);
        run("GET", "/s", q, NULL);
        expect_params("{\"b\":false}");
    }
    run("GET", "/s", "b=maybe", NULL);
    expect_errors("[{\"type\":\"bool_parsing\",\"loc\":[\"query\",\"b\"],\"msg\":\"Input should be "
                  "a valid boolean, unable to interpret input\",\"input\":\"maybe\"}]");
    run("GET", "/s", "b=+true", NULL);
    cr_assert_not_null(errs);
}

Test(validate, enum_messages_for_one_two_three_values)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok,
                     .query = {PETREL_Q_STR("one", .enum_values = PETREL_ENUM("a")),
                               PETREL_Q_STR("two", .enum_values = PETREL_ENUM("a", "b")),
                               PETREL_Q_STR("three", .enum_values = PETREL_ENUM("a", "b", "c"))}));
    run("GET", "/s", "one=x&two=x&three=x", NULL);
    expect_errors("[{\"type\":\"enum\",\"loc\":[\"query\",\"one\"],\"msg\":\"Input should be "
                  "'a'\",\"input\":\"x\",\"ctx\":{\"expected\":\"'a'\"}},{\"type\":\"enum\","
                  "\"loc\":[\"query\","
                  "\"two\"],\"msg\":\"Input should be 'a' or "
                  "'b'\",\"input\":\"x\",\"ctx\":{\"expected\":\"'a' "
                  "or 'b'\"}},{\"type\":\"enum\",\"loc\":[\"query\",\"three\"],\"msg\":\"Input "
                  "should be 'a', "
                  "'b' or 'c'\",\"input\":\"x\",\"ctx\":{\"expected\":\"'a', 'b' or 'c'\"}}]");
    run("GET", "/s", "one=a&two=b&three=c", NULL);
    expect_params("{\"one\":\"a\",\"two\":\"b\",\"three\":\"c\"}");
}

Test(validate, query_list_collects_every_occurrence)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok,
                     .query = {PETREL_Q_LIST("ids", PETREL_T_INT, .required = true),
                               PETREL_Q_LIST("tags", PETREL_T_STR)}));
    run("GET", "/s", "ids=3&tags=x&ids=1&ids=3", NULL);
    expect_params("{\"ids\":[3,1,3],\"tags\":[\"x\"]}");
    run("GET", "/s", "ids=1&ids=x&ids=2&ids=y", NULL);
    expect_errors("[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"ids\",1],\"msg\":\"Input should "
                  "be a valid integer, unable to parse string as an "
                  "integer\",\"input\":\"x\"},{\"type\":\"int_parsing\",\"loc\":[\"query\",\"ids\","
                  "3],\"msg\":\"Input should be a valid integer, unable to parse string as an "
                  "integer\",\"input\":\"y\"}]");
    run("GET", "/s", "tags=a", NULL);
    expect_errors("[{\"type\":\"missing\",\"loc\":[\"query\",\"ids\"],\"msg\":\"Field "
                  "required\",\"input\":null}]");
}

Test(validate, query_set_is_distinct_and_sorted)
{
    static const petrel_field_t item = {.type = PETREL_T_INT};
    ADD(PETREL_ROUTE(
        GET, "/s", h_ok,
        .query = {{.name = "ids", .type = PETREL_T_ARRAY, .unique = true, .items = &item}}));
    run("GET", "/s", "ids=3&ids=1&ids=3&ids=-2", NULL);
    expect_params("{\"ids\":[-2,1,3]}");
}

Test(validate, query_list_length_bounds)
{
    ADD(PETREL_ROUTE(
        GET, "/s", h_ok,
        .query = {PETREL_Q_LIST("ids", PETREL_T_INT, .min_length = 2, .max_length = 3)}));
    run("GET", "/s", "ids=1", NULL);
    expect_errors("[{\"type\":\"too_short\",\"loc\":[\"query\",\"ids\"],\"msg\":\"List should have "
                  "at least 2 items after validation, not 1\",\"input\":[\"1\"],\"ctx\":{\"field_"
                  "type\":\"List\",\"min_length\":2,\"actual_length\":1}}]");
    run("GET", "/s", "ids=1&ids=x&ids=3&ids=4", NULL);
    expect_errors("[{\"type\":\"too_long\",\"loc\":[\"query\",\"ids\"],\"msg\":\"List should have "
                  "at most 3 items after validation, not "
                  "4\",\"input\":[\"1\",\"x\",\"3\",\"4\"],\"ctx\":{\"field_type\":\"List\",\"max_"
                  "length\":3,\"actual_length\":4}}]");
    run("GET", "/s", "", NULL);
    expect_params("{}");
}

Test(validate, invalid_utf8_is_replaced_like_python)
{
    ADD(PETREL_ROUTE(GET, "/s", h_ok, .query = {PETREL_Q_INT("n")}));
    run("GET", "/s", "n=%FFa%E2%82", NULL);
    expect_errors(
        "[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"n\"],\"msg\":\"Input should be a "
        "valid integer, unable to parse string as an "
        "integer\",\"input\":\"\xef\xbf\xbd"
        "a\xef\xbf\xbd\"}]");
}

/* ---- headers */

Test(validate, header_params_convert_underscores)
{
    ADD(PETREL_ROUTE(GET, "/h", h_ok,
                     .query = {PETREL_H("x_token", PETREL_T_STR, .required = true),
                               PETREL_H("x_count", PETREL_T_INT, .dflt = "0")}));
    hdr_name = "x-token";
    hdr_val = "secret";
    run("GET", "/h", NULL, NULL);
    expect_params("{\"x_token\":\"secret\",\"x_count\":0}");
    hdr_name = NULL;
    run("GET", "/h", NULL, NULL);
    expect_errors("[{\"type\":\"missing\",\"loc\":[\"header\",\"x-token\"],\"msg\":\"Field "
                  "required\",\"input\":null}]");
}

/* ---- body */

static const petrel_field_t item_fields[] = {
    PETREL_F_STR("name", .required = true, .min_length = 1),
    PETREL_F_FLOAT("price", .required = true, .gt = "0"),
    PETREL_F_STR("description", .nullable = true),
    PETREL_F_INT("qty", .dflt = "1", .ge = "0"),
    PETREL_F("tags", PETREL_T_ARRAY, .items = &(const petrel_field_t){.type = PETREL_T_STR},
             .max_length = 3),
    PETREL_F_BOOL("active"),
    PETREL_F("id", PETREL_T_UUID),
    PETREL_F("dims", PETREL_T_OBJECT,
             .fields = (const petrel_field_t[]){PETREL_F_INT("w", .required = true),
                                                PETREL_F_INT("h", .required = true), PETREL_F_END}),
    PETREL_F_END,
};

#define ITEM_ROUTE                                                                                 \
    PETREL_ROUTE(POST, "/items/{item_id:int}", h_ok, .query = {PETREL_Q_INT("q")},                 \
                 .body = PETREL_OBJECT("Item", item_fields))

Test(validate, body_valid_applies_defaults_coerces_and_drops_unknown)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL,
        "{\"zzz\":1,\"price\":3,\"name\":\"x\",\"active\":1,\"tags\":[\"a\"],\"description\":null,"
        "\"id\":\"A1A2A3A4B1B2C1C2D1D2D3D4D5D6D7D8\",\"dims\":{\"w\":\"2\",\"h\":3.0,\"d\":9}}");
    expect_body("{\"name\":\"x\",\"price\":3.0,\"description\":null,\"qty\":1,\"tags\":[\"a\"],"
                "\"active\":true,\"id\":\"a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8\",\"dims\":{\"w\":2,"
                "\"h\":3}}");
    expect_params("{\"item_id\":1}");
}

Test(validate, body_missing_field_input_is_whole_object)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL, "{\"price\":1}");
    expect_errors("[{\"type\":\"missing\",\"loc\":[\"body\",\"name\"],\"msg\":\"Field "
                  "required\",\"input\":{\"price\":1}}]");
}

Test(validate, missing_body_entirely)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL, NULL);
    expect_errors("[{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\",\"input\":"
                  "null}]");
    run("POST", "/items/1", NULL, "");
    expect_errors("[{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\",\"input\":"
                  "null}]");
    run("POST", "/items/1", NULL, "null");
    expect_errors("[{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\",\"input\":"
                  "null}]");
}

Test(validate, optional_body_absent_is_null)
{
    static const petrel_field_t body = {
        .type = PETREL_T_OBJECT, .schema_name = "Opt", .nullable = true, .fields = item_fields};
    ADD(PETREL_ROUTE(POST, "/o", h_ok, .body = &body));
    run("POST", "/o", NULL, NULL);
    expect_body("null");
}

Test(validate, body_not_an_object)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL, "[1,2]");
    expect_errors("[{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],\"msg\":\"Input should "
                  "be a valid dictionary or object to extract fields from\",\"input\":[1,2]}]");
    run("POST", "/items/1", NULL, "{\"name\":\"x\",\"price\":1,\"dims\":5}");
    expect_errors("[{\"type\":\"dict_type\",\"loc\":[\"body\",\"dims\"],\"msg\":\"Input should be "
                  "a valid dictionary\",\"input\":5}]");
}

Test(validate, body_type_errors)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL,
        "{\"name\":5,\"price\":\"abc\",\"qty\":1.5,\"tags\":\"x\",\"active\":2,\"id\":7,\"dims\":{"
        "\"w\":null,\"h\":[]}}");
    expect_errors(
        "[{\"type\":\"string_type\",\"loc\":[\"body\",\"name\"],\"msg\":\"Input should be a valid "
        "string\",\"input\":5},{\"type\":\"float_parsing\",\"loc\":[\"body\",\"price\"],\"msg\":"
        "\"Input should be a valid number, unable to parse string as a "
        "number\",\"input\":\"abc\"},{\"type\":\"int_from_float\",\"loc\":[\"body\",\"qty\"],"
        "\"msg\":\"Input should be a valid integer, got a number with a fractional "
        "part\",\"input\":1.5},{\"type\":\"list_type\",\"loc\":[\"body\",\"tags\"],\"msg\":\"Input "
        "should be a valid list\",\"input\":\"x\"},{\"type\":\"bool_parsing\",\"loc\":[\"body\","
        "\"active\"],\"msg\":\"Input should be a valid boolean, unable to interpret "
        "input\",\"input\":2},{\"type\":\"uuid_type\",\"loc\":[\"body\",\"id\"],\"msg\":\"UUID "
        "input should be a string, bytes or UUID object\",\"input\":7},{\"type\":\"int_type\","
        "\"loc\":[\"body\",\"dims\",\"w\"],\"msg\":\"Input should be a valid "
        "integer\",\"input\":null},{\"type\":\"int_type\",\"loc\":[\"body\",\"dims\",\"h\"],"
        "\"msg\":\"Input should be a valid integer\",\"input\":[]}]");
}

Test(validate, body_non_nullable_null_is_type_error)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL, "{\"name\":null,\"price\":null,\"active\":null}");
    expect_errors("[{\"type\":\"string_type\",\"loc\":[\"body\",\"name\"],\"msg\":\"Input should "
                  "be a valid string\",\"input\":null},{\"type\":\"float_type\",\"loc\":[\"body\","
                  "\"price\"],\"msg\":\"Input should be a valid number\",\"input\":null},{\"type\":"
                  "\"bool_type\",\"loc\":[\"body\",\"active\"],\"msg\":\"Input should be a valid "
                  "boolean\",\"input\":null}]");
}

Test(validate, body_lax_conversions)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL,
        "{\"name\":\"n\",\"price\":true,\"qty\":\"7\",\"active\":\"yes\",\"dims\":{\"w\":true,"
        "\"h\":2.0}}");
    expect_body("{\"name\":\"n\",\"price\":1.0,\"qty\":7,\"active\":true,\"dims\":{\"w\":1,\"h\":"
                "2}}");
    run("POST", "/items/1", NULL, "{\"name\":\"n\",\"price\":\"1e2\",\"active\":0.0}");
    expect_body("{\"name\":\"n\",\"price\":100.0,\"qty\":1,\"active\":false}");
}

Test(validate, body_element_errors_and_list_bounds)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL, "{\"name\":\"n\",\"price\":1,\"tags\":[\"a\",\"b\",3]}");
    expect_errors("[{\"type\":\"string_type\",\"loc\":[\"body\",\"tags\",2],\"msg\":\"Input should "
                  "be a valid string\",\"input\":3}]");
    run("POST", "/items/1", NULL, "{\"name\":\"n\",\"price\":1,\"tags\":[1,2,3,4]}");
    expect_errors("[{\"type\":\"too_long\",\"loc\":[\"body\",\"tags\"],\"msg\":\"List should have "
                  "at most 3 items after validation, not 4\",\"input\":[1,2,3,4],\"ctx\":{\"field_"
                  "type\":\"List\",\"max_length\":3,\"actual_length\":4}}]");
}

Test(validate, body_constraints_use_json_input)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/1", NULL, "{\"name\":\"\",\"price\":0,\"qty\":-1}");
    expect_errors(
        "[{\"type\":\"string_too_short\",\"loc\":[\"body\",\"name\"],\"msg\":\"String "
        "should have at least 1 character\",\"input\":\"\",\"ctx\":{\"min_length\":1}},{"
        "\"type\":\"greater_than\",\"loc\":[\"body\",\"price\"],\"msg\":\"Input should be "
        "greater than 0\",\"input\":0,\"ctx\":{\"gt\":0.0}},{\"type\":\"greater_than_equal\","
        "\"loc\":[\"body\",\"qty\"],\"msg\":\"Input should be greater than or equal to "
        "0\",\"input\":-1,\"ctx\":{\"ge\":0}}]");
}

Test(validate, errors_ordered_path_query_header_body)
{
    ADD(PETREL_ROUTE(POST, "/items/{item_id:int}", h_ok,
                     .query = {PETREL_H("x_n", PETREL_T_INT), PETREL_Q_INT("q")},
                     .body = PETREL_OBJECT("Item", item_fields)));
    hdr_name = "x-n";
    hdr_val = "h";
    run("POST", "/items/p", "q=x", "{\"price\":-1}");
    char *got = dump(errs);
    const char *a = strstr(got, "[\"path\",\"item_id\"]"), *b = strstr(got, "[\"query\",\"q\"]"),
               *c = strstr(got, "[\"header\",\"x-n\"]"), *d = strstr(got, "[\"body\",\"name\"]"),
               *e = strstr(got, "[\"body\",\"price\"]");
    cr_assert(a && b && c && d && e, "%s", got);
    cr_assert(a < b && b < c && c < d && d < e, "%s", got);
    cr_assert_eq(json_array_size(errs), 5);
    free(got);
}

Test(validate, nested_object_items)
{
    static const petrel_field_t line_fields[] = {PETREL_F_INT("qty", .required = true, .gt = "0"),
                                                 PETREL_F_END};
    const petrel_field_t order_fields[] = {PETREL_F("lines", PETREL_T_ARRAY, .required = true,
                                                    .min_length = 1,
                                                    .items = PETREL_OBJECT("Line", line_fields)),
                                           PETREL_F_END};
    ADD(PETREL_ROUTE(POST, "/orders", h_ok, .body = PETREL_OBJECT("Order", order_fields)));
    run("POST", "/orders", NULL, "{\"lines\":[{\"qty\":1},{\"qty\":0},{},5]}");
    expect_errors(
        "[{\"type\":\"greater_than\",\"loc\":[\"body\",\"lines\",1,\"qty\"],\"msg\":\"Input should "
        "be greater than "
        "0\",\"input\":0,\"ctx\":{\"gt\":0}},{\"type\":\"missing\",\"loc\":[\"body\","
        "\"lines\",2,\"qty\"],\"msg\":\"Field "
        "required\",\"input\":{}},{\"type\":\"model_attributes_"
        "type\",\"loc\":[\"body\",\"lines\",3],\"msg\":\"Input should be a valid dictionary or "
        "object to extract fields from\",\"input\":5}]");
    run("POST", "/orders", NULL, "{\"lines\":[]}");
    expect_errors(
        "[{\"type\":\"too_short\",\"loc\":[\"body\",\"lines\"],\"msg\":\"List should have "
        "at least 1 item after validation, not 0\",\"input\":[],\"ctx\":{\"field_type\":"
        "\"List\",\"min_length\":1,\"actual_length\":0}}]");
}

Test(validate, body_enum_rejects_non_strings_with_enum_error)
{
    const petrel_field_t f[] = {
        PETREL_F_STR("color", .required = true, .enum_values = PETREL_ENUM("red", "green")),
        PETREL_F_END};
    ADD(PETREL_ROUTE(POST, "/c", h_ok, .body = PETREL_OBJECT("C", f)));
    run("POST", "/c", NULL, "{\"color\":1}");
    expect_errors("[{\"type\":\"enum\",\"loc\":[\"body\",\"color\"],\"msg\":\"Input should be "
                  "'red' or 'green'\",\"input\":1,\"ctx\":{\"expected\":\"'red' or 'green'\"}}]");
}

/* ---- malformed JSON: CPython 3.14 json messages and character positions */

static void expect_json_invalid(const char *body, const char *msg, long pos)
{
    run("POST", "/items/1", "q=bad", body);
    char want[512];
    snprintf(want, sizeof(want),
             "[{\"type\":\"json_invalid\",\"loc\":[\"body\",%ld],\"msg\":\"JSON decode "
             "error\",\"input\":{},\"ctx\":{\"error\":\"%s\"}}]",
             pos, msg);
    expect_errors(want);
}

Test(validate, json_invalid_matches_python_messages)
{
    ADD(ITEM_ROUTE);
    /* Cases from CPython's Lib/test/test_json/test_fail.py. */
    expect_json_invalid("[", "Expecting value", 1);
    expect_json_invalid("[42", "Expecting ',' delimiter", 3);
    expect_json_invalid("[42,", "Expecting value", 4);
    expect_json_invalid("[\"", "Unterminated string starting at", 1);
    expect_json_invalid("[\"spam\"", "Expecting ',' delimiter", 7);
    expect_json_invalid("{", "Expecting property name enclosed in double quotes", 1);
    expect_json_invalid("{\"spam\"", "Expecting ':' delimiter", 7);
    expect_json_invalid("{\"spam\":", "Expecting value", 8);
    expect_json_invalid("{\"spam\":42,", "Expecting property name enclosed in double quotes", 11);
    expect_json_invalid("\"spam", "Unterminated string starting at", 0);
    expect_json_invalid("[,", "Expecting value", 1);
    expect_json_invalid("{\"spam\":[}", "Expecting value", 9);
    expect_json_invalid("[42 \"spam\"", "Expecting ',' delimiter", 4);
    expect_json_invalid("[42,]", "Illegal trailing comma before end of array", 3);
    expect_json_invalid("[{]", "Expecting property name enclosed in double quotes", 2);
    expect_json_invalid("{\"spam\":42 , }", "Illegal trailing comma before end of object", 11);
    expect_json_invalid("[]]", "Extra data", 2);
    expect_json_invalid("42,\"spam\"", "Extra data", 2);
    expect_json_invalid("\n  \n\n     !", "Expecting value", 10);
    expect_json_invalid("{\"a\":01}", "Expecting ',' delimiter", 6);
    expect_json_invalid("{name:1}", "Expecting property name enclosed in double quotes", 1);
    expect_json_invalid("{\"a\":\"\\q\"}", "Invalid \\\\escape", 6);
    expect_json_invalid("{\"a\":\"\\uZZZZ\"}", "Invalid \\\\uXXXX escape", 7);
    expect_json_invalid("{\"a\":\"a\tb\"}", "Invalid control character at", 7);
    expect_json_invalid("   ", "Expecting value", 3);
    expect_json_invalid("{\"a\":1}x", "Extra data", 7);
    expect_json_invalid("{\"a\":tru}", "Expecting value", 5);
    expect_json_invalid("1.", "Extra data", 1);
    expect_json_invalid("-", "Expecting value", 0);
    expect_json_invalid("\"\\u0041", "Unterminated string starting at", 0);
    expect_json_invalid("\"\\u00", "Invalid \\\\uXXXX escape", 2);
    expect_json_invalid("\"\\ud800\\uzzzz\"", "Invalid \\\\uXXXX escape", 8);
}

Test(validate, json_invalid_position_counts_characters_not_bytes)
{
    ADD(ITEM_ROUTE);
    expect_json_invalid("{\"name\":\"\xc3\xa9\xc3\xa9\",}",
                        "Illegal trailing comma before end of object", 12);
    expect_json_invalid("\xef\xbb\xbf{", "Expecting property name enclosed in double quotes", 1);
}

Test(validate, json_invalid_hides_other_errors)
{
    ADD(ITEM_ROUTE);
    run("POST", "/items/abc", "q=x", "{");
    cr_assert_eq(json_array_size(errs), 1);
}

Test(validate, works_without_a_compiled_plan)
{
    ADD(PETREL_ROUTE(GET, "/items/{item_id:int}", h_ok, .query = {PETREL_Q_INT("n", .dflt = "3")}));
    cr_assert_eq(petrel__router_match(R, "GET", 3, "/items/x", 8, scratch, &M), 0);
    M.plan = NULL;
    errs = petrel__validate(&M, NULL, 0, NULL, NULL, NULL, 0, false, &params, &body_out);
    expect_errors(
        "[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"item_id\"],\"msg\":\"Input should "
        "be a valid integer, unable to parse string as an integer\",\"input\":\"x\"}]");
}

/* ---- float text: Python's repr() for values, Rust's Display for bounds */

Test(validate, float_repr_is_python_repr)
{
    static const struct {
        double d;
        const char *repr;
    } cases[] = {
        {42.0, "42.0"},
        {42.5, "42.5"},
        {0.1, "0.1"},
        {0.3, "0.3"},
        {0.1 + 0.2, "0.30000000000000004"},
        {-1.0, "-1.0"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {1e15, "1000000000000000.0"},
        {1e16, "1e+16"},
        {1.5e16, "1.5e+16"},
        {123456789012345678.0, "1.2345678901234568e+17"},
        {1e-4, "0.0001"},
        {1e-5, "1e-05"},
        {1.25e-7, "1.25e-07"},
        {1e100, "1e+100"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {2.0 / 3.0, "0.6666666666666666"},
        {100.0, "100.0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[PETREL__FLOAT_REPR_MAX];
        size_t n = petrel__float_repr(cases[i].d, buf, sizeof(buf));
        cr_expect_str_eq(buf, cases[i].repr, "repr(%.17g)", cases[i].d);
        cr_expect_eq(n, strlen(cases[i].repr));
    }
}

Test(validate, float_fixed_is_rust_display)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {3.0, "3"},          {0.0, "0"},       {-0.0, "-0"},
        {0.5, "0.5"},        {0.1, "0.1"},     {1e20, "100000000000000000000"},
        {1e-7, "0.0000001"}, {-2.25, "-2.25"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[PETREL__FLOAT_FIXED_MAX];
        petrel__float_fixed(cases[i].d, buf, sizeof(buf));
        cr_expect_str_eq(buf, cases[i].text, "display(%.17g)", cases[i].d);
    }
}

/* FastAPI's tests/test_path.py: item_id: float = Path(gt=3) answers ctx {"gt": 3.0} while
 * item_id: int = Path(gt=3) answers {"gt": 3}; both print "greater than 3". */
Test(validate, path_float_bound_is_a_float_in_ctx)
{
    ADD(PETREL_ROUTE(GET, "/f/{item_id}", h_ok,
                     .path_params = {PETREL_P("item_id", PETREL_T_FLOAT, .gt = "3", .lt = "0.1")}));
    run("GET", "/f/2", NULL, NULL);
    expect_errors(
        "[{\"type\":\"less_than\",\"loc\":[\"path\",\"item_id\"],\"msg\":\"Input should be "
        "less than 0.1\",\"input\":\"2\",\"ctx\":{\"lt\":0.1}}]");
    run("GET", "/f/-1", NULL, NULL);
    expect_errors(
        "[{\"type\":\"greater_than\",\"loc\":[\"path\",\"item_id\"],\"msg\":\"Input should "
        "be greater than 3\",\"input\":\"-1\",\"ctx\":{\"gt\":3.0}}]");
}

Test(validate, path_bool_param_from_path_params_type)
{
    ADD(PETREL_ROUTE(GET, "/b/{item_id}", h_ok,
                     .path_params = {PETREL_P("item_id", PETREL_T_BOOL)}));
    run("GET", "/b/YES", NULL, NULL);
    expect_params("{\"item_id\":true}");
    run("GET", "/b/off", NULL, NULL);
    expect_params("{\"item_id\":false}");
    run("GET", "/b/42.5", NULL, NULL);
    expect_errors(
        "[{\"type\":\"bool_parsing\",\"loc\":[\"path\",\"item_id\"],\"msg\":\"Input should "
        "be a valid boolean, unable to interpret input\",\"input\":\"42.5\"}]");
}
