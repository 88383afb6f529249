/*
 * test_log.c - unit tests for framework/src/log.c: every record is one line of
 * valid JSON with the expected fields, whatever bytes went in.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include <petrel/log.h>

#include "log_int.h"

static char out_path[64];
static int saved_stdout = -1;

/* Points stdout (fd 1, which log.c writes with write(2)) at a temp file. */
static void capture_start(void)
{
    snprintf(out_path, sizeof(out_path), "/tmp/petrel-test-log-XXXXXX");
    int fd = mkstemp(out_path);
    cr_assert_geq(fd, 0);
    saved_stdout = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    petrel__log_configure(PETREL_LOG_DEBUG, true);
}

static void capture_stop(void)
{
    if (saved_stdout >= 0) {
        dup2(saved_stdout, STDOUT_FILENO);
        close(saved_stdout);
        saved_stdout = -1;
    }
    unlink(out_path);
}

/* Everything written so far; owned: free(). */
static char *captured(size_t *len)
{
    FILE *f = fopen(out_path, "rb");
    cr_assert_not_null(f);
    char *buf = calloc(1, 1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

/* Parses the captured output as JSON lines into an array of objects. */
static json_t *lines(void)
{
    size_t len;
    char *buf = captured(&len);
    json_t *arr = json_array();
    char *p = buf;
    while (p < buf + len) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        cr_assert_not_null(nl, "every record ends with a newline: %s", p);
        json_error_t e;
        json_t *o = json_loadb(p, (size_t)(nl - p), JSON_ALLOW_NUL, &e);
        cr_assert_not_null(o, "invalid JSON line (%s): %.*s", e.text, (int)(nl - p), p);
        cr_assert(json_is_object(o));
        json_array_append_new(arr, o);
        p = nl + 1;
    }
    free(buf);
    return arr;
}

static const char *field_str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_string(v), "field %s is a string", k);
    return json_string_value(v);
}

TestSuite(log, .init = capture_start, .fini = capture_stop, .timeout = 10);

Test(log, record_has_time_level_and_message)
{
    petrel_log_info("hello %d", 42);
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 1);
    json_t *r = json_array_get(a, 0);
    cr_assert_str_eq(field_str(r, "level"), "info");
    cr_assert_str_eq(field_str(r, "msg"), "hello 42");
    cr_assert_null(json_object_get(r, "request_id"));
    const char *t = field_str(r, "time");
    /* 2026-11-25T21:40:00.123Z */
    cr_assert_eq(strlen(t), 24, "%s", t);
    int y, mo, d, h, mi, s, ms;
    char z;
    cr_assert_eq(sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &z), 8);
    cr_assert_eq(z, 'Z');
    cr_assert_geq(y, 2024);
    json_decref(a);
}

Test(log, time_is_current_utc)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    petrel_log_info("t");
    json_t *a = lines();
    const char *t = field_str(json_array_get(a, 0), "time");
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    cr_assert_not_null(strptime(t, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t logged = timegm(&tm);
    cr_assert(logged >= ts.tv_sec && logged <= ts.tv_sec + 2, "%s", t);
    json_decref(a);
}

Test(log, nasty_strings_stay_valid_json)
{
    static const char nasty[] = "quote\" back\\slash \n\r\t\x01\x1f ctl, "
                                "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa6, "
                                "bad \xff \xc3 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 end";
    petrel_log_warn("%s", nasty);
    json_t *fields = json_object();
    json_object_set_new(fields, "raw", json_stringn_nocheck("\xfe\x00z", 3));
    json_object_set_new_nocheck(fields, "we\"ird\xff", json_integer(1));
    petrel_logj(PETREL_LOG_ERROR, "bad \xff key", fields);
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 2);
    const char *m = field_str(json_array_get(a, 0), "msg");
    cr_assert(strstr(m, "quote\" back\\slash \n\r\t\x01\x1f ctl") == m, "%s", m);
    cr_assert(strstr(m, "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa6,") != NULL);
    /* Each invalid byte became one U+FFFD. */
    cr_assert(strstr(m, "bad \xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                        "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        " end") != NULL,
              "%s", m);
    json_t *r = json_array_get(a, 1);
    cr_assert_str_eq(field_str(r, "level"), "error");
    cr_assert_str_eq(field_str(r, "msg"), "bad \xef\xbf\xbd key");
    json_t *raw = json_object_get(r, "raw");
    cr_assert_eq(json_string_length(raw), 5);
    cr_assert(memcmp(json_string_value(raw), "\xef\xbf\xbd\0z", 5) == 0);
    cr_assert_not_null(json_object_get(r, "we\"ird\xef\xbf\xbd"));
    json_decref(a);
}

