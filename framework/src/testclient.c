/*
 * testclient.c - petrel's TestClient: starts an app in-process on an ephemeral
 * loopback port and speaks blocking HTTP/1.1 to it over real TCP sockets.
 *
 * This module owns the test client handle and the small HTTP/1.1 response
 * reader. It keeps no global state, so tests may issue requests from many
 * threads at once; every wait is a poll(2) with a deadline.
 */
#include "petrel/testclient.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "petrel/app.h"
#include "petrel/config.h"

/* Default wait for one request/response exchange. */
#define TC_DEFAULT_TIMEOUT_MS 30000
/* Response headers and bodies beyond these sizes are a test bug or a server bug. */
#define TC_MAX_HEAD ((size_t)256 * 1024)
#define TC_MAX_BODY ((size_t)64 * 1024 * 1024)
#define TC_MAX_HEADERS 256

struct petrel_testclient {
    petrel_app_t *app;
    petrel_server_t *srv;
    int port;
};

/* A growable byte buffer used while reading one response. */
struct tc_buf {
    char *p;
    size_t len, cap;
};

static double tc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void buf_reserve(struct tc_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = petrel_xrealloc(b->p, cap);
    b->cap = cap;
}

/* Waits for `events` on fd until the absolute monotonic deadline; 0 when ready, -1 otherwise. */
static int tc_poll(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - tc_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, (int)left + 1);
        if (rc > 0)
            return 0;
        if (rc == 0)
            return -1;
        if (errno != EINTR)
            return -1;
    }
}

