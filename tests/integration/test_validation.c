/*
 * test_validation.c - typed path/query/body validation seen over HTTP: the
 * validated values a handler receives, and the exact FastAPI / Pydantic v2
 * 422 documents for each error type, in FastAPI's order.
 *
 * Expected documents are written from Pydantic v2's messages (what FastAPI
 * answers for the equivalent Python declaration) and compared with
 * json_equal(), so key order does not matter but every value, and the
 * int-vs-float spelling of numbers, does.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/fiber.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

/* Answers {"params": <validated params>, "body": <validated body or null>}. */
static int h_echo(petrel_req_t *req)
{
    json_t *params = petrel_params(req);
    json_t *body = petrel_body(req);
    return petrel_json(req, 200,
                       json_pack("{s:O,s:O}", "params", params != NULL ? params : json_null(),
                                 "body", body != NULL ? body : json_null()));
}

/* Body schema: class Meta(BaseModel): color: str; size: int | None = None */
static const petrel_field_t meta_fields[] = {
    PETREL_F_STR("color", .required = true),
    PETREL_F_INT("size"),
    PETREL_F_END,
};

/* class Dim(BaseModel): w: int; h: int */
static const petrel_field_t dim_fields[] = {
    PETREL_F_INT("w", .required = true),
    PETREL_F_INT("h", .required = true),
    PETREL_F_END,
};

/*
 * class Item(BaseModel):
 *     name: str = Field(min_length=3, max_length=20)
 *     price: float = Field(gt=0)
 *     qty: int = Field(1, ge=0, le=1000)
 *     active: bool | None = None
 *     tags: list[str] | None = None
 *     meta: Meta | None = None
 *     note: str | None = None          (nullable)
 *     dims: list[Dim] | None = None
 */
static const petrel_field_t item_fields[] = {
    PETREL_F_STR("name", .required = true, .min_length = 3, .max_length = 20),
    PETREL_F_FLOAT("price", .required = true, .gt = "0"),
    PETREL_F_INT("qty", .dflt = "1", .ge = "0", .le = "1000"),
    PETREL_F_BOOL("active"),
    PETREL_F("tags", PETREL_T_ARRAY, .items = &(const petrel_field_t){.type = PETREL_T_STR}),
    PETREL_F("meta", PETREL_T_OBJECT, .fields = meta_fields, .schema_name = "Meta"),
    PETREL_F_STR("note", .nullable = true),
    PETREL_F("dims", PETREL_T_ARRAY,
             .items = &(const petrel_field_t){.type = PETREL_T_OBJECT,
                                              .in = PETREL_IN_BODY,
                                              .fields = dim_fields,
                                              .schema_name = "Dim"}),
    PETREL_F_END,
};

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/items/{item_id:int}", h_echo),
    PETREL_ROUTE(GET, "/types/{i:int}/{f:float}/{s:str}/{u:uuid}/{p:path}", h_echo),
    PETREL_ROUTE(GET, "/search", h_echo,
                 .query = {PETREL_Q_STR("q", .required = true, .min_length = 3, .max_length = 10),
                           PETREL_Q_INT("limit", .dflt = "10", .ge = "1", .le = "100"),
                           PETREL_Q_STR("color", .enum_values = PETREL_ENUM("red", "green", "blue"),
                                        .enum_name = "Color"),
                           PETREL_Q_BOOL("flag", .dflt = "false"),
                           PETREL_Q_FLOAT("ratio", .gt = "0", .lt = "1")}),
    PETREL_ROUTE(POST, "/items", h_echo, .body = PETREL_OBJECT("Item", item_fields)),
    PETREL_ROUTE(PUT, "/items/{item_id:int}", h_echo,
                 .query = {PETREL_Q_BOOL("notify", .required = true)},
                 .body = PETREL_OBJECT("Item", item_fields)),
};

static petrel_app_t *app;
static petrel_testclient_t *tc;

static void start(void)
{
    app = petrel_app_new("test_validation", "1.0");
    cr_assert_not_null(app);
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    static const char *const overrides[] = {"server.workers=1", NULL};
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc, "petrel_test_start failed");
}

