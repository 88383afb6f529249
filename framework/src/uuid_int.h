/*
 * uuid_int.h - private: UUID text parsing for validation (uuid.c).
 */
#ifndef PETREL_UUID_INT_H
#define PETREL_UUID_INT_H

#include <stddef.h>

/**
 * Parses a UUID in the forms Pydantic accepts (32 hex digits, 8-4-4-4-12, braced, or
 * "urn:uuid:" + hyphenated; any hex case). `s` must be valid UTF-8. On success returns 0 and
 * writes the lower-case hyphenated form to out; on failure returns -1 and writes the Rust
 * `uuid` crate's error text to err.
 */
int petrel__uuid_parse(const char *s, size_t len, char out[37], char *err, size_t errlen);

#endif
