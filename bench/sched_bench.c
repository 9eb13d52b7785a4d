/* sched_bench.c - kiln's scheduler on this machine: no-op task dispatch rate
 * and submit-to-start latency at light load, through the HTTP API as a user
 * sees them (bench/README.md, "Scheduler").
 *
 *   sched_bench BIN_DIR OUT.json [--tasks N] [--repeats R] [--latency-samples M]
 *                                [--worker-cores C]
 *
 * For each slot configuration (C slots per worker; default: 16, then the
 * number of online CPUs, i.e. the honest per-node slot count) it starts a
 * fresh BIN_DIR/kilnd (posix_spawn; --dir a mkdtemp directory, --http
 * 127.0.0.1:0, --listen tcp://127.0.0.1:*), waits for DIR/kilnd.url and
 * DIR/kilnd.zmq, starts 4 BIN_DIR/kiln-worker --cores C, waits until
 * GET /v1/health counts 4 workers, then:
 *
 *   throughput: a 2000-task warm-up job, then R jobs {"type":"noop","tasks":N};
 *     each timed from the client's CLOCK_REALTIME just before the POST to the
 *     job's ended_ns (kilnd's CLOCK_REALTIME, same machine), the job polled
 *     every 20 ms until it succeeded; tasks/s = N / that; median of R.
 *     kilnd's and the workers' CPU time over each run from /proc/PID/stat.
 *   latency: M jobs {"type":"noop"} one at a time; t0 = CLOCK_REALTIME just
 *     before the POST, the job polled every 1 ms until started_ns != 0 (when
 *     kilnd dispatched its first task); submit_to_start = started_ns - t0;
 *     then the job is waited for (succeeded) before the next one.  p50/p99
 *     nearest-rank.
 *
 * Then SIGTERM to workers and kilnd (SIGKILL after 5 s), all reaped, the
 * directory removed.  Every wait is bounded; exits 1 on any failure (after
 * the cleanup), 2 on a usage error. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "api/client.h"
#include "core/kiln_alloc.h"

extern char **environ;

#define N_WORKERS        4
#define WARMUP_TASKS     2000
#define MAX_CONFIGS      2
#define MAX_REPEATS      50
#define START_TIMEOUT_S  15.0   /* kilnd.url/kilnd.zmq, and the 4 workers in /v1/health */
#define LAT_JOB_TIMEOUT_S 10.0  /* one latency job: start, then success */
#define STOP_GRACE_S     5.0    /* SIGTERM, then SIGKILL */
#define HTTP_TIMEOUT_MS  10000

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    g_interrupted = sig;
}

static void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sched_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int64_t now_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double now_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - 1000.0 * (double)(time_t)(ms / 1000)) * 1e6)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !g_interrupted)
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, size_t n)
{
    double s[MAX_REPEATS];
    memcpy(s, v, n * sizeof *v);
    qsort(s, n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* Nearest rank: the smallest value with at least p% of the samples at or below it. */
static double nearest_rank(const double *sorted, size_t n, double p)
{
    size_t k = (size_t)(p / 100.0 * (double)n);
    if ((double)k < p / 100.0 * (double)n)
        k++;
    if (k < 1)
        k = 1;
    return sorted[k - 1];
}

/* ---- processes ------------------------------------------------------------ */

typedef struct {
    pid_t pid;
    int   reaped;
    int   status;
    char  name[32];
    char  log[1200];
} proc_t;

static int spawn(proc_t *p, const char *name, char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log, sizeof p->log, "%s", log_path);
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fail_msg("cannot start %s (%s): %s", name, argv[0], strerror(rc));
        p->pid = 0;
        return -1;
    }
    return 0;
}

/* 1 while the process runs, 0 once it has exited (reaped here). */
static int alive(proc_t *p)
{
    if (!p->pid || p->reaped)
        return 0;
    pid_t r = waitpid(p->pid, &p->status, WNOHANG);
    if (r == p->pid) {
        p->reaped = 1;
        return 0;
    }
    return 1;
}

