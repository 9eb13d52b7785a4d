/* fuzz_jobspec.c - libFuzzer target: any bytes as a featurize job spec.
 * The parser must return 0 or an error code with a message, never crash,
 * leak or read out of bounds (built with ASan + UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/featurize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    jb_featurize_job_t job;
    kiln_err_t err;
    if (jb_featurize_job_parse(text, "fuzz.json", &job, &err) == 0) {
        /* a spec that parses has consistent names for every column */
        char name[JB_FEAT_NAME_MAX];
        for (size_t i = 0; i < jb_featspec_per_channel(&job.features); i++)
            jb_featspec_feature_name(&job.features, i, name);
        jb_featurize_job_free(&job);
    } else if (err.msg[0] == 0) {
        abort();    /* every rejection must say why */
    }
    free(text);
    return 0;
}
