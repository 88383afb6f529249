/*
 * bare_h2o.c - the baseline petrel is measured against: a minimal libh2o
 * hello-world server with no framework in between. It answers GET /json and
 * GET /plaintext the way TechEmpower asks, using the same threading model as
 * petrel (one evloop and one SO_REUSEPORT listener per thread), so that a
 * petrel/bare ratio measures only what petrel adds.
 *
 * Usage: bare_h2o [THREADS [PORT]]   (defaults: 1 thread, port 8080; 127.0.0.1 only)
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

static h2o_globalconf_t config;
static int listen_port = 8080;

/* Each thread owns its loop, its context and its listener: nothing is shared
 * after startup, exactly like petrel's workers. */
struct worker {
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
};

static int send_fixed(h2o_req_t *req, const char *ctype, const char *body, size_t len)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return -1; /* let h2o answer 404 for anything but GET */
    req->res.status = 200;
    req->res.reason = "OK";
    /* h2o_send_inline sets neither header; without a length HTTP/1.1 goes chunked. */
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                   strlen(ctype));
    h2o_send_inline(req, body, len);
    return 0;
}

static int json_cb(h2o_handler_t *self, h2o_req_t *req)
{
    static const char body[] = "{\"message\":\"Hello, World!\"}";
    (void)self;
    return send_fixed(req, "application/json", body, sizeof(body) - 1);
}

static int plaintext_cb(h2o_handler_t *self, h2o_req_t *req)
{
    static const char body[] = "Hello, World!";
    (void)self;
    return send_fixed(req, "text/plain", body, sizeof(body) - 1);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(listener->data, sock);
}

static int open_listener(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)listen_port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, SOMAXCONN) != 0) {
        perror("bare_h2o: listener");
        exit(1);
    }
    return fd;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, loop, &config);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = config.hosts;
    h2o_socket_t *listener =
        h2o_evloop_socket_create(loop, open_listener(), H2O_SOCKET_FLAG_DONT_READ);
    listener->data = &w->accept_ctx;
    h2o_socket_read_start(listener, on_accept);
    for (;;)
        h2o_evloop_run(loop, INT32_MAX);
    return NULL;
}

static void route(h2o_hostconf_t *host, const char *path, int (*cb)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, path, 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = cb;
}

int main(int argc, char **argv)
{
    long nthreads = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
    if (argc > 2)
        listen_port = (int)strtol(argv[2], NULL, 10);
    if (nthreads < 1 || nthreads > 256 || listen_port < 1 || listen_port > 65535) {
        fprintf(stderr, "usage: %s [THREADS [PORT]]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&config);
    h2o_hostconf_t *host =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    route(host, "/json", json_cb);
    route(host, "/plaintext", plaintext_cb);

    struct worker *workers = calloc((size_t)nthreads, sizeof(*workers));
    if (workers == NULL)
        return 1;
    for (long i = 1; i < nthreads; i++) {
        int rc = pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
        if (rc != 0) {
            fprintf(stderr, "bare_h2o: pthread_create failed (%d)\n", rc);
            return 1;
        }
    }
    fprintf(stderr, "bare_h2o: %ld thread(s) on http://127.0.0.1:%d\n", nthreads, listen_port);
    worker_main(&workers[0]); /* the main thread is worker 0; runs until killed */
    return 0;
}
