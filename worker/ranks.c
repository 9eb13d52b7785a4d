/* ranks.c - `kiln-worker --train-ranks SPEC.json` (ranks.h): the rank side of
 * a data-parallel train job.  MPI lives behind cluster/collective.h; this
 * file only reads the spec, joins, runs the rank's task and reports. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../cluster/collective.h"
#include "../cluster/gpu_ranks.h"
#include "../jobs/jobtype.h"
#include "../jobs/jobspec.h"
#include "../jobs/train_ranks.h"
#include "ranks.h"

#define SPEC_MAX_BYTES (1 << 20)   /* as kilnd and `kiln train`: job specs are small */

/* The train spec at path (new reference), or NULL with err set. */
static json_t *load_spec(const char *path, kiln_err_t *err)
{
    void *spec = NULL;
    return jb_spec_load_file(path, "train", &spec, err) < 0 ? NULL : spec;
}

/* Validates spec_path and runs this rank's task into output. */
static int run_rank(kc_coll_t *c, const char *spec_path, const char *output, kiln_err_t *err)
{
    const jb_type_t *type = jb_type_find("train");
    void *parsed = NULL;
    int rc;
    if (!type)
        return kiln_err_set(err, KILN_EINTERNAL, "this kiln has no train job type");
    json_t *spec = load_spec(spec_path, err);
    if (!spec)
        return err->code;
    if (!output)
        output = json_string_value(json_object_get(spec, "output"));
    if (!output || !output[0]) {
        rc = kiln_err_at(err, KILN_ESPEC, "output",
                         "%s: output missing (give it in the spec or as --output)", spec_path);
        goto out;
    }
    if ((rc = type->validate(spec, &parsed, err)) < 0)
        goto out;
    km_reduce_t reduce = kc_coll_reduce(c);
    /* A job asking for GPUs: one per rank, summed through NCCL when every
     * rank has one (gpu_ranks.h); else every rank fits on its CPU over MPI. */
    const json_t *gpus = json_object_get(json_object_get(spec, "resources"), "gpus");
    kc_gpu_rank_t *g = NULL;
    jb_train_where_t where = {.gpu_device = -1};
    char why[300] = "";
    if (json_is_integer(gpus) && json_integer_value(gpus) > 0) {
        if ((rc = kc_gpu_rank_open(c, &g, why, sizeof why, err)) < 0)
            goto out;
        if (g) {
            reduce = kc_gpu_rank_reduce(g);
            where.gpu_device = kc_gpu_rank_device(g);
        }
    }
    rc = jb_train_rank_run_on(parsed, &reduce, &where, output, err);
    if (rc == 0 && why[0])
        fprintf(stderr, "rank %d of %d: trained on %s, sums through MPI (not NCCL: %s)\n",
                kc_coll_rank(c), kc_coll_size(c), where.device, why);
    else if (rc == 0)
        fprintf(stderr, "rank %d of %d: trained on %s, sums through %s\n", kc_coll_rank(c),
                kc_coll_size(c), where.device, g ? "NCCL" : "MPI");
    kc_gpu_rank_close(&g);
out:
    if (parsed)
        type->free_parsed(parsed);
    json_decref(spec);
    return rc;
}

int kw_train_ranks_main(int *argc, char ***argv, const char *spec_path, const char *output)
{
    kiln_err_t err;
    kiln_err_clear(&err);
    kc_coll_t *c = NULL;
    if (kc_coll_init(argc, argv, &c, &err) < 0) {
        fprintf(stderr, "kiln-worker: error: %s\n", err.msg);
        return 1;
    }
    const int rank = kc_coll_rank(c), n_ranks = kc_coll_size(c);
    int rc = run_rank(c, spec_path, output, &err);
    if (rc < 0) {
        int field = rc == KILN_ESPEC && err.where[0];
        fprintf(stderr, "kiln-worker: rank %d of %d: error: %s%s%s%s\n", rank, n_ranks, err.msg,
                field ? " (field: " : "", field ? err.where : "", field ? ")" : "");
        fflush(stderr);
        /* Another rank may be inside a sum this one will never join: only
         * ending the whole run frees it.  One rank has no one to wait for. */
        if (n_ranks > 1)
            kc_coll_abort(c, 1);
        kc_coll_finalize(&c);
        return 1;
    }
    kc_coll_finalize(&c);
    return 0;
}
