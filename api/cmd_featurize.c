/* cmd_featurize.c - `kiln featurize SPEC.json`: runs a featurize job on this
 * machine through jobs/featurize (the cluster runs the same job code). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "../jobs/featurize.h"
#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln featurize SPEC.json [--input IN.h5] [--output OUT.h5]\n"
            "                      [--threads N] [--batch N] [--compress L] [--stats-json FILE]\n"
            "                      [--gpu DEVICE]\n"
            "Runs the feature spec (docs/featurize.md) over a kiln.sensor.v1 dataset and\n"
            "writes a kiln.features.v1 dataset. --input/--output override the spec's.\n"
            "--gpu: on that CUDA device (the CPU when this machine or build has none, or\n"
            "the spec's window length is not a power of two; the output says which).\n");
}

static int read_file(const char *path, char **out, kiln_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_set(err, KILN_EIO, "%s: cannot open", path);
    /* Job specs are small; a bound keeps a wrong file from eating memory. */
    const size_t cap = 1 << 20;
    char *buf = kiln_malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return kiln_err_set(err, KILN_ENOMEM, "%s: no memory", path);
    }
    size_t n = fread(buf, 1, cap + 1, f);
    fclose(f);
    if (n > cap) {
        kiln_free(buf);
        return kiln_err_set(err, KILN_ESPEC, "%s: larger than 1 MiB, not a job spec", path);
    }
    buf[n] = 0;
    *out = buf;
    return 0;
}

/* A whole number in [lo, hi] for option `opt`, or a usage message. */
static int whole_number(const char *opt, const char *val, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < lo || v > hi) {
        fprintf(stderr, "kiln featurize: %s must be a whole number %ld..%ld, got '%s'\n", opt,
                lo, hi, val);
        return -1;
    }
    *out = v;
    return 0;
}

static void progress_bar(void *ud, size_t done, size_t total)
{
    (void)ud;
    int width = 40, fill = total ? (int)((double)done / (double)total * width) : width;
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu windows", fill,
            "########################################", width - fill, "", done, total);
    if (done == total)
        fputc('\n', stderr);
}

int kiln_cmd_featurize(int argc, char **argv)
{
    const char *spec_path = NULL, *input = NULL, *output = NULL, *stats_path = NULL;
    jb_featurize_opts_t opts = {0};
    jb_featurize_job_t job;
    jb_featurize_stats_t st;
    kiln_err_t err;
    char *text = NULL;
    long num;
    int rc;

    kiln_err_clear(&err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--input") && val) {
            input = val, i++;
        } else if (!strcmp(a, "--output") && val) {
            output = val, i++;
        } else if (!strcmp(a, "--threads") && val) {
            if (whole_number(a, val, 1, 64, &num) < 0)
                return 2;
            opts.n_threads = (int)num, i++;
        } else if (!strcmp(a, "--batch") && val) {
            if (whole_number(a, val, 1, 1000000, &num) < 0)
                return 2;
            opts.batch_windows = (size_t)num, i++;
        } else if (!strcmp(a, "--compress") && val) {
            if (whole_number(a, val, 0, 9, &num) < 0)
                return 2;
            opts.compress = (int)num, i++;
        } else if (!strcmp(a, "--gpu") && val) {
            if (whole_number(a, val, 0, 64, &num) < 0)
                return 2;
            opts.use_gpu = 1;
            opts.gpu_device = (int)num, i++;
        } else if (!strcmp(a, "--stats-json") && val) {
            stats_path = val, i++;
        } else if (a[0] != '-' && !spec_path) {
            spec_path = a;
        } else {
            fprintf(stderr, "kiln featurize: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!spec_path) {
        usage(stderr);
        return 2;
    }
    if ((rc = read_file(spec_path, &text, &err)) < 0 ||
        (rc = jb_featurize_job_parse(text, spec_path, &job, &err)) < 0) {
        kiln_free(text);
        fprintf(stderr, "kiln featurize: %s\n", err.msg);
        return 1;
    }
    kiln_free(text);
    if (!input)
        input = job.input[0] ? job.input : NULL;
    if (!output)
        output = job.output[0] ? job.output : NULL;
    if (!input || !output) {
        fprintf(stderr, "kiln featurize: %s: %s missing (give it in the spec or as --%s)\n",
                spec_path, input ? "output" : "input", input ? "output" : "input");
        jb_featurize_job_free(&job);
        return 1;
    }
    if (isatty(STDERR_FILENO))
        opts.progress = progress_bar;

    rc = jb_featurize_run(&job.features, input, output, &opts, &st, &err);
    if (rc < 0) {
        fprintf(stderr, "kiln featurize: %s\n", err.msg);
        jb_featurize_job_free(&job);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double gbps = st.seconds > 0 ? (double)st.signal_bytes / st.seconds / 1e9 : 0;
    printf("featurized %s -> %s\n", input, output);
    printf("  windows %zu x %zu channels x %zu samples -> %zu features per window\n",
           st.windows, st.channels, st.window_len, st.n_features);
    printf("  %.3f s, %.0f windows/s, %.2f GB/s of signal, peak RSS %ld MiB\n", st.seconds,
           st.seconds > 0 ? (double)st.windows / st.seconds : 0.0, gbps, ru.ru_maxrss / 1024);
    printf("  on %s\n", st.device);
    printf("  reading %.3f s, waiting for the compute %.3f s", st.read_s, st.wait_s);
    if (st.gpu_setup_s > 0)
        printf(", GPU setup %.3f s (beside the first read)", st.gpu_setup_s);
    printf("\n");
    printf("  spec sha256   %s\n  output sha256 %s\n", job.features.sha256, st.output_sha256);
    if (stats_path) {
        FILE *f = fopen(stats_path, "w");
        if (!f) {
            fprintf(stderr, "kiln featurize: cannot write %s\n", stats_path);
            jb_featurize_job_free(&job);
            return 1;
        }
        fprintf(f,
                "{\"windows\": %zu, \"channels\": %zu, \"window_len\": %zu, \"features\": %zu, "
                "\"seconds\": %.6f, \"signal_bytes\": %llu, \"gbps\": %.4f, "
                "\"peak_rss_kib\": %ld, \"spec_sha256\": \"%s\", \"output_sha256\": \"%s\", "
                "\"device\": \"%s\", \"read_s\": %.6f, \"wait_s\": %.6f, \"gpu_setup_s\": %.6f}\n",
                st.windows, st.channels, st.window_len, st.n_features, st.seconds,
                (unsigned long long)st.signal_bytes, gbps, ru.ru_maxrss, job.features.sha256,
                st.output_sha256, st.device, st.read_s, st.wait_s, st.gpu_setup_s);
        fclose(f);
    }
    jb_featurize_job_free(&job);
    return 0;
}
