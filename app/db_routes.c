/*
 * db_routes.c - the reference app's PostgreSQL module: the pool's lifespan
 * (petrel_db_setup), TechEmpower's database tests (/db, /queries, /fortunes,
 * /updates), the items CRUD API, readiness while migrations are pending, and
 * the `migrate up|down|status [N]` command. Public petrel API only.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/petrel.h>

#include "app.h"

#ifndef PETREL_SOURCE_DIR
#define PETREL_SOURCE_DIR "."
#endif

#define TFB_MAX_QUERIES 500
#define WORLD_ROWS 10000

static const petrel_cfg_key_t app_db_keys[] = {
    {"database.pipeline", PETREL_CFG_BOOL, "true",
     "/queries and /updates send their N statements in one round trip (pipeline mode)", 0, 0, NULL},
    {"database.migrations_dir", PETREL_CFG_STR, "migrations",
     "directory of NNNN_name.up.sql / .down.sql migrations (relative to the working directory)", 0,
     0, NULL},
};

/* Read once per worker start (every worker writes the same values). */
static atomic_bool use_pipeline = true;
static char migrations_dir[1024] = "migrations";
static atomic_int migrations_ok; /* 1 once no migration is pending */

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* xorshift64*: per-thread; world ids need no cryptographic quality. */
static int random_world_id(void)
{
    static __thread uint64_t x;
    if (x == 0)
        x = (uint64_t)petrel_now_ns() ^ ((uint64_t)(uintptr_t)&x << 16) ^ 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return (int)((x * 2685821657736338717ull) >> 33) % WORLD_ROWS + 1;
}

/* TechEmpower's rule: N from ?queries=, clamped to 1..500; missing or not a number -> 1. */
static int tfb_queries(petrel_req_t *req)
{
    const char *s = petrel_query_raw(req, "queries");
    if (s == NULL || *s == '\0')
        return 1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return 1;
    if (errno == ERANGE)
        return v < 0 ? 1 : TFB_MAX_QUERIES;
    if (v < 1)
        return 1;
    return v > TFB_MAX_QUERIES ? TFB_MAX_QUERIES : (int)v;
}

static const char *migrations_path(void)
{
    return migrations_dir;
}

/* Resolves database.migrations_dir: as given, else under the source tree (dev builds). */
static void resolve_migrations_dir(const petrel_config_t *cfg, char *out, size_t len)
{
    const char *d = petrel_config_str(cfg, "database.migrations_dir");
    if (d == NULL || *d == '\0')
        d = "migrations";
    if (access(d, R_OK) != 0 && d[0] != '/') {
        char alt[1024];
        snprintf(alt, sizeof(alt), "%s/%s", PETREL_SOURCE_DIR, d);
        if (access(alt, R_OK) == 0) {
            snprintf(out, len, "%s", alt);
            return;
        }
    }
    snprintf(out, len, "%s", d);
}

static int db_app_worker_start(petrel_app_t *app, int worker, void *arg)
{
    (void)worker;
    (void)arg;
    const petrel_config_t *cfg = petrel_app_config(app);
    atomic_store(&use_pipeline, petrel_config_bool(cfg, "database.pipeline"));
    if (worker == 0)
        resolve_migrations_dir(cfg, migrations_dir, sizeof(migrations_dir));
    return 0;
}

/* Readiness: the database answers and no migration is pending. */
static int db_ready(petrel_app_t *app, char *reason, size_t len, void *arg)
{
    (void)app;
    (void)arg;
    if (atomic_load(&migrations_ok))
        return 0;
    int pending = 0;
    int rc = petrel_db_migrations_pending(500, migrations_path(), &pending);
    if (rc != 0) {
        snprintf(reason, len, "database unavailable: %s", petrel_strerror(rc));
        return -1;
    }
    if (pending > 0) {
        snprintf(reason, len, "%d migration%s pending (run: petrel-app migrate up)", pending,
                 pending == 1 ? "" : "s");
        return -1;
    }
    /* Migrations do not become pending again without a restart (a new deploy). */
    atomic_store(&migrations_ok, 1);
    return 0;
}

/* ------------------------------------------------------------------ */
/* TechEmpower                                                         */

static const char SQL_WORLD[] = "SELECT id, randomnumber FROM world WHERE id = $1";

static json_t *world_json(const petrel_db_res_t *res)
{
    return json_pack("{s:I,s:I}", "id", (json_int_t)petrel_db_res_int(res, 0, 0, 0), "randomNumber",
                     (json_int_t)petrel_db_res_int(res, 0, 1, 0));
}