static void describe_exit(const proc_t *p, char *out, size_t cap)
{
    if (WIFEXITED(p->status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status))
        snprintf(out, cap, "killed by signal %d", WTERMSIG(p->status));
    else
        snprintf(out, cap, "ended (status 0x%x)", p->status);
}

static void show_log_tail(const proc_t *p)
{
    FILE *f = fopen(p->log, "r");
    if (!f)
        return;
    char buf[2048];
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    fprintf(stderr, "---- tail of %s's log (%s) ----\n%s%s", p->name, p->log, buf,
            n && buf[n - 1] != '\n' ? "\n" : "");
}

/* utime + stime of a live process (all its threads), in seconds; -1 when unreadable. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    char state;
    if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &ut,
                     &st) != 3)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* SIGTERM to all, SIGKILL to those still there after STOP_GRACE_S; all reaped. */
static void stop_all(proc_t *ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (alive(&ps[i]))
            kill(ps[i].pid, SIGTERM);
    double deadline = now_mono_s() + STOP_GRACE_S;
    for (;;) {
        int any = 0;
        for (size_t i = 0; i < n; i++)
            any |= alive(&ps[i]);
        if (!any)
            return;
        if (now_mono_s() > deadline)
            break;
        sleep_ms(10);
    }
    for (size_t i = 0; i < n; i++)
        if (alive(&ps[i])) {
            fail_msg("%s (pid %d) still running %.0f s after SIGTERM: SIGKILL", ps[i].name,
                     (int)ps[i].pid, STOP_GRACE_S);
            kill(ps[i].pid, SIGKILL);
            if (waitpid(ps[i].pid, &ps[i].status, 0) == ps[i].pid)
                ps[i].reaped = 1;
        }
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    if (rmdir(path) < 0 && errno != ENOENT)
        fail_msg("cannot remove %s: %s", path, strerror(errno));
}

/* ---- the cluster ---------------------------------------------------------- */

typedef struct {
    char   dir[1024];
    char   url[512];
    char   zmq[512];
    proc_t procs[1 + N_WORKERS];   /* [0] kilnd, then the workers */
    size_t n_procs;
    char   version[64];
} cluster_t;

/* The first line of path into out; 1 when there, 0 when not (yet). */
static int read_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!ok)
        return 0;
    out[strcspn(out, "\r\n")] = 0;
    return out[0] != 0;
}

/* GET/POST path; *root is the parsed JSON answer (caller decrefs).  -1 with a
 * message on a transport error, a non-JSON answer or an HTTP status other
 * than want (or 200/201 when want is 0). */
static int api(const cluster_t *c, const char *method, const char *path, const char *body,
               int want, json_t **root)
{
    int status = 0;
    char *resp = NULL;
    kiln_err_t err = {0};
    *root = NULL;
    if (ka_client_request(c->url, method, path, body, NULL, HTTP_TIMEOUT_MS, &status, &resp, NULL,
                          &err) < 0) {
        fail_msg("%s %s: %s", method, path, err.msg);
        return -1;
    }
    json_error_t je;
    json_t *j = resp ? json_loads(resp, 0, &je) : NULL;
    int ok_status = want ? status == want : (status == 200 || status == 201);
    if (!ok_status || !j) {
        fail_msg("%s %s: HTTP %d: %.300s", method, path, status, resp ? resp : "(no body)");
        json_decref(j);
        kiln_free(resp);
        return -1;
    }
    kiln_free(resp);
    *root = j;
    return 0;
}

static int64_t jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int kilnd_dead(cluster_t *c, const char *while_doing)
{
    for (size_t i = 0; i < c->n_procs; i++)
        if (!alive(&c->procs[i])) {
            char how[64];
            describe_exit(&c->procs[i], how, sizeof how);
            fail_msg("%s %s while %s", c->procs[i].name, how, while_doing);
            show_log_tail(&c->procs[i]);
            return 1;
        }
    return 0;
}