/* Outside a request fiber no request id is added (a request's own id is
 * checked end to end by test_metrics' stall-detector log line). */
Test(log, structured_fields_and_explicit_request_id)
{
    json_t *f = json_pack("{s:i, s:s, s:b, s:[i,i], s:{s:f}, s:n}", "count", 3, "who", "me", "ok",
                          1, "list", 1, 2, "obj", "x", 1.5, "none");
    petrel_logj(PETREL_LOG_INFO, "structured", f);
    /* Reserved names cannot be overwritten; an explicit request_id can. */
    petrel_logj(PETREL_LOG_INFO, "explicit",
                json_pack("{s:s, s:s, s:s}", "request_id", "mine", "level", "fake", "msg", "x"));
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 2);
    json_t *r = json_array_get(a, 0);
    cr_assert_null(json_object_get(r, "request_id"));
    cr_assert_eq(json_integer_value(json_object_get(r, "count")), 3);
    cr_assert_str_eq(field_str(r, "who"), "me");
    cr_assert(json_is_true(json_object_get(r, "ok")));
    cr_assert_eq(json_array_size(json_object_get(r, "list")), 2);
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(r, "obj"), "x")), 1.5, 1e-9);
    cr_assert(json_is_null(json_object_get(r, "none")));
    r = json_array_get(a, 1);
    cr_assert_str_eq(field_str(r, "request_id"), "mine");
    cr_assert_str_eq(field_str(r, "level"), "info");
    cr_assert_str_eq(field_str(r, "msg"), "explicit");
    json_decref(a);
}

Test(log, levels_below_the_configured_one_are_dropped)
{
    petrel__log_configure(PETREL_LOG_WARN, true);
    cr_assert_not(petrel_log_enabled(PETREL_LOG_INFO));
    cr_assert(petrel_log_enabled(PETREL_LOG_WARN));
    cr_assert_not(petrel_log_enabled(PETREL_LOG_OFF));
    petrel_log_debug("d");
    petrel_log_info("i");
    petrel_log_warn("w");
    petrel_log_error("e");
    petrel_logj(PETREL_LOG_INFO, "dropped, fields freed", json_pack("{s:i}", "a", 1));
    petrel__log_configure(PETREL_LOG_OFF, true);
    petrel_log_error("off");
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 2);
    cr_assert_str_eq(field_str(json_array_get(a, 0), "level"), "warn");
    cr_assert_str_eq(field_str(json_array_get(a, 1), "level"), "error");
    json_decref(a);
}

Test(log, parse_level_names)
{
    cr_assert_eq(petrel__log_parse_level("debug"), PETREL_LOG_DEBUG);
    cr_assert_eq(petrel__log_parse_level("info"), PETREL_LOG_INFO);
    cr_assert_eq(petrel__log_parse_level("WARN"), PETREL_LOG_WARN);
    cr_assert_eq(petrel__log_parse_level("error"), PETREL_LOG_ERROR);
    cr_assert_eq(petrel__log_parse_level("off"), PETREL_LOG_OFF);
    cr_assert_eq(petrel__log_parse_level(NULL), PETREL_LOG_INFO);
    cr_assert_eq(petrel__log_parse_level("loud"), PETREL_LOG_INFO);
}

Test(log, buffered_thread_writes_nothing_until_flush)
{
    size_t len;
    petrel__log_thread_buffered(true);
    petrel_log_info("one");
    petrel_log_info("two");
    free(captured(&len));
    cr_assert_eq(len, 0);
    petrel__log_flush();
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 2);
    cr_assert_str_eq(field_str(json_array_get(a, 1), "msg"), "two");
    json_decref(a);
    petrel_log_info("three");
    free(captured(&len));
    char *buf = captured(&len);
    cr_assert_null(strstr(buf, "three"));
    free(buf);
    /* Leaving buffered mode flushes what is pending. */
    petrel__log_thread_buffered(false);
    buf = captured(&len);
    cr_assert_not_null(strstr(buf, "three"));
    free(buf);
}