/* GET /db: one random row of `world`. */
static int tfb_db(petrel_req_t *req)
{
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    char id[16];
    snprintf(id, sizeof(id), "%d", random_world_id());
    const char *params[1] = {id};
    petrel_db_res_t *res = NULL;
    rc = petrel_db_query_text(c, PETREL_TIMEOUT_DEFAULT, &res, SQL_WORLD, 1, params);
    petrel_db_release(c);
    if (rc != 0)
        return rc;
    json_t *out = world_json(res);
    petrel_db_res_free(res);
    return petrel_json(req, 200, out);
}

/* Reads n random worlds: one pipelined round trip, or n sequential queries. Fills ids/numbers. */
static int load_worlds(petrel_db_conn_t *c, int n, int *ids, int *numbers)
{
    int rc = 0;
    for (int i = 0; i < n; i++)
        ids[i] = random_world_id();
    if (atomic_load(&use_pipeline)) {
        size_t cnt = (unsigned)n;
        petrel_db_stmt_t *st = petrel_xcalloc(cnt, sizeof(*st));
        petrel_db_res_t **res = petrel_xcalloc(cnt, sizeof(*res));
        int *rcs = petrel_xcalloc(cnt, sizeof(*rcs));
        for (int i = 0; i < n; i++) {
            st[i].sql = SQL_WORLD;
            st[i].params = json_pack("[i]", ids[i]);
        }
        rc = petrel_db_pipeline(c, PETREL_TIMEOUT_DEFAULT, st, cnt, PETREL_DB_PIPELINE_ISOLATED,
                                res, rcs);
        for (int i = 0; i < n; i++) {
            if (rc == 0 && rcs[i] != 0)
                rc = rcs[i];
            if (rc == 0)
                numbers[i] = (int)petrel_db_res_int(res[i], 0, 1, 0);
            petrel_db_res_free(res[i]);
            json_decref(st[i].params);
        }
        free(st);
        free(res);
        free(rcs);
        return rc;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", ids[i]);
        const char *params[1] = {id};
        petrel_db_res_t *res = NULL;
        rc = petrel_db_query_text(c, PETREL_TIMEOUT_DEFAULT, &res, SQL_WORLD, 1, params);
        if (rc == 0)
            numbers[i] = (int)petrel_db_res_int(res, 0, 1, 0);
        petrel_db_res_free(res);
    }
    return rc;
}

static json_t *worlds_json(int n, const int *ids, const int *numbers)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr,
                              json_pack("{s:i,s:i}", "id", ids[i], "randomNumber", numbers[i]));
    return arr;
}

/* GET /queries?queries=N: N random rows. */
static int tfb_queries_route(petrel_req_t *req)
{
    int n = tfb_queries(req);
    int ids[TFB_MAX_QUERIES], numbers[TFB_MAX_QUERIES];
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    rc = load_worlds(c, n, ids, numbers);
    petrel_db_release(c);
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, worlds_json(n, ids, numbers));
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* GET /updates?queries=N: N random rows, each given a new random number, written back
 * with one UPDATE over unnest()ed arrays (ids sorted, so concurrent updates cannot
 * deadlock). */
static int tfb_updates(petrel_req_t *req)
{
    int n = tfb_queries(req);
    int ids[TFB_MAX_QUERIES], numbers[TFB_MAX_QUERIES];
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    rc = load_worlds(c, n, ids, numbers);
    if (rc != 0)
        goto out;
    for (int i = 0; i < n; i++)
        numbers[i] = random_world_id();
    /* Sorted (id, number) pairs: sort a copy of ids, pair each with its number. */
    int pairs[TFB_MAX_QUERIES][2];
    for (int i = 0; i < n; i++) {
        pairs[i][0] = ids[i];
        pairs[i][1] = numbers[i];
    }
    qsort(pairs, (size_t)n, sizeof(pairs[0]), int_cmp);
    /* An id drawn twice is written once, with one of its numbers: an UPDATE ... FROM with
     * two source rows for a target row applies only one of them, and which one is
     * unspecified, so the response could not say what the row holds. */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && pairs[m - 1][0] == pairs[i][0])
            continue;
        pairs[m][0] = pairs[i][0];
        pairs[m][1] = pairs[i][1];
        m++;
    }
    /* PostgreSQL array literals "{1,2,3}" (12 bytes per value is plenty for 1..10000). */
    char *a_ids = petrel_xmalloc((size_t)m * 12 + 3), *a_nums = petrel_xmalloc((size_t)m * 12 + 3);
    size_t li = 0, ln = 0;
    a_ids[li++] = '{';
    a_nums[ln++] = '{';
    for (int i = 0; i < m; i++) {
        li += (size_t)snprintf(a_ids + li, 12, "%s%d", i ? "," : "", pairs[i][0]);
        ln += (size_t)snprintf(a_nums + ln, 12, "%s%d", i ? "," : "", pairs[i][1]);
    }
    snprintf(a_ids + li, 2, "}");
    snprintf(a_nums + ln, 2, "}");
    json_t *params = json_pack("[ss]", a_ids, a_nums);
    free(a_ids);
    free(a_nums);
    rc = petrel_db_query(c, PETREL_TIMEOUT_DEFAULT, NULL,
                         "UPDATE world SET randomnumber = v.r FROM "
                         "(SELECT unnest($1::int[]) AS id, unnest($2::int[]) AS r) v "
                         "WHERE world.id = v.id",
                         params);
    json_decref(params);