static void cluster_stop(cluster_t *c)
{
    /* workers first (kilnd would only mark them lost), then kilnd */
    if (c->n_procs > 1)
        stop_all(c->procs + 1, c->n_procs - 1);
    if (c->n_procs > 0)
        stop_all(c->procs, 1);
    c->n_procs = 0;
    if (c->dir[0])
        remove_tree(c->dir);
    c->dir[0] = 0;
}

static int cluster_start(cluster_t *c, const char *bin_dir, int cores)
{
    memset(c, 0, sizeof *c);
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/kiln-sched-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(c->dir)) {
        fail_msg("mkdtemp %s: %s", c->dir, strerror(errno));
        c->dir[0] = 0;
        return -1;
    }
    char exe[1100], log[1200];
    snprintf(exe, sizeof exe, "%s/kilnd", bin_dir);
    snprintf(log, sizeof log, "%s/kilnd.log", c->dir);
    char *kargv[] = {exe, "--dir", c->dir, "--http", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                     NULL};
    if (spawn(&c->procs[0], "kilnd", kargv, log) < 0)
        return -1;
    c->n_procs = 1;

    /* kilnd writes kilnd.zmq, then kilnd.url, each by rename */
    double deadline = now_mono_s() + START_TIMEOUT_S;
    char url_path[1200], zmq_path[1200];
    snprintf(url_path, sizeof url_path, "%s/kilnd.url", c->dir);
    snprintf(zmq_path, sizeof zmq_path, "%s/kilnd.zmq", c->dir);
    while (!(read_line(url_path, c->url, sizeof c->url) && read_line(zmq_path, c->zmq, sizeof c->zmq))) {
        if (kilnd_dead(c, "starting"))
            return -1;
        if (g_interrupted || now_mono_s() > deadline) {
            if (g_interrupted)
                fail_msg("interrupted while waiting for kilnd");
            else
                fail_msg("kilnd wrote no kilnd.url/kilnd.zmq within %.0f s", START_TIMEOUT_S);
            show_log_tail(&c->procs[0]);
            return -1;
        }
        sleep_ms(10);
    }

    snprintf(exe, sizeof exe, "%s/kiln-worker", bin_dir);
    for (int i = 0; i < N_WORKERS; i++) {
        char id[16], cores_s[16], wdir[1200];
        snprintf(id, sizeof id, "w%d", i + 1);
        snprintf(cores_s, sizeof cores_s, "%d", cores);
        snprintf(wdir, sizeof wdir, "%s/worker-%s", c->dir, id);
        snprintf(log, sizeof log, "%s/worker-%s.log", c->dir, id);
        char *wargv[] = {exe, "--connect", c->zmq, "--id", id, "--cores", cores_s, "--dir", wdir, NULL};
        char name[32];
        snprintf(name, sizeof name, "kiln-worker %s", id);
        if (spawn(&c->procs[c->n_procs], name, wargv, log) < 0)
            return -1;
        c->n_procs++;
    }

    deadline = now_mono_s() + START_TIMEOUT_S;
    int64_t seen = -1;
    for (;;) {
        if (kilnd_dead(c, "waiting for the workers"))
            return -1;
        json_t *h;
        if (api(c, "GET", "/v1/health", NULL, 200, &h) < 0)
            return -1;
        seen = jint(h, "workers");
        snprintf(c->version, sizeof c->version, "%s", jstr(h, "version"));
        json_decref(h);
        if (seen == N_WORKERS)
            break;
        if (g_interrupted || now_mono_s() > deadline) {
            if (g_interrupted)
                fail_msg("interrupted while waiting for the workers");
            else
                fail_msg("/v1/health counts %lld of %d workers after %.0f s", (long long)seen,
                         N_WORKERS, START_TIMEOUT_S);
            for (size_t i = 0; i < c->n_procs; i++)
                show_log_tail(&c->procs[i]);
            return -1;
        }
        sleep_ms(20);
    }
    return 0;
}

/* Submits spec; *id = the job's id. */
static int submit(cluster_t *c, const char *spec, int64_t *id)
{
    json_t *r;
    if (api(c, "POST", "/v1/jobs", spec, 201, &r) < 0)
        return -1;
    *id = jint(r, "id");
    json_decref(r);
    if (*id <= 0) {
        fail_msg("POST /v1/jobs: no job id in the answer");
        return -1;
    }
    return 0;
}