static void stop(void)
{
    petrel_test_stop(tc);
    petrel_app_free(app);
}

TestSuite(validation, .init = start, .fini = stop, .timeout = 60);

/* Asserts a 422 whose "detail" equals `detail` (JSON text). */
static void expect_422(petrel_test_res_t *r, const char *detail, const char *what)
{
    cr_assert_eq(r->status, 422, "%s: status %d, body %s", what, r->status, r->body);
    cr_assert_not_null(r->json, "%s: 422 body is not JSON: %s", what, r->body);
    cr_assert_eq(json_object_size(r->json), 1, "%s: extra keys in %s", what, r->body);
    cr_assert(support_json_eq(json_object_get(r->json, "detail"), detail, what), "%s", what);
    petrel_test_res_free(r);
}

static void expect_get_422(const char *target, const char *detail)
{
    expect_422(petrel_test_get(tc, target), detail, target);
}

static void expect_post_422(const char *target, const char *body, const char *detail)
{
    expect_422(petrel_test_post_json(tc, target, body), detail, body);
}

static void expect_ok(petrel_test_res_t *r, const char *want, const char *what)
{
    cr_assert_eq(r->status, 200, "%s: status %d, body %s", what, r->status, r->body);
    cr_assert(support_json_eq(r->json, want, what), "%s", what);
    petrel_test_res_free(r);
}

/* ---- success values ---- */

Test(validation, typed_path_params_reach_the_handler_converted)
{
    expect_ok(petrel_test_get(tc, "/types/42/2.5/hello%20world/"
                                  "123e4567-e89b-12d3-a456-426614174000/a/b/c.txt"),
              "{\"params\":{\"i\":42,\"f\":2.5,\"s\":\"hello world\","
              "\"u\":\"123e4567-e89b-12d3-a456-426614174000\",\"p\":\"a/b/c.txt\"},"
              "\"body\":null}",
              "typed path");
    expect_ok(petrel_test_get(tc, "/items/-7"), "{\"params\":{\"item_id\":-7},\"body\":null}",
              "negative int");
}

Test(validation, query_params_get_types_and_defaults)
{
    expect_ok(petrel_test_get(tc, "/search?q=abcd&limit=5&color=green&flag=yes&ratio=0.5"),
              "{\"params\":{\"q\":\"abcd\",\"limit\":5,\"color\":\"green\",\"flag\":true,"
              "\"ratio\":0.5},\"body\":null}",
              "all given");
    expect_ok(petrel_test_get(tc, "/search?q=abc"),
              "{\"params\":{\"q\":\"abc\",\"limit\":10,\"flag\":false},\"body\":null}", "defaults");
    /* Pydantic's accepted boolean spellings. */
    static const char *const truthy[] = {"true", "1", "on", "t", "y", "YES", "True"};
    static const char *const falsy[] = {"false", "0", "off", "f", "n", "no"};
    for (size_t i = 0; i < sizeof(truthy) / sizeof(truthy[0]); i++) {
        char target[64];
        snprintf(target, sizeof(target), "/search?q=abc&flag=%s", truthy[i]);
        petrel_test_res_t *r = petrel_test_get(tc, target);
        cr_assert_eq(r->status, 200, "%s: %d", target, r->status);
        cr_assert(json_is_true(json_object_get(json_object_get(r->json, "params"), "flag")),
                  "%s: %s", target, r->body);
        petrel_test_res_free(r);
    }
    for (size_t i = 0; i < sizeof(falsy) / sizeof(falsy[0]); i++) {
        char target[64];
        snprintf(target, sizeof(target), "/search?q=abc&flag=%s", falsy[i]);
        petrel_test_res_t *r = petrel_test_get(tc, target);
        cr_assert_eq(r->status, 200, "%s: %d", target, r->status);
        cr_assert(json_is_false(json_object_get(json_object_get(r->json, "params"), "flag")),
                  "%s: %s", target, r->body);
        petrel_test_res_free(r);
    }
    /* Percent-decoding of query values, boundaries inclusive. */
    expect_ok(petrel_test_get(tc, "/search?q=a%20b%2Bc&limit=100"),
              "{\"params\":{\"q\":\"a b+c\",\"limit\":100,\"flag\":false},\"body\":null}",
              "decoded");
    expect_ok(petrel_test_get(tc, "/search?q=abc&limit=1"),
              "{\"params\":{\"q\":\"abc\",\"limit\":1,\"flag\":false},\"body\":null}", "ge edge");
}

