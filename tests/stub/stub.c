/*
 * stub.c - petrel-stub, the upstream HTTP/1.1 server the client tests and the
 * benchmark talk to. Blocking sockets, one thread per connection: simple, and
 * its connection counters are exact, which is what the tests assert on.
 *
 *   petrel-stub [--port N] [--host 127.0.0.1]    (port 0: ephemeral; prints "port N")
 *
 * Routes (keep-alive unless told otherwise):
 *   GET /price/{ticker}   {"ticker":..,"price":..}
 *   GET /weather/{city}   {"city":..,"temp_c":..}
 *   GET /stats            {"accepted","current","high_water","closed","requests",
 *                          "aborted"}  (aborted: the client hung up during a delay)
 *   GET|POST /reset       zeroes the counters (high_water restarts at current)
 *   POST /echo            echoes the request body and a few headers as JSON
 * Query parameters on the data routes: delay_ms, jitter_ms (added delay in
 * [0, jitter_ms)), fail=STATUS (answer that status), close=1 (drop the
 * connection without answering), chunked=1 (chunked body), size=N (pad the
 * body to about N bytes), cut=1 (announce the full length, send half, close),
 * conn_close=1 (answer with Connection: close).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static atomic_long accepted, current, high_water, closed_n, requests, aborted;

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sleeps ms unless the client hangs up first, as a real server notices a client
 * that left (then true). A client that half-closes (SHUT_WR) counts as gone. */
static bool nap_or_hangup(int fd, long ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = ms - ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L);
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLRDHUP};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0)
            return true;
        if (n > 0) /* pipelined bytes: keep sleeping, without spinning on them */
            nap_ms(left);
    }
}

static uint64_t xorshift(void)
{
    static __thread uint64_t s;
    if (s == 0)
        s = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&s ^ 0x9e3779b97f4a7c15ULL;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Value of query parameter `name` in q (NUL-terminated copy into out), or NULL. */
static const char *qparam(const char *q, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    while (q != NULL && *q != '\0') {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t vl = len - nl - 1;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, q + nl + 1, vl);
            out[vl] = '\0';
            return out;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static long qlong(const char *q, const char *name, long dflt)
{
    char b[32];
    if (qparam(q, name, b, sizeof(b)) == NULL)
        return dflt;
    return strtol(b, NULL, 10);
}

static int respond(int fd, int status, const char *body, size_t blen, bool chunked, bool cut,
                   bool conn_close)
{
    char head[512];
    int hl;
    if (chunked) {
        hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                      "Transfer-Encoding: chunked\r\n%s\r\n",
                      status, conn_close ? "Connection: close\r\n" : "");
        if (send_all(fd, head, (size_t)hl) != 0)
            return -1;
        /* Several chunks, to exercise the decoder across reads. */
        size_t off = 0;
        while (off < blen) {
            size_t n = blen - off < 7 ? blen - off : 7;
            char sz[32];
            int sl = snprintf(sz, sizeof(sz), "%zx;ext=1\r\n", n);
            if (send_all(fd, sz, (size_t)sl) != 0 || send_all(fd, body + off, n) != 0 ||
                send_all(fd, "\r\n", 2) != 0)
                return -1;
            off += n;
        }
        static const char last[] = "0\r\nX-Trailer: 1\r\n\r\n";
        return send_all(fd, last, sizeof(last) - 1);
    }
    hl =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                 status, blen, conn_close ? "Connection: close\r\n" : "");
    if (send_all(fd, head, (size_t)hl) != 0)
        return -1;
    if (cut) {
        (void)send_all(fd, body, blen / 2);
        return -1; /* then close: the client sees the body cut short */
    }
    return send_all(fd, body, blen);
}

