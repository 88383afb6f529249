/*
 * http_parse.c - the client's HTTP/1.1 response parser: status line and
 * headers (RFC 9112 section 4-5), the framing they imply (Content-Length,
 * chunked, read-until-close) and an incremental in-place chunked decoder.
 *
 * It is strict where leniency would let a response smuggle a second one onto
 * a reused connection: two different Content-Length values, or a
 * Transfer-Encoding other than chunked, are malformed. It is fed untrusted
 * bytes, so every loop is bounded by the input length, and what the decoder
 * skips (chunk extensions, trailers) is capped (fuzzed by
 * tests/fuzz/fuzz_http_response.c).
 */
#include <string.h>
#include <strings.h>

#include "http_int.h"

static bool is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool token_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* True when the comma-separated list p[0..n) holds `tok` (case-insensitive). */
static bool list_has(const char *p, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
            i++;
        size_t s = i;
        while (i < n && p[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e > s && token_eq(p + s, e - s, tok))
            return true;
    }
    return false;
}

static int parse_length(const char *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* Applies the framing headers once all are known. */
static int head_framing(struct petrel__http_head *h)
{
    bool conn_close = false, conn_keep = false, te_seen = false;
    h->content_length = -1;
    h->chunked = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        const char *n = h->headers[i].name, *v = h->headers[i].value;
        size_t nl = h->headers[i].nlen, vl = h->headers[i].vlen;
        if (token_eq(n, nl, "content-length")) {
            int64_t cl;
            if (parse_length(v, vl, &cl) != 0)
                return -1;
            if (h->content_length >= 0 && h->content_length != cl)
                return -1;
            h->content_length = cl;
        } else if (token_eq(n, nl, "transfer-encoding")) {
            /* Only "chunked" alone is understood; anything else cannot be framed safely. */
            if (te_seen || !token_eq(v, vl, "chunked"))
                return -1;
            te_seen = true;
            h->chunked = true;
        } else if (token_eq(n, nl, "connection")) {
            conn_close |= list_has(v, vl, "close");
            conn_keep |= list_has(v, vl, "keep-alive");
        }
    }
    h->keepalive = h->minor_version == 1 ? !conn_close : conn_keep;
    if (h->chunked && h->content_length >= 0) {
        /* RFC 9112 6.3: chunked wins, and the connection must close (the two framings
         * disagreeing is how a response gets smuggled onto a reused connection). */
        h->content_length = -1;
        h->keepalive = false;
    }
    /* Without a length the body runs until the server closes. */
    if (!h->chunked && h->content_length < 0 &&
        !(h->status / 100 == 1 || h->status == 204 || h->status == 304))
        h->keepalive = false;
    return 0;
}