/* Polls GET /v1/jobs/ID every poll_ms until the job ended (or, with
 * until_started, until started_ns != 0); the job's final answer in *out
 * (caller decrefs).  -1 when it ended in any state but succeeded, or after
 * timeout_s. */
static int wait_job(cluster_t *c, int64_t id, double poll_ms, double timeout_s, int until_started,
                    json_t **out)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)id);
    double deadline = now_mono_s() + timeout_s;
    *out = NULL;
    for (;;) {
        json_t *j;
        if (api(c, "GET", path, NULL, 200, &j) < 0)
            return -1;
        const char *state = jstr(j, "state");
        if (until_started && jint(j, "started_ns") != 0) {
            *out = j;
            return 0;
        }
        if (!strcmp(state, "succeeded")) {
            *out = j;
            return 0;
        }
        if (strcmp(state, "queued") && strcmp(state, "running")) {
            char *txt = json_dumps(json_object_get(j, "reason"), JSON_COMPACT | JSON_ENCODE_ANY);
            fail_msg("job %lld ended %s (reason %s)", (long long)id, state, txt ? txt : "?");
            free(txt);
            json_decref(j);
            return -1;
        }
        if (g_interrupted || now_mono_s() > deadline) {
            json_t *t = json_object_get(j, "tasks");
            if (g_interrupted)
                fail_msg("interrupted while waiting for job %lld (%s)", (long long)id, state);
            else
                fail_msg("job %lld still %s after %.0f s (tasks: %lld queued, %lld running, %lld "
                         "succeeded)", (long long)id, state, timeout_s,
                         (long long)jint(t, "queued"), (long long)jint(t, "running"),
                         (long long)jint(t, "succeeded"));
            json_decref(j);
            return -1;
        }
        json_decref(j);
        if (kilnd_dead(c, "a job ran"))
            return -1;
        sleep_ms(poll_ms);
    }
}

/* ---- the measurements ----------------------------------------------------- */

typedef struct {
    double seconds;          /* ended_ns - client t0 */
    double tasks_per_s;
    double client_seen_s;    /* t0 until the poll that saw succeeded (20 ms polls) */
    double kilnd_cpu_s;
    double workers_cpu_s;
} tp_run_t;

/* One throughput job of n noop tasks. */
static int throughput_run(cluster_t *c, long n, tp_run_t *r)
{
    char spec[128];
    snprintf(spec, sizeof spec, "{\"type\":\"noop\",\"tasks\":%ld}", n);
    double k0 = proc_cpu_s(c->procs[0].pid), w0 = 0;
    for (size_t i = 1; i < c->n_procs; i++)
        w0 += proc_cpu_s(c->procs[i].pid);
    int64_t id, t0 = now_real_ns();
    if (submit(c, spec, &id) < 0)
        return -1;
    json_t *j;
    /* bounded: a minute plus 1 ms per task (100,000 tasks: 160 s) */
    if (wait_job(c, id, 20.0, 60.0 + 0.001 * (double)n, 0, &j) < 0)
        return -1;
    int64_t seen = now_real_ns();
    double k1 = proc_cpu_s(c->procs[0].pid), w1 = 0;
    for (size_t i = 1; i < c->n_procs; i++)
        w1 += proc_cpu_s(c->procs[i].pid);
    int64_t ended = jint(j, "ended_ns");
    int64_t done = jint(json_object_get(j, "tasks"), "succeeded");
    json_decref(j);
    if (ended <= t0 || done != n) {
        fail_msg("job %lld: ended_ns %lld is not after the submit (%lld), or %lld of %ld tasks "
                 "succeeded", (long long)id, (long long)ended, (long long)t0, (long long)done, n);
        return -1;
    }
    r->seconds = 1e-9 * (double)(ended - t0);
    r->tasks_per_s = (double)n / r->seconds;
    r->client_seen_s = 1e-9 * (double)(seen - t0);
    r->kilnd_cpu_s = k0 >= 0 && k1 >= 0 ? k1 - k0 : -1;
    r->workers_cpu_s = w1 - w0;
    return 0;
}

