/*
 * test_app_http.c - the reference app's outbound routes end to end: the real
 * petrel-app binary (PETREL_BINARY_DIR, migrated first: /readyz waits for the
 * schema) with its upstreams pointed at the real petrel-stub through
 * PETREL_UPSTREAMS_{PRICES,WEATHER}_BASE_URL.
 *
 * The app does not forward query parameters to the upstream, so a failing or
 * slow upstream is made by giving the base URL a query that the app's path
 * lands in: base ".../price/X?fail=500&t=" sends "/price/X?fail=500&t=/price/Y",
 * which the stub answers with 500. One failing city: the stub answers 404 to
 * a name over 64 bytes, which the app reports as "Upstream error" for that city.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <petrel/common.h>
#include <petrel/testclient.h>

#include "support.h"

static support_proc_t stub, app;
static int stub_port, app_port;

static void start_stub(void)
{
    stub_port = support_free_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", stub_port);
    const char *const argv[] = {PETREL_BINARY_DIR "/petrel-stub", "--port", port, NULL};
    cr_assert_eq(support_spawn(&stub, argv, NULL), 0, "cannot start petrel-stub");
    cr_assert_eq(support_wait_port(stub_port, 5000), 0, "petrel-stub did not listen");
}

static void stop_all(void)
{
    support_proc_cleanup(&app);
    support_proc_cleanup(&stub);
}

TestSuite(app_http, .init = start_stub, .fini = stop_all, .timeout = 60);

/* Migrates, then starts `petrel-app serve` with the prices upstream at
 * stub + `prices_path` and weather at the stub, plus `extra` env ("NAME=value" or NULL),
 * and waits for /readyz. */
static void serve(const char *prices_path, const char *extra)
{
    static char prices_env[512], weather_env[256];
    snprintf(prices_env, sizeof(prices_env),
             "PETREL_UPSTREAMS_PRICES_BASE_URL=http://127.0.0.1:%d%s", stub_port,
             prices_path != NULL ? prices_path : "");
    snprintf(weather_env, sizeof(weather_env),
             "PETREL_UPSTREAMS_WEATHER_BASE_URL=http://127.0.0.1:%d", stub_port);
    const char *env[] = {prices_env, weather_env, "PETREL_UPSTREAMS_PRICES_READ_MS=300", extra,
                         NULL};
    app_port = support_start_app(&app, 2, env);
}

static petrel_test_res_t *get(const char *target)
{
    petrel_test_res_t *r = support_get(app_port, target, 10000);
    cr_assert_neq(r->status, 0, "GET %s: no response", target);
    return r;
}

static const char *detail(const petrel_test_res_t *r)
{
    return json_string_value(json_object_get(r->json, "detail"));
}

static void expect_metric(const char *sample)
{
    petrel_test_res_t *r = get("/metrics");
    cr_assert_eq(r->status, 200);
    cr_assert_not_null(strstr(r->body, sample), "no \"%s\" in /metrics:\n%s", sample, r->body);
    petrel_test_res_free(r);
}

Test(app_http, price_is_fetched_from_the_upstream)
{
    serve(NULL, NULL);
    petrel_test_res_t *r = get("/api/price/ACME");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "ticker")), "ACME");
    cr_assert(json_is_number(json_object_get(r->json, "price")), "%s", r->body);
    petrel_test_res_free(r);
    /* The shared client keeps its connection: one connect for several calls. */
    for (int i = 0; i < 3; i++)
        petrel_test_res_free(get("/api/price/ACME"));
    expect_metric("petrel_http_client_requests_total{upstream=\"prices\"} 4");
    expect_metric("petrel_http_client_connects_total{upstream=\"prices\"} 1");
}

Test(app_http, upstream_500_answers_502)
{
    serve("/price/X?fail=500&t=", NULL);
    petrel_test_res_t *r = get("/api/price/ACME");
    cr_assert_eq(r->status, 502, "%s", r->body);
    cr_assert_str_eq(detail(r), "Upstream error");
    petrel_test_res_free(r);
    /* The upstream answered (500): not a connection error. */
    expect_metric("petrel_http_client_requests_total{upstream=\"prices\"} 1");
    expect_metric("petrel_http_client_errors_total{upstream=\"prices\"} 0");
}

