/*
 * http_int.h - private: the HTTP/1.1 response parser shared by the client
 * (http_client.c), its unit tests and the fuzz target. Pure functions over
 * byte buffers: no I/O, no allocation.
 */
#ifndef PETREL_HTTP_INT_H
#define PETREL_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/config.h"

#define PETREL__HTTP_MAX_HEADERS 64

/** A parsed response head; names and values point into the parsed buffer. */
struct petrel__http_head {
    int minor_version; /* 0 or 1 */
    int status;
    size_t nheaders;
    struct {
        const char *name, *value;
        size_t nlen, vlen;
    } headers[PETREL__HTTP_MAX_HEADERS];
    int64_t content_length; /* -1 when absent */
    bool chunked;
    bool keepalive; /* the server lets us reuse the connection */
};

/**
 * Parses a response head (status line and headers up to the blank line) from buf[0..len).
 * Returns the head's length in bytes, 0 when more bytes are needed, or -1 when malformed
 * (bad status line, bad header, conflicting lengths, too many headers).
 */
int petrel__http_parse_head(const char *buf, size_t len, struct petrel__http_head *h);

/** Bytes of chunk extensions and trailers a body may carry in all (they are skipped, not
 * kept, so without a cap a server could stream them forever). */
#define PETREL__HTTP_MAX_CHUNK_META (64 * 1024)

/** Incremental chunked-body decoder. Zero-initialise before the first call. */
struct petrel__chunked {
    int state;
    uint64_t left; /* bytes left in the current chunk */
    int digits;
    uint32_t meta; /* extension and trailer bytes skipped so far */
};

/**
 * Decodes buf[0..*len) in place: the body bytes found are moved to the front and *len is
 * set to their count. Returns -2 when the body continues (all input was consumed), -1 on
 * malformed input (including extensions + trailers over PETREL__HTTP_MAX_CHUNK_META), or, once the
 * last chunk and the trailers are complete, the number of input bytes that followed them (unread; a
 * connection with such bytes is not reused).
 */
int64_t petrel__chunked_decode(struct petrel__chunked *d, char *buf, size_t *len);

/** Declares the upstreams.* keys; called by petrel_config_new() (config.c). */
int petrel__http_declare(petrel_config_t *cfg);

#endif