Test(validation, json_body_is_validated_and_defaults_applied)
{
    expect_ok(petrel_test_post_json(tc, "/items",
                                    "{\"name\":\"widget\",\"price\":9.5,\"tags\":[\"a\",\"b\"],"
                                    "\"meta\":{\"color\":\"red\"},\"note\":null,"
                                    "\"dims\":[{\"w\":1,\"h\":2}],\"active\":true}"),
              "{\"params\":{},\"body\":{\"name\":\"widget\",\"price\":9.5,\"qty\":1,"
              "\"tags\":[\"a\",\"b\"],\"meta\":{\"color\":\"red\"},\"note\":null,"
              "\"dims\":[{\"w\":1,\"h\":2}],\"active\":true}}",
              "full body");
    expect_ok(petrel_test_post_json(tc, "/items",
                                    "{\"name\":\"abc\",\"price\":0.01,\"qty\":1000,"
                                    "\"note\":\"hi\"}"),
              "{\"params\":{},\"body\":{\"name\":\"abc\",\"price\":0.01,\"qty\":1000,"
              "\"note\":\"hi\"}}",
              "bounds inclusive");
}

/* ---- each 422 type, exactly ---- */

Test(validation, missing_required_query_param)
{
    expect_get_422("/search",
                   "[{\"type\":\"missing\",\"loc\":[\"query\",\"q\"],\"msg\":\"Field required\","
                   "\"input\":null}]");
}

Test(validation, int_parsing_in_path_and_query)
{
    expect_get_422("/items/abc",
                   "[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"item_id\"],"
                   "\"msg\":\"Input should be a valid integer, unable to parse string as an "
                   "integer\",\"input\":\"abc\"}]");
    expect_get_422("/search?q=abc&limit=ten",
                   "[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],"
                   "\"msg\":\"Input should be a valid integer, unable to parse string as an "
                   "integer\",\"input\":\"ten\"}]");
}

Test(validation, float_parsing_in_path_and_query)
{
    expect_get_422("/types/1/abc/s/123e4567-e89b-12d3-a456-426614174000/p",
                   "[{\"type\":\"float_parsing\",\"loc\":[\"path\",\"f\"],"
                   "\"msg\":\"Input should be a valid number, unable to parse string as a "
                   "number\",\"input\":\"abc\"}]");
    expect_get_422("/search?q=abc&ratio=half",
                   "[{\"type\":\"float_parsing\",\"loc\":[\"query\",\"ratio\"],"
                   "\"msg\":\"Input should be a valid number, unable to parse string as a "
                   "number\",\"input\":\"half\"}]");
}

Test(validation, bool_parsing_in_query)
{
    expect_get_422("/search?q=abc&flag=maybe",
                   "[{\"type\":\"bool_parsing\",\"loc\":[\"query\",\"flag\"],"
                   "\"msg\":\"Input should be a valid boolean, unable to interpret input\","
                   "\"input\":\"maybe\"}]");
}

Test(validation, numeric_bounds_in_query)
{
    expect_get_422("/search?q=abc&limit=0",
                   "[{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"limit\"],"
                   "\"msg\":\"Input should be greater than or equal to 1\",\"input\":\"0\","
                   "\"ctx\":{\"ge\":1}}]");
    expect_get_422("/search?q=abc&limit=101",
                   "[{\"type\":\"less_than_equal\",\"loc\":[\"query\",\"limit\"],"
                   "\"msg\":\"Input should be less than or equal to 100\",\"input\":\"101\","
                   "\"ctx\":{\"le\":100}}]");
    expect_get_422("/search?q=abc&ratio=0",
                   "[{\"type\":\"greater_than\",\"loc\":[\"query\",\"ratio\"],"
                   "\"msg\":\"Input should be greater than 0\",\"input\":\"0\","
                   "\"ctx\":{\"gt\":0.0}}]");
    expect_get_422("/search?q=abc&ratio=1.5",
                   "[{\"type\":\"less_than\",\"loc\":[\"query\",\"ratio\"],"
                   "\"msg\":\"Input should be less than 1\",\"input\":\"1.5\","
                   "\"ctx\":{\"lt\":1.0}}]");
}

