/*
 * ratelimit.c - process-wide token-bucket rate limiters, global or keyed
 * (per client address or per header value) with a bounded table of buckets
 * evicted least-recently-used first.
 *
 * Each limiter has one mutex; the critical sections are a refill and a
 * subtraction. Refill is computed lazily from the monotonic clock on every
 * access, so idle buckets cost nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits_int.h"
#include "petrel/fiber.h"
#include "petrel/limits.h"

#define RATE_KEY_MAX 128 /* longer keys are truncated: they only select a bucket */

struct bucket {
    struct bucket *hnext;               /* hash chain */
    struct bucket *lru_prev, *lru_next; /* most recent at the head */
    double tokens;
    int64_t last_ns;
    uint64_t hash;
    char key[];
};

enum rate_keying { RATE_GLOBAL = 0, RATE_CLIENT, RATE_HEADER };

struct petrel_rate {
    char *name;
    pthread_mutex_t mu;
    double rate, burst;
    enum rate_keying keying;
    char *header; /* RATE_HEADER: the header's name */
    size_t max_keys;
    struct bucket **table;
    size_t table_size; /* power of two */
    size_t nkeys;
    struct bucket *lru_head, *lru_tail;
    uint64_t allowed, limited, evictions;
    struct petrel_rate *next_rl;
};

static pthread_mutex_t rate_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static petrel_rate_t *rate_registry;

static uint64_t rate_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void lru_unlink(petrel_rate_t *rl, struct bucket *b)
{
    if (b->lru_prev != NULL)
        b->lru_prev->lru_next = b->lru_next;
    else
        rl->lru_head = b->lru_next;
    if (b->lru_next != NULL)
        b->lru_next->lru_prev = b->lru_prev;
    else
        rl->lru_tail = b->lru_prev;
    b->lru_prev = b->lru_next = NULL;
}

static void lru_push_front(petrel_rate_t *rl, struct bucket *b)
{
    b->lru_prev = NULL;
    b->lru_next = rl->lru_head;
    if (rl->lru_head != NULL)
        rl->lru_head->lru_prev = b;
    else
        rl->lru_tail = b;
    rl->lru_head = b;
}

static void table_unlink(petrel_rate_t *rl, struct bucket *b)
{
    struct bucket **pp = &rl->table[b->hash & (rl->table_size - 1)];
    while (*pp != b)
        pp = &(*pp)->hnext;
    *pp = b->hnext;
}

static void rate_clear_locked(petrel_rate_t *rl)
{
    for (struct bucket *b = rl->lru_head, *n; b != NULL; b = n) {
        n = b->lru_next;
        free(b);
    }
    rl->lru_head = rl->lru_tail = NULL;
    memset(rl->table, 0, rl->table_size * sizeof(*rl->table));
    rl->nkeys = 0;
}

/* With rl->mu held: the bucket for key (created full, evicting the least
 * recently used one when the table is at max_keys). `create` false: NULL when
 * absent. */
static struct bucket *bucket_get(petrel_rate_t *rl, const char *key, bool create, int64_t now)
{
    if (key == NULL || rl->keying == RATE_GLOBAL)
        key = "";
    size_t len = strnlen(key, RATE_KEY_MAX);
    uint64_t h = rate_hash(key, len);
    struct bucket **slot = &rl->table[h & (rl->table_size - 1)];
    for (struct bucket *b = *slot; b != NULL; b = b->hnext) {
        if (b->hash == h && strncmp(b->key, key, len) == 0 && b->key[len] == '\0') {
            if (rl->lru_head != b) {
                lru_unlink(rl, b);
                lru_push_front(rl, b);
            }
            return b;
        }
    }
    if (!create)
        return NULL;
    if (rl->nkeys >= rl->max_keys && rl->lru_tail != NULL) {
        struct bucket *old = rl->lru_tail;
        lru_unlink(rl, old);
        table_unlink(rl, old);
        free(old);
        rl->nkeys--;
        rl->evictions++;
    }
    struct bucket *b = petrel_xcalloc(1, sizeof(*b) + len + 1);
    memcpy(b->key, key, len);
    b->key[len] = '\0';
    b->hash = h;
    b->tokens = rl->burst;
    b->last_ns = now;
    b->hnext = *slot;
    *slot = b;
    lru_push_front(rl, b);
    rl->nkeys++;
    return b;
}

