/*
 * test_config.c - unit tests for framework/src/config.c: declarations,
 * YAML loading, environment overrides and their error messages.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <petrel/config.h>

static const petrel_cfg_key_t app_keys[] = {
    {"origins.*.base_url", PETREL_CFG_STR, NULL, "upstream origin", 0, 0, NULL},
    {"origins.*.timeout_ms", PETREL_CFG_INT, "1000", "upstream timeout", 1, 60000, NULL},
    {"origins.*.hosts", PETREL_CFG_STRLIST, "a, b", "hosts", 0, 0, NULL},
    {"origins.default_timeout_ms", PETREL_CFG_INT, "5", "literal beside a map", 0, 0, NULL},
    {"permits.*.limit", PETREL_CFG_INT, "10", "permits", 1, 1000, NULL},
    {"app.tags", PETREL_CFG_STRLIST, NULL, "tags", 0, 0, NULL},
    {"app.ratio", PETREL_CFG_FLOAT, "0.5", "a ratio", 0, 1, NULL},
};

static char *const no_env[] = {NULL};
static char tmp_path[64];
static char err[512];

/* Writes `text` to a fresh temporary .yaml file and returns its path. */
static const char *yaml_file(const char *text)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/petrel-test-config-XXXXXX.yaml");
    int fd = mkstemps(tmp_path, 5);
    cr_assert_geq(fd, 0);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return tmp_path;
}

static petrel_config_t *new_cfg(void)
{
    petrel_config_t *cfg = petrel_config_new();
    cr_assert_eq(petrel_config_declare(cfg, app_keys, sizeof(app_keys) / sizeof(app_keys[0])), 0);
    err[0] = '\0';
    return cfg;
}

static void cleanup(void)
{
    if (tmp_path[0] != '\0')
        unlink(tmp_path);
}

/* Loads `text` expecting failure and checks the message after "file:". */
static void expect_file_error(const char *text, const char *want_after_file)
{
    petrel_config_t *cfg = new_cfg();
    const char *f = yaml_file(text);
    cr_assert_eq(petrel_config_load(cfg, f, no_env, err, sizeof(err)), PETREL_ECONFIG);
    char want[600];
    snprintf(want, sizeof(want), "%s:%s", f, want_after_file);
    cr_assert_str_eq(err, want);
    petrel_config_free(cfg);
}

static void expect_env_error(char *const *env, const char *want)
{
    petrel_config_t *cfg = new_cfg();
    cr_assert_eq(petrel_config_load(cfg, NULL, env, err, sizeof(err)), PETREL_ECONFIG);
    cr_assert_str_eq(err, want);
    petrel_config_free(cfg);
}

TestSuite(config, .fini = cleanup, .timeout = 10);

