/*
 * test_http_parse.c - the HTTP client's response parser (http_parse.c) on
 * its edge cases: status lines, header syntax (obs-fold, control bytes,
 * too many), framing (conflicting Content-Length, Transfer-Encoding,
 * keep-alive rules) and the incremental chunked decoder (extensions,
 * trailers, slices, oversize chunk sizes, bytes after the last chunk).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <criterion/criterion.h>

#include "http_int.h"

static struct petrel__http_head h;

static int parse(const char *s)
{
    return petrel__http_parse_head(s, strlen(s), &h);
}

static const char *hdr(const char *name)
{
    static char v[256];
    for (size_t i = 0; i < h.nheaders; i++)
        if (h.headers[i].nlen == strlen(name) &&
            strncasecmp(h.headers[i].name, name, h.headers[i].nlen) == 0) {
            memcpy(v, h.headers[i].value, h.headers[i].vlen);
            v[h.headers[i].vlen] = '\0';
            return v;
        }
    return NULL;
}

/* ---- status line ---- */

Test(http_parse, simple_head_with_content_length)
{
    const char *r = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    int n = parse(r);
    cr_assert_eq(n, (int)(strstr(r, "hello") - r));
    cr_assert_eq(h.status, 200);
    cr_assert_eq(h.minor_version, 1);
    cr_assert_eq(h.content_length, 5);
    cr_assert(!h.chunked);
    cr_assert(h.keepalive);
    cr_assert_str_eq(hdr("content-type"), "text/plain");
}

Test(http_parse, incomplete_head_asks_for_more)
{
    cr_assert_eq(parse(""), 0);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\n"), 0);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r"), 0);
}

Test(http_parse, bad_status_lines_are_malformed)
{
    static const char *const bad[] = {
        "HTTP/2.0 200 OK\r\n\r\n", "HTTP/1.2 200 OK\r\n\r\n",  "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",  "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n", "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1\r\n\r\n",        "garbage\r\n\r\n",          "\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(bad[i]), -1, "accepted: %s", bad[i]);
}

Test(http_parse, status_without_reason_and_bare_lf_lines)
{
    cr_assert_gt(parse("HTTP/1.1 204\r\n\r\n"), 0);
    cr_assert_eq(h.status, 204);
    cr_assert_gt(parse("HTTP/1.1 200 OK\nContent-Length: 2\n\nhi"), 0);
    cr_assert_eq(h.content_length, 2);
}

/* ---- headers ---- */

Test(http_parse, obs_fold_is_rejected)
{
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n"), -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nX-A: one\r\n\ttwo\r\n\r\n"), -1);
}

Test(http_parse, bad_header_syntax_is_rejected)
{
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"), -1, "space before ':'");
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n"), -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\n: empty-name\r\n\r\n"), -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n"), -1, "bare CR in a value");
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nX-A: a\x01z\r\n\r\n"), -1, "control byte");
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nX-A: a\x7fz\r\n\r\n"), -1, "DEL");
}

Test(http_parse, values_are_trimmed)
{
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nX-A: \t spaced \t \r\nX-B:\r\n\r\n"), 0);
    cr_assert_str_eq(hdr("x-a"), "spaced");
    cr_assert_str_eq(hdr("x-b"), "");
}

Test(http_parse, too_many_headers)
{
    char buf[8192];
    size_t off = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < PETREL__HTTP_MAX_HEADERS; i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "X-%d: v\r\n", i);
    snprintf(buf + off, sizeof(buf) - off, "\r\n");
    cr_assert_gt(parse(buf), 0, "exactly the maximum is fine");
    cr_assert_eq(h.nheaders, PETREL__HTTP_MAX_HEADERS);
    snprintf(buf + off, sizeof(buf) - off, "X-Last: v\r\n\r\n");
    cr_assert_eq(parse(buf), -1, "one more is malformed");
}

/* ---- framing ---- */

Test(http_parse, conflicting_content_length_is_malformed)
{
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"), -1);
    /* The same value twice is harmless. */
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"), 0);
    cr_assert_eq(h.content_length, 5);
}

Test(http_parse, bad_or_oversize_content_length_is_malformed)
{
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"), -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n"), -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"), -1);
    /* 19 digits could overflow int64: refused rather than wrapped. */
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n"), -1);
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n"), 0);
    cr_assert_eq(h.content_length, 999999999999999999LL);
}

Test(http_parse, transfer_encoding_rules)
{
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"), 0);
    cr_assert(h.chunked && h.keepalive && h.content_length == -1);
    /* Chunked wins over Content-Length, and the connection is not reused. */
    cr_assert_gt(
        parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    cr_assert(h.chunked && !h.keepalive && h.content_length == -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -1);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), -1);
    cr_assert_eq(
        parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
        -1);
}

