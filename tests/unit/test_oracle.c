/* test_oracle.c - the oracle bridge itself: values go to python and back
 * unchanged, an unknown op or a dead server is an error, not a silent
 * pass, and the calls after it (and a forked child's) are answered. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "oracle.h"

static void test_roundtrip(void **state)
{
    (void)state;
    double in[6] = {1.5, -2.25, 3e-300, 1e300, 0.0, 7.0};
    double *out;
    size_t n;
    assert_int_equal(oracle_run("echo_sum", "{\"scale\": 2.0}", in, 2, 3, &out, &n), 0);
    assert_int_equal(n, 7);
    for (int i = 0; i < 6; i++)
        assert_memory_equal(&out[i], &in[i], sizeof(double));   /* bit-exact */
    free(out);
}

static void test_unknown_op(void **state)
{
    (void)state;
    double in[1] = {1}, *out;
    size_t n;
    assert_int_equal(oracle_run("no_such_op", "{}", in, 1, 1, &out, &n), -1);
    assert_null(out);
}

/* The pid of the python process that answers this process's calls. */
static double server_pid(void)
{
    double in[1] = {0}, *out, pid;
    size_t n;
    assert_int_equal(oracle_run("selftest_pid", "{}", in, 1, 1, &out, &n), 0);
    assert_int_equal(n, 1);
    pid = out[0];
    free(out);
    return pid;
}

/* One python process answers every call: an op that fails costs only its
 * own call; an op that ends that process fails its call, and the next one
 * is answered by a new process. */
static void test_server_survives(void **state)
{
    (void)state;
    double in[1] = {1}, *out;
    size_t n;
    double first = server_pid();
    assert_true(server_pid() == first);
    assert_int_equal(oracle_run("no_such_op", "{}", in, 1, 1, &out, &n), -1);
    assert_true(server_pid() == first);
    assert_int_equal(oracle_run("selftest_exit", "{\"code\": 3}", in, 1, 1, &out, &n), -1);
    assert_null(out);
    double second = server_pid();
    assert_true(second != first);
    assert_true(server_pid() == second);
}

/* A forked child is answered by a server of its own, and the parent's
 * server outlives the child's exit. */
static void test_forked_child(void **state)
{
    (void)state;
    double parent = server_pid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        double in[2] = {6, 1}, *out;
        size_t n;
        int ok = oracle_run("echo_sum", "{}", in, 1, 2, &out, &n) == 0 && n == 3 && out[2] == 7;
        ok = ok && server_pid() != parent;
        exit(ok ? 0 : 1);   /* exit, not _exit: the child's atexit stops its own server */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(server_pid() == parent);
}

/* The server started while the test holds a pipe does not keep the
 * pipe's write end open: the reader sees EOF once the test closes it. */
static void test_server_holds_no_test_fds(void **state)
{
    (void)state;
    double in[1] = {1}, *out;
    size_t n;
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* end the current server so that the next call starts one now */
    assert_int_equal(oracle_run("selftest_exit", "{\"code\": 3}", in, 1, 1, &out, &n), -1);
    server_pid();
    close(p[1]);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    char c;
    assert_int_equal(read(p[0], &c, 1), 0);   /* EOF, not EAGAIN */
    close(p[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_unknown_op),
        cmocka_unit_test(test_server_survives),
        cmocka_unit_test(test_forked_child),
        cmocka_unit_test(test_server_holds_no_test_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