Test(log, buffered_thread_flushes_past_32_kib)
{
    size_t len;
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    petrel__log_thread_buffered(true);
    for (int i = 0; i < 20; i++)
        petrel_log_info("%s", big);
    free(captured(&len));
    cr_assert_eq(len, 0);
    for (int i = 0; i < 20; i++)
        petrel_log_info("%s", big);
    free(captured(&len));
    cr_assert_gt(len, 32 * 1024);
    petrel__log_thread_buffered(false);
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 40);
    json_decref(a);
}

Test(log, long_messages_are_not_truncated)
{
    size_t n = 100000;
    char *big = malloc(n + 1);
    memset(big, 'y', n);
    big[n] = '\0';
    petrel_log_info("%s!", big);
    json_t *a = lines();
    cr_assert_eq(strlen(field_str(json_array_get(a, 0), "msg")), n + 1);
    json_decref(a);
    free(big);
}

Test(log, access_record_fields)
{
    petrel__log_access("rid-9", 5, "GET", 3, "/items/1?x=\"y\"", 14, 200, 1234500, 3, 0, NULL,
                       NULL);
    json_t *extra = json_pack("{s:s, s:i, s:i}", "route", "/items/{id}", "bytes", 17, "status", 1);
    petrel__log_access(NULL, 0, "POSTX", 4, "/p\xff", 3, 503, 12000500000, 0, 0, NULL, extra);
    petrel__log_access("r", 1, "GET", 3, "/", 1, 204, -5000000, 1, 0, NULL, NULL);
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 3);
    json_t *r = json_array_get(a, 0);
    cr_assert_str_eq(field_str(r, "level"), "info");
    cr_assert_str_eq(field_str(r, "msg"), "access");
    cr_assert_str_eq(field_str(r, "request_id"), "rid-9");
    cr_assert_str_eq(field_str(r, "method"), "GET");
    cr_assert_str_eq(field_str(r, "path"), "/items/1?x=\"y\"");
    cr_assert_eq(json_integer_value(json_object_get(r, "status")), 200);
    cr_assert_float_eq(json_real_value(json_object_get(r, "duration_ms")), 1.235, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(r, "worker")), 3);
    r = json_array_get(a, 1);
    cr_assert_null(json_object_get(r, "request_id"));
    cr_assert_str_eq(field_str(r, "method"), "POST");
    cr_assert_str_eq(field_str(r, "path"), "/p\xef\xbf\xbd");
    cr_assert_eq(json_integer_value(json_object_get(r, "status")), 503);
    cr_assert_float_eq(json_real_value(json_object_get(r, "duration_ms")), 12000.5, 1e-9);
    cr_assert_str_eq(field_str(r, "route"), "/items/{id}");
    cr_assert_eq(json_integer_value(json_object_get(r, "bytes")), 17);
    r = json_array_get(a, 2);
    cr_assert_float_eq(json_real_value(json_object_get(r, "duration_ms")), 0.0, 1e-9);
    json_decref(a);
}

/* Escapes before, inside and after 8-byte blocks, valid and invalid UTF-8, in the path: each
 * record reads back as JSON with the text it was given. (Request ids are JSON-safe by
 * construction, so they are copied as they are.) */
