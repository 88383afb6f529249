/*
 * test_process.c - the real petrel-app binary as a user runs it: CLI exit
 * statuses, configuration errors, environment overrides, graceful shutdown
 * on SIGTERM, the second SIGINT, and validation of /api/sleep.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <petrel/common.h>
#include <petrel/testclient.h>

#include "support.h"

/* The test config, or none when the repository does not have it yet. */
static const char *test_config(void)
{
    return access(SUPPORT_TEST_CONFIG, R_OK) == 0 ? SUPPORT_TEST_CONFIG : NULL;
}

/* Runs petrel-app with args (after argv[0]) and env to completion; returns its status. */
static int run_app(support_proc_t *p, const char *const *args, const char *const *env)
{
    const char *argv[16] = {SUPPORT_APP_BINARY};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cr_assert_eq(support_spawn(p, argv, env), 0, "cannot start %s", SUPPORT_APP_BINARY);
    int st = support_wait_exit(p, 20000);
    cr_assert_neq(st, -1, "petrel-app %s did not exit", args[0]);
    return st;
}

/* Counts non-empty lines. */
static int count_lines(const char *s)
{
    int n = 0;
    for (const char *line = s; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        if (len > 0)
            n++;
        if (eol == NULL)
            break;
        line = eol + 1;
    }
    return n;
}

/* One more NAME=VALUE for the next serve(), or NULL. */
static const char *serve_extra_env;

/* Starts `petrel-app serve` on `port` with one worker and waits until /readyz is 200. */
static void serve(support_proc_t *p, int port)
{
    static char port_env[64];
    static char db_env[1024];
    /* petrel-app's lifespan opens its database pool: give it the suite's PostgreSQL. */
    const char *db = getenv("PETREL_TEST_DATABASE_URL");
    cr_assert(db != NULL && *db != '\0',
              "PETREL_TEST_DATABASE_URL is not set (scripts/dev.sh test starts a PostgreSQL)");
    snprintf(db_env, sizeof(db_env), "PETREL_DATABASE_URL=%s", db);
    snprintf(port_env, sizeof(port_env), "PETREL_SERVER_PORT=%d", port);
    const char *env[] = {port_env, "PETREL_SERVER_WORKERS=1", db_env, serve_extra_env, NULL};
    const char *cfg = test_config();
    /* /readyz stays 503 while migrations are pending. */
    support_proc_t m;
    const char *margv[] = {SUPPORT_APP_BINARY, "migrate", "up", cfg ? "--config" : NULL, cfg, NULL};
    cr_assert_eq(support_spawn(&m, margv, env), 0);
    int mst = support_wait_exit(&m, 30000);
    cr_assert_eq(mst, 0, "petrel-app migrate up exited %d: %s", mst, support_proc_stderr(&m));
    support_proc_cleanup(&m);
    const char *argv[] = {SUPPORT_APP_BINARY, "serve", cfg ? "--config" : NULL, cfg, NULL};
    cr_assert_eq(support_spawn(p, argv, env), 0);
    if (support_wait_status(port, "/readyz", 200, 15000) != 0) {
        char *err = support_proc_stderr(p);
        char *out = support_proc_stdout(p);
        int st = support_wait_exit(p, 0);
        support_proc_cleanup(p);
        cr_assert_fail("petrel-app did not become ready on port %d (exit %d)\nstderr: %s\n"
                       "stdout: %.2000s",
                       port, st, err, out);
    }
}

Test(process, version_and_help_exit_0, .timeout = 30)
{
    support_proc_t p;
    static const char *const version[] = {"--version", NULL};
    cr_assert_eq(run_app(&p, version, NULL), 0);
    char *out = support_proc_stdout(&p);
    cr_assert_not_null(strstr(out, PETREL_VERSION), "--version printed: %s", out);
    free(out);
    support_proc_cleanup(&p);

    static const char *const help[] = {"--help", NULL};
    cr_assert_eq(run_app(&p, help, NULL), 0);
    out = support_proc_stdout(&p);
    cr_assert_not_null(strstr(out, "serve"), "--help printed: %s", out);
    cr_assert_not_null(strstr(out, "routes"), "--help printed: %s", out);
    cr_assert_not_null(strstr(out, "migrate up|down|status"), "--help printed: %s", out);
    free(out);
    support_proc_cleanup(&p);

    static const char *const bogus[] = {"no-such-command", NULL};
    cr_assert_eq(run_app(&p, bogus, NULL), 2, "an unknown command must exit 2");
    support_proc_cleanup(&p);
}

