/*
 * uuid.c - UUID text parsing with the error texts of Rust's `uuid` crate, which
 * Pydantic v2 quotes verbatim in its uuid_parsing errors ("Input should be a
 * valid UUID, invalid group count: expected 5, found 2").
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "uuid_int.h"

static int uuid_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The crate's fast path: exactly 32 hex digits, or the 8-4-4-4-12 layout. */
static bool uuid_try(const char *s, size_t len, unsigned char bytes[16])
{
    size_t nb = 0;
    bool hyph = len == 36;
    if (len != 32 && len != 36)
        return false;
    for (size_t i = 0; i < len;) {
        if (hyph && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return false;
            i++;
            continue;
        }
        int hi = uuid_hexval((unsigned char)s[i]);
        int lo = i + 1 < len ? uuid_hexval((unsigned char)s[i + 1]) : -1;
        if (hi < 0 || lo < 0)
            return false;
        bytes[nb++] = (unsigned char)(hi << 4 | lo);
        i += 2;
    }
    return nb == 16;
}

/* Length of the UTF-8 sequence starting at p (input is valid UTF-8 here). */
static size_t uuid_u8len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xf0)
        return 4;
    if (c >= 0xe0)
        return 3;
    return 2;
}

/* Mirrors the crate's InvalidUuid::into_err: classify why the text failed. Sizes are usize
 * in the crate and the subtraction for a misplaced hyphen wraps in release builds; size_t
 * wraps the same way on 64-bit targets, so even that text matches. */
static void uuid_explain(const char *in, size_t inlen, char *err, size_t errlen)
{
    static const size_t starts[5] = {0, 9, 14, 19, 24};
    const char *u = in;
    size_t ulen = inlen, offset = 0;
    bool simple = false;
    if (inlen >= 2 && in[0] == '{' && in[inlen - 1] == '}') {
        u = in + 1;
        ulen = inlen - 2;
        offset = 1;
    } else if (inlen >= 9 && memcmp(in, "urn:uuid:", 9) == 0) {
        u = in + 9;
        ulen = inlen - 9;
        offset = 9;
    } else {
        simple = true;
    }
    size_t hyphens = 0, bounds[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < ulen;) {
        unsigned char c = (unsigned char)u[i];
        size_t n = uuid_u8len(c);
        if (n > 1 || (c != '-' && uuid_hexval(c) < 0)) {
            if (n > ulen - i)
                n = ulen - i;
            snprintf(err, errlen,
                     "invalid character: expected an optional prefix of `urn:uuid:` followed by "
                     "[0-9a-fA-F-], found `%.*s` at %zu",
                     (int)n, u + i, i + offset + 1);
            return;
        }
        if (c == '-') {
            if (hyphens < 4)
                bounds[hyphens] = i;
            hyphens++;
        }
        i += n;
    }
    if (hyphens == 0 && simple) {
        snprintf(err, errlen, "invalid length: expected length 32 for simple format, found %zu",
                 inlen);
        return;
    }
    if (hyphens != 4) {
        snprintf(err, errlen, "invalid group count: expected 5, found %zu", hyphens + 1);
        return;
    }
    static const int expected[5] = {8, 4, 4, 4, 12};
    for (int g = 0; g < 4; g++) {
        if (bounds[g] != starts[g + 1] - 1) {
            snprintf(err, errlen, "invalid group length in group %d: expected %d, found %zu", g,
                     expected[g], bounds[g] - starts[g]);
            return;
        }
    }
    snprintf(err, errlen, "invalid group length in group 4: expected 12, found %zu",
             inlen - starts[4]);
}

int petrel__uuid_parse(const char *s, size_t len, char out[37], char *err, size_t errlen)
{
    unsigned char b[16];
    const char *core = s;
    size_t clen = len;
    if (len == 38 && s[0] == '{' && s[37] == '}') {
        core = s + 1;
        clen = 36;
    } else if (len == 45 && memcmp(s, "urn:uuid:", 9) == 0) {
        core = s + 9;
        clen = 36;
    }
    if ((clen == 36 || core == s) && uuid_try(core, clen, b)) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                out[o++] = '-';
            out[o++] = hex[b[i] >> 4];
            out[o++] = hex[b[i] & 15];
        }
        out[o] = '\0';
        return 0;
    }
    uuid_explain(s, len, err, errlen);
    return -1;
}
