/* gang.c - the launcher and holder roles of an MPI gang's tasks (gang.h).
 * This process is `kiln-worker --run-task`: no ZeroMQ context, so plain
 * fork + exec is safe here. */
#include "gang.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"

#define GANG_ARGS_MAX 40
#define GANG_STOP_GRACE_S 5       /* SIGTERM to SIGKILL for mpirun or the daemon */
#define GANG_POLL_NS 50000000L    /* a holder looks for its command every 50 ms */

/* Forks argv[0] (PATH search) in a process group of its own, which dies
 * with us (PR_SET_PDEATHSIG); *pid its id.  The signals in `blocked` stay
 * blocked here and are unblocked in the child. */
static int spawn(char *const *argv, const sigset_t *blocked, pid_t *pid, kiln_err_t *err)
{
    pid_t p = fork();
    if (p < 0)
        return kiln_err_set(err, KILN_EIO, "fork: %s", strerror(errno));
    if (p == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_UNBLOCK, blocked, NULL);
        execvp(argv[0], argv);
        fprintf(stderr, "kiln-worker: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(p, p);   /* also here: no race with the signals below */
    *pid = p;
    return 0;
}

/* Waits for pid; SIGTERM/SIGINT go on to its process group (then SIGKILL
 * after GANG_STOP_GRACE_S).  *status as waitpid gives it; *stopped 1 when
 * we were told to stop. */
static void supervise(pid_t pid, const sigset_t *set, int *status, int *stopped)
{
    time_t kill_at = 0;
    *stopped = 0;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            *stopped = 1;
            kill(-pid, SIGTERM);
            kill_at = time(NULL) + GANG_STOP_GRACE_S;
        }
        if (kill_at && time(NULL) >= kill_at)
            kill(-pid, SIGKILL);
    }
}

static int exit_result(const char *what, int status, int stopped, kiln_err_t *err)
{
    if (stopped)
        return kiln_err_set(err, KILN_EINTERNAL, "%s stopped (task cancelled)", what);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return kiln_err_set(err, KILN_EINTERNAL, "%s exited with status %d", what,
                            WEXITSTATUS(status));
    return kiln_err_set(err, KILN_EINTERNAL, "%s killed by signal %d", what,
                        WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGCHLD);
    sigprocmask(SIG_BLOCK, set, NULL);
}

/* ---- launcher */

/* "localhost:N0,W2:N2,...": the gang's workers, task 0's own first (mpirun
 * runs its ranks there without an agent). */
static int host_list(const json_t *gang, char *buf, size_t cap, int *np, kiln_err_t *err)
{
    size_t i, len = 0;
    const json_t *e;
    *np = 0;
    buf[0] = '\0';
    if (!json_is_array(gang) || !json_array_size(gang))
        return kiln_err_at(err, KILN_ESPEC, "gang", "task: gang: must list the gang's workers");
    json_array_foreach(gang, i, e) {
        const char *w = json_string_value(json_object_get(e, "worker"));
        json_int_t n = json_integer_value(json_object_get(e, "ranks"));
        if (!w || n < 1 || n > 4096)
            return kiln_err_at(err, KILN_ESPEC, "gang", "task: gang[%zu]: bad worker or ranks", i);
        int k = snprintf(buf + len, cap - len, "%s%s:%lld", i ? "," : "", i ? w : "localhost",
                         (long long)n);
        if (k < 0 || (size_t)k >= cap - len)
            return kiln_err_at(err, KILN_ESPEC, "gang", "task: gang: too many workers");
        len += (size_t)k;
        *np += (int)n;
    }
    return 0;
}

static int launcher(const json_t *task, const char *task_path, kiln_err_t *err)
{
    const char *exe = json_string_value(json_object_get(task, "worker_exe"));
    const char *endpoint = json_string_value(json_object_get(task, "scheduler_endpoint"));
    const char *lease = json_string_value(json_object_get(task, "lease_id"));
    const char *output = json_string_value(json_object_get(task, "output"));
    json_int_t job = json_integer_value(json_object_get(task, "job_id"));
    if (!exe || !endpoint || !lease || !output)
        return kiln_err_set(err, KILN_ESPEC, "%s: an MPI launch needs worker_exe, "
                            "scheduler_endpoint, lease_id and output", task_path);
    char hosts[8192], np_text[16], agent[4200], spec_path[4200], job_text[32], self[4096];
    int np;
    /* "/proc/self/exe" would name mpirun in mpirun: our own path instead
     * (the same install path on every worker, as mpirun itself assumes). */
    if (!strcmp(exe, "/proc/self/exe")) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return kiln_err_set(err, KILN_EIO, "readlink /proc/self/exe: %s", strerror(errno));
        self[n] = '\0';
        exe = self;
    }
    int rc = host_list(json_object_get(task, "gang"), hosts, sizeof hosts, &np, err);
    if (rc < 0)
        return rc;
    snprintf(np_text, sizeof np_text, "%d", np);
    snprintf(job_text, sizeof job_text, "%lld", (long long)job);
    snprintf(agent, sizeof agent, "%s --mpi-agent", exe);
    if (snprintf(spec_path, sizeof spec_path, "%s.spec.json", task_path) >= (int)sizeof spec_path)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", task_path);
    if (json_dump_file(json_object_get(task, "spec"), spec_path, JSON_COMPACT) != 0)
        return kiln_err_set(err, KILN_EIO, "%s: cannot write", spec_path);
    if (setenv("KILN_AGENT_ENDPOINT", endpoint, 1) || setenv("KILN_AGENT_JOB", job_text, 1) ||
        setenv("KILN_AGENT_LEASE", lease, 1)) {
        unlink(spec_path);
        return kiln_err_set(err, KILN_ENOMEM, "setenv: %s", strerror(errno));
    }
    /* Ranks of other workers reach each other over TCP, ranks of one worker
     * over shared memory; the daemons stay attached to the holder tasks
     * (no --daemonize), started from here only (no tree spawn). */
    const char *argv[GANG_ARGS_MAX];
    int a = 0;
    argv[a++] = "mpirun";
    argv[a++] = "-np";
    argv[a++] = np_text;
    argv[a++] = "--host";
    argv[a++] = hosts;
    argv[a++] = "--bind-to";
    argv[a++] = "none";
    if (geteuid() == 0)
        argv[a++] = "--allow-run-as-root";   /* DESIGN.md, "Known pitfalls" */