Test(validation, string_length_bounds_in_query)
{
    expect_get_422("/search?q=ab",
                   "[{\"type\":\"string_too_short\",\"loc\":[\"query\",\"q\"],"
                   "\"msg\":\"String should have at least 3 characters\",\"input\":\"ab\","
                   "\"ctx\":{\"min_length\":3}}]");
    expect_get_422("/search?q=abcdefghijk",
                   "[{\"type\":\"string_too_long\",\"loc\":[\"query\",\"q\"],"
                   "\"msg\":\"String should have at most 10 characters\","
                   "\"input\":\"abcdefghijk\",\"ctx\":{\"max_length\":10}}]");
    /* Lengths count characters, not bytes: three 2-byte characters are 3 long. */
    expect_ok(petrel_test_get(tc, "/search?q=%C3%A9%C3%A9%C3%A9"),
              "{\"params\":{\"q\":\"\xc3\xa9\xc3\xa9\xc3\xa9\",\"limit\":10,\"flag\":false},"
              "\"body\":null}",
              "utf-8 length");
}

Test(validation, enum_in_query)
{
    expect_get_422("/search?q=abc&color=pink",
                   "[{\"type\":\"enum\",\"loc\":[\"query\",\"color\"],"
                   "\"msg\":\"Input should be 'red', 'green' or 'blue'\",\"input\":\"pink\","
                   "\"ctx\":{\"expected\":\"'red', 'green' or 'blue'\"}}]");
}

Test(validation, uuid_parsing_in_path)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/types/1/2.5/s/not-a-uuid/p");
    cr_assert_eq(r->status, 422, "status %d", r->status);
    json_t *detail = json_object_get(r->json, "detail");
    cr_assert_eq(json_array_size(detail), 1, "%s", r->body);
    json_t *d0 = json_array_get(detail, 0);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "type")), "uuid_parsing");
    cr_assert(support_json_eq(json_object_get(d0, "loc"), "[\"path\",\"u\"]", "loc"));
    cr_assert(support_json_eq(json_object_get(d0, "input"), "\"not-a-uuid\"", "input"));
    /* Pydantic: "Input should be a valid UUID, {error}" with the uuid crate's reason in ctx. */
    const char *msg = json_string_value(json_object_get(d0, "msg"));
    cr_assert(msg != NULL && strncmp(msg, "Input should be a valid UUID, ", 30) == 0, "msg: %s",
              msg ? msg : "(none)");
    const char *why = json_string_value(json_object_get(json_object_get(d0, "ctx"), "error"));
    cr_assert(why != NULL && strcmp(msg + 30, why) == 0, "ctx.error %s vs msg %s",
              why ? why : "(none)", msg);
    petrel_test_res_free(r);
}

Test(validation, body_type_errors)
{
    expect_post_422("/items", "{\"name\":123,\"price\":1}",
                    "[{\"type\":\"string_type\",\"loc\":[\"body\",\"name\"],"
                    "\"msg\":\"Input should be a valid string\",\"input\":123}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":[]}",
                    "[{\"type\":\"float_type\",\"loc\":[\"body\",\"price\"],"
                    "\"msg\":\"Input should be a valid number\",\"input\":[]}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"qty\":[1]}",
                    "[{\"type\":\"int_type\",\"loc\":[\"body\",\"qty\"],"
                    "\"msg\":\"Input should be a valid integer\",\"input\":[1]}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"active\":[]}",
                    "[{\"type\":\"bool_type\",\"loc\":[\"body\",\"active\"],"
                    "\"msg\":\"Input should be a valid boolean\",\"input\":[]}]");
    /* null is not a string unless the field is nullable. */
    expect_post_422("/items", "{\"name\":null,\"price\":1}",
                    "[{\"type\":\"string_type\",\"loc\":[\"body\",\"name\"],"
                    "\"msg\":\"Input should be a valid string\",\"input\":null}]");
}