Test(http_parse, keepalive_rules)
{
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), 0);
    cr_assert(!h.keepalive);
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n"),
                 0);
    cr_assert(!h.keepalive);
    cr_assert_gt(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 0);
    cr_assert(!h.keepalive, "HTTP/1.0 closes by default");
    cr_assert_gt(parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
                 0);
    cr_assert(h.keepalive);
    /* No length: the body runs until close, so never reusable... */
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\n\r\n"), 0);
    cr_assert(!h.keepalive && h.content_length == -1 && !h.chunked);
    /* ...except for statuses without a body. */
    cr_assert_gt(parse("HTTP/1.1 204 No Content\r\n\r\n"), 0);
    cr_assert(h.keepalive);
    cr_assert_gt(parse("HTTP/1.1 304 Not Modified\r\n\r\n"), 0);
    cr_assert(h.keepalive);
}

/* ---- chunked decoder ---- */

/* Decodes `in` fed in slices of `step` bytes (0: all at once). Returns the last result and
 * the body in out (NUL-terminated). */
static int64_t decode(const char *in, size_t step, char *out, size_t *olen)
{
    struct petrel__chunked d = {0};
    size_t n = strlen(in), off = 0;
    int64_t r = -2;
    *olen = 0;
    while (off < n) {
        size_t s = step == 0 || step > n - off ? n - off : step;
        char *buf = malloc(s);
        memcpy(buf, in + off, s);
        size_t dn = s;
        r = petrel__chunked_decode(&d, buf, &dn);
        if (r != -1) {
            memcpy(out + *olen, buf, dn);
            *olen += dn;
        }
        free(buf);
        off += s;
        if (r != -2)
            break;
    }
    out[*olen] = '\0';
    return r;
}

Test(http_parse, chunked_with_extensions_and_trailers_in_any_slices)
{
    static const char body[] = "5;name=value;x=\"q\"\r\nhello\r\n"
                               "6 ; ext\r\n world\r\n"
                               "A\r\n0123456789\r\n"
                               "0;last\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n";
    for (size_t step = 0; step <= 7; step++) {
        char out[128];
        size_t n;
        int64_t r = decode(body, step, out, &n);
        cr_assert_eq(r, 0, "step %zu: %lld", step, (long long)r);
        cr_assert_str_eq(out, "hello world0123456789", "step %zu", step);
    }
}

Test(http_parse, chunked_reports_bytes_after_the_last_chunk)
{
    char out[64];
    size_t n;
    cr_assert_eq(decode("3\r\nabc\r\n0\r\n\r\nHTTP/1.1", 0, out, &n), 8);
    cr_assert_str_eq(out, "abc");
    cr_assert_eq(decode("3\nabc\n0\n\n", 0, out, &n), 0, "bare LF line ends");
}

Test(http_parse, truncated_chunked_body_continues)
{
    char out[64];
    size_t n;
    cr_assert_eq(decode("5\r\nhel", 0, out, &n), -2);
    cr_assert_str_eq(out, "hel");
    cr_assert_eq(decode("3\r\nabc\r\n0\r\nX-T: 1\r\n", 0, out, &n), -2, "trailers not ended");
}

Test(http_parse, malformed_chunked_bodies)
{
    static const char *const bad[] = {
        "g\r\n",               /* not hex */
        "\r\nabc\r\n",         /* no size */
        "3\r\nabcX\r\n",       /* data not followed by CRLF */
        "3\r\nabc\r\r\n",      /* CR CR */
        "-3\r\nabc\r\n",       /* sign */
        "1000000000000000\r\n" /* 16 hex digits: over the size limit */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[64];
        size_t n;
        cr_assert_eq(decode(bad[i], 0, out, &n), -1, "accepted: %s", bad[i]);
    }
}

Test(http_parse, oversize_chunk_metadata_is_malformed)
{
    /* Extensions and trailers are skipped, not kept: their total is capped. */
    size_t big = PETREL__HTTP_MAX_CHUNK_META + 16;
    char *in = malloc(big + 64);
    strcpy(in, "1;");
    memset(in + 2, 'e', big);
    strcpy(in + 2 + big, "\r\na\r\n0\r\n\r\n");
    char *out = malloc(big + 64);
    size_t n;
    cr_assert_eq(decode(in, 4096, out, &n), -1, "endless extension");
    strcpy(in, "1\r\na\r\n0\r\nX: ");
    size_t hl = strlen(in);
    memset(in + hl, 't', big);
    strcpy(in + hl + big, "\r\n\r\n");
    cr_assert_eq(decode(in, 4096, out, &n), -1, "endless trailer");
    free(in);
    free(out);
}

Test(http_parse, decoder_is_done_after_the_last_chunk)
{
    struct petrel__chunked d = {0};
    char buf[] = "0\r\n\r\n";
    size_t n = 5;
    cr_assert_eq(petrel__chunked_decode(&d, buf, &n), 0);
    cr_assert_eq(n, 0);
    char more[] = "xyz";
    n = 3;
    cr_assert_eq(petrel__chunked_decode(&d, more, &n), 3, "later bytes are all left over");
    cr_assert_eq(n, 0);
}