Test(process, routes_lists_the_declared_routes, .timeout = 30)
{
    support_proc_t p;
    const char *cfg = test_config();
    const char *args[] = {"routes", cfg ? "--config" : NULL, cfg, NULL};
    cr_assert_eq(run_app(&p, args, NULL), 0);
    char *out = support_proc_stdout(&p);
    int saw_json = 0, saw_sleep = 0;
    for (char *line = out; line != NULL && *line != '\0';) {
        char *eol = strchr(line, '\n');
        if (eol != NULL)
            *eol = '\0';
        if (strncmp(line, "GET", 3) == 0 && strstr(line, " /json ") != NULL)
            saw_json = 1;
        if (strncmp(line, "GET", 3) == 0 && strstr(line, " /api/sleep ") != NULL)
            saw_sleep = 1;
        line = eol != NULL ? eol + 1 : NULL;
    }
    free(out);
    cr_assert(saw_json, "routes does not list GET /json");
    cr_assert(saw_sleep, "routes does not list GET /api/sleep");
    support_proc_cleanup(&p);
}

static void expect_config_error(const char *yaml, const char *want_line, const char *want_key)
{
    char dir[256];
    cr_assert_eq(support_mkdtemp(dir, sizeof(dir)), 0);
    char path[320];
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    cr_assert_eq(support_write_file(path, yaml), 0);
    support_proc_t p;
    const char *args[] = {"serve", "--config", path, NULL};
    int st = run_app(&p, args, NULL);
    char *err = support_proc_stderr(&p);
    cr_assert_eq(st, 2, "bad config exited %d; stderr: %s", st, err);
    cr_assert_eq(count_lines(err), 1, "expected one line on stderr, got: %s", err);
    char where[400];
    snprintf(where, sizeof(where), "%s:%s", path, want_line);
    cr_assert_not_null(strstr(err, where), "stderr does not name %s: %s", where, err);
    cr_assert_not_null(strstr(err, want_key), "stderr does not name %s: %s", want_key, err);
    free(err);
    support_proc_cleanup(&p);
    support_rmtree(dir);
}

Test(process, unknown_config_key_exits_2_naming_file_line_and_key, .timeout = 30)
{
    expect_config_error("server:\n  port: 8000\n  bogus_key: 1\n", "3", "server.bogus_key");
}

Test(process, wrong_config_type_exits_2_naming_file_line_and_key, .timeout = 30)
{
    expect_config_error("# workers must be a number\nserver:\n  workers: lots\n", "3",
                        "server.workers");
}

Test(process, bad_env_override_exits_2_naming_the_variable, .timeout = 30)
{
    support_proc_t p;
    const char *cfg = test_config();
    const char *args[] = {"serve", cfg ? "--config" : NULL, cfg, NULL};
    static const char *const env[] = {"PETREL_SERVER_PORT=abc", NULL};
    int st = run_app(&p, args, env);
    char *err = support_proc_stderr(&p);
    cr_assert_eq(st, 2, "PETREL_SERVER_PORT=abc exited %d; stderr: %s", st, err);
    cr_assert_eq(count_lines(err), 1, "expected one line on stderr, got: %s", err);
    cr_assert_not_null(strstr(err, "PETREL_SERVER_PORT"), "stderr: %s", err);
    free(err);
    support_proc_cleanup(&p);
}

Test(process, env_port_override_serves_and_sleep_is_validated, .timeout = 60)
{
    int port = support_free_port();
    support_proc_t p;
    serve(&p, port);

    petrel_test_res_t *r = support_get(port, "/readyz", 5000);
    cr_assert_eq(r->status, 200);
    cr_assert(support_json_eq(r->json, "{\"status\":\"ready\"}", "readyz"));
    petrel_test_res_free(r);

    r = support_get(port, "/json", 5000);
    cr_assert_eq(r->status, 200);
    cr_assert(support_json_eq(r->json, "{\"message\":\"Hello, World!\"}", "/json"));
    petrel_test_res_free(r);

    r = support_get(port, "/api/sleep?ms=0", 5000);
    cr_assert_eq(r->status, 422, "ms=0: %d", r->status);
    cr_assert(support_json_eq(r->json,
                              "{\"detail\":[{\"type\":\"greater_than_equal\","
                              "\"loc\":[\"query\",\"ms\"],"
                              "\"msg\":\"Input should be greater than or equal to 1\","
                              "\"input\":\"0\",\"ctx\":{\"ge\":1}}]}",
                              "ms=0"));
    petrel_test_res_free(r);

    r = support_get(port, "/api/sleep?ms=20000", 5000);
    cr_assert_eq(r->status, 422, "ms=20000: %d", r->status);
    cr_assert(support_json_eq(r->json,
                              "{\"detail\":[{\"type\":\"less_than_equal\","
                              "\"loc\":[\"query\",\"ms\"],"
                              "\"msg\":\"Input should be less than or equal to 10000\","
                              "\"input\":\"20000\",\"ctx\":{\"le\":10000}}]}",
                              "ms=20000"));
    petrel_test_res_free(r);

    r = support_get(port, "/api/sleep?ms=20", 5000);
    cr_assert_eq(r->status, 200);
    cr_assert(r->elapsed_ms >= 19, "slept only %.0f ms", r->elapsed_ms);
    petrel_test_res_free(r);

    support_signal(&p, SIGTERM);
    int st = support_wait_exit(&p, 10000);
    cr_assert_eq(st, 0, "exit status after SIGTERM: %d", st);
    support_proc_cleanup(&p);
}