Test(validation, body_parsing_errors_from_strings)
{
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"qty\":\"abc\"}",
                    "[{\"type\":\"int_parsing\",\"loc\":[\"body\",\"qty\"],"
                    "\"msg\":\"Input should be a valid integer, unable to parse string as an "
                    "integer\",\"input\":\"abc\"}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":\"abc\"}",
                    "[{\"type\":\"float_parsing\",\"loc\":[\"body\",\"price\"],"
                    "\"msg\":\"Input should be a valid number, unable to parse string as a "
                    "number\",\"input\":\"abc\"}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"active\":\"maybe\"}",
                    "[{\"type\":\"bool_parsing\",\"loc\":[\"body\",\"active\"],"
                    "\"msg\":\"Input should be a valid boolean, unable to interpret input\","
                    "\"input\":\"maybe\"}]");
}

Test(validation, body_bounds_and_lengths)
{
    expect_post_422("/items", "{\"name\":\"ab\",\"price\":1}",
                    "[{\"type\":\"string_too_short\",\"loc\":[\"body\",\"name\"],"
                    "\"msg\":\"String should have at least 3 characters\",\"input\":\"ab\","
                    "\"ctx\":{\"min_length\":3}}]");
    expect_post_422("/items", "{\"name\":\"abcdefghijklmnopqrstu\",\"price\":1}",
                    "[{\"type\":\"string_too_long\",\"loc\":[\"body\",\"name\"],"
                    "\"msg\":\"String should have at most 20 characters\","
                    "\"input\":\"abcdefghijklmnopqrstu\",\"ctx\":{\"max_length\":20}}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":0}",
                    "[{\"type\":\"greater_than\",\"loc\":[\"body\",\"price\"],"
                    "\"msg\":\"Input should be greater than 0\",\"input\":0,"
                    "\"ctx\":{\"gt\":0.0}}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"qty\":-1}",
                    "[{\"type\":\"greater_than_equal\",\"loc\":[\"body\",\"qty\"],"
                    "\"msg\":\"Input should be greater than or equal to 0\",\"input\":-1,"
                    "\"ctx\":{\"ge\":0}}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"qty\":1001}",
                    "[{\"type\":\"less_than_equal\",\"loc\":[\"body\",\"qty\"],"
                    "\"msg\":\"Input should be less than or equal to 1000\",\"input\":1001,"
                    "\"ctx\":{\"le\":1000}}]");
}

Test(validation, body_missing_fields_report_the_enclosing_object_as_input)
{
    expect_post_422("/items", "{\"price\":1}",
                    "[{\"type\":\"missing\",\"loc\":[\"body\",\"name\"],"
                    "\"msg\":\"Field required\",\"input\":{\"price\":1}}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"meta\":{}}",
                    "[{\"type\":\"missing\",\"loc\":[\"body\",\"meta\",\"color\"],"
                    "\"msg\":\"Field required\",\"input\":{}}]");
    expect_post_422("/items",
                    "{\"name\":\"abc\",\"price\":1,\"dims\":[{\"w\":1,\"h\":2},{\"w\":1}]}",
                    "[{\"type\":\"missing\",\"loc\":[\"body\",\"dims\",1,\"h\"],"
                    "\"msg\":\"Field required\",\"input\":{\"w\":1}}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"tags\":[\"ok\",7]}",
                    "[{\"type\":\"string_type\",\"loc\":[\"body\",\"tags\",1],"
                    "\"msg\":\"Input should be a valid string\",\"input\":7}]");
}

Test(validation, missing_body_is_reported_as_body_missing)
{
    petrel_test_res_t *r = petrel_test_request(tc, "POST", "/items", NULL, NULL, 0);
    expect_422(r,
               "[{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\","
               "\"input\":null}]",
               "empty body");
}

Test(validation, json_invalid_names_the_position)
{
    expect_post_422("/items", "{,}",
                    "[{\"type\":\"json_invalid\",\"loc\":[\"body\",1],"
                    "\"msg\":\"JSON decode error\",\"input\":{},"
                    "\"ctx\":{\"error\":\"Expecting property name enclosed in double quotes\"}}]");
}