out:
    petrel_db_release(c);
    if (rc != 0)
        return rc;
    /* Each draw shows the number its row now holds (the same for repeated ids). */
    for (int i = 0; i < n; i++) {
        const int(*p)[2] = bsearch(&ids[i], pairs, (size_t)m, sizeof(pairs[0]), int_cmp);
        numbers[i] = (*p)[1];
    }
    return petrel_json(req, 200, worlds_json(n, ids, numbers));
}

struct fortune {
    int id;
    const char *msg;
};

static int fortune_cmp(const void *a, const void *b)
{
    return strcmp(((const struct fortune *)a)->msg, ((const struct fortune *)b)->msg);
}

/* Appends s HTML-escaped to buf (grown as needed). */
static void html_escape(char **buf, size_t *len, size_t *cap, const char *s)
{
    for (; *s != '\0'; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            break;
        }
        size_t add = rep != NULL ? strlen(rep) : 1;
        if (*len + add + 1 > *cap) {
            *cap = (*cap + add) * 2;
            *buf = petrel_xrealloc(*buf, *cap);
        }
        if (rep != NULL) {
            memcpy(*buf + *len, rep, add);
        } else {
            (*buf)[*len] = *s;
        }
        *len += add;
    }
}

static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t add = strlen(s);
    if (*len + add + 1 > *cap) {
        *cap = (*cap + add) * 2;
        *buf = petrel_xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, add);
    *len += add;
}

/* GET /fortunes: every fortune plus one added at request time, sorted by message, as HTML. */
static int tfb_fortunes(petrel_req_t *req)
{
    petrel_db_conn_t *c;
    int rc = petrel_db_acquire(PETREL_TIMEOUT_DEFAULT, &c);
    if (rc != 0)
        return rc;
    petrel_db_res_t *res = NULL;
    rc = petrel_db_query(c, PETREL_TIMEOUT_DEFAULT, &res, "SELECT id, message FROM fortune", NULL);
    petrel_db_release(c);
    if (rc != 0)
        return rc;
    int n = petrel_db_res_nrows(res);
    struct fortune *f = petrel_req_alloc(req, (size_t)(n + 1) * sizeof(*f));
    for (int i = 0; i < n; i++) {
        f[i].id = (int)petrel_db_res_int(res, i, 0, 0);
        const char *m = petrel_db_res_text(res, i, 1);
        f[i].msg = m != NULL ? m : "";
    }
    f[n].id = 0;
    f[n].msg = "Additional fortune added at request time.";
    qsort(f, (size_t)n + 1, sizeof(*f), fortune_cmp);
    size_t cap = 4096, len = 0;
    char *buf = petrel_xmalloc(cap);
    append(&buf, &len, &cap,
           "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
           "<tr><th>id</th><th>message</th></tr>");
    for (int i = 0; i <= n; i++) {
        char id[24];
        snprintf(id, sizeof(id), "<tr><td>%d</td><td>", f[i].id);
        append(&buf, &len, &cap, id);
        html_escape(&buf, &len, &cap, f[i].msg);
        append(&buf, &len, &cap, "</td></tr>");
    }
    append(&buf, &len, &cap, "</table></body></html>");
    rc = petrel_send(req, 200, "text/html; charset=utf-8", buf, len);
    free(buf);
    petrel_db_res_free(res);
    return rc;
}

/* ------------------------------------------------------------------ */
/* items CRUD                                                          */

static const char ITEM_COLS[] = "id, name, price, description, tags, created_at";

static int item_not_found(petrel_req_t *req)
{
    return petrel_error(req, 404, "Item not found");
}