typedef struct {
    int      cores;                 /* slots per worker */
    double   warmup_tasks_per_s;
    tp_run_t runs[MAX_REPEATS];
    size_t   n_runs;
    double   tasks_per_s;           /* median */
    double   kilnd_cpu_us_per_task; /* median over runs */
    double   workers_cpu_us_per_task;
    double  *lat_ms;                /* submit-to-start, sorted */
    double  *end_ms;                /* submit-to-succeeded, sorted */
    size_t   n_lat;
    double   kilnd_cpu_total_s;     /* the whole life of this kilnd, up to the stop */
    char     version[64];
} config_result_t;

static int measure_config(const char *bin_dir, int cores, long n_tasks, int repeats, int m,
                          config_result_t *res)
{
    cluster_t c;
    int rc = -1;
    res->cores = cores;
    fprintf(stderr, "sched_bench: %d workers x %d slots: starting kilnd and workers\n", N_WORKERS,
            cores);
    if (cluster_start(&c, bin_dir, cores) < 0)
        goto out;
    snprintf(res->version, sizeof res->version, "%s", c.version);

    tp_run_t warm;
    if (throughput_run(&c, WARMUP_TASKS, &warm) < 0)
        goto out;
    res->warmup_tasks_per_s = warm.tasks_per_s;
    fprintf(stderr, "sched_bench:   warm-up %d tasks: %.0f tasks/s\n", WARMUP_TASKS, warm.tasks_per_s);

    double tps[MAX_REPEATS], kcpu[MAX_REPEATS], wcpu[MAX_REPEATS];
    for (int i = 0; i < repeats; i++) {
        tp_run_t *r = &res->runs[i];
        if (throughput_run(&c, n_tasks, r) < 0)
            goto out;
        res->n_runs++;
        tps[i] = r->tasks_per_s;
        kcpu[i] = 1e6 * r->kilnd_cpu_s / (double)n_tasks;
        wcpu[i] = 1e6 * r->workers_cpu_s / (double)n_tasks;
        fprintf(stderr, "sched_bench:   run %d/%d: %ld tasks in %.3f s = %.0f tasks/s (kilnd CPU "
                "%.2f s = %.1f us/task, workers %.2f s)\n", i + 1, repeats, n_tasks, r->seconds,
                r->tasks_per_s, r->kilnd_cpu_s, kcpu[i], r->workers_cpu_s);
    }
    res->tasks_per_s = median(tps, (size_t)repeats);
    res->kilnd_cpu_us_per_task = median(kcpu, (size_t)repeats);
    res->workers_cpu_us_per_task = median(wcpu, (size_t)repeats);

    res->lat_ms = calloc((size_t)m, sizeof *res->lat_ms);
    res->end_ms = calloc((size_t)m, sizeof *res->end_ms);
    if (!res->lat_ms || !res->end_ms) {
        fail_msg("no memory for %d latency samples", m);
        goto out;
    }
    for (int i = 0; i < m; i++) {
        int64_t id, t0 = now_real_ns();
        json_t *j;
        if (submit(&c, "{\"type\":\"noop\"}", &id) < 0 ||
            wait_job(&c, id, 1.0, LAT_JOB_TIMEOUT_S, 1, &j) < 0)
            goto out;
        int64_t started = jint(j, "started_ns");
        json_decref(j);
        if (wait_job(&c, id, 1.0, LAT_JOB_TIMEOUT_S, 0, &j) < 0)
            goto out;
        int64_t ended = jint(j, "ended_ns");
        json_decref(j);
        res->lat_ms[i] = 1e-6 * (double)(started - t0);
        res->end_ms[i] = 1e-6 * (double)(ended - t0);
        res->n_lat++;
    }
    qsort(res->lat_ms, res->n_lat, sizeof *res->lat_ms, cmp_double);
    qsort(res->end_ms, res->n_lat, sizeof *res->end_ms, cmp_double);
    if (res->n_lat)
        fprintf(stderr, "sched_bench:   submit-to-start (%zu jobs): p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
                res->n_lat, nearest_rank(res->lat_ms, res->n_lat, 50),
                nearest_rank(res->lat_ms, res->n_lat, 99), res->lat_ms[res->n_lat - 1]);
    res->kilnd_cpu_total_s = proc_cpu_s(c.procs[0].pid);
    if (kilnd_dead(&c, "the benchmark ended"))
        goto out;
    rc = 0;
out:
    cluster_stop(&c);
    return rc;
}

