/*
 * limits_routes.c - the reference app's limits and CPU-work routes: the
 * bounded work queue (POST /api/jobs, GET /api/jobs/{id}), CPU work in the
 * process pool (POST /api/score, and the debug-only inline variant that shows
 * the stall it avoids), and one route each behind a semaphore and a rate
 * limit (GET /api/limited, GET /api/throttled). Limits live in config
 * (semaphores.limited, rate_limits.throttled, queue.*, process_pool.*).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <petrel/petrel.h>

#include "app.h"

#define SCORE_MAX_ROUNDS 1000000

/* ---- CPU work: iterated SHA-256 ---- */

/* hex(SHA-256^rounds(data)); runs in a pool child or, for the benchmark, inline. */
static void score_compute(const char *data, size_t len, int64_t rounds, char hex[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL);
    for (int64_t i = 1; i < rounds; i++)
        EVP_Digest(d, sizeof(d), d, &dl, EVP_sha256(), NULL);
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = x[d[i] >> 4];
        hex[2 * i + 1] = x[d[i] & 15];
    }
    hex[64] = '\0';
}

/* The pool function: JSON {"data","rounds"} in, {"digest","rounds"} out. */
static int score_fn(const void *in, size_t in_len, void **out, size_t *out_len)
{
    json_t *req = json_loadb(in, in_len, 0, NULL);
    if (req == NULL)
        return PETREL_EINVAL;
    const char *data = json_string_value(json_object_get(req, "data"));
    json_int_t rounds = json_integer_value(json_object_get(req, "rounds"));
    if (data == NULL || rounds < 1 || rounds > SCORE_MAX_ROUNDS) {
        json_decref(req);
        return PETREL_EINVAL;
    }
    char hex[65];
    score_compute(data, strlen(data), rounds, hex);
    json_t *res = json_pack("{s:s,s:I}", "digest", hex, "rounds", rounds);
    json_decref(req);
    char *text = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    if (text == NULL)
        return PETREL_ENOMEM;
    *out = text;
    *out_len = strlen(text);
    return 0;
}

/* POST /api/score: the work runs in a pool child; this fiber only awaits it. */
static int api_score(petrel_req_t *req)
{
    json_t *body = petrel_body(req);
    json_t *res = NULL;
    int rc = petrel_procpool_call_json("score", body, &res, PETREL_TIMEOUT_DEFAULT);
    switch (rc) {
    case 0:
        return petrel_json(req, 200, res);
    case PETREL_EOVERLOAD:
        petrel_resp_header(req, "Retry-After", "1");
        return petrel_error(req, 503, "CPU pool is busy");
    case PETREL_ETIMEDOUT:
        return petrel_error(req, 504, "Score job timed out; its worker process was replaced");
    case PETREL_ECANCELED:
        return rc;
    default:
        return petrel_error(req, 500, "Score worker process failed; it was replaced");
    }
}

/* POST /api/score_inline (debug only): the same work on the event loop, to
 * measure the stall the process pool avoids. */
static int api_score_inline(petrel_req_t *req)
{
    if (!petrel_config_bool(petrel_app_config(petrel_req_app(req)), "debug"))
        return petrel_error(req, 404, "Not Found");
    json_t *body = petrel_body(req);
    const char *data = json_string_value(json_object_get(body, "data"));
    json_int_t rounds = json_integer_value(json_object_get(body, "rounds"));
    char hex[65];
    score_compute(data, strlen(data), rounds, hex);
    return petrel_json(req, 200, json_pack("{s:s,s:I}", "digest", hex, "rounds", rounds));
}

/* ---- work queue ---- */

/* The demo job: optionally sleeps, fails its first `fail_times` attempts, then echoes. */
static int demo_job(petrel_job_t *job, void *arg)
{
    (void)arg;
    const json_t *p = petrel_job_payload(job);
    json_int_t sleep_ms = json_integer_value(json_object_get(p, "sleep_ms"));
    json_int_t fail_times = json_integer_value(json_object_get(p, "fail_times"));
    if (sleep_ms > 0) {
        int rc = petrel_sleep(sleep_ms);
        if (rc != 0)
            return rc;
    }
    if (petrel_job_attempt(job) <= fail_times) {
        char msg[64];
        snprintf(msg, sizeof(msg), "simulated failure on attempt %d", petrel_job_attempt(job));
        petrel_job_set_error(job, msg);
        return PETREL_EIO;
    }
    json_t *data = json_object_get(p, "data");
    petrel_job_set_result(job, json_pack("{s:O?,s:i,s:I}", "echo", data, "attempts",
                                         petrel_job_attempt(job), "finished_ms",
                                         (json_int_t)petrel_now_ms()));
    return 0;
}

