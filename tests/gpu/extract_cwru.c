/* extract_cwru.c - real windows for the GPU parity test and benchmark: the
 * CWRU recordings are ingested as kiln does it (jb_ingest_cwru: 2048-sample
 * windows at the lowest rate, 12 kHz), and up to 512 drive-end windows,
 * evenly spaced over all recordings (so every class is in), are written as
 * raw little-endian float32 to OUTDIR/windows.f32 with OUTDIR/windows.txt
 * saying n_windows, window_len, sample_rate_hz and where they came from.
 * Runs where the full build is (HDF5, matio); the GPU machine only reads
 * the two files.  Usage: extract_cwru CWRU_DIR OUTDIR [N_WINDOWS] */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../jobs/ingest.h"
#include "../../storage/sensor.h"

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CWRU_DIR OUTDIR [N_WINDOWS]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1], *outdir = argv[2];
    size_t want = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 512;
    char *paths[256];
    size_t n_paths = 0;
    kiln_err_t err = {0};
    int rc = 1;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "extract_cwru: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n_paths < 256) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".mat")) {
            paths[n_paths] = malloc(strlen(dir) + len + 2);
            sprintf(paths[n_paths++], "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    if (!n_paths) {
        fprintf(stderr, "extract_cwru: no .mat files in %s\n", dir);
        return 1;
    }
    qsort(paths, n_paths, sizeof *paths, by_name);
    mkdir(outdir, 0755);
    char h5[4096], f32[4096], txt[4096];
    snprintf(h5, sizeof h5, "%s/cwru.h5", outdir);
    snprintf(f32, sizeof f32, "%s/windows.f32", outdir);
    snprintf(txt, sizeof txt, "%s/windows.txt", outdir);
    jb_ingest_opts_t opts = {0};
    opts.window_len = 2048;
    jb_ingest_summary_t sum;
    st_sensor_t *ds = NULL;
    float *buf = NULL;
    FILE *fo = NULL, *ft = NULL;
    remove(h5);
    if (jb_ingest_cwru(h5, (const char *const *)paths, n_paths, &opts, &sum, &err) < 0 ||
        st_sensor_open(h5, &ds, &err) < 0) {
        fprintf(stderr, "extract_cwru: %s\n", err.msg);
        goto out;
    }
    const st_sensor_meta_t *meta = st_sensor_meta(ds);
    int ch = st_sensor_channel_index(ds, "DE");
    if (ch < 0) {
        fprintf(stderr, "extract_cwru: no DE channel in %s\n", h5);
        goto out;
    }
    const size_t n = meta->window_len, total = meta->n_windows;
    if (want > total)
        want = total;
    buf = malloc(n * sizeof *buf);
    fo = fopen(f32, "wb");
    ft = fopen(txt, "w");
    if (!buf || !fo || !ft) {
        fprintf(stderr, "extract_cwru: cannot write %s\n", outdir);
        goto out;
    }
    int32_t label;
    size_t per_label[ST_MAX_LABELS] = {0};
    for (size_t k = 0; k < want; k++) {
        size_t w = k * total / want;
        if (st_sensor_read(ds, (size_t)ch, w, 1, buf, &err) < 0 ||
            st_sensor_read_meta(ds, w, 1, NULL, NULL, &label, NULL, &err) < 0) {
            fprintf(stderr, "extract_cwru: %s\n", err.msg);
            goto out;
        }
        if (label >= 0 && label < ST_MAX_LABELS)
            per_label[label]++;
        if (fwrite(buf, sizeof *buf, n, fo) != n) {
            fprintf(stderr, "extract_cwru: short write to %s\n", f32);
            goto out;
        }
    }
    fprintf(ft, "n_windows %zu\nwindow_len %zu\nsample_rate_hz %.17g\nchannel DE\n"
                "source CWRU %zu recordings via jb_ingest_cwru, every %zu-th of %zu windows\n",
            want, n, meta->sample_rate_hz, n_paths, total / want, total);
    for (size_t l = 0; l < meta->n_label_names; l++)
        fprintf(ft, "label %s %zu\n", meta->label_names[l], per_label[l]);
    printf("extract_cwru: %zu windows x %zu samples at %.0f Hz -> %s\n", want, n,
           meta->sample_rate_hz, f32);
    rc = 0;
out:
    if (fo && fclose(fo) != 0)
        rc = 1;
    if (ft && fclose(ft) != 0)
        rc = 1;
    free(buf);
    st_sensor_close(&ds);
    remove(h5);
    for (size_t i = 0; i < n_paths; i++)
        free(paths[i]);
    return rc;
}
