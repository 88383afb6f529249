/*
 * test_common.c - unit tests for framework/src/common.c.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <petrel/common.h>
#include <petrel/req.h>

#include "common_int.h"

Test(common, every_petrel_code_has_a_name_and_description)
{
    static const int codes[] = {
        PETREL_OK,        PETREL_ETIMEDOUT,    PETREL_ECANCELED,  PETREL_ENOMEM,
        PETREL_EINVAL,    PETREL_EAGAIN,       PETREL_EIO,        PETREL_ENOENT,
        PETREL_EPERM,     PETREL_ECONNREFUSED, PETREL_ECONNRESET, PETREL_EPOOL,
        PETREL_EUPSTREAM, PETREL_EVALIDATION,  PETREL_ETOOBIG,    PETREL_ECONFIG,
        PETREL_EOVERLOAD, PETREL_ERATELIMIT,   PETREL_ENOTFOUND,  PETREL_EDB,
        PETREL_EBREAKER,  PETREL_EINTERNAL,
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        cr_assert_str_neq(petrel_strerror(codes[i]), "unknown error", "code %d", codes[i]);
        cr_assert_str_neq(petrel_err_name(codes[i]), "PETREL_EUNKNOWN", "code %d", codes[i]);
        cr_assert(strncmp(petrel_err_name(codes[i]), "PETREL_", 7) == 0);
    }
    cr_assert_str_eq(petrel_err_name(PETREL_ETIMEDOUT), "PETREL_ETIMEDOUT");
    cr_assert_str_eq(petrel_err_name(PETREL_EPOOL), "PETREL_EPOOL");
    cr_assert_str_eq(petrel_strerror(PETREL_ETOOBIG), "input too large");
}

Test(common, other_errno_values_are_described_by_the_system)
{
    cr_assert_str_eq(petrel_err_name(-EPIPE), "EPIPE");
    cr_assert_str_neq(petrel_strerror(-EPIPE), "unknown error");
}

Test(common, unknown_codes_are_still_printable)
{
    cr_assert_str_eq(petrel_strerror(-4999), "unknown error");
    cr_assert_str_eq(petrel_err_name(-4999), "PETREL_EUNKNOWN");
    cr_assert_str_eq(petrel_strerror(12345), "unknown error");
}

Test(common, errors_map_to_http_statuses)
{
    cr_assert_eq(petrel_err_http_status(PETREL_ETIMEDOUT), 504);
    cr_assert_eq(petrel_err_http_status(PETREL_EPOOL), 503);
    cr_assert_eq(petrel_err_http_status(PETREL_EOVERLOAD), 503);
    cr_assert_eq(petrel_err_http_status(PETREL_EBREAKER), 503);
    cr_assert_eq(petrel_err_http_status(PETREL_ERATELIMIT), 429);
    cr_assert_eq(petrel_err_http_status(PETREL_ETOOBIG), 413);
    cr_assert_eq(petrel_err_http_status(PETREL_EVALIDATION), 422);
    cr_assert_eq(petrel_err_http_status(PETREL_EUPSTREAM), 502);
    cr_assert_eq(petrel_err_http_status(PETREL_ENOTFOUND), 404);
    cr_assert_eq(petrel_err_http_status(PETREL_EINVAL), 400);
    cr_assert_eq(petrel_err_http_status(PETREL_EDB), 500);
    cr_assert_eq(petrel_err_http_status(PETREL_ECANCELED), 500);
    cr_assert_eq(petrel_err_http_status(PETREL_EINTERNAL), 500);
    cr_assert_eq(petrel_err_http_status(-4999), 500);
}

Test(common, allocation_helpers_return_usable_memory)
{
    char *p = petrel_xmalloc(16);
    memset(p, 'a', 16);
    p = petrel_xrealloc(p, 4096);
    cr_assert_eq(p[15], 'a');
    free(p);

    int *z = petrel_xcalloc(8, sizeof(int));
    for (int i = 0; i < 8; i++)
        cr_assert_eq(z[i], 0);
    free(z);

    /* Zero-sized requests must not look like OOM. */
    free(petrel_xmalloc(0));
    free(petrel_xcalloc(0, 0));
}

Test(common, xstrdup_copies_and_passes_null_through)
{
    char *s = petrel_xstrdup("hello");
    cr_assert_str_eq(s, "hello");
    free(s);
    cr_assert_null(petrel_xstrdup(NULL));
}

#if defined(__SANITIZE_ADDRESS__)
#define COMMON_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COMMON_ASAN 1
#endif
#endif
#ifdef COMMON_ASAN
/* ASan kills the process on an impossible allocation instead of returning
 * NULL; the sanitizer build must still see our own abort path. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

Test(common, xmalloc_aborts_on_impossible_size, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    void *p = petrel_xmalloc(SIZE_MAX - 64);
    free(p);
}

Test(common, monotonic_clock_advances)
{
    int64_t a = petrel_now_ns();
    int64_t b = petrel_now_ns();
    cr_assert_geq(b, a);
    cr_assert_gt(a, 0);
    int64_t ms = petrel_now_ms();
    cr_assert_leq(ms, petrel_now_ns() / 1000000);
}

/* The line PETREL_ASSERT sits on below; keep the two adjacent. */
static const int common_assert_line = __LINE__ + 4;
static void common_fail_assert(void)
{
    volatile int two = 2;
    PETREL_ASSERT(two == 3);
}