/* GET /api/items?limit=&offset= */
static int items_list(petrel_req_t *req)
{
    json_t *params = json_pack("[II]", (json_int_t)petrel_param_int(req, "limit", 20),
                               (json_int_t)petrel_param_int(req, "offset", 0));
    json_t *rows = NULL;
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT %s FROM items ORDER BY id LIMIT $1 OFFSET $2", ITEM_COLS);
    int rc = petrel_db_fetch_json(PETREL_TIMEOUT_DEFAULT, &rows, sql, params);
    json_decref(params);
    if (rc != 0)
        return rc;
    return petrel_json(req, 200, rows);
}

/* Parameters for INSERT/UPDATE from the validated body: name, price, description, tags. */
static json_t *item_params(petrel_req_t *req)
{
    json_t *b = petrel_body(req);
    json_t *desc = json_object_get(b, "description");
    json_t *tags = json_object_get(b, "tags");
    return json_pack("[OOOO]", json_object_get(b, "name"), json_object_get(b, "price"),
                     desc != NULL ? desc : json_null(), tags != NULL ? tags : json_array());
}

/* Runs an item statement returning at most one row; *out is that row or NULL. */
static int item_exec(const char *sql, json_t *params, json_t **out)
{
    json_t *rows = NULL;
    int rc = petrel_db_fetch_json(PETREL_TIMEOUT_DEFAULT, &rows, sql, params);
    json_decref(params);
    if (rc != 0)
        return rc;
    json_t *row = json_array_get(rows, 0);
    *out = row != NULL ? json_incref(row) : NULL;
    json_decref(rows);
    return 0;
}

/* POST /api/items: 201 with the stored item and its Location. */
static int items_create(petrel_req_t *req)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO items (name, price, description, tags) "
             "VALUES ($1, $2, $3, $4::jsonb) RETURNING %s",
             ITEM_COLS);
    json_t *row;
    int rc = item_exec(sql, item_params(req), &row);
    if (rc != 0)
        return rc;
    if (row == NULL)
        return PETREL_EINTERNAL;
    petrel_resp_header(req, "Location",
                       petrel_req_sprintf(req, "/api/items/%" JSON_INTEGER_FORMAT,
                                          json_integer_value(json_object_get(row, "id"))));
    return petrel_json(req, 201, row);
}

/* GET /api/items/{item_id} */
static int items_get(petrel_req_t *req)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT %s FROM items WHERE id = $1", ITEM_COLS);
    json_t *row;
    int rc =
        item_exec(sql, json_pack("[I]", (json_int_t)petrel_param_int(req, "item_id", 0)), &row);
    if (rc != 0)
        return rc;
    return row != NULL ? petrel_json(req, 200, row) : item_not_found(req);
}

/* PUT /api/items/{item_id}: replaces every field. */
static int items_put(petrel_req_t *req)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE items SET name = $2, price = $3, description = $4, tags = $5::jsonb "
             "WHERE id = $1 RETURNING %s",
             ITEM_COLS);
    json_t *params = item_params(req);
    json_array_insert_new(params, 0, json_integer(petrel_param_int(req, "item_id", 0)));
    json_t *row;
    int rc = item_exec(sql, params, &row);
    if (rc != 0)
        return rc;
    return row != NULL ? petrel_json(req, 200, row) : item_not_found(req);
}

/* DELETE /api/items/{item_id}: 204, or 404. */
static int items_delete(petrel_req_t *req)
{
    json_t *row;
    int rc = item_exec("DELETE FROM items WHERE id = $1 RETURNING id",
                       json_pack("[I]", (json_int_t)petrel_param_int(req, "item_id", 0)), &row);
    if (rc != 0)
        return rc;
    if (row == NULL)
        return item_not_found(req);
    json_decref(row);
    return petrel_empty(req, 204);
}

static const petrel_field_t item_tag = {.type = PETREL_T_STR, .in = PETREL_IN_BODY};
static const petrel_field_t item_in_fields[] = {
    PETREL_F_STR("name", .required = true, .min_length = 1, .max_length = 100,
                 .example = "\"Widget\""),
    PETREL_F_FLOAT("price", .required = true, .gt = "0", .finite = true, .example = "9.99"),
    PETREL_F_STR("description", .nullable = true),
    PETREL_F("tags", PETREL_T_ARRAY, .items = &item_tag, .max_length = 10, .dflt = "[]"),
    PETREL_F_END,
};

