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
 * the cleanup), 2 on a usage error.
 *
 * This file: the measurements, the JSON and main; the processes are
 * bench/sched_bench/sb_proc.c's, the cluster and its API sb_cluster.c's. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bench/sched_bench/sb_cluster.h"
#include "bench/sched_bench/sb_proc.h"

#define WARMUP_TASKS     2000
#define MAX_CONFIGS      2
#define MAX_REPEATS      50
#define LAT_JOB_TIMEOUT_S 10.0  /* one latency job: start, then success */

static void on_signal(int sig)
{
    sb_interrupted = sig;
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

/* ---- the measurements ----------------------------------------------------- */

typedef struct {
    double seconds;          /* ended_ns - client t0 */
    double tasks_per_s;
    double client_seen_s;    /* t0 until the poll that saw succeeded (20 ms polls) */
    double kilnd_cpu_s;
    double workers_cpu_s;
} tp_run_t;

/* One throughput job of n noop tasks. */
static int throughput_run(sb_cluster_t *c, long n, tp_run_t *r)
{
    char spec[128];
    snprintf(spec, sizeof spec, "{\"type\":\"noop\",\"tasks\":%ld}", n);
    double k0 = sb_proc_cpu_s(c->procs[0].pid), w0 = 0;
    for (size_t i = 1; i < c->n_procs; i++)
        w0 += sb_proc_cpu_s(c->procs[i].pid);
    int64_t id, t0 = sb_now_real_ns();
    if (sb_submit(c, spec, &id) < 0)
        return -1;
    json_t *j;
    /* bounded: a minute plus 1 ms per task (100,000 tasks: 160 s) */
    if (sb_wait_job(c, id, 20.0, 60.0 + 0.001 * (double)n, 0, &j) < 0)
        return -1;
    int64_t seen = sb_now_real_ns();
    double k1 = sb_proc_cpu_s(c->procs[0].pid), w1 = 0;
    for (size_t i = 1; i < c->n_procs; i++)
        w1 += sb_proc_cpu_s(c->procs[i].pid);
    int64_t ended = sb_jint(j, "ended_ns");
    int64_t done = sb_jint(json_object_get(j, "tasks"), "succeeded");
    json_decref(j);
    if (ended <= t0 || done != n) {
        sb_fail("job %lld: ended_ns %lld is not after the submit (%lld), or %lld of %ld tasks "
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
    sb_cluster_t c;
    int rc = -1;
    res->cores = cores;
    fprintf(stderr, "sched_bench: %d workers x %d slots: starting kilnd and workers\n", SB_N_WORKERS,
            cores);
    if (sb_cluster_start(&c, bin_dir, cores) < 0)
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
        sb_fail("no memory for %d latency samples", m);
        goto out;
    }
    for (int i = 0; i < m; i++) {
        int64_t id, t0 = sb_now_real_ns();
        json_t *j;
        if (sb_submit(&c, "{\"type\":\"noop\"}", &id) < 0 ||
            sb_wait_job(&c, id, 1.0, LAT_JOB_TIMEOUT_S, 1, &j) < 0)
            goto out;
        int64_t started = sb_jint(j, "started_ns");
        json_decref(j);
        if (sb_wait_job(&c, id, 1.0, LAT_JOB_TIMEOUT_S, 0, &j) < 0)
            goto out;
        int64_t ended = sb_jint(j, "ended_ns");
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
    res->kilnd_cpu_total_s = sb_proc_cpu_s(c.procs[0].pid);
    if (sb_kilnd_dead(&c, "the benchmark ended"))
        goto out;
    rc = 0;
out:
    sb_cluster_stop(&c);
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
                     "cores_per_worker", r->cores, "workers", SB_N_WORKERS, "slots", r->cores * SB_N_WORKERS,
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
        "repeats", repeats, "latency_samples", m, "workers", SB_N_WORKERS, "host_cores", ncpu,
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
        sb_fail("cannot build the JSON answer");
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out_path, (int)getpid());
    int rc = json_dump_file(root, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (rc != 0 || rename(tmp, out_path) < 0) {
        sb_fail("cannot write %s: %s", out_path, strerror(errno));
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
    if (rc == 0 && sb_interrupted) {
        sb_fail("interrupted");
        rc = 1;
    }
    if (rc == 0 && write_json(out_path, res, n_cfg, n_tasks, (int)repeats, (int)m, ncpu) < 0)
        rc = 1;
    if (rc == 0)
        for (size_t i = 0; i < n_cfg; i++)
            printf("kiln %d workers x %d slots: %.0f no-op tasks/s (median of %ld x %ld tasks), "
                   "kilnd %.1f us CPU/task; submit-to-start p50 %.3f ms, p99 %.3f ms (n=%zu)\n",
                   SB_N_WORKERS, res[i].cores, res[i].tasks_per_s, repeats, n_tasks,
                   res[i].kilnd_cpu_us_per_task, nearest_rank(res[i].lat_ms, res[i].n_lat, 50),
                   nearest_rank(res[i].lat_ms, res[i].n_lat, 99), res[i].n_lat);
    for (size_t i = 0; i < n_cfg; i++) {
        free(res[i].lat_ms);
        free(res[i].end_ms);
    }
    curl_global_cleanup();
    return rc;
}