Test(config, defaults_apply_when_nothing_is_loaded)
{
    petrel_config_t *cfg = new_cfg();
    cr_assert_eq(petrel_config_load(cfg, NULL, no_env, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(petrel_config_str(cfg, "server.host"), "127.0.0.1");
    cr_assert_eq(petrel_config_int(cfg, "server.port"), 8000);
    cr_assert_eq(petrel_config_int(cfg, "server.workers"), 0);
    cr_assert_eq(petrel_config_int(cfg, "server.max_body_bytes"), 1048576);
    cr_assert_float_eq(petrel_config_float(cfg, "server.shutdown_timeout_s"), 10.0, 1e-9);
    cr_assert(petrel_config_bool(cfg, "server.http2"));
    cr_assert_not(petrel_config_bool(cfg, "debug"));
    cr_assert_null(petrel_config_str(cfg, "server.tls.cert_file"));
    cr_assert_str_eq(petrel_config_str(cfg, "log.level"), "info");
    cr_assert_not(petrel_config_isset(cfg, "server.port"));
    size_t n = 99;
    const char *const *tags = petrel_config_strlist(cfg, "app.tags", &n);
    cr_assert_eq(n, 0);
    cr_assert_null(tags[0]);
    petrel_config_free(cfg);
}

Test(config, nested_yaml_values_override_defaults)
{
    petrel_config_t *cfg = new_cfg();
    const char *f = yaml_file("# comment\n"
                              "server:\n"
                              "  port: 9000\n"
                              "  host: 0.0.0.0\n"
                              "  http2: off\n"
                              "  shutdown_timeout_s: 2.5\n"
                              "  tls:\n"
                              "    cert_file: /etc/cert.pem\n"
                              "debug: yes\n"
                              "log: {level: warn, access: false}\n"
                              "app:\n"
                              "  tags: [x, \"y z\"]\n"
                              "  ratio: 1\n");
    cr_assert_eq(petrel_config_load(cfg, f, no_env, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(petrel_config_int(cfg, "server.port"), 9000);
    cr_assert_str_eq(petrel_config_str(cfg, "server.host"), "0.0.0.0");
    cr_assert_not(petrel_config_bool(cfg, "server.http2"));
    cr_assert_float_eq(petrel_config_float(cfg, "server.shutdown_timeout_s"), 2.5, 1e-9);
    cr_assert_str_eq(petrel_config_str(cfg, "server.tls.cert_file"), "/etc/cert.pem");
    cr_assert(petrel_config_bool(cfg, "debug"));
    cr_assert_str_eq(petrel_config_str(cfg, "log.level"), "warn");
    cr_assert_not(petrel_config_bool(cfg, "log.access"));
    size_t n;
    const char *const *tags = petrel_config_strlist(cfg, "app.tags", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(tags[0], "x");
    cr_assert_str_eq(tags[1], "y z");
    cr_assert_null(tags[2]);
    cr_assert_float_eq(petrel_config_float(cfg, "app.ratio"), 1.0, 1e-9);
    cr_assert(petrel_config_isset(cfg, "server.port"));
    cr_assert_not(petrel_config_isset(cfg, "server.workers"));
    petrel_config_free(cfg);
}

Test(config, empty_file_means_defaults)
{
    petrel_config_t *cfg = new_cfg();
    const char *f = yaml_file("# nothing here\n");
    cr_assert_eq(petrel_config_load(cfg, f, no_env, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(petrel_config_int(cfg, "server.port"), 8000);
    petrel_config_free(cfg);
}

Test(config, unknown_key_names_file_line_and_path)
{
    expect_file_error("server:\n  port: 1\n\n  prot: 2\n", "4: server.prot: unknown key");
    expect_file_error("servr:\n  port: 1\n", "1: servr: unknown key");
    expect_file_error("server.port: 1\n", "1: server.port: unknown key");
}

Test(config, bad_integers_are_rejected_with_the_value)
{
    expect_file_error("server:\n  port: abc\n", "2: server.port: expected an integer, got \"abc\"");
    expect_file_error("server:\n  port: 1.5\n", "2: server.port: expected an integer, got \"1.5\"");
    expect_file_error("server:\n  port: 12abc\n",
                      "2: server.port: expected an integer, got \"12abc\"");
    expect_file_error("server:\n  port: \" 12\"\n",
                      "2: server.port: expected an integer, got \" 12\"");
    expect_file_error("server:\n  port:\n", "2: server.port: expected an integer, got null");
    expect_file_error("server:\n  port: [1]\n", "2: server.port: expected an integer, got a list");
}

Test(config, out_of_range_numbers_name_the_range)
{
    expect_file_error("server:\n  port: 70000\n", "2: server.port: 70000 is out of range 0..65535");
    expect_file_error("server:\n  max_body_bytes: -1\n",
                      "2: server.max_body_bytes: -1 is out of range 0..1073741824");
    expect_file_error("app:\n  ratio: 1.5\n", "2: app.ratio: 1.5 is out of range 0..1");
    expect_file_error("server:\n  port: 99999999999999999999\n",
                      "2: server.port: 99999999999999999999 is out of range 0..65535");
}

Test(config, floats_reject_garbage_and_special_values)
{
    expect_file_error("app:\n  ratio: nan\n", "2: app.ratio: expected a number, got \"nan\"");
    expect_file_error("app:\n  ratio: 0x1p-1\n", "2: app.ratio: expected a number, got \"0x1p-1\"");
    expect_file_error("app:\n  ratio: .5x\n", "2: app.ratio: expected a number, got \".5x\"");
    petrel_config_t *cfg = new_cfg();
    cr_assert_eq(petrel_config_set(cfg, "app.ratio", ".25", err, sizeof(err)), 0, "%s", err);
    cr_assert_float_eq(petrel_config_float(cfg, "app.ratio"), 0.25, 1e-12);
    petrel_config_free(cfg);
}

Test(config, choices_are_listed_in_the_error)
{
    expect_file_error("log:\n  level: loud\n",
                      "2: log.level: \"loud\" is not one of debug, info, warn, error");
    expect_file_error("server:\n  tls:\n    min_version: SSLv3\n",
                      "3: server.tls.min_version: \"SSLv3\" is not one of TLSv1.2, TLSv1.3");
}

Test(config, booleans_accept_the_usual_spellings)
{
    static const char *const yes[] = {"true", "True", "yes", "on", "1", "ON"};
    static const char *const no[] = {"false", "no", "off", "0", "FALSE"};
    petrel_config_t *cfg = new_cfg();
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        cr_assert_eq(petrel_config_set(cfg, "debug", yes[i], err, sizeof(err)), 0);
        cr_assert(petrel_config_bool(cfg, "debug"), "%s", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        cr_assert_eq(petrel_config_set(cfg, "debug", no[i], err, sizeof(err)), 0);
        cr_assert_not(petrel_config_bool(cfg, "debug"), "%s", no[i]);
    }
    cr_assert_eq(petrel_config_set(cfg, "debug", "maybe", err, sizeof(err)), PETREL_ECONFIG);
    cr_assert_str_eq(err, "debug: expected a boolean (true/false, yes/no, on/off, 1/0), got "
                          "\"maybe\"");
    petrel_config_free(cfg);
}

Test(config, yaml_syntax_errors_report_their_line)
{
    petrel_config_t *cfg = new_cfg();
    const char *f = yaml_file("server:\n  port: 1\n  host: [unclosed\nlog:\n  level: info\n");
    cr_assert_eq(petrel_config_load(cfg, f, no_env, err, sizeof(err)), PETREL_ECONFIG);
    char want[128];
    snprintf(want, sizeof(want), "%s:", f);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    cr_assert(strstr(err, "YAML syntax error") != NULL, "%s", err);
    cr_assert_eq(strchr(err, '\n'), NULL, "one line: %s", err);
    petrel_config_free(cfg);

    expect_file_error("server:\n  port: 1\n bad: 2\n",
                      "3: YAML syntax error: did not find expected key (while parsing a block "
                      "mapping)");
}

Test(config, structure_errors)
{
    expect_file_error("- a\n- b\n", "1: expected a mapping at the top level");
    expect_file_error("server: 8000\n", "1: server: expected a mapping");
    expect_file_error("server:\n  port: 1\n  port: 2\n", "3: server.port: duplicate key");
    expect_file_error("server:\n  port: 1\n---\nserver:\n  port: 2\n",
                      "4: only one YAML document is allowed");
    expect_file_error("app:\n  tags: [a, [b]]\n", "2: app.tags: expected a list of strings");
}

Test(config, missing_file_is_an_error)
{
    petrel_config_t *cfg = new_cfg();
    cr_assert_eq(petrel_config_load(cfg, "/nonexistent/petrel.yaml", no_env, err, sizeof(err)),
                 PETREL_ECONFIG);
    cr_assert_str_eq(err, "/nonexistent/petrel.yaml: cannot open: no such file or directory");
    petrel_config_free(cfg);
}

Test(config, null_or_empty_string_unsets_a_key)
{
    petrel_config_t *cfg = new_cfg();
    cr_assert_eq(petrel_config_set(cfg, "server.tls.cert_file", "/x", err, sizeof(err)), 0);
    cr_assert(petrel_config_isset(cfg, "server.tls.cert_file"));
    const char *f = yaml_file("server:\n  tls:\n    cert_file: ~\n  host: \"\"\n");
    cr_assert_eq(petrel_config_load(cfg, f, no_env, err, sizeof(err)), 0, "%s", err);
    cr_assert_null(petrel_config_str(cfg, "server.tls.cert_file"));
    cr_assert_not(petrel_config_isset(cfg, "server.tls.cert_file"));
    /* Unsetting a key with a default brings the default back. */
    cr_assert_str_eq(petrel_config_str(cfg, "server.host"), "127.0.0.1");
    petrel_config_free(cfg);
}

Test(config, environment_overrides_the_file)
{
    petrel_config_t *cfg = new_cfg();
    const char *f = yaml_file("server:\n  port: 9000\n  tls:\n    key_file: /k\n");
    char *env[] = {"HOME=/root",
                   "PETREL_SERVER_PORT=9100",
                   "PETREL_SERVER_TLS_CERT_FILE=/c.pem",
                   "PETREL_SERVER_TLS_KEY_FILE=",
                   "PETREL_LOG_LEVEL=debug",
                   "PETREL_SERVER_HTTP2=no",
                   "PETREL_APP_TAGS= a ,b,, c ",
                   NULL};
    cr_assert_eq(petrel_config_load(cfg, f, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(petrel_config_int(cfg, "server.port"), 9100);
    cr_assert_str_eq(petrel_config_str(cfg, "server.tls.cert_file"), "/c.pem");
    cr_assert_null(petrel_config_str(cfg, "server.tls.key_file"));
    cr_assert_str_eq(petrel_config_str(cfg, "log.level"), "debug");
    cr_assert_not(petrel_config_bool(cfg, "server.http2"));
    size_t n;
    const char *const *tags = petrel_config_strlist(cfg, "app.tags", &n);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(tags[0], "a");
    cr_assert_str_eq(tags[1], "b");
    cr_assert_str_eq(tags[2], "c");
    petrel_config_free(cfg);
}

Test(config, environment_errors_name_the_variable)
{
    expect_env_error((char *[]){"PETREL_SERVER_PORT=x", NULL},
                     "environment: PETREL_SERVER_PORT: expected an integer, got \"x\"");
    expect_env_error((char *[]){"PETREL_SERVER_PORT=", NULL},
                     "environment: PETREL_SERVER_PORT: expected an integer, got \"\"");
    expect_env_error((char *[]){"PETREL_SERVER_PROT=1", NULL},
                     "environment: PETREL_SERVER_PROT: does not match any configuration key");
    expect_env_error((char *[]){"PETREL_LOG_LEVEL=loud", NULL},
                     "environment: PETREL_LOG_LEVEL: \"loud\" is not one of debug, info, warn, "
                     "error");
    /* Section names are lower-cased on the way in, so a lower-case variable
     * name is a typo, not a section. */
    expect_env_error((char *[]){"PETREL_ORIGINS_weather_BASE_URL=x", NULL},
                     "environment: PETREL_ORIGINS_weather_BASE_URL: does not match any "
                     "configuration key");
}

Test(config, non_config_variables_are_allowed)
{
    petrel_config_t *cfg = new_cfg();
    char *env[] = {"PETREL_CONFIG=config/test.yaml", "PETREL_TEST_DATABASE_URL=postgres://",
                   "PETREL_BENCH_DURATION=10", "PETREL_=x", NULL};
    /* "PETREL_" alone is neither a key nor allow-listed. */
    cr_assert_eq(petrel_config_load(cfg, NULL, env, err, sizeof(err)), PETREL_ECONFIG);
    cr_assert_str_eq(err, "environment: PETREL_: does not match any configuration key");
    env[3] = NULL;
    cr_assert_eq(petrel_config_load(cfg, NULL, env, err, sizeof(err)), 0, "%s", err);
    petrel_config_free(cfg);
}

Test(config, environment_fills_map_sections_with_underscored_names)
{
    petrel_config_t *cfg = new_cfg();
    char *env[] = {"PETREL_ORIGINS_WEATHER_BASE_URL=http://w",
                   "PETREL_ORIGINS_STOCK_PRICES_BASE_URL=http://p",
                   "PETREL_ORIGINS_STOCK_PRICES_TIMEOUT_MS=250",
                   "PETREL_ORIGINS_DEFAULT_TIMEOUT_MS=7",
                   "PETREL_PERMITS_DB_HEAVY_LIMIT=3",
                   NULL};
    cr_assert_eq(petrel_config_load(cfg, NULL, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(petrel_config_str(cfg, "origins.weather.base_url"), "http://w");
    cr_assert_str_eq(petrel_config_str(cfg, "origins.stock_prices.base_url"), "http://p");
    cr_assert_eq(petrel_config_int(cfg, "origins.stock_prices.timeout_ms"), 250);
    cr_assert_eq(petrel_config_int(cfg, "origins.weather.timeout_ms"), 1000);
    /* A literal key beats a section named "default". */
    cr_assert_eq(petrel_config_int(cfg, "origins.default_timeout_ms"), 7);
    cr_assert_eq(petrel_config_int(cfg, "permits.db_heavy.limit"), 3);
    size_t n;
    const char *const *names = petrel_config_map_names(cfg, "origins", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "weather");
    cr_assert_str_eq(names[1], "stock_prices");
    cr_assert_null(names[2]);
    petrel_config_free(cfg);
}

Test(config, yaml_map_sections_and_their_names)
{
    petrel_config_t *cfg = new_cfg();
    const char *f = yaml_file("origins:\n"
                              "  default_timeout_ms: 9\n"
                              "  prices:\n"
                              "    base_url: http://p\n"
                              "    hosts: [h1, h2, h3]\n"
                              "  weather:\n"
                              "    base_url: http://w\n"
                              "permits:\n"
                              "  db_heavy: {}\n"
                              "  cpu:\n"
                              "    limit: 2\n");
    cr_assert_eq(petrel_config_load(cfg, f, no_env, err, sizeof(err)), 0, "%s", err);
    size_t n;
    const char *const *names = petrel_config_map_names(cfg, "origins", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "prices");
    cr_assert_str_eq(names[1], "weather");
    cr_assert_eq(petrel_config_int(cfg, "origins.default_timeout_ms"), 9);
    const char *const *hosts = petrel_config_strlist(cfg, "origins.prices.hosts", &n);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(hosts[2], "h3");
    /* An unset strlist in a section has the declared default. */
    hosts = petrel_config_strlist(cfg, "origins.weather.hosts", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(hosts[1], "b");
    /* An empty section still counts as a name, with defaults for its keys. */
    names = petrel_config_map_names(cfg, "permits", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "db_heavy");
    cr_assert_str_eq(names[1], "cpu");
    cr_assert_eq(petrel_config_int(cfg, "permits.db_heavy.limit"), 10);
    cr_assert_eq(petrel_config_int(cfg, "permits.cpu.limit"), 2);
    names = petrel_config_map_names(cfg, "server", &n);
    cr_assert_eq(n, 0);
    cr_assert_null(names[0]);
    petrel_config_free(cfg);
}

Test(config, section_errors_name_the_full_path)
{
    expect_file_error("origins:\n  weather:\n    base_ur: x\n",
                      "3: origins.weather.base_ur: unknown key");
    expect_file_error("origins:\n  weather:\n    timeout_ms: 0\n",
                      "3: origins.weather.timeout_ms: 0 is out of range 1..60000");
    expect_file_error("origins:\n  Weather:\n    base_url: x\n", "2: origins.Weather: unknown key");
}

Test(config, set_writes_one_key_and_rejects_unknown_ones)
{
    petrel_config_t *cfg = new_cfg();
    cr_assert_eq(petrel_config_set(cfg, "server.port", "0", err, sizeof(err)), 0);
    cr_assert_eq(petrel_config_int(cfg, "server.port"), 0);
    cr_assert(petrel_config_isset(cfg, "server.port"));
    cr_assert_eq(petrel_config_set(cfg, "origins.x.base_url", "http://x", err, sizeof(err)), 0);
    cr_assert_str_eq(petrel_config_str(cfg, "origins.x.base_url"), "http://x");
    cr_assert_eq(petrel_config_set(cfg, "server.nope", "1", err, sizeof(err)), PETREL_ECONFIG);
    cr_assert_str_eq(err, "server.nope: unknown key");
    cr_assert_eq(petrel_config_set(cfg, "server.port", "-1", err, sizeof(err)), PETREL_ECONFIG);
    cr_assert_str_eq(err, "server.port: -1 is out of range 0..65535");
    cr_assert_eq(petrel_config_int(cfg, "server.port"), 0);
    petrel_config_free(cfg);
}

Test(config, failed_load_leaves_the_config_unchanged)
{
    petrel_config_t *cfg = new_cfg();
    cr_assert_eq(petrel_config_set(cfg, "server.port", "1234", err, sizeof(err)), 0);
    const char *f = yaml_file("server:\n  port: 9000\n  host: h\n  workers: many\n");
    cr_assert_eq(petrel_config_load(cfg, f, no_env, err, sizeof(err)), PETREL_ECONFIG);
    cr_assert_eq(petrel_config_int(cfg, "server.port"), 1234);
    cr_assert_str_eq(petrel_config_str(cfg, "server.host"), "127.0.0.1");
    petrel_config_free(cfg);
}

Test(config, keys_iterate_in_declaration_order)
{
    petrel_config_t *cfg = new_cfg();
    const petrel_cfg_key_t *k = petrel_config_key_at(cfg, 0);
    cr_assert_str_eq(k->path, "server.host");
    size_t i = 0;
    bool saw_level = false;
    while ((k = petrel_config_key_at(cfg, i)) != NULL) {
        cr_assert_not_null(k->help);
        saw_level = saw_level || strcmp(k->path, "log.level") == 0;
        i++;
    }
    cr_assert(saw_level);
    cr_assert_str_eq(petrel_config_key_at(cfg, i - 1)->path, "app.ratio");
    cr_assert_str_eq(petrel_config_key_at(cfg, i - sizeof(app_keys) / sizeof(app_keys[0]))->path,
                     "origins.*.base_url");
    petrel_config_free(cfg);
}

Test(config, bad_declarations_are_refused_whole)
{
    petrel_config_t *cfg = petrel_config_new();
    size_t before = 0;
    while (petrel_config_key_at(cfg, before) != NULL)
        before++;
    static const petrel_cfg_key_t dup[] = {
        {"db.url", PETREL_CFG_STR, NULL, "ok", 0, 0, NULL},
        {"server.port", PETREL_CFG_INT, "1", "duplicate", 0, 0, NULL},
    };
    cr_assert_eq(petrel_config_declare(cfg, dup, 2), PETREL_EINVAL);
    cr_assert_null(petrel_config_key_at(cfg, before));
    static const char *const only_a[] = {"a", NULL};
    static const petrel_cfg_key_t bad[][1] = {
        {{"db.pool", PETREL_CFG_INT, "ten", "bad default", 0, 0, NULL}},
        {{"db.pool", PETREL_CFG_INT, "100", "default out of range", 1, 10, NULL}},
        {{"Db.pool", PETREL_CFG_INT, NULL, "upper case", 0, 0, NULL}},
        {{"db..pool", PETREL_CFG_INT, NULL, "empty segment", 0, 0, NULL}},
        {{"db.p*", PETREL_CFG_INT, NULL, "partial wildcard", 0, 0, NULL}},
        {{"server.tls", PETREL_CFG_STR, NULL, "parent of declared keys", 0, 0, NULL}},
        {{"server.port.x", PETREL_CFG_STR, NULL, "child of a declared key", 0, 0, NULL}},
        {{"server_tls.cert_file", PETREL_CFG_STR, NULL, "same env name", 0, 0, NULL}},
        {{"log.level2", PETREL_CFG_STR, "x", "default not a choice", 0, 0, only_a}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(petrel_config_declare(cfg, bad[i], 1), PETREL_EINVAL, "%s", bad[i][0].help);
    cr_assert_null(petrel_config_key_at(cfg, before));
    petrel_config_free(cfg);
}

Test(config, reading_an_undeclared_key_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    petrel_config_t *cfg = new_cfg();
    (void)petrel_config_int(cfg, "server.prot");
}

Test(config, reading_with_the_wrong_type_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    petrel_config_t *cfg = new_cfg();
    (void)petrel_config_str(cfg, "server.port");
}

Test(config, process_environment_is_used_when_envp_is_null)
{
    petrel_config_t *cfg = new_cfg();
    /* The test runner may have PETREL_* variables of its own; start clean. */
    clearenv();
    setenv("PETREL_SERVER_WORKERS", "3", 1);
    cr_assert_eq(petrel_config_load(cfg, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(petrel_config_int(cfg, "server.workers"), 3);
    petrel_config_free(cfg);
}
