#!/usr/bin/env node
// tests/tools/validate_openapi.mjs - validates an OpenAPI document (2.0, 3.0, 3.1)
// against the specification's JSON schemas with @seriousme/openapi-schema-validator.
//
//   node tests/tools/validate_openapi.mjs FILE      (or "-", or no argument: stdin)
//
// Prints VALID and exits 0 when the document validates; prints the errors to
// stderr and exits 1 when it does not; exits 2 when it cannot be read or parsed.
//
// The OpenAPI 3.1 schema the validator applies leaves Schema Objects open, so,
// like openapi-spec-validator, a 3.1 document's Schema Objects (components,
// parameters, headers, media types) are also checked against the JSON Schema
// 2020-12 meta-schema (3.1's default dialect): a `"type": 5` is an error.
// The Node.js fallback of test_openapi.c when no Python openapi-spec-validator
// is installed (Debian 12 does not package it); scripts/dev.sh deps runs
// `npm ci` here.
import { readFileSync } from "node:fs";
import { argv, exit, stderr, stdout } from "node:process";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";

function fail(code, msg) {
    stderr.write(`validate_openapi: ${msg}\n`);
    exit(code);
}

if (argv.length > 3) fail(2, "usage: validate_openapi.mjs [FILE|-]");
const file = argv[2] ?? "-";
let text;
try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
} catch (e) {
    fail(2, `cannot read ${file === "-" ? "stdin" : file}: ${e.message}`);
}
let doc;
try {
    doc = JSON.parse(text);
} catch (e) {
    fail(2, `not JSON: ${e.message}`);
}
if (doc === null || typeof doc !== "object" || Array.isArray(doc))
    fail(1, "the document is not a JSON object");

// Every Schema Object of a 3.1 document, with its JSON pointer: the values of
// components.schemas and of every "schema" key outside example/default data
// (a property called "schema" is itself a schema, so checking it is harmless).
function* schemaObjects(node, ptr) {
    if (node === null || typeof node !== "object") return;
    const entries = Array.isArray(node) ? node.map((v, i) => [String(i), v]) : Object.entries(node);
    for (const [k, v] of entries) {
        const p = `${ptr}/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`;
        if (!Array.isArray(node) && ["example", "examples", "default", "const", "enum"].includes(k))
            continue;
        if (!Array.isArray(node) && k === "schema") yield [p, v];
        yield* schemaObjects(v, p);
    }
}

const validator = new Validator();
const res = await validator.validate(doc);
let errors = res.valid ? [] : res.errors;
if (res.valid && validator.version === "3.1") {
    const ajv = new Ajv2020({ allErrors: true });
    const found = [...schemaObjects(doc, "")];
    for (const [name, s] of Object.entries(doc.components?.schemas ?? {}))
        found.push([`/components/schemas/${name.replaceAll("~", "~0").replaceAll("/", "~1")}`, s]);
    for (const [ptr, s] of found) {
        if (!ajv.validateSchema(s))
            errors.push(...ajv.errors.map((e) => ({ ...e, instancePath: ptr + e.instancePath })));
    }
}
if (!Array.isArray(errors) || errors.length > 0) {
    stderr.write(`validate_openapi: the document does not validate` +
                 ` (OpenAPI ${validator.version ?? "version unknown"}):\n`);
    stderr.write(`${JSON.stringify(errors, null, 2)}\n`);
    exit(1);
}
stdout.write(`VALID (OpenAPI ${validator.version})\n`);