Test(common, assert_failure_prints_file_line_func_and_expr_then_aborts)
{
    /* The child's stderr goes to a pipe so the parent can read the exact
     * message after the abort. */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        common_fail_assert();
    }
    close(fds[1]);
    char buf[512];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fds[0]);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    char want[256];
    snprintf(want, sizeof(want), "%s:%d: common_fail_assert: assertion `two == 3' failed\n",
             __FILE__, common_assert_line);
    cr_assert_str_eq(buf, want);
}

/* Strings of every length around the serialiser's 512-byte buffer, escapes first, last
 * and in between, after a prefix that shifts where the buffer boundary falls: each
 * document reads back as itself. */
Test(common, json_dumps_round_trips_strings_across_its_buffer)
{
    /* Whole tokens, so every string is valid UTF-8: plain runs, each escape, 2- and 3-byte
     * characters. */
    static const char *const tokens[] = {"x",    "abcdefghij", "\"",           "\\",      "\n",
                                         "\x01", "\xc3\xa9",   "\xe2\x82\xac", "klmnopq", "\x1f"};
    char str[1400];
    size_t tested = 0, longest = 0;
    for (size_t target = 0; target < 1300; target += target < 40 ? 1 : 37) {
        size_t len = 0;
        for (size_t k = 0; len < target; k++) {
            const char *t = tokens[(k * 7 + target) % (sizeof(tokens) / sizeof(tokens[0]))];
            memcpy(str + len, t, strlen(t));
            len += strlen(t);
        }
        for (size_t pre = 0; pre < 520; pre += 173) {
            char prefix[600];
            memset(prefix, 'p', pre);
            json_t *j = json_pack("[s#,s#]", prefix, (int)pre, str, (int)len);
            cr_assert(j != NULL, "len %zu: not valid UTF-8", len);
            size_t n = 0;
            char *out = petrel_json_dumps(j, &n);
            cr_assert(out != NULL);
            json_error_t err;
            json_t *back = json_loads(out, 0, &err);
            cr_assert(back != NULL, "len %zu pre %zu: %s", len, pre, err.text);
            cr_assert(json_equal(back, j), "len %zu pre %zu", len, pre);
            json_decref(back);
            json_decref(j);
            free(out);
            tested++;
        }
        if (len > longest)
            longest = len;
    }
    /* Strings longer than the serialiser's 512-byte buffer were among them. */
    cr_assert_gt(longest, 1200);
    cr_assert_gt(tested, 200);
}

Test(common, json_dumps_writes_integers_and_strings_as_python_does)
{
    json_t *j = json_pack("[I,I,I,I,I,s]", (json_int_t)0, (json_int_t)-7, (json_int_t)1234567890,
                          (json_int_t)INT64_MAX, (json_int_t)INT64_MIN, "a\"b\\\n\x01é");
    size_t len = 0;
    char *s = petrel_json_dumps(j, &len);
    cr_assert_str_eq(s, "[0,-7,1234567890,9223372036854775807,-9223372036854775808,"
                        "\"a\\\"b\\\\\\n\\u0001é\"]");
    cr_assert_eq(len, strlen(s));
    free(s);
    json_decref(j);
}

static size_t naive_plain_run(const char *s, size_t len, bool ascii_only)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\' || (ascii_only && c >= 0x80))
            break;
        i++;
    }
    return i;
}

Test(common, json_plain_run_and_copy_match_a_byte_loop_and_read_only_the_string)
{
    /* guard | data | guard: a string placed flush against either end of the data page
     * faults if the 8-byte scan or its tail loads read one byte outside it. */
    long pg = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)pg * 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(map != MAP_FAILED);
    cr_assert_eq(mprotect(map, (size_t)pg, PROT_NONE), 0);
    cr_assert_eq(mprotect(map + 2 * pg, (size_t)pg, PROT_NONE), 0);
    static const unsigned char bad[] = {'"', '\\', 0x00, 0x1f, '\n', 0x80, 0xc3, 0xff};
    size_t checked = 0;
    for (int at_end = 0; at_end < 2; at_end++) {
        for (size_t len = 0; len <= 40; len++) {
            char *s = at_end ? map + 2 * pg - len : map + pg;
            for (size_t pos = 0; pos <= len; pos++) {
                for (size_t k = 0; k < sizeof(bad); k++) {
                    memset(s, 'x', len);
                    if (pos < len)
                        s[pos] = (char)bad[k];
                    if (pos + 3 < len) /* a second one further on must not hide the first */
                        s[len - 1] = '"';
                    for (int ascii = 0; ascii < 2; ascii++) {
                        size_t want = naive_plain_run(s, len, ascii);
                        size_t got = petrel__json_plain_run(s, len, ascii);
                        cr_assert_eq(got, want, "len %zu bad 0x%02x at %zu ascii %d: %zu, want %zu",
                                     len, bad[k], pos, ascii, got, want);
                        /* The copying variant: same run, and exactly the run's bytes copied. */
                        char dst[48];
                        memset(dst, '#', sizeof(dst));
                        got = petrel__json_plain_copy(dst, s, len, ascii);
                        cr_assert_eq(got, want, "copy: len %zu bad 0x%02x at %zu ascii %d: %zu",
                                     len, bad[k], pos, ascii, got);
                        cr_assert(memcmp(dst, s, got) == 0, "copy: len %zu bad at %zu: bytes", len,
                                  pos);
                        cr_assert_eq(dst[len], '#', "copy: wrote past len %zu", len);
                        checked++;
                    }
                    if (pos == len)
                        break; /* no bad byte: one pass */
                }
            }
        }
    }
    cr_assert_gt(checked, 10000);
    munmap(map, (size_t)pg * 3);
}