Test(log, access_record_escapes_at_any_offset)
{
    static const char *const cases[][2] = {
        {"\"", "\""},
        {"/abcdefg\"", "/abcdefg\""},
        {"/abcdefgh\\ijklmnop", "/abcdefgh\\ijklmnop"},
        {"/abcdefghijklmno\x01", "/abcdefghijklmno\x01"},
        {"\n/abcdefghijklmnop", "\n/abcdefghijklmnop"},
        {"/caf\xc3\xa9-abcdefghijkl", "/caf\xc3\xa9-abcdefghijkl"},
        {"/abcdefghijklmn\xc3\xa9\"q", "/abcdefghijklmn\xc3\xa9\"q"},
        {"/abcdefgh\xffijklmnop", "/abcdefgh\xef\xbf\xbdijklmnop"},
        {"/abcdefgh/abcdefgh/abcdefgh", "/abcdefgh/abcdefgh/abcdefgh"},
        {"/abcdefghij\x7f\t", "/abcdefghij\x7f\t"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        char rid[32];
        snprintf(rid, sizeof(rid), "req-%zu:a_b.c", i);
        petrel__log_access(rid, strlen(rid), "GET", 3, cases[i][0], strlen(cases[i][0]), 200, 1, 0,
                           0, NULL, NULL);
    }
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), n);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(a, i);
        char rid[32];
        snprintf(rid, sizeof(rid), "req-%zu:a_b.c", i);
        cr_assert_str_eq(field_str(r, "path"), cases[i][1], "record %zu", i);
        cr_assert_str_eq(field_str(r, "request_id"), rid, "record %zu", i);
    }
    json_decref(a);
}

/* With the response's monotonic reading given, the record's wall-clock time is derived
 * from it; the time-split fields carry each await kind, escaped like any key. */
Test(log, access_record_time_from_a_monotonic_reading_and_timing_fields)
{
    petrel__log_timing_t t = {.run_ns = 1500000, .wait_ns = 2250000, .n = 2};
    t.kind[0] = "db";
    t.ns[0] = 2000000;
    t.kind[1] = "we\"ird";
    t.ns[1] = 250000;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t now = petrel_now_ns();
    petrel__log_access("r1", 2, "GET", 3, "/", 1, 200, 3750000, 0, now, &t, NULL);
    /* A reading 30 ms old is shown 30 ms before the present. */
    struct timespec wall2;
    clock_gettime(CLOCK_REALTIME, &wall2);
    petrel__log_access("r2", 2, "GET", 3, "/", 1, 200, 1000000, 0, petrel_now_ns() - 30000000, NULL,
                       NULL);
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 2);
    json_t *r = json_array_get(a, 0);
    struct tm tm = {0};
    const char *ts = field_str(r, "time");
    const char *rest = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
    cr_assert(rest != NULL && rest[0] == '.', "time %s", ts);
    double got = (double)timegm(&tm) + strtod(rest, NULL);
    double want = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
    cr_assert(got > want - 0.01 && got < want + 0.5, "time %s vs wall clock %.3f", ts, want);
    cr_assert_float_eq(json_real_value(json_object_get(r, "run_ms")), 1.5, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(r, "db_ms")), 2.0, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(r, "we\"ird_ms")), 0.25, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(r, "wait_ms")), 2.25, 1e-9);
    const char *ts2 = field_str(json_array_get(a, 1), "time");
    struct tm tm2 = {0};
    const char *rest2 = strptime(ts2, "%Y-%m-%dT%H:%M:%S", &tm2);
    cr_assert(rest2 != NULL);
    double got2 = (double)timegm(&tm2) + strtod(rest2, NULL);
    double want2 = (double)wall2.tv_sec + (double)wall2.tv_nsec / 1e9;
    cr_assert(got2 <= want2 - 0.015 && got2 >= want2 - 0.1, "time %s vs wall clock %.3f - 30 ms",
              ts2, want2);
    json_decref(a);
}

Test(log, access_records_obey_the_switch_not_the_level)
{
    petrel__log_configure(PETREL_LOG_ERROR, false);
    petrel__log_access("r", 1, "GET", 3, "/", 1, 200, 1000000, 0, 0, NULL,
                       json_pack("{s:i}", "a", 1));
    size_t len;
    free(captured(&len));
    cr_assert_eq(len, 0);
    petrel__log_configure(PETREL_LOG_ERROR, true);
    petrel__log_access("r", 1, "GET", 3, "/", 1, 200, 1000000, 0, 0, NULL, NULL);
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 1);
    json_decref(a);
}

static void *log_thread_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        petrel_log_info("thread line %d with some padding to make it longer", i);
    return NULL;
}

Test(log, concurrent_threads_do_not_interleave_lines)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, log_thread_main, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    json_t *a = lines();
    cr_assert_eq(json_array_size(a), 800);
    json_decref(a);
}
