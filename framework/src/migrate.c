/*
 * migrate.c - schema migrations: the migration directory scan, the blocking
 * runner behind `migrate up|down|status` (schema_migrations with SHA-256
 * checksums, one transaction per migration, a session advisory lock), and the
 * pending count used by readiness checks (on the pool, non-blocking).
 *
 * The runner uses a plain blocking libpq connection on purpose: it runs from
 * the command line before the server starts, never on a worker loop.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "petrel/db.h"

/* pg_advisory_lock key: "petrel migrations" (any constant shared by all migrators). */
#define MIGRATE_LOCK_KEY "7263540193"
/* Migration files are read whole; cap them (a migration is SQL, not data). */
#define MIGRATE_MAX_FILE (16 * 1024 * 1024)

struct migration {
    long long version;
    char *name; /* "0001_world" */
    char *up_path, *down_path;
    char checksum[65];
};

struct mset {
    struct migration *v;
    size_t n;
};

static void mset_free(struct mset *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].up_path);
        free(m->v[i].down_path);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

static void seterr(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    size_t n = strlen(err);
    while (n > 0 && err[n - 1] == '\n')
        err[--n] = '\0';
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > MIGRATE_MAX_FILE + 8192) {
                free(buf);
                (void)fclose(f);
                return NULL;
            }
            buf = petrel_xrealloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    (void)fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

static int mig_cmp(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

/* Scans `dir` for NNNN_name.up.sql (+ .down.sql), sorted by version. */
static int scan_dir(const char *dir, struct mset *m, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        seterr(err, errlen, "cannot open migrations directory '%s'", dir);
        return PETREL_ECONFIG;
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && rc == 0) {
        const char *fn = e->d_name;
        size_t len = strlen(fn);
        static const char up[] = ".up.sql";
        if (len <= sizeof(up) - 1 || strcmp(fn + len - (sizeof(up) - 1), up) != 0)
            continue;
        char *end;
        long long v = strtoll(fn, &end, 10);
        if (end == fn || *end != '_' || v < 0) {
            seterr(err, errlen, "%s/%s: migration files are named NNNN_name.up.sql", dir, fn);
            rc = PETREL_ECONFIG;
            break;
        }
        if (m->n == cap) {
            cap = cap ? cap * 2 : 16;
            m->v = petrel_xrealloc(m->v, cap * sizeof(*m->v));
        }
        struct migration *g = &m->v[m->n++];
        memset(g, 0, sizeof(*g));
        g->version = v;
        size_t nlen = len - (sizeof(up) - 1);
        g->name = petrel_xmalloc(nlen + 1);
        memcpy(g->name, fn, nlen);
        g->name[nlen] = '\0';
        size_t plen = strlen(dir) + len + 16;
        g->up_path = petrel_xmalloc(plen);
        snprintf(g->up_path, plen, "%s/%s", dir, fn);
        g->down_path = petrel_xmalloc(plen);
        snprintf(g->down_path, plen, "%s/%s.down.sql", dir, g->name);
    }
    (void)closedir(d);
    if (rc != 0)
        return rc;
    qsort(m->v, m->n, sizeof(*m->v), mig_cmp);
    for (size_t i = 0; i < m->n; i++) {
        if (i > 0 && m->v[i].version == m->v[i - 1].version) {
            seterr(err, errlen, "two migrations share version %lld (%s, %s)", m->v[i].version,
                   m->v[i - 1].name, m->v[i].name);
            return PETREL_ECONFIG;
        }
    }
    return 0;
}

static int checksum_all(struct mset *m, char *err, size_t errlen)
{
    for (size_t i = 0; i < m->n; i++) {
        size_t len;
        char *sql = read_file(m->v[i].up_path, &len);
        if (sql == NULL) {
            seterr(err, errlen, "cannot read %s", m->v[i].up_path);
            return PETREL_ECONFIG;
        }
        int bad = sha256_hex(sql, len, m->v[i].checksum);
        free(sql);
        if (bad) {
            seterr(err, errlen, "sha256 failed");
            return PETREL_EINTERNAL;
        }
    }
    return 0;
}

/* ---- blocking helpers (command line only) ---- */