static json_t *lat_json(const double *sorted, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += sorted[i];
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:I, s:s}", "p50", nearest_rank(sorted, n, 50),
                     "p99", nearest_rank(sorted, n, 99), "min", sorted[0], "max", sorted[n - 1],
                     "mean", sum / (double)n, "n", (json_int_t)n, "percentile", "nearest-rank");
}

static json_t *config_json(const config_result_t *r, long n_tasks)
{
    json_t *runs = json_array();
    for (size_t i = 0; i < r->n_runs; i++)
        json_array_append_new(runs, json_pack("{s:f, s:f, s:f, s:f, s:f}", "seconds", r->runs[i].seconds,
                                              "tasks_per_s", r->runs[i].tasks_per_s, "client_seen_s",
                                              r->runs[i].client_seen_s, "kilnd_cpu_s",
                                              r->runs[i].kilnd_cpu_s, "workers_cpu_s",
                                              r->runs[i].workers_cpu_s));
    return json_pack("{s:i, s:i, s:i, s:I, s:f, s:f, s:o, s:f, s:f, s:o, s:o, s:f}",
                     "cores_per_worker", r->cores, "workers", N_WORKERS, "slots", r->cores * N_WORKERS,
                     "tasks", (json_int_t)n_tasks, "tasks_per_s", r->tasks_per_s,
                     "warmup_tasks_per_s", r->warmup_tasks_per_s, "runs", runs,
                     "kilnd_cpu_us_per_task", r->kilnd_cpu_us_per_task,
                     "workers_cpu_us_per_task", r->workers_cpu_us_per_task,
                     "submit_to_start_ms", lat_json(r->lat_ms, r->n_lat),
                     "submit_to_succeeded_ms", lat_json(r->end_ms, r->n_lat),
                     "kilnd_cpu_total_s", r->kilnd_cpu_total_s);
}