static int tc_send_all(int fd, const char *p, size_t len, double deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (tc_poll(fd, POLLOUT, deadline) != 0)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/*
 * Receives into b until `delim` has been consumed, without consuming a single
 * byte past it: the rest of the stream may be the next pipelined response,
 * and this reader keeps no buffer between calls. MSG_PEEK shows what is
 * pending, and only the prefix up to the delimiter is then received.
 * Returns 0, or -1 on EOF, error, timeout or when b would exceed `max`.
 */
static int tc_recv_until(int fd, struct tc_buf *b, const char *delim, size_t max, double deadline)
{
    size_t dlen = strlen(delim);
    for (;;) {
        if (b->len >= max)
            return -1;
        size_t want = max - b->len < 16384 ? max - b->len : 16384;
        buf_reserve(b, want);
        ssize_t n = recv(fd, b->p + b->len, want, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            if (tc_poll(fd, POLLIN, deadline) != 0)
                return -1;
            continue;
        }
        /* Search the peeked bytes plus the tail already held, for a straddling delimiter. */
        size_t from = b->len >= dlen - 1 ? b->len - (dlen - 1) : 0;
        size_t end = b->len + (size_t)n;
        size_t take = (size_t)n;
        int found = 0;
        for (size_t i = from; i + dlen <= end; i++) {
            if (memcmp(b->p + i, delim, dlen) == 0) {
                take = i + dlen - b->len;
                found = 1;
                break;
            }
        }
        ssize_t got = recv(fd, b->p + b->len, take, MSG_DONTWAIT);
        if (got <= 0)
            return -1;
        b->len += (size_t)got;
        b->p[b->len] = '\0';
        if (found && (size_t)got == take)
            return 0;
    }
}

/* Receives exactly `n` more bytes into b. */
static int tc_recv_exact(int fd, struct tc_buf *b, size_t n, double deadline)
{
    buf_reserve(b, n);
    while (n > 0) {
        ssize_t got = recv(fd, b->p + b->len, n, MSG_DONTWAIT);
        if (got > 0) {
            b->len += (size_t)got;
            n -= (size_t)got;
            continue;
        }
        if (got == 0)
            return -1;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (tc_poll(fd, POLLIN, deadline) != 0)
            return -1;
    }
    b->p[b->len] = '\0';
    return 0;
}

/* Receives until EOF (a response delimited by connection close). */
static int tc_recv_eof(int fd, struct tc_buf *b, double deadline)
{
    for (;;) {
        if (b->len >= TC_MAX_BODY)
            return -1;
        buf_reserve(b, 16384);
        ssize_t got = recv(fd, b->p + b->len, 16384, MSG_DONTWAIT);
        if (got > 0) {
            b->len += (size_t)got;
            b->p[b->len] = '\0';
            continue;
        }
        if (got == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (tc_poll(fd, POLLIN, deadline) != 0)
            return -1;
    }
}

static petrel_test_res_t *res_new(void)
{
    petrel_test_res_t *res = petrel_xcalloc(1, sizeof(*res));
    res->body = petrel_xstrdup("");
    return res;
}

static void res_clear_headers(petrel_test_res_t *res)
{
    for (size_t i = 0; i < res->nheaders; i++) {
        free(res->header_names[i]);
        free(res->header_values[i]);
    }
    free(res->header_names);
    free(res->header_values);
    res->header_names = NULL;
    res->header_values = NULL;
    res->nheaders = 0;
}

/* Parses a status line and header block (NUL-terminated, ends with CRLFCRLF) into res. */
static int tc_parse_head(petrel_test_res_t *res, char *head)
{
    char *line_end = strstr(head, "\r\n");
    if (line_end == NULL || strncmp(head, "HTTP/1.", 7) != 0)
        return -1;
    *line_end = '\0';
    char *sp = strchr(head, ' ');
    if (sp == NULL)
        return -1;
    char *endp;
    long status = strtol(sp + 1, &endp, 10);
    if (endp == sp + 1 || status < 100 || status > 999)
        return -1;
    res->status = (int)status;

    res_clear_headers(res);
    res->header_names = petrel_xcalloc(TC_MAX_HEADERS, sizeof(char *));
    res->header_values = petrel_xcalloc(TC_MAX_HEADERS, sizeof(char *));
    char *line = line_end + 2;
    while (*line != '\0' && strncmp(line, "\r\n", 2) != 0) {
        char *eol = strstr(line, "\r\n");
        if (eol == NULL)
            return -1;
        *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon == NULL || res->nheaders == TC_MAX_HEADERS)
            return -1;
        *colon = '\0';
        for (char *c = line; *c != '\0'; c++)
            *c = (char)tolower((unsigned char)*c);
        char *val = colon + 1;
        while (*val == ' ' || *val == '\t')
            val++;
        size_t vlen = strlen(val);
        while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
            val[--vlen] = '\0';
        res->header_names[res->nheaders] = petrel_xstrdup(line);
        res->header_values[res->nheaders] = petrel_xstrdup(val);
        res->nheaders++;
        line = eol + 2;
    }
    return 0;
}

/* Reads a chunked body into body; trailers are consumed and dropped. */
static int tc_read_chunked(int fd, struct tc_buf *body, double deadline)
{
    struct tc_buf line = {0};
    int rc = -1;
    for (;;) {
        line.len = 0;
        if (tc_recv_until(fd, &line, "\r\n", 1024, deadline) != 0)
            goto out;
        char *endp;
        errno = 0;
        unsigned long long sz = strtoull(line.p, &endp, 16);
        if (endp == line.p || errno != 0 || sz > TC_MAX_BODY - body->len)
            goto out;
        if (sz == 0)
            break;
        if (tc_recv_exact(fd, body, (size_t)sz, deadline) != 0)
            goto out;
        line.len = 0;
        if (tc_recv_exact(fd, &line, 2, deadline) != 0 || memcmp(line.p, "\r\n", 2) != 0)
            goto out;
    }
    /* Trailer section: header lines up to an empty line. */
    for (;;) {
        line.len = 0;
        if (tc_recv_until(fd, &line, "\r\n", 16384, deadline) != 0)
            goto out;
        if (line.len == 2)
            break;
    }
    rc = 0;
out:
    free(line.p);
    return rc;
}

static void tc_parse_json(petrel_test_res_t *res)
{
    const char *ct = petrel_test_res_header(res, "content-type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 || res->body_len == 0)
        return;
    json_error_t jerr;
    res->json = json_loadb(res->body, res->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
}

/*
 * Reads one response from fd. `head_request` says whether it answers a HEAD,
 * whose response carries no body whatever its Content-Length says. Interim
 * 1xx responses are skipped. Always returns a response; status 0 means the
 * connection failed, closed or timed out before a complete response arrived.
 */
static petrel_test_res_t *tc_read_response(int fd, int timeout_ms, int head_request)
{
    petrel_test_res_t *res = res_new();
    struct tc_buf head = {0}, body = {0};
    double deadline = tc_now_ms() + (timeout_ms > 0 ? timeout_ms : TC_DEFAULT_TIMEOUT_MS);

    for (;;) {
        head.len = 0;
        if (tc_recv_until(fd, &head, "\r\n\r\n", TC_MAX_HEAD, deadline) != 0)
            goto fail;
        if (tc_parse_head(res, head.p) != 0)
            goto fail;
        if (res->status >= 200 || res->status == 101)
            break;
    }

    const char *te = petrel_test_res_header(res, "transfer-encoding");
    const char *cl = petrel_test_res_header(res, "content-length");
    if (head_request || res->status == 204 || res->status == 304 || res->status == 101) {
        /* No body follows, whatever the framing headers announce. */
    } else if (te != NULL && strcasestr(te, "chunked") != NULL) {
        if (tc_read_chunked(fd, &body, deadline) != 0)
            goto fail;
    } else if (cl != NULL) {
        char *endp;
        errno = 0;
        unsigned long long n = strtoull(cl, &endp, 10);
        if (endp == cl || *endp != '\0' || errno != 0 || n > TC_MAX_BODY)
            goto fail;
        if (tc_recv_exact(fd, &body, (size_t)n, deadline) != 0)
            goto fail;
    } else {
        if (tc_recv_eof(fd, &body, deadline) != 0)
            goto fail;
    }

    free(res->body);
    if (body.p == NULL)
        body.p = petrel_xstrdup("");
    res->body = body.p;
    res->body_len = body.len;
    body.p = NULL;
    tc_parse_json(res);
    free(head.p);
    return res;

fail:
    res->status = 0;
    res_clear_headers(res);
    free(head.p);
    free(body.p);
    return res;
}

petrel_test_res_t *petrel_test_read_response(int fd, int timeout_ms)
{
    return tc_read_response(fd, timeout_ms, 0);
}

int petrel_test_connect(const petrel_testclient_t *tc)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tc->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc;
    do {
        rc = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Appends formatted text to b (the request being built). */
__attribute__((format(printf, 2, 3))) static void buf_printf(struct tc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    PETREL_ASSERT(n >= 0);
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    (void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int has_header(const char *const *headers, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        if (strncasecmp(headers[i], name, nlen) == 0 && headers[i][nlen] == ':')
            return 1;
    }
    return 0;
}

petrel_test_res_t *petrel_test_request(petrel_testclient_t *tc, const char *method,
                                       const char *target, const char *const *headers,
                                       const char *body, size_t body_len)
{
    double start = tc_now_ms();
    double deadline = start + TC_DEFAULT_TIMEOUT_MS;
    struct tc_buf req = {0};
    petrel_test_res_t *res = NULL;

    buf_printf(&req, "%s %s HTTP/1.1\r\n", method, target);
    if (!has_header(headers, "host"))
        buf_printf(&req, "Host: 127.0.0.1:%d\r\n", tc->port);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        buf_printf(&req, "%s\r\n", headers[i]);
    int has_body = body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                   strcmp(method, "PATCH") == 0;
    if (has_body && !has_header(headers, "content-length") &&
        !has_header(headers, "transfer-encoding"))
        buf_printf(&req, "Content-Length: %zu\r\n", body != NULL ? body_len : 0);
    buf_printf(&req, "\r\n");
    if (body != NULL && body_len > 0) {
        buf_reserve(&req, body_len);
        memcpy(req.p + req.len, body, body_len);
        req.len += body_len;
    }

    int fd = petrel_test_connect(tc);
    if (fd < 0)
        goto fail;
    if (tc_send_all(fd, req.p, req.len, deadline) != 0) {
        /* The server may answer early (413, 431) and close before reading everything. */
        res = tc_read_response(fd, 2000, strcmp(method, "HEAD") == 0);
    } else {
        res = tc_read_response(fd, (int)(deadline - tc_now_ms()), strcmp(method, "HEAD") == 0);
    }
    close(fd);
    goto out;

fail:
    res = res_new();
out:
    free(req.p);
    res->elapsed_ms = tc_now_ms() - start;
    return res;
}

petrel_test_res_t *petrel_test_get(petrel_testclient_t *tc, const char *target)
{
    return petrel_test_request(tc, "GET", target, NULL, NULL, 0);
}

petrel_test_res_t *petrel_test_post_json(petrel_testclient_t *tc, const char *target,
                                         const char *json_text)
{
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    return petrel_test_request(tc, "POST", target, hdrs, json_text,
                               json_text != NULL ? strlen(json_text) : 0);
}

const char *petrel_test_res_header(const petrel_test_res_t *res, const char *name)
{
    for (size_t i = 0; i < res->nheaders; i++) {
        if (strcasecmp(res->header_names[i], name) == 0)
            return res->header_values[i];
    }
    return NULL;
}

void petrel_test_res_free(petrel_test_res_t *res)
{
    if (res == NULL)
        return;
    res_clear_headers(res);
    free(res->body);
    json_decref(res->json);
    free(res);
}

/* Applies one "key=value" override. */
static int tc_apply_override(petrel_config_t *cfg, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv) {
        (void)snprintf(err, errlen, "override \"%s\" is not key=value", kv);
        return PETREL_EINVAL;
    }
    char key[256];
    size_t klen = (size_t)(eq - kv);
    if (klen >= sizeof(key)) {
        (void)snprintf(err, errlen, "override key too long: %s", kv);
        return PETREL_EINVAL;
    }
    memcpy(key, kv, klen);
    key[klen] = '\0';
    return petrel_config_set(cfg, key, eq + 1, err, errlen);
}

petrel_testclient_t *petrel_test_start(petrel_app_t *app, const char *config_file,
                                       const char *const *overrides)
{
    char err[512] = "";
    petrel_config_t *cfg = petrel_app_config(app);

    /* The process environment applies, so PETREL_* variables override the file as in production. */
    if (petrel_config_load(cfg, config_file, NULL, err, sizeof(err)) != 0)
        goto fail;
    if (petrel_config_set(cfg, "server.host", "127.0.0.1", err, sizeof(err)) != 0 ||
        petrel_config_set(cfg, "server.port", "0", err, sizeof(err)) != 0)
        goto fail;
    for (size_t i = 0; overrides != NULL && overrides[i] != NULL; i++) {
        if (tc_apply_override(cfg, overrides[i], err, sizeof(err)) != 0)
            goto fail;
    }

    petrel_server_t *srv = petrel_server_start(app, err, sizeof(err));
    if (srv == NULL)
        goto fail;
    petrel_testclient_t *tc = petrel_xcalloc(1, sizeof(*tc));
    tc->app = app;
    tc->srv = srv;
    tc->port = petrel_server_port(srv);
    return tc;

fail:
    fprintf(stderr, "petrel_test_start: %s\n", err[0] != '\0' ? err : "failed");
    return NULL;
}

void petrel_test_stop(petrel_testclient_t *tc)
{
    if (tc == NULL)
        return;
    (void)petrel_server_stop(tc->srv);
    free(tc);
}

int petrel_test_port(const petrel_testclient_t *tc)
{
    return tc->port;
}