static int exec_params(PGconn *pg, const char *sql, int n, const char *const *vals, PGresult **out,
                       char *err, size_t errlen)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        seterr(err, errlen, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        return PETREL_EDB;
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return 0;
}

/* Runs a file of SQL statements (simple protocol: several statements allowed). */
static int exec_script(PGconn *pg, const char *what, const char *sql, char *err, size_t errlen)
{
    if (!PQsendQuery(pg, sql)) {
        seterr(err, errlen, "%s: %s", what, PQerrorMessage(pg));
        return PETREL_EDB;
    }
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(pg)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
            seterr(err, errlen, "%s: %s", what, PQresultErrorMessage(r));
            rc = PETREL_EDB;
        }
        PQclear(r);
    }
    return rc;
}

static void say(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(FILE *out, const char *fmt, ...)
{
    if (out == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    (void)fflush(out);
}

static int apply_one(PGconn *pg, const struct migration *g, bool up, char *err, size_t errlen)
{
    size_t len;
    const char *path = up ? g->up_path : g->down_path;
    char *sql = read_file(path, &len);
    if (sql == NULL) {
        seterr(err, errlen, "cannot read %s", path);
        return PETREL_ECONFIG;
    }
    char ver[32];
    snprintf(ver, sizeof(ver), "%lld", g->version);
    int rc = exec_params(pg, "BEGIN", 0, NULL, NULL, err, errlen);
    if (rc == 0)
        rc = exec_script(pg, path, sql, err, errlen);
    if (rc == 0 && up) {
        const char *v[3] = {ver, g->name, g->checksum};
        rc = exec_params(pg,
                         "INSERT INTO schema_migrations (version, name, checksum) "
                         "VALUES ($1, $2, $3)",
                         3, v, NULL, err, errlen);
    } else if (rc == 0) {
        const char *v[1] = {ver};
        rc = exec_params(pg, "DELETE FROM schema_migrations WHERE version = $1", 1, v, NULL, err,
                         errlen);
    }
    if (rc == 0) {
        rc = exec_params(pg, "COMMIT", 0, NULL, NULL, err, errlen);
    } else {
        char e2[64];
        (void)exec_params(pg, "ROLLBACK", 0, NULL, NULL, e2, sizeof(e2));
    }
    free(sql);
    return rc;
}

int petrel_db_migrate(const char *url, const char *dir, petrel_db_migrate_op_t op, int n, FILE *out,
                      int *pending, char *err, size_t errlen)
{
    struct mset m = {0};
    PGconn *pg = NULL;
    PGresult *applied = NULL;
    bool locked = false;
    int rc;
    err[0] = '\0';
    if (url == NULL || *url == '\0') {
        seterr(err, errlen, "database.url is not set (set PETREL_DATABASE_URL)");
        return PETREL_ECONFIG;
    }
    rc = scan_dir(dir, &m, err, errlen);
    if (rc == 0)
        rc = checksum_all(&m, err, errlen);
    if (rc != 0)
        goto out;
    const char *kw[] = {"dbname", "application_name", NULL};
    const char *vals[] = {url, "petrel-migrate", NULL};
    pg = PQconnectdbParams(kw, vals, 1);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        seterr(err, errlen, "cannot connect to the database: %s",
               pg != NULL ? PQerrorMessage(pg) : "out of memory");
        rc = PETREL_EIO;
        goto out;
    }
    PGresult *nr =
        PQexecParams(pg, "SET client_min_messages = warning", 0, NULL, NULL, NULL, NULL, 0);
    PQclear(nr);
    /* One migrator at a time: a second one waits here, then finds nothing to do. */
    rc = exec_params(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL, err,
                     errlen);
    if (rc != 0)
        goto out;
    locked = true;
    rc = exec_params(pg,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now())",
                     0, NULL, NULL, err, errlen);
    if (rc == 0)
        rc = exec_params(pg,
                         "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
                         0, NULL, &applied, err, errlen);
    if (rc != 0)
        goto out;
    /* Every applied migration must still exist, unchanged. */
    int na = PQntuples(applied);
    bool *is_applied = petrel_xcalloc(m.n + 1, sizeof(bool));
    for (int i = 0; i < na && rc == 0; i++) {
        long long v = strtoll(PQgetvalue(applied, i, 0), NULL, 10);
        size_t k = 0;
        while (k < m.n && m.v[k].version != v)
            k++;
        if (k == m.n) {
            seterr(err, errlen, "migration %s is applied but its file is missing from %s",
                   PQgetvalue(applied, i, 1), dir);
            rc = PETREL_ECONFIG;
        } else if (strcmp(m.v[k].checksum, PQgetvalue(applied, i, 2)) != 0) {
            seterr(err, errlen,
                   "checksum mismatch: migration %s was edited after it was applied "
                   "(applied %.12s, file %.12s); write a new migration instead",
                   m.v[k].name, PQgetvalue(applied, i, 2), m.v[k].checksum);
            rc = PETREL_ECONFIG;
        } else {
            is_applied[k] = true;
        }
    }
    if (rc == 0 && op == PETREL_DB_MIGRATE_STATUS) {
        for (size_t k = 0; k < m.n; k++)
            say(out, "%-8s %s\n", is_applied[k] ? "applied" : "pending", m.v[k].name);
    } else if (rc == 0 && op == PETREL_DB_MIGRATE_UP) {
        int done = 0;
        for (size_t k = 0; k < m.n && rc == 0 && (n <= 0 || done < n); k++) {
            if (is_applied[k])
                continue;
            rc = apply_one(pg, &m.v[k], true, err, errlen);
            if (rc == 0) {
                is_applied[k] = true;
                done++;
                say(out, "applied  %s\n", m.v[k].name);
            }
        }
        if (rc == 0 && done == 0)
            say(out, "migrations: up to date\n");
    } else if (rc == 0 && op == PETREL_DB_MIGRATE_DOWN) {
        int want = n <= 0 ? 1 : n, done = 0;
        for (size_t k = m.n; k > 0 && rc == 0 && done < want; k--) {
            if (!is_applied[k - 1])
                continue;
            rc = apply_one(pg, &m.v[k - 1], false, err, errlen);
            if (rc == 0) {
                is_applied[k - 1] = false;
                done++;
                say(out, "reverted %s\n", m.v[k - 1].name);
            }
        }
    } else if (rc == 0) {
        seterr(err, errlen, "unknown migrate operation");
        rc = PETREL_EINVAL;
    }
    if (pending != NULL) {
        int p = 0;
        for (size_t k = 0; k < m.n; k++)
            p += !is_applied[k];
        *pending = p;
    }
    free(is_applied);
out:
    PQclear(applied);
    if (locked) {
        char e2[64];
        (void)exec_params(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL, e2,
                          sizeof(e2));
    }
    if (pg != NULL)
        PQfinish(pg);
    mset_free(&m);
    return rc;
}

