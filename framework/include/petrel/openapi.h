/*
 * petrel/openapi.h - the OpenAPI 3.1 document generated from the app's route
 * declarations (FastAPI's app.openapi()), served at GET /openapi.json and
 * printed by `petrel-app openapi`; /docs (Swagger UI) and /redoc (ReDoc) render it.
 *
 * What is generated, FastAPI's way:
 * - paths: templates with OpenAPI placeholders ("/items/{item_id:int}" -> "/items/{item_id}");
 * - operations: tags, summary (the route's, else the handler name in title case),
 *   description, operationId "{name}_{path}_{method}" (every non-word character of
 *   name + path turned into '_', e.g. get_item_api_items__item_id__get), deprecated;
 * - parameters (path, query, header; header names with '-' for '_') with JSON Schemas:
 *   type, format (uuid), minimum/maximum/exclusiveMinimum/exclusiveMaximum exactly as
 *   written in the declaration, minLength/maxLength (minItems/maxItems for lists), enum
 *   (a component when the field has enum_name), default, title, description;
 * - request bodies and response schemas: named objects (schema_name) become
 *   #/components/schemas/<Name>; nullable fields are anyOf [T, null] as Pydantic v2 emits;
 * - a 422 response referencing HTTPValidationError on every route that validates
 *   something, with the HTTPValidationError and ValidationError components exactly
 *   as FastAPI emits them.
 * Routes with include_in_schema_false, and petrel's own docs/debug routes, are left out.
 */
#ifndef PETREL_OPENAPI_H
#define PETREL_OPENAPI_H

#include <stdbool.h>

#include <jansson.h>

#include "app.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Builds the OpenAPI 3.1 document for the app's declared routes plus petrel's
 * documented built-in routes (/healthz, /readyz, /metrics).
 * Ownership: `app` is borrowed; the result is owned: json_decref().
 * Await: no (pure computation; call it from anywhere).
 * Errors: returns NULL only when a declared default, bound or example is not valid
 * JSON text (petrel_app_add_routes() already rejects those, so this means a bug).
 */
PETREL_API json_t *petrel_openapi_build(const petrel_app_t *app);

/**
 * The document of petrel_openapi_build() as JSON text, compact or indented by
 * two spaces (`pretty`), NUL-terminated; `*len` (may be NULL) receives its length.
 * Ownership: owned: free(). Await: no. Errors: NULL as petrel_openapi_build().
 */
PETREL_API char *petrel_openapi_dumps(const petrel_app_t *app, bool pretty, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