int petrel__http_parse_head(const char *buf, size_t len, struct petrel__http_head *h)
{
    /* Find the end of the head first, so the line parsing below never runs off the end. */
    size_t end = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n') {
            end = i + 2;
            break;
        }
        if (i + 3 < len && buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' &&
            buf[i + 3] == '\n') {
            end = i + 4;
            break;
        }
    }
    if (end == 0)
        return 0;
    memset(h, 0, sizeof(*h));
    /* status line: HTTP/1.x SP 3DIGIT [SP reason] */
    if (end < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ')
        return -1;
    h->minor_version = buf[7] - '0';
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        h->status = h->status * 10 + (buf[i] - '0');
    }
    if (h->status < 100 || (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n'))
        return -1;
    size_t p = 12;
    while (p < end && buf[p] != '\n')
        p++;
    p++;
    /* header lines */
    while (p < end) {
        size_t ls = p;
        while (p < end && buf[p] != '\n')
            p++;
        size_t le = p; /* at '\n' */
        p++;
        if (le > ls && buf[le - 1] == '\r')
            le--;
        if (le == ls)
            break; /* the blank line */
        size_t c = ls;
        while (c < le && is_tchar((unsigned char)buf[c]))
            c++;
        if (c == ls || c >= le || buf[c] != ':')
            return -1; /* also rejects obsolete line folding (leading whitespace) */
        if (h->nheaders == PETREL__HTTP_MAX_HEADERS)
            return -1;
        size_t vs = c + 1, ve = le;
        while (vs < ve && (buf[vs] == ' ' || buf[vs] == '\t'))
            vs++;
        while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
            ve--;
        for (size_t i = vs; i < ve; i++) {
            unsigned char ch = (unsigned char)buf[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return -1;
        }
        h->headers[h->nheaders].name = buf + ls;
        h->headers[h->nheaders].nlen = c - ls;
        h->headers[h->nheaders].value = buf + vs;
        h->headers[h->nheaders].vlen = ve - vs;
        h->nheaders++;
    }
    if (head_framing(h) != 0)
        return -1;
    return (int)end;
}

enum {
    CH_SIZE = 0, /* hex digits of the chunk size */
    CH_EXT,      /* chunk extension up to LF */
    CH_DATA,
    CH_DATA_CR, /* CRLF after the data */
    CH_DATA_LF,
    CH_TRAILER_START, /* start of a trailer line or the final CRLF */
    CH_TRAILER,       /* inside a trailer line */
    CH_FINAL_LF,
    CH_DONE,
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int64_t petrel__chunked_decode(struct petrel__chunked *d, char *buf, size_t *len)
{
    size_t in = 0, out = 0, n = *len;
    if (d->state == CH_DONE) {
        *len = 0;
        return (int64_t)n;
    }
    while (in < n) {
        char c = buf[in];
        switch (d->state) {
        case CH_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                if (++d->digits > 15)
                    return -1;
                d->left = d->left * 16 + (uint64_t)v;
                in++;
                break;
            }
            if (d->digits == 0)
                return -1;
            if (c == ';' || c == ' ' || c == '\t') {
                d->state = CH_EXT;
                in++;
                break;
            }
            if (c == '\r') {
                d->state = CH_EXT;
                in++;
                break;
            }
            if (c != '\n')
                return -1;
            in++;
            d->state = d->left == 0 ? CH_TRAILER_START : CH_DATA;
            break;
        }
        case CH_EXT:
            if (++d->meta > PETREL__HTTP_MAX_CHUNK_META)
                return -1;
            if (c == '\n')
                d->state = d->left == 0 ? CH_TRAILER_START : CH_DATA;
            in++;
            break;
        case CH_DATA: {
            size_t take = n - in;
            if ((uint64_t)take > d->left)
                take = (size_t)d->left;
            memmove(buf + out, buf + in, take);
            out += take;
            in += take;
            d->left -= take;
            if (d->left == 0)
                d->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (c == '\r') {
                d->state = CH_DATA_LF;
                in++;
                break;
            }
            __attribute__((fallthrough)); /* a bare LF is tolerated */
        case CH_DATA_LF:
            if (c != '\n')
                return -1;
            in++;
            d->state = CH_SIZE;
            d->digits = 0;
            d->left = 0;
            break;
        case CH_TRAILER_START:
            if (c == '\r') {
                d->state = CH_FINAL_LF;
                in++;
            } else if (c == '\n') {
                in++;
                d->state = CH_DONE;
            } else {
                d->state = CH_TRAILER;
            }
            break;
        case CH_TRAILER:
            if (++d->meta > PETREL__HTTP_MAX_CHUNK_META)
                return -1;
            if (c == '\n')
                d->state = CH_TRAILER_START;
            in++;
            break;
        case CH_FINAL_LF:
            if (c != '\n')
                return -1;
            in++;
            d->state = CH_DONE;
            break;
        default:
            break;
        }
        if (d->state == CH_DONE) {
            *len = out;
            return (int64_t)(n - in);
        }
    }
    *len = out;
    return d->state == CH_DONE ? 0 : -2;
}