int petrel_db_migrations_pending(int64_t timeout_ms, const char *dir, int *pending)
{
    struct mset m = {0};
    char err[256];
    int rc = scan_dir(dir, &m, err, sizeof(err));
    if (rc != 0) {
        mset_free(&m);
        return rc;
    }
    petrel_db_conn_t *c;
    rc = petrel_db_acquire(timeout_ms, &c);
    if (rc != 0) {
        mset_free(&m);
        return rc;
    }
    petrel_db_res_t *res = NULL;
    rc = petrel_db_query(c, timeout_ms, &res,
                         "SELECT version FROM schema_migrations "
                         "WHERE to_regclass('schema_migrations') IS NOT NULL",
                         NULL);
    petrel_db_release(c);
    if (rc == PETREL_EDB && strcmp(petrel_db_sqlstate(), "42P01") == 0) {
        *pending = (int)m.n; /* no table yet: nothing applied */
        mset_free(&m);
        return 0;
    }
    if (rc == 0) {
        int p = 0;
        for (size_t k = 0; k < m.n; k++) {
            bool found = false;
            for (int i = 0; i < petrel_db_res_nrows(res) && !found; i++)
                found = petrel_db_res_int(res, i, 0, -1) == m.v[k].version;
            p += !found;
        }
        *pending = p;
    }
    petrel_db_res_free(res);
    mset_free(&m);
    return rc;
}