/* Handles one request; returns 0 to keep the connection, -1 to close it. */
static int handle(int fd, const char *method, char *target, const char *body, size_t blen)
{
    atomic_fetch_add(&requests, 1);
    char *q = strchr(target, '?');
    if (q != NULL)
        *q++ = '\0';
    char buf[512];
    if (strcmp(target, "/stats") == 0) {
        int n = snprintf(buf, sizeof(buf),
                         "{\"accepted\":%ld,\"current\":%ld,\"high_water\":%ld,\"closed\":%ld,"
                         "\"requests\":%ld,\"aborted\":%ld}",
                         atomic_load(&accepted), atomic_load(&current), atomic_load(&high_water),
                         atomic_load(&closed_n), atomic_load(&requests), atomic_load(&aborted));
        return respond(fd, 200, buf, (size_t)n, false, false, false);
    }
    if (strcmp(target, "/reset") == 0) {
        atomic_store(&accepted, 0);
        atomic_store(&closed_n, 0);
        atomic_store(&requests, 0);
        atomic_store(&aborted, 0);
        atomic_store(&high_water, atomic_load(&current));
        return respond(fd, 200, "{\"reset\":true}", 14, false, false, false);
    }
    if (strcmp(method, "POST") == 0 && strcmp(target, "/echo") == 0) {
        char *out = malloc(blen + 64);
        int n = snprintf(out, blen + 64, "{\"len\":%zu,\"body\":%.*s}", blen, (int)blen,
                         blen ? body : "null");
        int rc = respond(fd, 200, out, (size_t)n, false, false, false);
        free(out);
        return rc;
    }
    long delay = qlong(q, "delay_ms", 0), jitter = qlong(q, "jitter_ms", 0);
    if (jitter > 0)
        delay += (long)(xorshift() % (uint64_t)jitter);
    if (delay > 0 && nap_or_hangup(fd, delay)) {
        atomic_fetch_add(&aborted, 1);
        return -1;
    }
    if (qlong(q, "close", 0))
        return -1;
    long fail = qlong(q, "fail", 0);
    bool chunked = qlong(q, "chunked", 0) != 0, cut = qlong(q, "cut", 0) != 0;
    bool conn_close = qlong(q, "conn_close", 0) != 0;
    long size = qlong(q, "size", 0);
    const char *name = NULL;
    int kind = 0;
    if (strncmp(target, "/price/", 7) == 0) {
        name = target + 7;
        kind = 1;
    } else if (strncmp(target, "/weather/", 9) == 0) {
        name = target + 9;
        kind = 2;
    }
    if (kind == 0 || *name == '\0' || strlen(name) > 64 || strpbrk(name, "\"\\/") != NULL)
        return respond(fd, 404, "{\"detail\":\"Not Found\"}", 22, false, false, false) == 0 &&
                       !conn_close
                   ? 0
                   : -1;
    if (fail >= 100 && fail <= 599) {
        int n = snprintf(buf, sizeof(buf), "{\"detail\":\"stub failure %ld\"}", fail);
        return respond(fd, (int)fail, buf, (size_t)n, chunked, false, conn_close) == 0 &&
                       !conn_close
                   ? 0
                   : -1;
    }
    unsigned h = 0;
    for (const char *p = name; *p; p++)
        h = h * 31 + (unsigned char)*p;
    int n = kind == 1 ? snprintf(buf, sizeof(buf), "{\"ticker\":\"%s\",\"price\":%u.%02u", name,
                                 10 + h % 990, h % 100)
                      : snprintf(buf, sizeof(buf), "{\"city\":\"%s\",\"temp_c\":%d", name,
                                 (int)(h % 40) - 5);
    size_t total = (size_t)n;
    char *out = buf;
    char *big = NULL;
    if (size > 0 && (size_t)size > total + 10) {
        big = malloc((size_t)size + 16);
        memcpy(big, buf, total);
        size_t pad = (size_t)size - total - 10;
        memcpy(big + total, ",\"pad\":\"", 8);
        memset(big + total + 8, 'x', pad);
        total += 8 + pad;
        big[total++] = '"';
        out = big;
    }
    out[total++] = '}';
    int rc = respond(fd, 200, out, total, chunked, cut, conn_close);
    free(big);
    return rc == 0 && !conn_close ? 0 : -1;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        /* read one request head */
        char *end = NULL;
        while ((end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL) == NULL) {
            if (len == cap)
                goto done;
            ssize_t n = recv(fd, buf + len, cap - len, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                goto done;
            len += (size_t)n;
        }
        size_t hlen = (size_t)(end - buf) + 4;
        char method[16], target[2048];
        if (sscanf(buf, "%15s %2047s", method, target) != 2)
            goto done;
        long clen = 0;
        for (char *p = buf; p < end; p++) {
            if (strncasecmp(p, "\ncontent-length:", 16) == 0)
                clen = strtol(p + 16, NULL, 10);
        }
        if (clen < 0 || (size_t)clen > cap - hlen)
            goto done;
        while (len < hlen + (size_t)clen) {
            ssize_t n = recv(fd, buf + len, cap - len, 0);
            if (n <= 0)
                goto done;
            len += (size_t)n;
        }
        int keep = handle(fd, method, target, buf + hlen, (size_t)clen);
        memmove(buf, buf + hlen + clen, len - hlen - (size_t)clen);
        len -= hlen + (size_t)clen;
        if (keep != 0)
            goto done;
    }
done:
    free(buf);
    close(fd);
    atomic_fetch_sub(&current, 1);
    atomic_fetch_add(&closed_n, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 1024) != 0) {
        fprintf(stderr, "petrel-stub: cannot listen on %s:%d\n", host, port);
        return 1;
    }
    socklen_t sl = sizeof(sa);
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    printf("port %d\n", ntohs(sa.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        atomic_fetch_add(&accepted, 1);
        long cur = atomic_fetch_add(&current, 1) + 1;
        long hw = atomic_load(&high_water);
        while (cur > hw && !atomic_compare_exchange_weak(&high_water, &hw, cur))
            ;
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        if (pthread_create(&t, &at, conn_main, (void *)(intptr_t)fd) != 0) {
            close(fd);
            atomic_fetch_sub(&current, 1);
        }
        pthread_attr_destroy(&at);
    }
}