static const petrel_route_t db_routes[] = {
    PETREL_ROUTE(GET, "/db", tfb_db, .summary = "One random World row", .tags = {"techempower"}),
    PETREL_ROUTE(
        GET, "/queries", tfb_queries_route, .summary = "N random World rows",
        .tags = {"techempower"},
        .query = {PETREL_Q_STR("queries", .description = "1..500; missing or invalid means 1")}),
    PETREL_ROUTE(GET, "/fortunes", tfb_fortunes, .summary = "Fortunes as HTML",
                 .tags = {"techempower"}),
    PETREL_ROUTE(
        GET, "/updates", tfb_updates, .summary = "Update N random World rows",
        .tags = {"techempower"},
        .query = {PETREL_Q_STR("queries", .description = "1..500; missing or invalid means 1")}),
    PETREL_ROUTE(GET, "/api/items", items_list, .summary = "List items", .tags = {"items"},
                 .query = {PETREL_Q_INT("limit", .dflt = "20", .ge = "1", .le = "100"),
                           PETREL_Q_INT("offset", .dflt = "0", .ge = "0")}),
    PETREL_ROUTE(POST, "/api/items", items_create, .summary = "Create an item", .tags = {"items"},
                 .status_code = 201, .body = PETREL_OBJECT("ItemIn", item_in_fields)),
    PETREL_ROUTE(GET, "/api/items/{item_id:int}", items_get, .summary = "Read one item",
                 .tags = {"items"}, .responses = {{404, "Item not found", NULL}}),
    PETREL_ROUTE(PUT, "/api/items/{item_id:int}", items_put, .summary = "Replace an item",
                 .tags = {"items"}, .body = PETREL_OBJECT("ItemIn", item_in_fields),
                 .responses = {{404, "Item not found", NULL}}),
    PETREL_ROUTE(DELETE, "/api/items/{item_id:int}", items_delete, .summary = "Delete an item",
                 .tags = {"items"}, .status_code = 204,
                 .responses = {{404, "Item not found", NULL}}),
};

int app_db_init(petrel_app_t *app)
{
    int rc = petrel_db_setup(app);
    if (rc == 0)
        rc = petrel_config_declare(petrel_app_config(app), app_db_keys,
                                   sizeof(app_db_keys) / sizeof(app_db_keys[0]));
    if (rc == 0)
        rc = petrel_app_add_routes(app, db_routes, sizeof(db_routes) / sizeof(db_routes[0]));
    if (rc != 0)
        return rc;
    petrel_app_on_worker_start(app, db_app_worker_start, NULL);
    petrel_app_set_readiness(app, db_ready, NULL);
    return 0;
}

/* ------------------------------------------------------------------ */
/* petrel-app migrate up|down|status [N] [--config FILE]               */

static const char *migrate_config_file(int argc, char **argv, int from)
{
    for (int i = from; i < argc; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    const char *env = getenv("PETREL_CONFIG");
    if (env != NULL && *env != '\0')
        return env;
    return access("config/default.yaml", R_OK) == 0 ? "config/default.yaml" : NULL;
}

int app_db_command(petrel_app_t *app, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "migrate") != 0)
        return -1;
    static const char usage[] = "usage: %s migrate up|down|status [N] [--config FILE]\n";
    if (argc < 3) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    petrel_db_migrate_op_t op;
    if (strcmp(argv[2], "up") == 0)
        op = PETREL_DB_MIGRATE_UP;
    else if (strcmp(argv[2], "down") == 0)
        op = PETREL_DB_MIGRATE_DOWN;
    else if (strcmp(argv[2], "status") == 0)
        op = PETREL_DB_MIGRATE_STATUS;
    else {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    int n = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--config=", 9) == 0)
            continue;
        char *end;
        long v = strtol(argv[i], &end, 10);
        if (end == argv[i] || *end != '\0' || v < 1 || v > 1000000) {
            fprintf(stderr, usage, argv[0]);
            return 2;
        }
        n = (int)v;
    }
    char err[512];
    const char *file = migrate_config_file(argc, argv, 3);
    petrel_config_t *cfg = petrel_app_config(app);
    if (petrel_config_load(cfg, file, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "config error: %s\n", err);
        return 2;
    }
    const char *url = petrel_config_str(cfg, "database.url");
    if (url == NULL || *url == '\0') {
        fprintf(stderr, "migrate: database.url is not set (set PETREL_DATABASE_URL)\n");
        return 2;
    }
    char dir[1024];
    resolve_migrations_dir(cfg, dir, sizeof(dir));
    int rc = petrel_db_migrate(url, dir, op, n, stdout, NULL, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "migrate: %s\n", err);
        return rc == PETREL_ECONFIG ? 2 : 1;
    }
    return 0;
}