#if defined(__SANITIZE_ADDRESS__)
    /* A SAN build's ranks: Open MPI, PMIx and hwloc keep memory they free
     * nowhere, reported at exit from unloaded modules with no kiln frame;
     * the same fit runs leak-checked in one process in the unit tests. */
    argv[a++] = "-x";
    argv[a++] = "LSAN_OPTIONS=detect_leaks=0";
#endif
    const char *mca[][2] = {
        {"plm_rsh_agent", agent},
        {"plm_rsh_no_tree_spawn", "1"},
        {"orte_leave_session_attached", "1"},
        {"btl", "self,vader,tcp"},
        /* No shared-memory topology for the daemons: two orteds of one gang
         * on one machine raced on it (orted died in mca_rtc_hwloc's
         * attach under CI), and the ranks are not bound anyway. */
        {"rtc_hwloc_vmhole", "none"},
    };
    for (size_t m = 0; m < sizeof mca / sizeof mca[0]; m++) {
        argv[a++] = "--mca";
        argv[a++] = mca[m][0];
        argv[a++] = mca[m][1];
    }
    argv[a++] = exe;
    argv[a++] = "--train-ranks";
    argv[a++] = spec_path;
    argv[a++] = "--output";
    argv[a++] = output;
    argv[a] = NULL;
    fprintf(stderr, "kiln-worker: launching %d ranks on %s:", np, hosts);
    for (int i = 0; i < a; i++)
        fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    fflush(stderr);

    sigset_t set;
    block_signals(&set);
    pid_t pid = 0;
    int status = 0, stopped = 0;
    rc = spawn((char *const *)argv, &set, &pid, err);
    if (rc == 0) {
        supervise(pid, &set, &status, &stopped);
        rc = exit_result("mpirun", status, stopped, err);
    }
    unlink(spec_path);
    return rc;
}

/* ---- holder */

/* The command the worker wrote for us, or NULL (not yet). */
static char *read_command(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = kiln_malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    unlink(path);
    return buf;
}

static int holder(const char *task_path, kiln_err_t *err)
{
    char exec_path[4200];
    if (snprintf(exec_path, sizeof exec_path, "%s" KW_GANG_EXEC_SUFFIX, task_path) >=
        (int)sizeof exec_path)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", task_path);
    sigset_t set;
    block_signals(&set);
    fprintf(stderr, "kiln-worker: holding a rank's slot until mpirun's daemon is started here\n");
    fflush(stderr);
    for (;;) {
        struct timespec ts = {0, GANG_POLL_NS};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            return kiln_err_set(err, KILN_EINTERNAL, "holder stopped (the gang ended)");
        char *cmd = read_command(exec_path);
        if (!cmd)
            continue;
        fprintf(stderr, "kiln-worker: mpirun's daemon: %s\n", cmd);
        fflush(stderr);
        char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
        pid_t pid = 0;
        int status = 0, stopped = 0;
        int rc = spawn(argv, &set, &pid, err);
        if (rc == 0) {
            supervise(pid, &set, &status, &stopped);
            rc = exit_result("mpirun's daemon", status, stopped, err);
        }
        kiln_free(cmd);
        return rc;
    }
}

int kw_gang_run(const json_t *task, const char *task_path, kiln_err_t *err)
{
    const char *role = json_string_value(json_object_get(task, "gang_role"));
    if (role && !strcmp(role, "launcher"))
        return launcher(task, task_path, err);
    if (role && !strcmp(role, "holder"))
        return holder(task_path, err);
    return kiln_err_at(err, KILN_ESPEC, "gang_role", "%s: gang_role: \"%s\" is neither launcher "
                       "nor holder", task_path, role ? role : "");
}
