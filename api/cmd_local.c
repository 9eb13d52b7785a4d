/* cmd_local.c - `kiln local --workers N`: the embedded default cluster.
 * kilnd and N kiln-workers on this machine as child processes (the same
 * binaries a real cluster runs), state and data under one directory, all
 * stopped cleanly by Ctrl-C.  The daemons are found beside this `kiln`. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"

#define LOCAL_MAX_WORKERS 64

extern char **environ;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln local [--workers N] [--dir DIR] [--cores C] [--http HOST:PORT]\n"
            "                  [--listen ENDPOINT] [--lease-ms MS]\n"
            "                  [--fleet-listen HOST:PORT --fleet-cert CERT --fleet-key KEY]\n"
            "Runs kilnd and N kiln-workers on this machine until Ctrl-C (SIGINT) or SIGTERM,\n"
            "then stops them cleanly.  Jobs, logs and task outputs live under DIR\n"
            "(default ./kiln-local); other commands reach this cluster with --dir DIR.\n"
            "  --workers N      workers to start (default 2)\n"
            "  --cores C        cores each worker offers (default: online CPUs / N, at least 1)\n"
            "  --http H:P       the API's address (default 127.0.0.1:0: a free port, in DIR/kilnd.url)\n"
            "  --listen EP      the workers' endpoint (default tcp://127.0.0.1:*, in DIR/kilnd.zmq)\n"
            "  --lease-ms MS    a worker silent this long is lost (default 5000)\n"
            "  --fleet-listen H:P, --fleet-cert CERT.pem, --fleet-key KEY.pem\n"
            "                   passed to kilnd: the edge agents' HTTPS fleet endpoint\n"
            "                   (port 0: a free one, in DIR/kilnd.fleet-url; docs/edge.md)\n");
}

/* The directory holding this executable, where kilnd and kiln-worker are. */
static int bin_dir(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return 0;
}

