/*
 * support.h - helpers shared by petrel's integration tests: free ports, child
 * processes of the real binaries, waiting for a port, raw HTTP to a port,
 * running many requests from threads at once, temp dirs and files.
 * Every helper is thread-safe and keeps no global state.
 */
#ifndef PETREL_TEST_SUPPORT_H
#define PETREL_TEST_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

#include <petrel/testclient.h>

#ifndef PETREL_SOURCE_DIR
#define PETREL_SOURCE_DIR "."
#endif
#ifndef PETREL_BINARY_DIR
#define PETREL_BINARY_DIR "."
#endif

/** Monotonic clock, milliseconds. */
double support_now_ms(void);
/** Sleeps `ms` milliseconds (nanosleep, restarted on EINTR). */
void support_sleep_ms(int ms);

/** A TCP port that was free on 127.0.0.1 a moment ago (bind to 0, read it, close). */
int support_free_port(void);
/** Polls until 127.0.0.1:port accepts a connection. Returns 0, or -1 after timeout_ms. */
int support_wait_port(int port, int timeout_ms);
/** Connects to 127.0.0.1:port. Returns the fd (owned: close()) or -1. */
int support_connect(int port);

/**
 * Sends one request on a new connection to 127.0.0.1:port and reads the response
 * (status 0 when the connection failed). headers: NULL-terminated "Name: value" list or NULL.
 * Owned: petrel_test_res_free().
 */
petrel_test_res_t *support_http(int port, const char *method, const char *target,
                                const char *const *headers, const char *body, size_t body_len,
                                int timeout_ms);
/** GET shorthand. */
petrel_test_res_t *support_get(int port, const char *target, int timeout_ms);
/** Polls GET target until it answers `status`. Returns 0, or -1 after timeout_ms. */
int support_wait_status(int port, const char *target, int status, int timeout_ms);

/** A child process with its stdout/stderr captured into files. */
typedef struct support_proc {
    pid_t pid;
    int exited;      /**< set once reaped */
    int exit_status; /**< exit code, or 128 + signal */
    char dir[256];   /**< temp dir holding out.txt / err.txt */
    char out_path[300];
    char err_path[300];
} support_proc_t;

/**
 * Starts argv[0] (a path) with argv, in the process environment minus every PETREL_*
 * variable, plus `env` ("NAME=value", NULL-terminated, may be NULL). Returns 0 or -1.
 */
int support_spawn(support_proc_t *p, const char *const *argv, const char *const *env);
/** Waits for the child to exit. Returns its exit status (code, or 128+signal), -1 on timeout. */
int support_wait_exit(support_proc_t *p, int timeout_ms);
/** Sends `sig` to a running child. */
void support_signal(support_proc_t *p, int sig);
/** Kills (SIGKILL) and reaps the child if still running, and removes its temp files. */
void support_proc_cleanup(support_proc_t *p);
/** The captured stdout / stderr so far. Owned: free(). Never NULL. */
char *support_proc_stdout(const support_proc_t *p);
char *support_proc_stderr(const support_proc_t *p);

/** Path of the petrel-app binary in the build tree. */
#define SUPPORT_APP_BINARY PETREL_BINARY_DIR "/petrel-app"
/** Path of the test configuration. */
#define SUPPORT_TEST_CONFIG PETREL_SOURCE_DIR "/config/test.yaml"

/**
 * The reference app as a user runs it: applies migrations to the suite's PostgreSQL
 * (PETREL_TEST_DATABASE_URL, else PETREL_DATABASE_URL), then starts `petrel-app serve --config
 * config/test.yaml` on a free port with `workers` workers, that database and `extra_env`
 * ("NAME=value", NULL-terminated, may be NULL), and waits until /readyz answers 200.
 * Returns the port; fails the current criterion test (with the app's stderr) otherwise.
 */
int support_start_app(support_proc_t *p, int workers, const char *const *extra_env);
/** SIGTERM, expects exit status 0 within 10 s, and cleans up. */
void support_stop_app(support_proc_t *p);

/**
 * Runs fn(i, arg) for i in [0, n) on n threads at once (all released together by a
 * barrier) and joins them. Returns 0, or -1 when a thread could not be created.
 */
int support_parallel(int n, void (*fn)(int i, void *arg), void *arg);

/** Creates a temp directory (mkdtemp) into buf. Returns 0 or -1. */
int support_mkdtemp(char *buf, size_t len);
/** Removes a directory tree created by support_mkdtemp (rm -rf through nftw). */
void support_rmtree(const char *dir);
/** Writes `text` to path. Returns 0 or -1. */
int support_write_file(const char *path, const char *text);
/** Reads a whole file. Owned: free(). NULL when it cannot be read. */
char *support_read_file(const char *path);
/** Runs a shell command, returns its stdout (owned: free(), never NULL) and sets *status
 * to the exit code (-1 when it could not run). */
char *support_run(const char *cmd, int *status);
/** True when the command `name` is on PATH. */
int support_have_command(const char *name);

/** True when `got` equals the JSON text `expected` (jansson json_equal); on a mismatch
 * both are printed to stderr, labelled `what`. */
int support_json_eq(const json_t *got, const char *expected, const char *what);

#endif
