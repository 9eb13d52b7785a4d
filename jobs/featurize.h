/* featurize.h - the featurize job: a feature spec over a sensor dataset into
 * a feature dataset, streaming batch by batch, compute spread over threads.
 * The CLI (`kiln featurize`) and, later, the cluster worker call this. */
#ifndef KILN_JOBS_FEATURIZE_H
#define KILN_JOBS_FEATURIZE_H

#include <stddef.h>
#include <stdint.h>

#include "featspec.h"

/* A parsed featurize job spec: {"type": "featurize", "name", "project",
 * "input", "output", "features": {...}} plus the common job fields of
 * DESIGN.md, which are type-checked here and used by the scheduler. */
typedef struct {
    char          name[128];
    char          project[128];
    char          input[1024];
    char          output[1024];
    jb_featspec_t features;
} jb_featurize_job_t;

/* Parses job JSON text; `source` names it in messages (e.g. the file name).
 * Free with jb_featurize_job_free. */
int  jb_featurize_job_parse(const char *json_text, const char *source,
                            jb_featurize_job_t *job, kiln_err_t *err);
void jb_featurize_job_free(jb_featurize_job_t *job);

typedef struct {
    int    n_threads;       /* compute threads; 0 = cores online */
    size_t batch_windows;   /* windows per read batch; 0 = 256 */
    int    compress;        /* deflate level for the output, 0 = none */
    /* called from the calling thread after each batch; may be NULL */
    void (*progress)(void *ud, size_t done, size_t total);
    void  *progress_ud;
    /* use_gpu: compute on GPU gpu_device (jobs/featgpu.h); a spec or a
     * machine the GPU path cannot take falls back to the CPU, and
     * stats->device says so.  0: the CPU. */
    int    use_gpu;
    int    gpu_device;
} jb_featurize_opts_t;

typedef struct {
    size_t   windows, channels, window_len, n_features;
    double   seconds;
    uint64_t signal_bytes;    /* raw float32 samples read */
    char     output_sha256[65];
    char     device[320];     /* "CPU, 2 threads", "GPU 0 (NVIDIA H200)", or why not the GPU */
    /* Where the seconds went: reading the input (this thread), waiting for
     * the compute of a batch after the next one was read, and making the
     * GPU context and plan (beside the first read). */
    double   read_s, wait_s, gpu_setup_s;
} jb_featurize_stats_t;

int jb_featurize_run(const jb_featspec_t *spec, const char *input, const char *output,
                     const jb_featurize_opts_t *opts, jb_featurize_stats_t *stats,
                     kiln_err_t *err);

/* As jb_featurize_run over windows [first, first + count) of the input only
 * (count JB_FEAT_ALL_WINDOWS: to the end); a range past the end is KILN_EINVAL.
 * The output carries the same metadata as a whole run, so range outputs
 * appended in order give a whole run's content — except rolling features,
 * whose per-asset rings start empty at `first`.  stats->windows = count. */
#define JB_FEAT_ALL_WINDOWS ((size_t)-1)
int jb_featurize_run_range(const jb_featspec_t *spec, const char *input, const char *output,
                           size_t first, size_t count, const jb_featurize_opts_t *opts,
                           jb_featurize_stats_t *stats, kiln_err_t *err);

#endif