static void bucket_refill(const petrel_rate_t *rl, struct bucket *b, int64_t now)
{
    if (now > b->last_ns) {
        b->tokens += rl->rate * (double)(now - b->last_ns) / 1e9;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ns = now;
    }
}

/* Milliseconds until the bucket holds `need` tokens, rounded up. */
static int64_t bucket_wait_ms(const petrel_rate_t *rl, double tokens, double need)
{
    double ms = ceil((need - tokens) / rl->rate * 1000.0);
    return ms < 1 ? 1 : (int64_t)ms;
}

static petrel_rate_t *rate_find_locked(const char *name)
{
    for (petrel_rate_t *r = rate_registry; r != NULL; r = r->next_rl)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

petrel_rate_t *petrel_rate_find(const char *name)
{
    if (name == NULL)
        return NULL;
    pthread_mutex_lock(&rate_registry_mu);
    petrel_rate_t *r = rate_find_locked(name);
    pthread_mutex_unlock(&rate_registry_mu);
    return r;
}

petrel_rate_t *petrel_rate_declare(const char *name, double rate, double burst, const char *key,
                                   int64_t max_keys)
{
    if (name == NULL || name[0] == '\0' || !(rate > 0) || !(burst >= 1) || max_keys < 1)
        return NULL;
    enum rate_keying keying = RATE_GLOBAL;
    const char *header = NULL;
    if (key == NULL || strcmp(key, "global") == 0)
        keying = RATE_GLOBAL;
    else if (strcmp(key, "client") == 0)
        keying = RATE_CLIENT;
    else if (strncmp(key, "header:", 7) == 0 && key[7] != '\0')
        keying = RATE_HEADER, header = key + 7;
    else
        return NULL;
    pthread_mutex_lock(&rate_registry_mu);
    petrel_rate_t *rl = rate_find_locked(name);
    if (rl == NULL) {
        rl = petrel_xcalloc(1, sizeof(*rl));
        rl->name = petrel_xstrdup(name);
        pthread_mutex_init(&rl->mu, NULL);
        rl->next_rl = rate_registry;
        rate_registry = rl;
    }
    pthread_mutex_unlock(&rate_registry_mu);

    pthread_mutex_lock(&rl->mu);
    size_t ts = 16;
    while (ts < (size_t)max_keys && ts < ((size_t)1 << 20))
        ts <<= 1;
    if (ts != rl->table_size || keying != rl->keying || rate != rl->rate || burst != rl->burst) {
        /* A changed limit starts from full buckets, as a restart would. */
        if (rl->table != NULL)
            rate_clear_locked(rl);
        free(rl->table);
        rl->table = petrel_xcalloc(ts, sizeof(*rl->table));
        rl->table_size = ts;
    }
    rl->rate = rate;
    rl->burst = burst;
    rl->keying = keying;
    free(rl->header);
    rl->header = header != NULL ? petrel_xstrdup(header) : NULL;
    rl->max_keys = keying == RATE_GLOBAL ? 1 : (size_t)max_keys;
    pthread_mutex_unlock(&rl->mu);
    return rl;
}

const char *petrel_rate_name(const petrel_rate_t *rl)
{
    return rl->name;
}

int petrel_rate_try_acquire(petrel_rate_t *rl, const char *key, int64_t *retry_after_ms)
{
    int64_t now = petrel_now_ns();
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = bucket_get(rl, key, true, now);
    bucket_refill(rl, b, now);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        rl->allowed++;
        pthread_mutex_unlock(&rl->mu);
        return 0;
    }
    int64_t wait = bucket_wait_ms(rl, b->tokens, 1.0);
    rl->limited++;
    pthread_mutex_unlock(&rl->mu);
    if (retry_after_ms != NULL)
        *retry_after_ms = wait;
    return PETREL_ERATELIMIT;
}

