/*
 * fuzz_http_response.c - libFuzzer target for the HTTP client's response
 * parser (http_parse.c): the status line and headers, the framing they imply
 * (Content-Length, chunked, read-until-close), the incremental chunked
 * decoder and the body size cap, driven the way http_client.c's exchange()
 * and read_body() drive them.
 *
 * Input: byte 0 is the size cap's log2 selector, byte 1 seeds the read split
 * (how the "socket" hands the bytes over), the rest is what the upstream
 * sent. Every buffer is an exact-size heap copy, so ASan sees any read past
 * what the parser was given.
 *
 * Checked besides memory safety: the head length is stable (parsing the head
 * alone gives the same answer, one byte less asks for more), header names and
 * values lie inside the head, the framing is consistent, and the chunked
 * decoder gives the same body and outcome whether it is fed everything at
 * once or in arbitrary slices, never writing more than it read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD_MAX (64 * 1024) /* as http_client.c */

static void check(int ok)
{
    if (!ok)
        abort();
}

static char *dup_exact(const uint8_t *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    if (n)
        memcpy(b, p, n);
    return b;
}

/* Decodes a chunked body fed in slices (seed 0: all at once); returns the decoder's final
 * result (-1 malformed, -2 truncated, or the bytes left after the last chunk) and the
 * decoded body in *out. Stops once the body exceeds `cap` (*toobig), as read_body() does. */
static int64_t decode_sliced(const uint8_t *p, size_t n, uint32_t seed, size_t cap, char **out,
                             size_t *olen, int *toobig)
{
    struct petrel__chunked d = {0};
    char *body = malloc(n ? n : 1);
    size_t blen = 0, off = 0;
    int64_t r = -2;
    *toobig = 0;
    while (off < n) {
        size_t slice = n - off;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            slice = 1 + (seed >> 16) % 97;
            if (slice > n - off)
                slice = n - off;
        }
        char *buf = dup_exact(p + off, slice);
        size_t dn = slice;
        r = petrel__chunked_decode(&d, buf, &dn);
        check(dn <= slice);
        if (r >= 0)
            check((uint64_t)r <= slice);
        if (r != -1) {
            memcpy(body + blen, buf, dn);
            blen += dn;
            check(blen <= n);
        }
        free(buf);
        off += slice;
        if (r != -1 && blen > cap)
            *toobig = 1;
        if (r == -1 || r >= 0 || *toobig)
            break;
    }
    *out = body;
    *olen = blen;
    return r;
}

/* Parses a head from data[0..size) (exact-size copy) and checks its invariants. Returns the
 * parser's answer. */
static int parse_checked(const uint8_t *data, size_t size, struct petrel__http_head *h)
{
    char *buf = dup_exact(data, size);
    int hl = petrel__http_parse_head(buf, size, h);
    check(hl >= -1 && (size_t)(hl > 0 ? hl : 0) <= size);
    if (hl <= 0) {
        free(buf);
        return hl;
    }
    /* The head's length does not depend on what follows it. */
    char *head = dup_exact(data, (size_t)hl);
    struct petrel__http_head h2;
    check(petrel__http_parse_head(head, (size_t)hl, &h2) == hl);
    check(h2.status == h->status && h2.nheaders == h->nheaders &&
          h2.content_length == h->content_length && h2.chunked == h->chunked &&
          h2.keepalive == h->keepalive);
    check(petrel__http_parse_head(head, (size_t)hl - 1, &h2) == 0);
    free(head);
    check(h->status >= 100 && h->status <= 999);
    check(h->minor_version == 0 || h->minor_version == 1);
    check(h->nheaders <= PETREL__HTTP_MAX_HEADERS);
    for (size_t i = 0; i < h->nheaders; i++) {
        const char *n = h->headers[i].name, *v = h->headers[i].value;
        check(n >= buf && n + h->headers[i].nlen <= buf + hl && h->headers[i].nlen > 0);
        check(v >= buf && v + h->headers[i].vlen <= buf + hl);
        for (size_t j = 0; j < h->headers[i].vlen; j++)
            check(v[j] != '\r' && v[j] != '\n' && v[j] != '\0');
    }
    check(h->content_length >= -1);
    if (h->chunked) {
        check(h->content_length == -1);
        /* Chunked with a Content-Length too: never reused (smuggling). */
        for (size_t i = 0; i < h->nheaders; i++)
            if (h->headers[i].nlen == 14 &&
                strncasecmp(h->headers[i].name, "content-length", 14) == 0)
                check(!h->keepalive);
    }
    if (!h->chunked && h->content_length < 0 && h->status / 100 != 1 && h->status != 204 &&
        h->status != 304)
        check(!h->keepalive); /* read-until-close can never be pooled */
    free(buf);
    return hl;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t cap = (size_t)1 << (data[0] % 20); /* max_response_bytes: 1 B .. 512 KiB */
    uint32_t seed = data[1];
    data += 2;
    size -= 2;
    if (size > HEAD_MAX + 4096)
        return 0;

    /* Interim 1xx heads (not 101) are skipped, as exchange() does. */
    struct petrel__http_head h;
    int hl;
    for (;;) {
        hl = parse_checked(data, size, &h);
        if (hl <= 0)
            return 0;
        if (h.status >= 200 || h.status == 101)
            break;
        data += hl;
        size -= (size_t)hl;
    }
    const uint8_t *rest = data + hl;
    size_t nrest = size - (size_t)hl;
    if (!h.chunked)
        return 0; /* Content-Length and read-until-close take the bytes as they are */
    char *whole = NULL, *sliced = NULL;
    size_t wl = 0, sl = 0;
    int tb1 = 0, tb2 = 0;
    int64_t r1 = decode_sliced(rest, nrest, 0, (size_t)-1, &whole, &wl, &tb1);
    int64_t r2 = decode_sliced(rest, nrest, seed | 1u, (size_t)-1, &sliced, &sl, &tb2);
    /* Whole or sliced, the decoder agrees (the leftover count is relative to the last
     * slice, so only its class is compared). */
    check((r1 == -1) == (r2 == -1));
    check((r1 == -2) == (r2 == -2));
    if (r1 != -1) {
        check(wl == sl && (wl == 0 || memcmp(whole, sliced, wl) == 0));
        check(wl <= nrest);
    }
    free(whole);
    free(sliced);
    /* With the size cap, decoding stops as soon as the body exceeds it. */
    char *capped = NULL;
    size_t cl = 0;
    int tb = 0;
    (void)decode_sliced(rest, nrest, seed, cap, &capped, &cl, &tb);
    if (tb)
        check(cl > cap);
    free(capped);
    return 0;
}