Test(validation, non_object_body_is_model_attributes_type)
{
    expect_post_422("/items", "[1,2]",
                    "[{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],"
                    "\"msg\":\"Input should be a valid dictionary or object to extract fields "
                    "from\",\"input\":[1,2]}]");
    expect_post_422("/items", "{\"name\":\"abc\",\"price\":1,\"meta\":5}",
                    "[{\"type\":\"model_attributes_type\",\"loc\":[\"body\",\"meta\"],"
                    "\"msg\":\"Input should be a valid dictionary or object to extract fields "
                    "from\",\"input\":5}]");
}

Test(validation, several_query_errors_in_declaration_order)
{
    /* Declared q, limit, color, flag, ratio; given in another order. */
    expect_get_422(
        "/search?ratio=2&color=pink&limit=0",
        "[{\"type\":\"missing\",\"loc\":[\"query\",\"q\"],\"msg\":\"Field required\","
        "\"input\":null},"
        "{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"limit\"],"
        "\"msg\":\"Input should be greater than or equal to 1\",\"input\":\"0\","
        "\"ctx\":{\"ge\":1}},"
        "{\"type\":\"enum\",\"loc\":[\"query\",\"color\"],"
        "\"msg\":\"Input should be 'red', 'green' or 'blue'\",\"input\":\"pink\","
        "\"ctx\":{\"expected\":\"'red', 'green' or 'blue'\"}},"
        "{\"type\":\"less_than\",\"loc\":[\"query\",\"ratio\"],"
        "\"msg\":\"Input should be less than 1\",\"input\":\"2\",\"ctx\":{\"lt\":1.0}}]");
}

Test(validation, several_body_errors_in_schema_order)
{
    expect_post_422("/items", "{\"qty\":\"x\",\"price\":0,\"name\":\"ab\"}",
                    "[{\"type\":\"string_too_short\",\"loc\":[\"body\",\"name\"],"
                    "\"msg\":\"String should have at least 3 characters\",\"input\":\"ab\","
                    "\"ctx\":{\"min_length\":3}},"
                    "{\"type\":\"greater_than\",\"loc\":[\"body\",\"price\"],"
                    "\"msg\":\"Input should be greater than 0\",\"input\":0,"
                    "\"ctx\":{\"gt\":0.0}},"
                    "{\"type\":\"int_parsing\",\"loc\":[\"body\",\"qty\"],"
                    "\"msg\":\"Input should be a valid integer, unable to parse string as an "
                    "integer\",\"input\":\"x\"}]");
}

Test(validation, path_then_query_then_body_errors_in_one_response)
{
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    static const char body[] = "{\"price\":\"x\"}";
    petrel_test_res_t *r =
        petrel_test_request(tc, "PUT", "/items/abc?notify=maybe", hdrs, body, sizeof(body) - 1);
    expect_422(r,
               "[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"item_id\"],"
               "\"msg\":\"Input should be a valid integer, unable to parse string as an "
               "integer\",\"input\":\"abc\"},"
               "{\"type\":\"bool_parsing\",\"loc\":[\"query\",\"notify\"],"
               "\"msg\":\"Input should be a valid boolean, unable to interpret input\","
               "\"input\":\"maybe\"},"
               "{\"type\":\"missing\",\"loc\":[\"body\",\"name\"],\"msg\":\"Field required\","
               "\"input\":{\"price\":\"x\"}},"
               "{\"type\":\"float_parsing\",\"loc\":[\"body\",\"price\"],"
               "\"msg\":\"Input should be a valid number, unable to parse string as a "
               "number\",\"input\":\"x\"}]",
               "path+query+body");

    /* And when all is well, everything arrives. */
    static const char good[] = "{\"name\":\"abc\",\"price\":2.5}";
    r = petrel_test_request(tc, "PUT", "/items/9?notify=true", hdrs, good, sizeof(good) - 1);
    expect_ok(r,
              "{\"params\":{\"item_id\":9,\"notify\":true},"
              "\"body\":{\"name\":\"abc\",\"price\":2.5,\"qty\":1}}",
              "put ok");
}
