/* opts.c - kiln-worker's defaults (worker.h, kw_opts_finish): the id, the
 * resources it announces, and its scratch directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/kernels_cuda.h"
#include "worker.h"

/* The CUDA devices: their number into o->gpus, names and memory beside. */
static void find_gpus(kw_opts_t *o)
{
    int n = 0;
    kiln_err_t err;
    if (kc_device_count(&n, &err) < 0 || n < 0)
        n = 0;
    if (n > KW_GPUS_MAX)
        n = KW_GPUS_MAX;
    o->gpus = 0;
    for (int d = 0; d < n; d++) {
        kc_device_info_t info;
        if (kc_device_info(d, &info, &err) < 0)
            break;
        snprintf(o->gpu_names[d], sizeof o->gpu_names[d], "%.90s", info.name);
        o->gpu_memory_mb[d] = (int64_t)(info.memory_bytes >> 20);
        o->gpus = d + 1;
    }
}

/* MemTotal from /proc/meminfo, in MiB; 0 if unreadable. */
static int64_t mem_total_mb(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb / 1024;
}

int kw_opts_finish(kw_opts_t *o, kiln_err_t *err)
{
    if (!o->connect[0])
        return kiln_err_at(err, KILN_EINVAL, "--connect", "--connect: kilnd's endpoint is required "
                           "(e.g. tcp://127.0.0.1:7879)");
    if (!o->id[0]) {
        char host[256] = "";
        if (gethostname(host, sizeof host) != 0 || !host[0])
            snprintf(host, sizeof host, "worker");
        host[sizeof host - 1] = '\0';
        snprintf(o->id, sizeof o->id, "%.200s-%ld", host, (long)getpid());
    }
    if (o->gpus == KW_GPUS_AUTO)
        find_gpus(o);
    if (o->cores < 0 || o->gpus < 0 || o->memory_mb < 0 || o->heartbeat_ms < 0)
        return kiln_err_set(err, KILN_EINVAL, "--cores, --memory-mb, --gpus and --heartbeat-ms "
                            "must not be negative");
    if (o->cores == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->cores = n > 0 ? (int)n : 1;
    }
    if (o->memory_mb == 0) {
        o->memory_mb = mem_total_mb();
        if (o->memory_mb <= 0)
            o->memory_mb = 1;
    }
    if (o->heartbeat_ms == 0)
        o->heartbeat_ms = KW_HEARTBEAT_MS_DEFAULT;
    if (!o->dir[0]) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !tmp[0])
            tmp = "/tmp";
        if (snprintf(o->dir, sizeof o->dir, "%s/kiln-worker-%s", tmp, o->id) >=
            (int)sizeof o->dir)
            return kiln_err_at(err, KILN_EINVAL, "--dir", "--dir: $TMPDIR is too long");
    }
    /* Room for "/task-<id>.json" after the directory. */
    if (strlen(o->dir) > KW_PATH_MAX - 64)
        return kiln_err_at(err, KILN_EINVAL, "--dir", "--dir: %s: path too long", o->dir);
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST)
        return kiln_err_at(err, KILN_EIO, "--dir", "--dir: %s: %s", o->dir, strerror(errno));
    struct stat st;
    if (stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return kiln_err_at(err, KILN_EIO, "--dir", "--dir: %s: not a directory", o->dir);
    return 0;
}