static int write_json(const char *out_path, const config_result_t *res, size_t n_res, long n_tasks,
                      int repeats, int m, int ncpu)
{
    json_t *cfgs = json_array();
    for (size_t i = 0; i < n_res; i++)
        json_array_append_new(cfgs, config_json(&res[i], n_tasks));
    const config_result_t *main_r = &res[0], *nproc_r = n_res > 1 ? &res[1] : &res[0];
    json_t *root = json_pack(
        "{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:f, s:f, s:o, s:f, s:o, s:s}",
        "bench", "sched_bench", "kilnd_version", main_r->version, "tasks", (json_int_t)n_tasks,
        "repeats", repeats, "latency_samples", m, "workers", N_WORKERS, "host_cores", ncpu,
        "tasks_per_s", main_r->tasks_per_s, "tasks_per_s_nproc_slots", nproc_r->tasks_per_s,
        "submit_to_start_ms", lat_json(main_r->lat_ms, main_r->n_lat),
        "kilnd_cpu_us_per_task", main_r->kilnd_cpu_us_per_task, "configs", cfgs, "method",
        "one kilnd (fresh state dir) and 4 kiln-worker on this machine per slot configuration; "
        "throughput: a 2000-task warm-up job, then `repeats` noop jobs of `tasks` tasks, each from the "
        "client's CLOCK_REALTIME before POST /v1/jobs to the job's ended_ns (polled every 20 ms), "
        "median; latency: single noop jobs one at a time, started_ns (kilnd dispatched the first "
        "task) minus the client's CLOCK_REALTIME before the POST, polled every 1 ms, nearest-rank; "
        "CPU from /proc/PID/stat utime+stime over each run");
    if (!root) {
        fail_msg("cannot build the JSON answer");
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out_path, (int)getpid());
    int rc = json_dump_file(root, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (rc != 0 || rename(tmp, out_path) < 0) {
        fail_msg("cannot write %s: %s", out_path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "sched_bench: %s: expected an integer in %ld..%ld, got \"%s\"\n", opt, lo,
                hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: sched_bench BIN_DIR OUT.json [--tasks N] [--repeats R] [--latency-samples M]\n"
          "                   [--worker-cores C]\n"
          "  BIN_DIR             holds kilnd and kiln-worker\n"
          "  --tasks N           no-op tasks per throughput job (default 100000)\n"
          "  --repeats R         timed throughput jobs, median kept (default 3)\n"
          "  --latency-samples M single jobs for submit-to-start (default 200)\n"
          "  --worker-cores C    slots per worker (default: 16, then again with the online CPUs)\n",
          f);
}

int main(int argc, char **argv)
{
    long n_tasks = 100000, repeats = 3, m = 200, cores = 0;
    const char *pos[2] = {NULL, NULL};
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tasks")) {
            if (parse_long(a, v, 1, 1000000, &n_tasks) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--repeats")) {
            if (parse_long(a, v, 1, MAX_REPEATS, &repeats) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--latency-samples")) {
            if (parse_long(a, v, 1, 100000, &m) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--worker-cores")) {
            if (parse_long(a, v, 1, 1024, &cores) < 0)
                return 2;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "sched_bench: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (n_pos < 2) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "sched_bench: unexpected argument %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (n_pos != 2) {
        usage(stderr);
        return 2;
    }
    const char *bin_dir = pos[0], *out_path = pos[1];
    for (int k = 0; k < 2; k++) {
        char exe[1100];
        snprintf(exe, sizeof exe, "%s/%s", bin_dir, k ? "kiln-worker" : "kilnd");
        if (access(exe, X_OK) < 0) {
            fprintf(stderr, "sched_bench: %s: %s\n", exe, strerror(errno));
            return 1;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "sched_bench: curl_global_init failed\n");
        return 1;
    }

    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    int cfg[MAX_CONFIGS];
    size_t n_cfg = 0;
    if (cores) {
        cfg[n_cfg++] = (int)cores;
    } else {
        cfg[n_cfg++] = 16;
        cfg[n_cfg++] = ncpu;   /* the honest per-node slot count (measured again even when 16) */
    }
    config_result_t res[MAX_CONFIGS];
    memset(res, 0, sizeof res);
    int rc = 0;
    for (size_t i = 0; i < n_cfg && rc == 0; i++)
        if (measure_config(bin_dir, cfg[i], n_tasks, (int)repeats, (int)m, &res[i]) < 0)
            rc = 1;
    if (rc == 0 && g_interrupted) {
        fail_msg("interrupted");
        rc = 1;
    }
    if (rc == 0 && write_json(out_path, res, n_cfg, n_tasks, (int)repeats, (int)m, ncpu) < 0)
        rc = 1;
    if (rc == 0)
        for (size_t i = 0; i < n_cfg; i++)
            printf("kiln %d workers x %d slots: %.0f no-op tasks/s (median of %ld x %ld tasks), "
                   "kilnd %.1f us CPU/task; submit-to-start p50 %.3f ms, p99 %.3f ms (n=%zu)\n",
                   N_WORKERS, res[i].cores, res[i].tasks_per_s, repeats, n_tasks,
                   res[i].kilnd_cpu_us_per_task, nearest_rank(res[i].lat_ms, res[i].n_lat, 50),
                   nearest_rank(res[i].lat_ms, res[i].n_lat, 99), res[i].n_lat);
    for (size_t i = 0; i < n_cfg; i++) {
        free(res[i].lat_ms);
        free(res[i].end_ms);
    }
    curl_global_cleanup();
    return rc;
}