Test(process, sigterm_finishes_in_flight_requests_then_exits_0, .timeout = 60)
{
    int port = support_free_port();
    support_proc_t p;
    serve(&p, port);

    int fds[5];
    static const char req[] = "GET /api/sleep?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 5; i++) {
        fds[i] = support_connect(port);
        cr_assert(fds[i] >= 0);
        cr_assert_eq(write(fds[i], req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    }
    support_sleep_ms(200);
    double t_sig = support_now_ms();
    support_signal(&p, SIGTERM);

    /* New connections are refused soon after the signal, while the old ones still run. */
    int refused = 0;
    while (support_now_ms() - t_sig < 600) {
        int fd = support_connect(port);
        if (fd < 0) {
            refused = 1;
            break;
        }
        close(fd);
        support_sleep_ms(20);
    }
    cr_assert(refused, "new connections still accepted 600 ms after SIGTERM");

    for (int i = 0; i < 5; i++) {
        petrel_test_res_t *r = petrel_test_read_response(fds[i], 10000);
        cr_assert_eq(r->status, 200, "in-flight request %d answered %d after SIGTERM", i,
                     r->status);
        cr_assert_eq(json_integer_value(json_object_get(r->json, "slept_ms")), 1000);
        petrel_test_res_free(r);
        close(fds[i]);
    }
    int st = support_wait_exit(&p, 10000);
    cr_assert_eq(st, 0, "exit status after SIGTERM: %d", st);
    support_proc_cleanup(&p);
}

Test(process, second_sigint_exits_at_once, .timeout = 60)
{
    int port = support_free_port();
    support_proc_t p;
    serve(&p, port);

    int fd = support_connect(port);
    static const char req[] = "GET /api/sleep?ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    support_sleep_ms(200);

    support_signal(&p, SIGINT);
    /* The first SIGINT drains: a 10 s request keeps the process alive. */
    cr_assert_eq(support_wait_exit(&p, 500), -1, "first SIGINT did not wait for in-flight work");
    double t0 = support_now_ms();
    support_signal(&p, SIGINT);
    int st = support_wait_exit(&p, 2000);
    double took = support_now_ms() - t0;
    cr_assert_neq(st, -1, "second SIGINT did not exit within 2 s");
    cr_assert(took < 1000, "second SIGINT took %.0f ms to exit", took);
    close(fd);
    support_proc_cleanup(&p);
}

/* Access records are written in batches (one write(2) for many requests), but never held
 * back long: a request on an otherwise idle server is in the log within a moment, without
 * waiting for more traffic or for the exit. */
Test(process, access_records_reach_stdout_soon_on_an_idle_server, .timeout = 60)
{
    int port = support_free_port();
    support_proc_t p;
    serve_extra_env = "PETREL_LOG_ACCESS=true"; /* config/test.yaml turns it off */
    serve(&p, port);
    petrel_test_res_t *r = support_get(port, "/json?probe=batched-log", 5000);
    cr_assert_eq(r->status, 200);
    petrel_test_res_free(r);
    bool seen = false;
    for (int i = 0; i < 50 && !seen; i++) {
        support_sleep_ms(10);
        char *out = support_proc_stdout(&p);
        seen = strstr(out, "\"msg\":\"access\"") != NULL && strstr(out, "\"path\":\"/json\"");
        free(out);
    }
    cr_expect(seen, "no access record for /json within 500 ms");
    support_signal(&p, SIGTERM);
    cr_assert_eq(support_wait_exit(&p, 10000), 0);
    support_proc_cleanup(&p);
}
