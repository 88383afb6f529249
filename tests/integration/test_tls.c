/*
 * test_tls.c - TLS with a self-signed certificate made at test time by the
 * openssl CLI: HTTP/2 (ALPN h2) and HTTP/1.1 over TLS, checked with curl, and
 * HTTP/2 multiplexing checked with h2load when it is installed.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <petrel/app.h>
#include <petrel/fiber.h>
#include <petrel/req.h>
#include <petrel/testclient.h>

#include "support.h"

static int h_json(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:s}", "message", "Hello, World!"));
}

static int h_sleep(petrel_req_t *req)
{
    int rc = petrel_sleep(petrel_param_int(req, "ms", 500));
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, json_pack("{s:b}", "slept", 1));
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/json", h_json),
    PETREL_ROUTE(GET, "/sleep", h_sleep, .query = {PETREL_Q_INT("ms", .dflt = "500")}),
};

static petrel_app_t *app;
static petrel_testclient_t *tc;
static char dir[256];

static void start(void)
{
    if (!support_have_command("openssl") || !support_have_command("curl"))
        cr_assert_fail("openssl and curl are needed for the TLS tests (scripts/dev.sh deps)");
    cr_assert_eq(support_mkdtemp(dir, sizeof(dir)), 0);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 "
             "-keyout %s/key.pem -out %s/cert.pem 2>&1",
             dir, dir);
    int st;
    char *out = support_run(cmd, &st);
    cr_assert_eq(st, 0, "openssl failed: %s", out);
    free(out);

    app = petrel_app_new("test_tls", "1.0");
    cr_assert_eq(petrel_app_add_routes(app, routes, sizeof(routes) / sizeof(routes[0])), 0);
    static char cert_kv[320], key_kv[320];
    snprintf(cert_kv, sizeof(cert_kv), "server.tls.cert_file=%s/cert.pem", dir);
    snprintf(key_kv, sizeof(key_kv), "server.tls.key_file=%s/key.pem", dir);
    const char *overrides[] = {"server.workers=1", cert_kv, key_kv, NULL};
    tc = petrel_test_start(app, NULL, overrides);
    cr_assert_not_null(tc, "petrel_test_start with TLS failed");
}

static void stop(void)
{
    if (tc != NULL)
        petrel_test_stop(tc);
    if (app != NULL)
        petrel_app_free(app);
    support_rmtree(dir);
}

TestSuite(tls, .init = start, .fini = stop, .timeout = 60);

/* Runs curl with `opts` against `path`; returns stdout (body, then "\n<version> <code>"). */
static char *curl(const char *opts, const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "curl %s -sk --max-time 20 -o - -w '\\n%%{http_version} %%{http_code}' "
             "https://127.0.0.1:%d%s",
             opts, petrel_test_port(tc), path);
    int st;
    char *out = support_run(cmd, &st);
    cr_assert_eq(st, 0, "curl exited %d: %s", st, out);
    return out;
}

static const char *last_line(const char *s)
{
    const char *nl = strrchr(s, '\n');
    return nl != NULL ? nl + 1 : s;
}

Test(tls, http2_over_tls_with_alpn)
{
    char *out = curl("--http2", "/json");
    cr_assert_str_eq(last_line(out), "2 200", "curl --http2 got: %s", out);
    cr_assert_not_null(strstr(out, "{\"message\":\"Hello, World!\"}"), "body: %s", out);
    free(out);

    out = curl("--http2", "/nope");
    cr_assert_str_eq(last_line(out), "2 404", "curl --http2 /nope got: %s", out);
    cr_assert_not_null(strstr(out, "{\"detail\":\"Not Found\"}"), "body: %s", out);
    free(out);
}

Test(tls, http1_1_over_tls)
{
    char *out = curl("--http1.1", "/json");
    cr_assert_str_eq(last_line(out), "1.1 200", "curl --http1.1 got: %s", out);
    cr_assert_not_null(strstr(out, "{\"message\":\"Hello, World!\"}"), "body: %s", out);
    free(out);
}

Test(tls, plain_http_is_not_served_on_the_tls_port)
{
    petrel_test_res_t *r = petrel_test_get(tc, "/json");
    cr_assert_neq(r->status, 200, "plain HTTP answered 200 on the TLS port");
    petrel_test_res_free(r);
    char *out = curl("--http2", "/json");
    cr_assert_str_eq(last_line(out), "2 200", "server unhealthy after a plain request: %s", out);
    free(out);
}

Test(tls, http2_multiplexes_sleeping_requests_on_one_connection)
{
    if (!support_have_command("h2load"))
        cr_assert_fail("h2load is not installed (nghttp2-client; scripts/dev.sh deps)");
    char cmd[512];
    /* 10 streams of a 500 ms sleep on one connection: ~0.5 s multiplexed, 5 s serially. */
    snprintf(cmd, sizeof(cmd), "h2load -n 10 -c 1 -m 10 https://127.0.0.1:%d/sleep?ms=500 2>&1",
             petrel_test_port(tc));
    double t0 = support_now_ms();
    int st;
    char *out = support_run(cmd, &st);
    double took = support_now_ms() - t0;
    cr_assert_eq(st, 0, "h2load failed: %s", out);
    cr_assert_not_null(strstr(out, "10 succeeded"), "h2load: %s", out);
    cr_assert_not_null(strstr(out, "h2"), "h2load did not negotiate h2: %s", out);
    cr_assert(took < 3000, "10 multiplexed 500 ms requests took %.0f ms", took);
    free(out);
}
