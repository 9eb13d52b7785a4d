/* cmd_export.c - `kiln export-lightgbm MODEL.kmodel -o OUT.txt`: a gbdt model
 * file as LightGBM's model text (jobs/model_gbdt_export.h), so LightGBM's
 * predictor, or anything that reads its format, scores kiln's trees on the
 * raw feature rows (the scaler is folded into the thresholds). */
#include <stdio.h>
#include <string.h>

#include "../jobs/model_gbdt_export.h"
#include "cli.h"
#include "cli_util.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: kiln export-lightgbm MODEL.kmodel -o OUT.txt\n"
               "Writes a gbdt model file as LightGBM model text (version v4): load it with\n"
               "lightgbm.Booster(model_file=OUT.txt) and predict on the same raw feature rows\n"
               "(the feature dataset's columns, in order) that `kiln score` takes; the scaler\n"
               "is folded into the thresholds and the initial scores into the first trees.\n"
               "Binary and multiclass models give LightGBM's probabilities (column 1 of\n"
               "kiln's score for a binary model), regression models the value.  Only gbdt\n"
               "models convert.\n"
               "  -o OUT.txt   the LightGBM model file to write\n");
}

int kiln_cmd_export_lightgbm(int argc, char **argv)
{
    const char *model = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            return ka_usage_error("export-lightgbm", usage, "unexpected argument", argv[i]);
        }
    }
    if (!model)
        return ka_usage_error("export-lightgbm", usage, "missing MODEL.kmodel", NULL);
    if (!out)
        return ka_usage_error("export-lightgbm", usage, "missing -o OUT.txt", NULL);
    jb_gbdt_export_info_t info;
    kiln_err_t err;
    if (jb_gbdt_export_lightgbm_file(model, out, &info, &err) < 0) {
        fprintf(stderr, "kiln export-lightgbm: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: LightGBM model text, %s, %zu features, %zu trees (up to %zu leaves), "
           "%zu bytes\n",
           out, info.n_classes == 0 ? "regression" : info.n_classes == 2 ? "binary" : "multiclass",
           info.n_features, info.n_trees, info.max_leaves, info.n_bytes);
    return 0;
}