Test(app_http, upstream_slower_than_read_timeout_answers_504)
{
    serve("/price/X?delay_ms=1500&t=", NULL); /* read_ms is 300 */
    double t0 = support_now_ms();
    petrel_test_res_t *r = get("/api/price/ACME");
    double ms = support_now_ms() - t0;
    cr_assert_eq(r->status, 504, "%s", r->body);
    cr_assert_str_eq(detail(r), "Upstream timeout");
    cr_assert(ms < 1200, "504 took %.0f ms (read_ms 300)", ms);
    petrel_test_res_free(r);
    expect_metric("petrel_http_client_timeouts_total{upstream=\"prices\"} 1");
    expect_metric("petrel_http_client_connections{upstream=\"prices\",state=\"open\"} 0");
}

Test(app_http, upstream_breaker_open_answers_503)
{
    serve("/price/X?fail=500&t=", "PETREL_UPSTREAMS_PRICES_BREAKER_FAILURES=2");
    for (int i = 0; i < 2; i++) {
        petrel_test_res_t *r = get("/api/price/ACME");
        cr_assert_eq(r->status, 502, "%s", r->body);
        petrel_test_res_free(r);
    }
    petrel_test_res_t *r = get("/api/price/ACME");
    cr_assert_eq(r->status, 503, "%s", r->body);
    cr_assert_not_null(petrel_test_res_header(r, "retry-after"));
    petrel_test_res_free(r);
    expect_metric("petrel_http_client_breaker_open{upstream=\"prices\"} 1");
    expect_metric("petrel_http_client_breaker_open{upstream=\"weather\"} 0");
}

/* A city name the stub refuses (over 64 bytes): 404 upstream, "Upstream error" here. */
static const char *bad_city(void)
{
    static char name[80];
    memset(name, 'z', 70);
    name[70] = '\0';
    return name;
}

Test(app_http, dashboard_fans_out_gathers_partial_results_or_fails_strictly)
{
    serve(NULL, NULL);
    petrel_test_res_t *r = get("/api/dashboard?cities=a,b,c");
    cr_assert_eq(r->status, 200, "%s", r->body);
    json_t *cities = json_object_get(r->json, "cities");
    cr_assert_eq(json_object_size(cities), 3, "%s", r->body);
    const char *names[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++)
        cr_assert_str_eq(
            json_string_value(json_object_get(json_object_get(cities, names[i]), "city")), names[i],
            "%s", r->body);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "errors")), 0);
    petrel_test_res_free(r);

    /* One failing city: gather keeps the others and reports that one. */
    char target[256];
    snprintf(target, sizeof(target), "/api/dashboard?cities=a,%s,c", bad_city());
    r = get(target);
    cr_assert_eq(r->status, 200, "%s", r->body);
    cities = json_object_get(r->json, "cities");
    cr_assert_eq(json_object_size(cities), 3, "%s", r->body);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "errors")), 1, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cities, "a"), "city")), "a");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cities, "c"), "city")), "c");
    json_t *bad = json_object_get(cities, bad_city());
    cr_assert_str_eq(json_string_value(json_object_get(bad, "error")), "Upstream error", "%s",
                     r->body);
    petrel_test_res_free(r);

    /* strict=true: all or nothing. */
    snprintf(target, sizeof(target), "/api/dashboard?cities=a,%s,c&strict=true", bad_city());
    r = get(target);
    cr_assert_eq(r->status, 502, "%s", r->body);
    cr_assert_not_null(strstr(detail(r), "Upstream error"), "%s", r->body);
    petrel_test_res_free(r);
    r = get("/api/dashboard?cities=a,b,c&strict=true");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_eq(json_object_size(json_object_get(r->json, "cities")), 3, "%s", r->body);
    petrel_test_res_free(r);
}

Test(app_http, dashboard_refuses_more_than_20_cities)
{
    serve(NULL, NULL);
    char target[512] = "/api/dashboard?cities=c0";
    for (int i = 1; i < 21; i++)
        snprintf(target + strlen(target), sizeof(target) - strlen(target), ",c%d", i);
    petrel_test_res_t *r = get(target);
    cr_assert_eq(r->status, 422, "%s", r->body);
    json_t *d0 = json_array_get(json_object_get(r->json, "detail"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "type")), "too_long", "%s", r->body);
    petrel_test_res_free(r);
    /* Exactly 20 is fine. */
    strcpy(target, "/api/dashboard?cities=c0");
    for (int i = 1; i < 20; i++)
        snprintf(target + strlen(target), sizeof(target) - strlen(target), ",c%d", i);
    r = get(target);
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_eq(json_object_size(json_object_get(r->json, "cities")), 20);
    petrel_test_res_free(r);
}
