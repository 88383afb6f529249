/*
 * common_int.h - private helpers shared by several framework modules.
 */
#ifndef PETREL_COMMON_INT_H
#define PETREL_COMMON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/** The reason phrase for an HTTP status ("Not Found"), or "" when petrel has none. Static. */
const char *petrel__reason_phrase(int status);

/* 0x80 in each byte of x that a JSON string cannot hold as it is (see below). */
static inline uint64_t petrel__json_bad_bytes(uint64_t x, bool ascii_only)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    uint64_t bad = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
    return ascii_only ? bad | (x & highs) : bad;
}

/* memset(p, 0, n) that stays a call (see common.c): for hot-path structs. */
void petrel__clear(void *p, size_t n);

/**
 * The length of the leading run of s that a JSON string holds as it is: no '"', no '\\',
 * no C0 control and, with ascii_only, no byte >= 0x80 either. Eight bytes per step (the
 * "has a byte less than n" and "has a zero byte" bit tricks): the strings of responses
 * and log records are mostly one such run, and a byte loop costs ~10 instructions a byte.
 *
 * With dst, the run is also copied there as it is checked (no separate memcpy call for a
 * short string): dst must have room for len bytes, and bytes past the run may be written
 * too (the caller's escaper overwrites them). Inlined with dst NULL, the stores vanish.
 * No byte outside s is read.
 */
static inline size_t petrel__json_plain_copy(char *dst, const char *s, size_t len, bool ascii_only)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        if (petrel__json_bad_bytes(x, ascii_only) != 0)
            break;
        if (dst != NULL)
            memcpy(dst + i, &x, 8);
    }
    if (i + 8 > len && i < len) {
        /* The tail as one word from fixed-size loads (a variable-size copy is a libc call,
         * dearer than the whole check): the last 8 bytes, which overlap bytes already found
         * plain; two overlapping halves for 4-7 bytes; first, middle and last byte for 1-3,
         * padded with a byte that needs nothing. The stores mirror the loads. */
        size_t n = len - i;
        if (len >= 8) {
            uint64_t x;
            memcpy(&x, s + len - 8, 8);
            if (petrel__json_bad_bytes(x, ascii_only) == 0) {
                if (dst != NULL)
                    memcpy(dst + len - 8, &x, 8);
                return len;
            }
        } else if (n >= 4) {
            uint32_t a, b;
            memcpy(&a, s, 4);
            memcpy(&b, s + len - 4, 4);
            if (petrel__json_bad_bytes((uint64_t)a | (uint64_t)b << 32, ascii_only) == 0) {
                if (dst != NULL) {
                    memcpy(dst, &a, 4);
                    memcpy(dst + len - 4, &b, 4);
                }
                return len;
            }
        } else {
            unsigned char c0 = (unsigned char)s[0], c1 = (unsigned char)s[n / 2],
                          c2 = (unsigned char)s[n - 1];
            uint64_t x = 0x6161616161000000ull | c0 | (uint64_t)c1 << 8 | (uint64_t)c2 << 16;
            if (petrel__json_bad_bytes(x, ascii_only) == 0) {
                if (dst != NULL) {
                    dst[0] = (char)c0;
                    dst[n / 2] = (char)c1;
                    dst[n - 1] = (char)c2;
                }
                return len;
            }
        }
    }
    /* A byte in this word needs an escape: find it. */
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\' || (ascii_only && c >= 0x80))
            break;
        if (dst != NULL)
            dst[i] = (char)c;
    }
    return i;
}

static inline size_t petrel__json_plain_run(const char *s, size_t len, bool ascii_only)
{
    return petrel__json_plain_copy(NULL, s, len, ascii_only);
}

#endif