/* POST /api/jobs: 202 with the job's id, or 503 + Retry-After when the queue is full. */
static int api_jobs_post(petrel_req_t *req)
{
    char id[PETREL_JOB_ID_LEN];
    int rc = petrel_queue_try_put("demo", petrel_body(req), id);
    if (rc == PETREL_EAGAIN || rc == PETREL_EOVERLOAD) {
        petrel_resp_header(req, "Retry-After", "1");
        return petrel_error(req, 503,
                            rc == PETREL_EAGAIN ? "Job queue is full" : "Service is shutting down");
    }
    if (rc != 0)
        return rc;
    return petrel_json(req, 202,
                       json_pack("{s:s,s:s,s:s}", "id", id, "status", "queued", "status_url",
                                 petrel_req_sprintf(req, "/api/jobs/%s", id)));
}

/* GET /api/jobs/{job_id}: the job's status. */
static int api_jobs_get(petrel_req_t *req)
{
    json_t *st = NULL;
    if (petrel_queue_job_status(petrel_param_str(req, "job_id", ""), &st) != 0)
        return petrel_error(req, 404, "Job not found");
    return petrel_json(req, 200, st);
}

/* ---- a semaphore and a rate limit ---- */

static atomic_int limited_now, limited_max;

/* GET /api/limited?ms=N: behind semaphore "limited"; reports the highest concurrency it saw. */
static int api_limited(petrel_req_t *req)
{
    int now = atomic_fetch_add(&limited_now, 1) + 1;
    int seen = atomic_load(&limited_max);
    while (now > seen && !atomic_compare_exchange_weak(&limited_max, &seen, now))
        ;
    int rc = petrel_sleep(petrel_param_int(req, "ms", 100));
    atomic_fetch_sub(&limited_now, 1);
    if (rc != 0)
        return rc;
    return petrel_json(req, 200,
                       json_pack("{s:i,s:i}", "concurrent", now, "max_concurrent_seen",
                                 atomic_load(&limited_max)));
}

/* GET /api/throttled: behind rate limit "throttled". */
static int api_throttled(petrel_req_t *req)
{
    return petrel_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static const petrel_field_t job_fields[] = {
    PETREL_F("data", PETREL_T_ANY, .description = "echoed back in the result"),
    PETREL_F_INT("sleep_ms", .ge = "0", .le = "60000", .dflt = "0"),
    PETREL_F_INT("fail_times", .ge = "0", .le = "100", .dflt = "0",
                 .description = "fail this many attempts first (demonstrates retries)"),
    PETREL_F_END,
};

static const petrel_field_t score_fields[] = {
    PETREL_F_STR("data", .required = true, .max_length = 65536),
    PETREL_F_INT("rounds", .ge = "1", .le = "1000000", .dflt = "100000"),
    PETREL_F_END,
};

static const petrel_route_t limits_routes[] = {
    PETREL_ROUTE(POST, "/api/jobs", api_jobs_post, .summary = "Queue a job", .tags = {"jobs"},
                 .body = PETREL_OBJECT("JobIn", job_fields), .status_code = 202,
                 .responses = {{503, "queue full (Retry-After)", NULL}}),
    PETREL_ROUTE(GET, "/api/jobs/{job_id}", api_jobs_get, .summary = "A job's status",
                 .tags = {"jobs"}, .responses = {{404, "unknown job", NULL}}),
    PETREL_ROUTE(POST, "/api/score", api_score, .summary = "CPU work in the process pool",
                 .tags = {"cpu"}, .body = PETREL_OBJECT("ScoreIn", score_fields),
                 .responses = {{503, "pool busy", NULL}, {504, "job timed out", NULL}}),
    PETREL_ROUTE(POST, "/api/score_inline", api_score_inline,
                 .summary = "The same CPU work on the event loop (debug only; benchmark)",
                 .tags = {"cpu"}, .body = PETREL_OBJECT("ScoreIn", score_fields),
                 .include_in_schema_false = true),
    PETREL_ROUTE(GET, "/api/limited", api_limited, .summary = "Behind semaphore \"limited\"",
                 .tags = {"limits"}, .max_concurrent = "limited",
                 .query = {PETREL_Q_INT("ms", .dflt = "100", .ge = "0", .le = "10000")},
                 .responses = {{503, "too many concurrent requests", NULL}}),
    PETREL_ROUTE(GET, "/api/throttled", api_throttled, .summary = "Behind rate limit \"throttled\"",
                 .tags = {"limits"}, .rate_limit = "throttled",
                 .responses = {{429, "rate limit exceeded", NULL}}),
};

int app_limits_init(petrel_app_t *app)
{
    int rc =
        petrel_app_add_routes(app, limits_routes, sizeof(limits_routes) / sizeof(limits_routes[0]));
    if (rc == 0)
        rc = petrel_queue_register("demo", demo_job, NULL);
    if (rc == 0)
        rc = petrel_procpool_register("score", score_fn);
    /* Code defaults, so the routes work with any config; config sections override them. */
    if (rc == 0 && petrel_sem_declare("limited", 3, 1000) == NULL)
        rc = PETREL_EINVAL;
    if (rc == 0 && petrel_rate_declare("throttled", 5, 10, "client", 10000) == NULL)
        rc = PETREL_EINVAL;
    return rc;
}
