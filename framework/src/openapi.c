/*
 * openapi.c - the OpenAPI 3.1 document built from route declarations
 * (petrel_openapi_build), the built-in routes that serve it (/openapi.json)
 * and render it (/docs with Swagger UI, /redoc with ReDoc), and the static
 * route that serves those UIs' assets from the npm packages installed by
 * scripts/dev.sh, so no CDN is needed at run time.
 *
 * The schema shapes follow what FastAPI 0.14x on Pydantic v2 emits, so that
 * clients generated against a FastAPI service keep working against petrel.
 */
#include "petrel/openapi.h"

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common_int.h"
#include "petrel/req.h"
#include "server_int.h"

#define REF_PREFIX "#/components/schemas/"

struct oa_ctx {
    json_t *schemas; /* components.schemas being filled */
    bool failed;     /* a literal in a declaration was not valid JSON */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

/* Parses a literal written in a declaration ("10", "3.5", "\"abc\""). */
static json_t *oa_literal(struct oa_ctx *cx, const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (v == NULL)
        cx->failed = true;
    return v;
}

/* Python's str.title() of the name with '_' as spaces, as Pydantic makes titles. */
static json_t *oa_title(const char *name)
{
    size_t n = strlen(name);
    char *t = petrel_xmalloc(n + 1);
    bool start = true;
    for (size_t i = 0; i < n; i++) {
        char c = name[i] == '_' ? ' ' : name[i];
        if (isalpha((unsigned char)c)) {
            t[i] = (char)(start ? toupper((unsigned char)c) : tolower((unsigned char)c));
            start = false;
        } else {
            t[i] = c;
            start = !isdigit((unsigned char)c);
        }
    }
    t[n] = '\0';
    json_t *j = json_string(t);
    free(t);
    return j;
}

static void oa_set_bound(struct oa_ctx *cx, json_t *s, const char *key, const char *text)
{
    if (text != NULL) {
        json_t *v = oa_literal(cx, text);
        if (v != NULL)
            json_object_set_new(s, key, v);
    }
}

static json_t *oa_enum_list(const char *const *values)
{
    json_t *a = json_array();
    for (size_t i = 0; values[i] != NULL; i++)
        json_array_append_new(a, json_string(values[i]));
    return a;
}

/* ------------------------------------------------------------------ */
/* JSON Schemas of fields                                              */

static json_t *oa_schema(struct oa_ctx *cx, const petrel_field_t *f);

/* An object schema: a component when it has a name (returned as a $ref). */
static json_t *oa_object(struct oa_ctx *cx, const petrel_field_t *f)
{
    if (f->schema_name != NULL && json_object_get(cx->schemas, f->schema_name) != NULL)
        return json_pack("{s:s+}", "$ref", REF_PREFIX, f->schema_name);
    json_t *props = json_object(), *req = json_array();
    json_t *s = json_pack("{s:o,s:s}", "properties", props, "type", "object");
    if (f->schema_name != NULL) /* placeholder first: a recursive reference stops here */
        json_object_set(cx->schemas, f->schema_name, s);
    for (const petrel_field_t *m = f->fields; m != NULL && m->name != NULL; m++) {
        json_object_set_new(props, m->name, oa_schema(cx, m));
        if (m->required)
            json_array_append_new(req, json_string(m->name));
    }
    if (json_array_size(req) > 0)
        json_object_set_new(s, "required", req);
    else
        json_decref(req);
    if (f->schema_name != NULL) {
        json_object_set_new(s, "title", json_string(f->schema_name));
        if (f->description != NULL)
            json_object_set_new(s, "description", json_string(f->description));
        json_decref(s);
        return json_pack("{s:s+}", "$ref", REF_PREFIX, f->schema_name);
    }
    return s;
}

/* The schema of a value, without title/default (those belong to the field). */
static json_t *oa_base(struct oa_ctx *cx, const petrel_field_t *f)
{
    json_t *s = NULL;
    switch (f->type) {
    case PETREL_T_STR:
    case PETREL_T_PATH:
        if (f->enum_values != NULL && f->enum_name != NULL) {
            if (json_object_get(cx->schemas, f->enum_name) == NULL)
                json_object_set_new(cx->schemas, f->enum_name,
                                    json_pack("{s:o,s:s,s:s}", "enum", oa_enum_list(f->enum_values),
                                              "title", f->enum_name, "type", "string"));
            return json_pack("{s:s+}", "$ref", REF_PREFIX, f->enum_name);
        }
        s = json_pack("{s:s}", "type", "string");
        if (f->enum_values != NULL)
            json_object_set_new(s, "enum", oa_enum_list(f->enum_values));
        if (f->max_length > 0)
            json_object_set_new(s, "maxLength", json_integer(f->max_length));
        if (f->min_length > 0)
            json_object_set_new(s, "minLength", json_integer(f->min_length));
        return s;
    case PETREL_T_UUID:
        return json_pack("{s:s,s:s}", "type", "string", "format", "uuid");
    case PETREL_T_INT:
    case PETREL_T_FLOAT:
        s = json_pack("{s:s}", "type", f->type == PETREL_T_INT ? "integer" : "number");
        oa_set_bound(cx, s, "maximum", f->le);
        oa_set_bound(cx, s, "exclusiveMaximum", f->lt);
        oa_set_bound(cx, s, "minimum", f->ge);
        oa_set_bound(cx, s, "exclusiveMinimum", f->gt);
        return s;
    case PETREL_T_BOOL:
        return json_pack("{s:s}", "type", "boolean");
    case PETREL_T_ARRAY:
        s = json_pack("{s:o,s:s}", "items", f->items ? oa_base(cx, f->items) : json_object(),
                      "type", "array");
        if (f->max_length > 0)
            json_object_set_new(s, "maxItems", json_integer(f->max_length));
        if (f->min_length > 0)
            json_object_set_new(s, "minItems", json_integer(f->min_length));
        if (f->unique)
            json_object_set_new(s, "uniqueItems", json_true());
        return s;
    case PETREL_T_OBJECT:
        return oa_object(cx, f);
    case PETREL_T_NONE:
    case PETREL_T_ANY:
    default:
        return json_object();
    }
}

/* A field's schema: the value's schema, anyOf-null when it may be null or is an optional
 * parameter without default (Python's `x: T | None = None`), then title, default, docs. */
static json_t *oa_schema(struct oa_ctx *cx, const petrel_field_t *f)
{
    json_t *s = oa_base(cx, f);
    bool optional_param = f->in != PETREL_IN_BODY && f->in != PETREL_IN_PATH && !f->required &&
                          f->dflt == NULL && f->type != PETREL_T_ARRAY;
    if (f->nullable || optional_param)
        s = json_pack("{s:[o,{s:s}]}", "anyOf", s, "type", "null");
    else if (json_object_get(s, "$ref") != NULL && (f->description || f->dflt))
        /* JSON Schema 2020-12 allows siblings of $ref, but Pydantic wraps it. */
        s = json_pack("{s:[o]}", "allOf", s);
    if (f->name != NULL)
        json_object_set_new(s, "title", f->title ? json_string(f->title) : oa_title(f->name));
    if (f->description != NULL)
        json_object_set_new(s, "description", json_string(f->description));
    if (f->dflt != NULL) {
        json_t *d = oa_literal(cx, f->dflt);
        if (d != NULL)
            json_object_set_new(s, "default", d);
    }
    if (f->example != NULL) {
        json_t *e = oa_literal(cx, f->example);
        if (e != NULL)
            json_object_set_new(s, "examples", json_pack("[o]", e));
    }
    return s;
}

/* ------------------------------------------------------------------ */
/* paths and operations                                                */

/* "/items/{item_id:int}" -> "/items/{item_id}"; fills path parameter names and types. */
struct oa_pathvar {
    char name[64];
    petrel_type_t type;
};

static char *oa_path_format(const char *tmpl, struct oa_pathvar *vars, size_t *nvars)
{
    size_t n = strlen(tmpl);
    char *out = petrel_xmalloc(n + 1);
    size_t o = 0;
    *nvars = 0;
    for (size_t i = 0; i < n; i++) {
        out[o++] = tmpl[i];
        if (tmpl[i] != '{')
            continue;
        size_t j = i + 1, colon = 0;
        while (j < n && tmpl[j] != '}') {
            if (tmpl[j] == ':' && colon == 0)
                colon = j;
            j++;
        }
        size_t name_end = colon ? colon : j;
        memcpy(out + o, tmpl + i + 1, name_end - i - 1);
        o += name_end - i - 1;
        if (*nvars < PETREL_MAX_PATH) {
            struct oa_pathvar *v = &vars[(*nvars)++];
            size_t ln =
                name_end - i - 1 < sizeof(v->name) - 1 ? name_end - i - 1 : sizeof(v->name) - 1;
            memcpy(v->name, tmpl + i + 1, ln);
            v->name[ln] = '\0';
            v->type = PETREL_T_STR;
            if (colon) {
                const char *t = tmpl + colon + 1;
                size_t tl = j - colon - 1;
                static const struct {
                    const char *s;
                    petrel_type_t t;
                } types[] = {{"int", PETREL_T_INT},   {"float", PETREL_T_FLOAT},
                             {"uuid", PETREL_T_UUID}, {"path", PETREL_T_PATH},
                             {"bool", PETREL_T_BOOL}, {"str", PETREL_T_STR}};
                for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
                    if (strlen(types[k].s) == tl && memcmp(types[k].s, t, tl) == 0)
                        v->type = types[k].t;
            }
        }
        out[o++] = '}';
        i = j;
    }
    out[o] = '\0';
    return out;
}

/* FastAPI's generate_unique_id: name + path with every \W as '_', then _method. */
static json_t *oa_operation_id(const char *name, const char *path, const char *method)
{
    size_t ln = strlen(name), lp = strlen(path), lm = strlen(method);
    char *s = petrel_xmalloc(ln + lp + lm + 2);
    memcpy(s, name, ln);
    memcpy(s + ln, path, lp);
    for (size_t i = 0; i < ln + lp; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            s[i] = '_';
    s[ln + lp] = '_';
    for (size_t i = 0; i < lm; i++)
        s[ln + lp + 1 + i] = (char)tolower((unsigned char)method[i]);
    s[ln + lp + 1 + lm] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}

static json_t *oa_param(struct oa_ctx *cx, const petrel_field_t *f, const char *in, bool required)
{
    char name[128];
    snprintf(name, sizeof(name), "%s", f->name);
    if (f->in == PETREL_IN_HEADER)
        for (char *p = name; *p; p++)
            if (*p == '_')
                *p = '-';
    json_t *p = json_pack("{s:s,s:s,s:b,s:o}", "name", name, "in", in, "required", required,
                          "schema", oa_schema(cx, f));
    if (f->description != NULL)
        json_object_set_new(p, "description", json_string(f->description));
    return p;
}

/* FastAPI's wording: "Successful Response" for 2xx, the reason phrase otherwise. */
static const char *oa_reason(int status)
{
    if (status >= 200 && status < 300)
        return "Successful Response";
    const char *r = petrel__reason_phrase(status);
    return r[0] != '\0' ? r : "Response";
}

static json_t *oa_json_content(json_t *schema)
{
    return json_pack("{s:{s:o}}", "application/json", "schema", schema);
}

static void oa_http_error_component(struct oa_ctx *cx)
{
    if (json_object_get(cx->schemas, "HTTPError") != NULL)
        return;
    json_object_set_new(cx->schemas, "HTTPError",
                        json_pack("{s:{s:{s:s,s:s}},s:s,s:[s],s:s}", "properties", "detail", "type",
                                  "string", "title", "Detail", "type", "object", "required",
                                  "detail", "title", "HTTPError"));
}

static json_t *oa_operation(struct oa_ctx *cx, const petrel_route_t *r, const char *path_fmt,
                            const struct oa_pathvar *vars, size_t nvars)
{
    json_t *op = json_object();
    if (r->tags[0] != NULL) {
        json_t *tags = json_array();
        for (size_t i = 0; i < PETREL_MAX_TAGS && r->tags[i] != NULL; i++)
            json_array_append_new(tags, json_string(r->tags[i]));
        json_object_set_new(op, "tags", tags);
    }
    const char *name = r->name != NULL ? r->name : "handler";
    json_object_set_new(op, "summary", r->summary ? json_string(r->summary) : oa_title(name));
    if (r->description != NULL)
        json_object_set_new(op, "description", json_string(r->description));
    json_object_set_new(op, "operationId", oa_operation_id(name, path_fmt, r->method));
    if (r->deprecated)
        json_object_set_new(op, "deprecated", json_true());

    json_t *params = json_array();
    for (size_t i = 0; i < nvars; i++) {
        petrel_field_t f = {.name = vars[i].name, .type = vars[i].type, .in = PETREL_IN_PATH};
        for (size_t k = 0; k < PETREL_MAX_PATH && r->path_params[k].name != NULL; k++) {
            const petrel_field_t *x = &r->path_params[k];
            if (strcmp(x->name, f.name) != 0)
                continue;
            petrel_type_t t = x->type != PETREL_T_NONE ? x->type : f.type;
            f = *x;
            f.type = t;
            f.in = PETREL_IN_PATH;
        }
        json_array_append_new(params, oa_param(cx, &f, "path", true));
    }
    for (int pass = 0; pass < 2; pass++) {
        petrel_in_t want = pass == 0 ? PETREL_IN_QUERY : PETREL_IN_HEADER;
        for (size_t i = 0; i < PETREL_MAX_QUERY && r->query[i].name != NULL; i++) {
            const petrel_field_t *f = &r->query[i];
            if (f->in == want)
                json_array_append_new(params,
                                      oa_param(cx, f, pass == 0 ? "query" : "header", f->required));
        }
    }
    bool validates = json_array_size(params) > 0 || r->body != NULL;
    if (json_array_size(params) > 0)
        json_object_set_new(op, "parameters", params);
    else
        json_decref(params);

    if (r->body != NULL) {
        json_t *schema = oa_base(cx, r->body);
        json_object_set_new(
            op, "requestBody",
            json_pack("{s:o,s:b}", "content", oa_json_content(schema), "required", 1));
    }

    json_t *responses = json_object();
    int ok = r->status_code != 0 ? r->status_code : 200;
    char key[16];
    snprintf(key, sizeof(key), "%d", ok);
    json_t *okresp = json_pack("{s:s}", "description", "Successful Response");
    if (ok != 204 && ok != 304)
        json_object_set_new(
            okresp, "content",
            oa_json_content(r->response ? oa_base(cx, r->response) : json_object()));
    json_object_set_new(responses, key, okresp);
    for (size_t i = 0; i < PETREL_MAX_RESPONSES && r->responses[i].status != 0; i++) {
        const petrel_response_doc_t *d = &r->responses[i];
        snprintf(key, sizeof(key), "%d", d->status);
        json_t *schema;
        if (d->schema != NULL) {
            schema = oa_base(cx, d->schema);
        } else {
            oa_http_error_component(cx);
            schema = json_pack("{s:s}", "$ref", REF_PREFIX "HTTPError");
        }
        json_object_set_new(responses, key,
                            json_pack("{s:s,s:o}", "description",
                                      d->description ? d->description : oa_reason(d->status),
                                      "content", oa_json_content(schema)));
    }
    if (validates && json_object_get(responses, "422") == NULL)
        json_object_set_new(responses, "422",
                            json_pack("{s:s,s:o}", "description", "Validation Error", "content",
                                      oa_json_content(json_pack(
                                          "{s:s}", "$ref", REF_PREFIX "HTTPValidationError"))));
    json_object_set_new(op, "responses", responses);
    return op;
}

static void oa_add_route(struct oa_ctx *cx, json_t *paths, const petrel_route_t *r)
{
    struct oa_pathvar vars[PETREL_MAX_PATH];
    size_t nvars;
    char *pf = oa_path_format(r->path, vars, &nvars);
    json_t *item = json_object_get(paths, pf);
    if (item == NULL) {
        item = json_object();
        json_object_set_new(paths, pf, item);
    }
    char method[16];
    size_t i = 0;
    for (; r->method[i] != '\0' && i < sizeof(method) - 1; i++)
        method[i] = (char)tolower((unsigned char)r->method[i]);
    method[i] = '\0';
    json_object_set_new(item, method, oa_operation(cx, r, pf, vars, nvars));
    free(pf);
}

/* FastAPI's two validation components, key for key (fastapi/openapi/utils.py). */
static void oa_validation_components(json_t *schemas)
{
    json_object_set_new(schemas, "HTTPValidationError",
                        json_pack("{s:{s:{s:{s:s},s:s,s:s}},s:s,s:s}", "properties", "detail",
                                  "items", "$ref", REF_PREFIX "ValidationError", "title", "Detail",
                                  "type", "array", "title", "HTTPValidationError", "type",
                                  "object"));
    json_object_set_new(
        schemas, "ValidationError",
        json_pack("{s:{s:{s:{s:[{s:s},{s:s}]},s:s,s:s},s:{s:s,s:s},s:{s:s,s:s},s:{s:s},s:{s:s,s:"
                  "s}},s:[s,s,s],s:s,s:s}",
                  "properties", "loc", "items", "anyOf", "type", "string", "type", "integer",
                  "title", "Location", "type", "array", "msg", "title", "Message", "type", "string",
                  "type", "title", "Error Type", "type", "string", "input", "title", "Input", "ctx",
                  "title", "Context", "type", "object", "required", "loc", "msg", "type", "title",
                  "ValidationError", "type", "object"));
}

static bool oa_app_has(const petrel_app_t *app, const petrel_route_t *b)
{
    for (size_t i = 0; i < app->nroutes; i++)
        if (strcmp(app->routes[i]->path, b->path) == 0 &&
            strcmp(app->routes[i]->method, b->method) == 0)
            return true;
    return false;
}

json_t *petrel_openapi_build(const petrel_app_t *app)
{
    struct oa_ctx cx = {.schemas = json_object()};
    json_t *paths = json_object();
    bool any_validation = false;
    for (size_t i = 0; i < app->nroutes; i++) {
        const petrel_route_t *r = app->routes[i];
        if (r->include_in_schema_false)
            continue;
        oa_add_route(&cx, paths, r);
    }
    size_t nb = 0;
    const petrel_route_t *b = petrel__builtin_routes(&nb);
    for (size_t i = 0; i < nb; i++)
        if (!b[i].include_in_schema_false && !oa_app_has(app, &b[i]))
            oa_add_route(&cx, paths, &b[i]);
    /* Only reference the validation components when some operation uses them. */
    const char *pk;
    json_t *pv;
    json_object_foreach (paths, pk, pv) {
        const char *mk;
        json_t *op;
        json_object_foreach (pv, mk, op) {
            if (json_object_get(json_object_get(op, "responses"), "422") != NULL)
                any_validation = true;
        }
    }
    if (any_validation)
        oa_validation_components(cx.schemas);
    if (cx.failed) {
        json_decref(cx.schemas);
        json_decref(paths);
        return NULL;
    }
    json_t *doc = json_pack("{s:s,s:{s:s,s:s},s:o}", "openapi", "3.1.0", "info", "title",
                            app->title ? app->title : "petrel", "version",
                            app->version ? app->version : "0.1.0", "paths", paths);
    if (json_object_size(cx.schemas) > 0)
        json_object_set_new(doc, "components", json_pack("{s:o}", "schemas", cx.schemas));
    else
        json_decref(cx.schemas);
    return doc;
}

char *petrel_openapi_dumps(const petrel_app_t *app, bool pretty, size_t *len)
{
    json_t *doc = petrel_openapi_build(app);
    if (doc == NULL)
        return NULL;
    char *s = json_dumps(doc, pretty ? JSON_INDENT(2) : JSON_COMPACT);
    json_decref(doc);
    if (s != NULL && len != NULL)
        *len = strlen(s);
    return s;
}

/* ------------------------------------------------------------------ */
/* built-in routes: /openapi.json, /docs, /redoc and their assets      */

int petrel__openapi_route(petrel_req_t *req)
{
    size_t len = 0;
    char *s = petrel_openapi_dumps(req->w->srv->app, false, &len);
    if (s == NULL)
        return petrel_set_error(req, PETREL_EINTERNAL, "OpenAPI document could not be built");
    int rc = petrel_send(req, 200, "application/json", s, len);
    free(s);
    return rc;
}

/* The pages FastAPI's get_swagger_ui_html / get_redoc_html produce, pointing at
 * petrel's own copies of the assets. */
static const char *const swagger_html[2] = {
    "<!DOCTYPE html>\n<html>\n<head>\n"
    "<link type=\"text/css\" rel=\"stylesheet\" href=\"/docs/static/swagger-ui/swagger-ui.css\">\n"
    "<link rel=\"shortcut icon\" href=\"/docs/static/swagger-ui/favicon-32x32.png\">\n"
    "<title>",
    " - Swagger UI</title>\n</head>\n<body>\n<div id=\"swagger-ui\">\n</div>\n"
    "<script src=\"/docs/static/swagger-ui/swagger-ui-bundle.js\"></script>\n"
    "<script>\nconst ui = SwaggerUIBundle({\n    url: '/openapi.json',\n"
    "    \"dom_id\": \"#swagger-ui\",\n\"layout\": \"BaseLayout\",\n\"deepLinking\": true,\n"
    "\"showExtensions\": true,\n\"showCommonExtensions\": true,\n"
    "    presets: [\n        SwaggerUIBundle.presets.apis,\n"
    "        SwaggerUIBundle.SwaggerUIStandalonePreset\n        ],\n    })\n</script>\n"
    "</body>\n</html>\n"};

static const char *const redoc_html[2] = {
    "<!DOCTYPE html>\n<html>\n<head>\n<title>",
    " - ReDoc</title>\n<meta charset=\"utf-8\"/>\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<style>\n  body {\n    margin: 0;\n    padding: 0;\n  }\n</style>\n</head>\n<body>\n"
    "<noscript>\n    ReDoc requires Javascript to function. Please enable it to browse the "
    "documentation.\n</noscript>\n<redoc spec-url=\"/openapi.json\"></redoc>\n"
    "<script src=\"/docs/static/redoc/redoc.standalone.js\"> </script>\n</body>\n</html>\n"};

static int oa_page(petrel_req_t *req, const char *const parts[2])
{
    /* The title is the app's, written by the developer; escape it anyway. */
    const char *title = req->w->srv->app->title ? req->w->srv->app->title : "petrel";
    char esc[256];
    size_t o = 0;
    for (const char *p = title; *p != '\0' && o + 7 < sizeof(esc); p++) {
        const char *rep = *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '&' ? "&amp;" : NULL;
        if (rep != NULL) {
            memcpy(esc + o, rep, strlen(rep));
            o += strlen(rep);
        } else {
            esc[o++] = *p;
        }
    }
    esc[o] = '\0';
    const char *page = petrel_req_sprintf(req, "%s%s%s", parts[0], esc, parts[1]);
    return petrel_send(req, 200, "text/html; charset=utf-8", page, strlen(page));
}

int petrel__docs_route(petrel_req_t *req)
{
    return oa_page(req, swagger_html);
}

int petrel__redoc_route(petrel_req_t *req)
{
    return oa_page(req, redoc_html);
}

/* The assets /docs and /redoc need, by URL name: package-relative path and type. Only these
 * are served, so no request path ever reaches the file system. */
static const struct oa_asset {
    const char *url, *file, *ctype;
} oa_assets[] = {
    {"swagger-ui/swagger-ui.css", "swagger-ui-dist/swagger-ui.css", "text/css"},
    {"swagger-ui/swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui-bundle.js",
     "application/javascript"},
    {"swagger-ui/favicon-32x32.png", "swagger-ui-dist/favicon-32x32.png", "image/png"},
    {"redoc/redoc.standalone.js", "redoc/bundles/redoc.standalone.js", "application/javascript"},
};
#define OA_NASSETS (sizeof(oa_assets) / sizeof(oa_assets[0]))

/* Loaded once on first use and kept for the process's life: a few MB that would otherwise be
 * read from disk on the loop at every page view. */
static struct {
    char *data;
    size_t len;
    int state; /* 0 not tried, 1 loaded, -1 missing */
} oa_cache[OA_NASSETS];
static pthread_mutex_t oa_cache_mu = PTHREAD_MUTEX_INITIALIZER;

static void oa_load(size_t i, const char *dir)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, oa_assets[i].file);
    oa_cache[i].state = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > 64 * 1024 * 1024) {
        close(fd);
        return;
    }
    char *buf = petrel_xmalloc((size_t)st.st_size);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        free(buf);
        return;
    }
    oa_cache[i].data = buf;
    oa_cache[i].len = got;
    oa_cache[i].state = 1;
}

int petrel__static_route(petrel_req_t *req)
{
    const char *file = petrel_param_str(req, "file", "");
    for (size_t i = 0; i < OA_NASSETS; i++) {
        if (strcmp(oa_assets[i].url, file) != 0)
            continue;
        pthread_mutex_lock(&oa_cache_mu);
        if (oa_cache[i].state == 0)
            oa_load(i, petrel_config_str(req->w->srv->app->cfg, "server.docs_assets_dir"));
        int state = oa_cache[i].state;
        pthread_mutex_unlock(&oa_cache_mu);
        if (state != 1)
            break;
        petrel_resp_header(req, "Cache-Control", "public, max-age=3600");
        /* Loaded once and never changed afterwards: safe to read without the lock. */
        return petrel_send(req, 200, oa_assets[i].ctype, oa_cache[i].data, oa_cache[i].len);
    }
    return petrel_error(req, 404, "Not Found");
}
