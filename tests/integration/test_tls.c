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

/* A header whose value lives in the request's own memory, and a body larger than
 * HTTP/2's initial 64 KiB window, so h2o sends most of it after the handler is over. */
static int h_tagged(petrel_req_t *req)
{
    char tag[64];
    const char *t = petrel_param_str(req, "tag", "");
    snprintf(tag, sizeof(tag), "tag-%s", t);
    petrel_resp_header(req, "X-Tag", tag);
    /* Each body differs (its letters start at the tag), so one overwritten by the next
     * request's shows. */
    size_t n = 200000, shift = (size_t)atoi(t);
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + (i + shift) % 26);
    int rc = petrel_send(req, 200, "text/plain", body, n);
    free(body);
    return rc;
}

static const petrel_route_t routes[] = {
    PETREL_ROUTE(GET, "/json", h_json),
    PETREL_ROUTE(GET, "/tagged", h_tagged, .query = {PETREL_Q_STR("tag", .required = true)}),
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

Test(tls, http2_headers_and_large_bodies_of_requests_on_one_connection)
{
    /* Eight parallel requests on one HTTP/2 connection: each response keeps its own header
     * value and its whole body, though the handlers are over (and the next ones ran) before
     * most of the bodies go out. */
    char cmd[4096], hdrs[300];
    snprintf(hdrs, sizeof(hdrs), "%s/h2-headers.txt", dir);
    int o = snprintf(
        cmd, sizeof(cmd),
        "curl --http2 --parallel -sk --max-time 20 -D %s -w '%%{http_version} %%{size_download} "
        "%%{num_connects}\\n'",
        hdrs);
    for (int i = 0; i < 8; i++)
        o += snprintf(cmd + o, sizeof(cmd) - (size_t)o,
                      " -o %s/body%d https://127.0.0.1:%d/tagged?tag=%d", dir, i,
                      petrel_test_port(tc), i);
    int st;
    char *out = support_run(cmd, &st);
    cr_assert_eq(st, 0, "curl exited %d: %s", st, out);
    int nconn = 0, lines = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"), lines++) {
        int ver, c;
        long size;
        cr_assert_eq(sscanf(line, "%d %ld %d", &ver, &size, &c), 3, "curl -w line: %s", line);
        cr_assert_eq(ver, 2, "not HTTP/2: %s", line);
        cr_assert_eq(size, 200000, "body of %ld bytes", size);
        nconn += c;
    }
    cr_assert_eq(lines, 8);
    cr_assert_eq(nconn, 1, "curl opened %d connections, not one", nconn);
    free(out);

    char *h = support_read_file(hdrs);
    cr_assert_not_null(h);
    /* Parallel transfers: the header blocks come in the order the responses finished. */
    for (int i = 0; i < 8; i++) {
        char want[32];
        snprintf(want, sizeof(want), "x-tag: tag-%d\r\n", i);
        const char *at = strstr(h, want);
        cr_assert_not_null(at, "no response has '%s': %s", want, h);
        cr_assert_null(strstr(at + 1, want), "two responses have '%s': %s", want, h);
    }
    int ntags = 0;
    for (const char *q = strstr(h, "x-tag:"); q != NULL; q = strstr(q + 1, "x-tag:"))
        ntags++;
    cr_assert_eq(ntags, 8, "%d x-tag headers: %s", ntags, h);
    free(h);
    for (int i = 0; i < 8; i++) {
        char path[300];
        snprintf(path, sizeof(path), "%s/body%d", dir, i);
        char *b = support_read_file(path);
        cr_assert_not_null(b);
        size_t bad = 0;
        while (bad < 200000 && b[bad] == (char)('a' + (bad + (size_t)i) % 26))
            bad++;
        cr_assert_eq(bad, 200000, "body %d differs at byte %zu", i, bad);
        free(b);
    }
}
