/* oracle.c - the C side of the numpy/scipy oracle: raw float64 files in,
 * raw float64 file out.  One python process per test process answers every
 * call (tests/oracle/oracle.py --serve), so numpy, scipy, scikit-learn and
 * Evidently are imported once, not once per check. */
#include "oracle.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "core/kiln_alloc.h"

static int seq;

const char *oracle_tmp_path(char *buf, const char *suffix)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, 512, "%s/kiln-oracle-%ld-%d%s", dir && *dir ? dir : "/tmp",
             (long)getpid(), seq++, suffix);
    return buf;
}

const char *oracle_data_dir(void)
{
    const char *d = getenv("KILN_DATA");
    return d && *d ? d : "../shared/data";
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* The server: started by the first call of this process, it reads one
 * request line per call on its fd 3 (one end of a socketpair) and answers
 * "ok" or "error" (the traceback goes to its stderr, the test's log).  A
 * forked child that calls the oracle starts its own; a server that died
 * (killed by a test, crashed in an op) is restarted once per call. */
static struct {
    pid_t owner;   /* the process that started it: pid 0 = none */
    pid_t pid;
    int fd;        /* our end of the socketpair, close-on-exec */
} server = {0, 0, -1};

#define ORACLE_SERVER_FD 3

static void server_stop(void)
{
    if (server.owner != getpid()) {
        server.owner = 0;   /* a forked child's copy: not ours to stop */
        server.fd = -1;
        return;
    }
    close(server.fd);   /* EOF: the server exits */
    server.fd = -1;
    server.owner = 0;
    /* bounded: a forked child may still hold a copy of the socket */
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(server.pid, NULL, WNOHANG);
        if (r != 0)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(server.pid, SIGKILL);
    waitpid(server.pid, NULL, 0);
}

static void server_stop_at_exit(void)
{
    if (server.owner == getpid())
        server_stop();
}

static int server_start(void)
{
    static int atexit_done;
    const char *py = getenv("KILN_PYTHON");
    const char *root = getenv("KILN_ROOT");
    char script[1024], fd_arg[16];
    int sv[2];

    py = py && *py ? py : ".venv/bin/python";
    snprintf(script, sizeof script, "%s/tests/oracle/oracle.py", root && *root ? root : ".");
    snprintf(fd_arg, sizeof fd_arg, "%d", ORACLE_SERVER_FD);
    char *argv[] = {(char *)py, script, "--serve", fd_arg, NULL};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        fprintf(stderr, "oracle: socketpair: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL);   /* the log keeps the test's lines before the server's */
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "oracle: fork: %s\n", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        /* dup2 leaves the new fd without close-on-exec (unless it is the
         * same fd, which fcntl clears) */
        if (sv[1] == ORACLE_SERVER_FD)
            fcntl(sv[1], F_SETFD, 0);
        else if (dup2(sv[1], ORACLE_SERVER_FD) < 0)
            _exit(127);
        /* the server outlives this call: it must not hold the test's other
         * descriptors (a pipe's write end would keep its reader from EOF) */
        if (syscall(SYS_close_range, ORACLE_SERVER_FD + 1, ~0U, 0) != 0) {
            long max_fd = sysconf(_SC_OPEN_MAX);
            for (long fd = ORACLE_SERVER_FD + 1; fd < (max_fd > 0 && max_fd < 65536 ? max_fd : 65536);
                 fd++)
                close((int)fd);
        }
        execvp(py, argv);
        _exit(127);
    }
    close(sv[1]);
    server.owner = getpid();
    server.pid = pid;
    server.fd = sv[0];
    if (!atexit_done) {
        atexit(server_stop_at_exit);
        atexit_done = 1;
    }
    return 0;
}

/* One request and its answer: 1 for "ok", 0 for "error", -1 when the
 * server is gone (no answer). */
static int server_call(const char *line)
{
    size_t len = strlen(line), at = 0;
    while (at < len) {
        ssize_t w = send(server.fd, line + at, len - at, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        at += (size_t)w;
    }
    char reply[64];
    size_t got = 0;
    while (got < sizeof reply - 1) {
        ssize_t r = recv(server.fd, reply + got, sizeof reply - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
        if (reply[got - 1] == '\n')
            break;
    }
    reply[got] = 0;
    if (strcmp(reply, "ok\n") == 0)
        return 1;
    if (strcmp(reply, "error\n") == 0)
        return 0;
    fprintf(stderr, "oracle: unexpected answer %.40s\n", reply);
    return -1;
}

/* Runs one request on this process's server, starting or restarting it
 * as needed: 0 if the op succeeded. */
static int oracle_request(const char *line)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (server.owner != getpid()) {
            server.owner = 0;   /* never write into a parent's server */
            if (server_start() != 0)
                return -1;
        }
        int rc = server_call(line);
        if (rc >= 0)
            return rc == 1 ? 0 : -1;
        fprintf(stderr, "oracle: the python server (pid %ld) is gone%s\n", (long)server.pid,
                attempt ? "" : ", restarting it");
        server_stop();
    }
    return -1;
}

int oracle_run(const char *op, const char *params_json, const double *in,
               size_t rows, size_t cols, double **out, size_t *n_out)
{
    char in_path[512], out_path[512], params_path[512], line[4096];
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    oracle_tmp_path(in_path, ".in");
    oracle_tmp_path(out_path, ".out");
    oracle_tmp_path(params_path, ".json");
    if (write_all(in_path, in, rows * cols * sizeof(double)) != 0 ||
        write_all(params_path, params_json, strlen(params_json)) != 0) {
        fprintf(stderr, "oracle: cannot write %s\n", in_path);
        goto out;
    }
    if (strpbrk(op, "\t\n")) {
        fprintf(stderr, "oracle: bad op name\n");
        goto out;
    }
    snprintf(line, sizeof line, "%s\t%s\t%s\t%zu\t%zu\t%s\n", op, params_path, in_path, rows,
             cols, out_path);
    if (oracle_request(line) != 0) {
        fprintf(stderr, "oracle: failed: %s(%s) on %zu x %zu\n", op, params_json, rows, cols);
        goto out;
    }
    FILE *f = fopen(out_path, "rb");
    if (!f) {
        fprintf(stderr, "oracle: no output from %s\n", op);
        goto out;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc(bytes > 0 ? (size_t)bytes : 1);
    if (*out && fread(*out, 1, (size_t)bytes, f) == (size_t)bytes) {
        *n_out = (size_t)bytes / sizeof(double);
        rc = 0;
    }
    fclose(f);
    if (rc != 0) {
        free(*out);
        *out = NULL;
    }
out:
    unlink(in_path);
    unlink(out_path);
    unlink(params_path);
    return rc;
}

int oracle_run_f(const char *op, const char *params_json, const float *in,
                 size_t rows, size_t cols, double **out, size_t *n_out)
{
    double *d = malloc(rows * cols * sizeof *d + 1);
    if (!d)
        return -1;
    for (size_t i = 0; i < rows * cols; i++)
        d[i] = in[i];
    int rc = oracle_run(op, params_json, d, rows, cols, out, n_out);
    free(d);
    return rc;
}

/* ---- helpers the cmocka tests share ----------------------------------- */

double oracle_uniform01(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (double)(*state >> 11) / 9007199254740992.0;
}

double *oracle_pyf(size_t *n, const char *op, const char *fmt, ...)
{
    char params[4096];
    double dummy = 0, *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(params, sizeof params, fmt, ap);
    va_end(ap);
    assert_int_equal(oracle_run(op, params, &dummy, 1, 1, &out, n), 0);
    return out;
}

void oracle_content_hash(const char *path, char hex[65])
{
    size_t n;
    double *d = oracle_pyf(&n, "content_hash", "{\"path\": \"%s\"}", path);
    assert_int_equal(n, 32);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned)d[i]);
    free(d);
}

void oracle_assert_attr(const char *path, const char *obj, const char *name,
                        const char *const *want, size_t n_want)
{
    size_t n, at = 0;
    double *d = oracle_pyf(&n, "h5_attr", "{\"path\": \"%s\", \"obj\": \"%s\", \"name\": \"%s\"}",
                           path, obj, name);
    for (size_t i = 0; i < n_want; i++) {
        size_t len = strlen(want[i]);
        assert_true(at + len + 1 <= n);
        for (size_t k = 0; k < len; k++)
            assert_int_equal((int)d[at + k], (unsigned char)want[i][k]);
        assert_int_equal((int)d[at + len], 0);
        at += len + 1;
    }
    assert_int_equal(at, n);
    free(d);
}

int oracle_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void oracle_writer_tmp_path(char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "%s.tmp.%ld", path, (long)getpid());
}

void oracle_alloc_fail_loop(int (*pass)(void *ctx, kiln_err_t *err), void *ctx,
                            const char *path, const char *tmp_path)
{
    int done = 0;
    long k;
    for (k = 1; k < 200 && !done; k++) {
        kiln_err_t err;
        kiln_alloc_fail_after(k);
        int rc = pass(ctx, &err);
        done = rc == 0;
        kiln_alloc_fail_after(0);
        if (!done) {
            if (rc != KILN_ENOMEM)
                fail_msg("k=%ld: expected KILN_ENOMEM, got %s: %s", k, kiln_err_name(rc), err.msg);
            assert_false(oracle_file_exists(tmp_path));
        }
        unlink(path);
    }
    assert_true(done);
    assert_true(k > 5);
}
