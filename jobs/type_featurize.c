/* type_featurize.c - the featurize job type (jobtype.h): the input's
 * windows split into window-range shards, each featurized into its own
 * file by jb_featurize_run_range, then merged in order into the output so
 * that its content hash equals that of `kiln featurize` on the whole input. */
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../storage/features.h"
#include "../storage/sensor.h"
#include "featurize.h"
#include "jobtype.h"

/* Rows copied per step of the merge: with ST_MAX_FEATURES columns this
 * stays at 4 MiB of floats, so finish runs in bounded memory. */
#define MERGE_BYTES ((size_t)4 << 20)

static int feat_validate(const void *spec, void **parsed, kiln_err_t *err)
{
    *parsed = NULL;
    if (!spec)
        return kiln_err_set(err, KILN_EINVAL, "job: no spec");
    /* The CLI's parser takes text; one dump keeps a single parser. */
    char *text = json_dumps((const json_t *)spec, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return kiln_err_set(err, KILN_ENOMEM, "job: no memory to read the spec");
    jb_featurize_job_t *job = kiln_calloc(1, sizeof *job);
    if (!job) {
        free(text);
        return kiln_err_set(err, KILN_ENOMEM, "job: no memory for the spec");
    }
    int rc = jb_featurize_job_parse(text, "job", job, err);
    free(text);
    if (rc == 0 && !job->input[0])
        rc = kiln_err_at(err, KILN_ESPEC, "input", "job: input: missing");
    if (rc < 0) {
        jb_featurize_job_free(job);
        kiln_free(job);
        return rc;
    }
    *parsed = job;
    return 0;
}

static void feat_free(void *parsed)
{
    if (!parsed)
        return;
    jb_featurize_job_free(parsed);
    kiln_free(parsed);
}

static int feat_plan(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                     size_t *n_tasks, kiln_err_t *err)
{
    const jb_featurize_job_t *job = parsed;
    st_sensor_t *in = NULL;
    int rc;

    *tasks = NULL;
    *n_tasks = 0;
    if ((rc = st_sensor_open(job->input, &in, err)) < 0)
        return rc;
    const size_t total = st_sensor_meta(in)->n_windows;
    st_sensor_close(&in);

    /* Rolling features need each asset's previous windows in order, so a
     * job with them is one task over all windows.  Sharding it would need a
     * warm-up read of the k-1 previous windows of every asset before the
     * shard: left for later. */
    return jb_plan_even(ctx, total, job->features.n_roll == 0, "featurize", tasks, n_tasks,
                        err);
}

static int feat_run_task(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                         kiln_err_t *err)
{
    const jb_featurize_job_t *job = parsed;
    jb_featurize_stats_t st;
    jb_featurize_opts_t opts = {0};
    opts.use_gpu = task->use_gpu;
    opts.gpu_device = task->gpu_device;
    int rc = jb_featurize_run_range(&job->features, job->input, out_path, task->win0,
                                    task->n_windows, &opts, &st, err);
    /* The task's log (sent back to kilnd's job log) says where it ran. */
    if (rc == 0)
        fprintf(stderr, "featurized %zu windows on %s\n", st.windows, st.device);
    return rc;
}

static int same_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Shard i must carry exactly the header of shard 0, or the merged hash
 * would not be that of a whole run. */
static int check_shard(const st_features_meta_t *m0, const st_features_meta_t *m,
                       const char *path, kiln_err_t *err)
{
    int same = m->n_features == m0->n_features && m->has_label == m0->has_label &&
               m->has_target == m0->has_target && m->n_label_names == m0->n_label_names &&
               same_str(m->source_sha256, m0->source_sha256) &&
               same_str(m->spec_sha256, m0->spec_sha256);
    for (size_t i = 0; same && i < m->n_features; i++)
        same = same_str(m->feature_names[i], m0->feature_names[i]);
    for (size_t i = 0; same && i < m->n_label_names; i++)
        same = same_str(m->label_names[i], m0->label_names[i]);
    if (!same)
        return kiln_err_set(err, KILN_ESCHEMA,
                            "%s: shard does not match the first shard (features, labels, "
                            "source or spec differ)", path);
    return 0;
}

static int feat_finish(const void *parsed, const char *const *outs, size_t n,
                       const char *final_output, kiln_err_t *err)
{
    (void)parsed;
    st_features_t *first = NULL, *ds = NULL;
    st_features_writer_t *w = NULL;
    float *rows = NULL, *target = NULL;
    int32_t *asset = NULL, *label = NULL;
    int64_t *ts = NULL;
    int rc;

    if (n == 0)
        return kiln_err_set(err, KILN_EINVAL, "featurize: no task outputs to merge");
    if ((rc = st_features_open(outs[0], &first, err)) < 0)
        return rc;
    const st_features_meta_t *m0 = st_features_meta(first);
    if ((rc = st_features_create(final_output, m0, 0, &w, err)) < 0)
        goto out;

    size_t row_bytes = m0->n_features * sizeof(float);
    size_t step = MERGE_BYTES / (row_bytes ? row_bytes : 1);
    if (step < 1)
        step = 1;
    if (step > 65536)
        step = 65536;
    rows = kiln_malloc(step * row_bytes);
    asset = kiln_malloc(step * sizeof *asset);
    label = kiln_malloc(step * sizeof *label);
    ts = kiln_malloc(step * sizeof *ts);
    target = kiln_malloc(step * sizeof *target);
    if (!rows || !asset || !label || !ts || !target) {
        rc = kiln_err_set(err, KILN_ENOMEM, "featurize: no memory to merge %zu rows", step);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        st_features_t *cur = first;
        if (i > 0) {
            if ((rc = st_features_open(outs[i], &ds, err)) < 0)
                goto out;
            cur = ds;
            if ((rc = check_shard(m0, st_features_meta(ds), outs[i], err)) < 0)
                goto out;
        }
        const size_t nr = st_features_meta(cur)->n_rows;
        for (size_t r = 0; r < nr; r += step) {
            size_t k = nr - r < step ? nr - r : step;
            if ((rc = st_features_read(cur, r, k, rows, err)) < 0 ||
                (rc = st_features_read_meta(cur, r, k, asset, ts, m0->has_label ? label : NULL,
                                            m0->has_target ? target : NULL, err)) < 0 ||
                (rc = st_features_append(w, k, rows, asset, ts, m0->has_label ? label : NULL,
                                         m0->has_target ? target : NULL, err)) < 0)
                goto out;
        }
        st_features_close(&ds);
    }
    char hash[65];
    rc = st_features_commit(&w, hash, err);
out:
    st_features_abort(&w);
    st_features_close(&ds);
    st_features_close(&first);
    kiln_free(rows);
    kiln_free(asset);
    kiln_free(label);
    kiln_free(ts);
    kiln_free(target);
    return rc;
}

const jb_type_t jb_type_featurize = {
    .name = "featurize",
    .validate = feat_validate,
    .plan = feat_plan,
    .run_task = feat_run_task,
    .finish = feat_finish,
    .free_parsed = feat_free,
};