int petrel_rate_acquire(petrel_rate_t *rl, const char *key, int64_t timeout_ms)
{
    PETREL_ASSERT(petrel_fiber_current() != NULL);
    if (petrel_cancelled())
        return PETREL_ECANCELED;
    if (timeout_ms == PETREL_TIMEOUT_DEFAULT)
        timeout_ms = 30000;
    int64_t now = petrel_now_ns();
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = bucket_get(rl, key, true, now);
    bucket_refill(rl, b, now);
    /* Reserve the next token: the bucket may go negative, which queues later
     * callers behind us in arrival order without a waiter list. */
    b->tokens -= 1.0;
    if (b->tokens >= 0) {
        rl->allowed++;
        pthread_mutex_unlock(&rl->mu);
        return 0;
    }
    int64_t wait = bucket_wait_ms(rl, b->tokens, 0.0);
    if (wait > timeout_ms) {
        b->tokens += 1.0;
        rl->limited++;
        pthread_mutex_unlock(&rl->mu);
        return PETREL_ERATELIMIT;
    }
    rl->allowed++;
    pthread_mutex_unlock(&rl->mu);
    petrel_fiber_set_await_kind("rate_limit");
    int rc = petrel_sleep(wait);
    if (rc == 0)
        return 0;
    /* Cancelled: give the reservation back, if the bucket still exists (an
     * evicted bucket comes back full anyway). */
    now = petrel_now_ns();
    pthread_mutex_lock(&rl->mu);
    b = bucket_get(rl, key, false, now);
    if (b != NULL) {
        b->tokens += 1.0;
        bucket_refill(rl, b, now);
    }
    rl->allowed--;
    pthread_mutex_unlock(&rl->mu);
    return PETREL_ECANCELED;
}

void petrel_rate_stats(petrel_rate_t *rl, petrel_rate_stats_t *out)
{
    pthread_mutex_lock(&rl->mu);
    out->rate = rl->rate;
    out->burst = rl->burst;
    out->allowed = rl->allowed;
    out->limited = rl->limited;
    out->keys = rl->nkeys;
    out->evictions = rl->evictions;
    pthread_mutex_unlock(&rl->mu);
}

const char *petrel__rate_header(const petrel_rate_t *rl)
{
    return rl->keying == RATE_HEADER ? rl->header : NULL;
}
int petrel__rate_keyed_by_client(const petrel_rate_t *rl)
{
    return rl->keying == RATE_CLIENT;
}

int petrel__rate_configure(const petrel_config_t *cfg, char *err, size_t errlen)
{
    size_t n = 0;
    const char *const *names = petrel_config_map_names(cfg, "rate_limits", &n);
    for (size_t i = 0; i < n; i++) {
        char k[4][256];
        snprintf(k[0], sizeof(k[0]), "rate_limits.%s.rate", names[i]);
        snprintf(k[1], sizeof(k[1]), "rate_limits.%s.burst", names[i]);
        snprintf(k[2], sizeof(k[2]), "rate_limits.%s.key", names[i]);
        snprintf(k[3], sizeof(k[3]), "rate_limits.%s.max_keys", names[i]);
        if (petrel_rate_declare(names[i], petrel_config_float(cfg, k[0]),
                                petrel_config_float(cfg, k[1]), petrel_config_str(cfg, k[2]),
                                petrel_config_int(cfg, k[3])) == NULL) {
            snprintf(err, errlen,
                     "rate_limits.%s: rate must be > 0, burst >= 1, key global, client or "
                     "header:NAME",
                     names[i]);
            return -1;
        }
    }
    return 0;
}