static pid_t spawn(char *const argv[], const sigset_t *mask)
{
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all;
    sigfillset(&all);
    /* The children get default handlers and an empty mask: the mask the
     * parent uses for sigtimedwait must not leak into them. */
    posix_spawnattr_setsigdefault(&attr, &all);
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    (void)mask;
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        fprintf(stderr, "kiln local: cannot start %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    return pid;
}

static int read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *ok = fgets(buf, (int)cap, f);
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] ? 0 : -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* SIGTERM, then SIGKILL after grace_ms; reaps. */
static void stop(pid_t pid, long grace_ms)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (long t = 0; t < grace_ms; t += 50) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int kiln_cmd_local(int argc, char **argv)
{
    unsigned long long n_workers = 2, cores = 0, lease = 0;
    const char *dir = "kiln-local", *http = "127.0.0.1:0", *listen = "tcp://127.0.0.1:*";
    const char *fleet_listen = NULL, *fleet_cert = NULL, *fleet_key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return ka_usage_error("local", usage, "missing value for", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--workers")) {
            if (ka_parse_u64(v, &n_workers, 0) < 0 || n_workers > LOCAL_MAX_WORKERS)
                return ka_usage_error("local", usage, "--workers must be 1..64, not", v);
        } else if (!strcmp(a, "--cores")) {
            if (ka_parse_u64(v, &cores, 0) < 0 || cores > 4096)
                return ka_usage_error("local", usage, "--cores must be 1..4096, not", v);
        } else if (!strcmp(a, "--lease-ms")) {
            if (ka_parse_u64(v, &lease, 0) < 0 || lease < 100 || lease > 3600000)
                return ka_usage_error("local", usage, "--lease-ms must be 100..3600000, not", v);
        } else if (!strcmp(a, "--dir")) {
            dir = v;
        } else if (!strcmp(a, "--http")) {
            http = v;
        } else if (!strcmp(a, "--listen")) {
            listen = v;
        } else if (!strcmp(a, "--fleet-listen")) {
            fleet_listen = v;
        } else if (!strcmp(a, "--fleet-cert")) {
            fleet_cert = v;
        } else if (!strcmp(a, "--fleet-key")) {
            fleet_key = v;
        } else {
            return ka_usage_error("local", usage, "unknown option", a);
        }
    }
    if (!cores) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cores = cpus > (long)n_workers ? (unsigned long long)cpus / n_workers : 1;
    }
    char bins[PATH_MAX], kilnd[PATH_MAX + 16], worker[PATH_MAX + 16];
    if (bin_dir(bins, sizeof bins) < 0) {
        fprintf(stderr, "kiln local: cannot find this program's directory\n");
        return 1;
    }
    snprintf(kilnd, sizeof kilnd, "%s/kilnd", bins);
    snprintf(worker, sizeof worker, "%s/kiln-worker", bins);
    for (int k = 0; k < 2; k++)
        if (access(k ? worker : kilnd, X_OK) != 0) {
            fprintf(stderr, "kiln local: %s not found beside kiln (run make)\n",
                    k ? worker : kilnd);
            return 1;
        }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "kiln local: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char url_path[PATH_MAX], zmq_path[PATH_MAX], furl_path[PATH_MAX], url[512], ep[512];
    snprintf(url_path, sizeof url_path, "%s/kilnd.url", dir);
    snprintf(zmq_path, sizeof zmq_path, "%s/kilnd.zmq", dir);
    snprintf(furl_path, sizeof furl_path, "%s/kilnd.fleet-url", dir);
    unlink(url_path);   /* a stale one from a previous run would look ready */
    unlink(zmq_path);
    unlink(furl_path);

    /* SIGINT/SIGTERM/SIGCHLD are taken with sigtimedwait, never by a handler. */
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &old);

    char lease_s[32];
    snprintf(lease_s, sizeof lease_s, "%llu", lease ? lease : 5000);
    /* The fleet options go to kilnd as given; kilnd checks them (all three
     * or none) and says what is wrong. */
    char *kargv[16] = {kilnd, "--dir", (char *)dir, "--http", (char *)http, "--listen",
                       (char *)listen, "--lease-ms", lease_s};
    int kargc = 9;
    const char *fleet_opt[3][2] = {{"--fleet-listen", fleet_listen},
                                   {"--fleet-cert", fleet_cert},
                                   {"--fleet-key", fleet_key}};
    for (int k = 0; k < 3; k++)
        if (fleet_opt[k][1]) {
            kargv[kargc++] = (char *)fleet_opt[k][0];
            kargv[kargc++] = (char *)fleet_opt[k][1];
        }
    kargv[kargc] = NULL;
    pid_t kpid = spawn(kargv, &mask);
    pid_t wpid[LOCAL_MAX_WORKERS] = {0};
    int rc = 1;
    if (kpid < 0)
        goto out;
    for (int t = 0; t < 300 && (read_line(url_path, url, sizeof url) < 0 ||
                                read_line(zmq_path, ep, sizeof ep) < 0); t++) {
        if (waitpid(kpid, NULL, WNOHANG) == kpid) {
            fprintf(stderr, "kiln local: kilnd exited while starting (see above)\n");
            kpid = 0;
            goto out;
        }
        sleep_ms(50);
    }
    if (read_line(url_path, url, sizeof url) < 0 || read_line(zmq_path, ep, sizeof ep) < 0) {
        fprintf(stderr, "kiln local: kilnd did not start within 15 s\n");
        goto out;
    }
    char cores_s[32];
    snprintf(cores_s, sizeof cores_s, "%llu", cores);
    for (unsigned long long i = 0; i < n_workers; i++) {
        char id[64], wdir[PATH_MAX];
        snprintf(id, sizeof id, "local-%llu", i + 1);
        snprintf(wdir, sizeof wdir, "%s/worker-%s", dir, id);
        /* Each worker's /metrics on a free loopback port, in WDIR/metrics.url. */
        char murl[PATH_MAX + 16];
        snprintf(murl, sizeof murl, "%s/metrics.url", wdir);
        unlink(murl);
        char *wargv[] = {worker, "--connect", ep, "--id", id, "--cores", cores_s, "--dir",
                         wdir, "--metrics", "127.0.0.1:0", NULL};
        if ((wpid[i] = spawn(wargv, &mask)) < 0)
            goto out;
    }
    printf("kiln local: kilnd at %s (workers: %s), %llu worker%s x %llu core%s, state in %s\n"
           "kiln local: submit with `kiln submit SPEC.json --dir %s`; Ctrl-C stops\n",
           url, ep, n_workers, n_workers == 1 ? "" : "s", cores, cores == 1 ? "" : "s", dir, dir);
    printf("kiln local: dashboard %s/ui/\n", url);   /* docs/dashboard.md */
    char furl[512];   /* kilnd writes it before kilnd.url */
    if (fleet_listen && read_line(furl_path, furl, sizeof furl) == 0)
        printf("kiln local: fleet endpoint for edge agents %s\n", furl);
    /* Where Prometheus finds each daemon (docs/metrics.md); a worker writes
     * its URL once it serves, so wait for it a little. */
    printf("kiln local: metrics: kilnd %s/metrics\n", url);
    for (unsigned long long i = 0; i < n_workers; i++) {
        char murl_path[PATH_MAX + 64], murl[512];
        snprintf(murl_path, sizeof murl_path, "%s/worker-local-%llu/metrics.url", dir, i + 1);
        for (int t = 0; t < 100 && read_line(murl_path, murl, sizeof murl) < 0; t++)
            sleep_ms(50);
        if (read_line(murl_path, murl, sizeof murl) == 0)
            printf("kiln local: metrics: worker local-%llu %s\n", i + 1, murl);
        else
            printf("kiln local: metrics: worker local-%llu not serving yet (see %s)\n", i + 1,
                   murl_path);
    }
    fflush(stdout);

    for (;;) {
        struct timespec to = {0, 200 * 1000000L};
        int sig = sigtimedwait(&mask, NULL, &to);
        if (sig == SIGINT || sig == SIGTERM) {
            printf("kiln local: %s: stopping the workers and kilnd\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
            fflush(stdout);
            rc = 0;
            break;
        }
        if (waitpid(kpid, NULL, WNOHANG) == kpid) {
            fprintf(stderr, "kiln local: kilnd exited unexpectedly\n");
            kpid = 0;
            break;
        }
        for (unsigned long long i = 0; i < n_workers; i++)
            if (wpid[i] > 0 && waitpid(wpid[i], NULL, WNOHANG) == wpid[i]) {
                fprintf(stderr, "kiln local: worker local-%llu exited; its tasks go to the "
                                "others after the lease\n", i + 1);
                wpid[i] = 0;
            }
    }
out:
    for (unsigned long long i = 0; i < n_workers; i++)
        stop(wpid[i], 10000);
    stop(kpid, 10000);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        printf("kiln local: stopped\n");
    return rc;
}
