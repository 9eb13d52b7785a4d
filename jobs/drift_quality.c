/* drift_quality.c - the drift task's model quality: accuracy and macro F1 on
 * the current labels, from the model run over the current features (or a
 * predictions file's own /predicted), counted into a confusion matrix chunk
 * by chunk. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "drift_run_int.h"

#define QUALITY_CLASSES_MAX 256

static const char *str_or_empty(const json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "";
}

int jb_drift_quality_open(jb_drift_acc_t *a, const jb_drift_src_t *cur, kiln_err_t *err)
{
    const jb_drift_spec_t *t = a->t;
    if (!cur->has_label) {
        snprintf(a->quality_note, sizeof a->quality_note, "the current set has no labels");
        return 0;
    }
    if (cur->is_pred) {
        a->n_model_classes = cur->n_classes ? cur->n_classes : 0;
        if (!a->n_model_classes || a->n_model_classes > QUALITY_CLASSES_MAX) {
            snprintf(a->quality_note, sizeof a->quality_note,
                     "the predictions name %zu classes", a->n_model_classes);
            return 0;
        }
    } else {
        if (!t->model_file[0]) {
            snprintf(a->quality_note, sizeof a->quality_note,
                     "no model named (reference {\"model\": ...})");
            return 0;
        }
        int rc = jb_modelfile_read(t->model_file, &a->model, err);
        if (rc < 0)
            return rc;
        a->have_model = 1;
        const json_t *names = json_object_get(a->model.header, "feature_names");
        const json_t *classes = json_object_get(a->model.header, "class_names");
        const char *learn = json_string_value(json_object_get(a->model.header, "learn"));
        int same = json_array_size(names) == cur->n_num;
        for (size_t i = 0; same && i < cur->n_num; i++)
            same = !strcmp(str_or_empty(json_array_get(names, i)), cur->num_names[i]);
        if (!same || !learn || strcmp(learn, "label") || a->model.kind->unsupervised) {
            snprintf(a->quality_note, sizeof a->quality_note, "model %s %s", t->model_id,
                     same ? "does not classify labels" : "expects other features");
            return 0;
        }
        a->n_model_classes = json_array_size(classes);
        if (!a->n_model_classes || a->n_model_classes > QUALITY_CLASSES_MAX) {
            snprintf(a->quality_note, sizeof a->quality_note, "model %s has %zu classes",
                     t->model_id, a->n_model_classes);
            return 0;
        }
        size_t n_out = a->model.kind->n_outputs(a->model.model);
        a->scores = kiln_malloc(a->step * n_out * sizeof *a->scores);
        a->model_pred = kiln_malloc(a->step * sizeof *a->model_pred);
        a->label_to_model = kiln_malloc((cur->n_classes ? cur->n_classes : 1) * sizeof(int32_t));
        if (!a->scores || !a->model_pred || !a->label_to_model)
            return kiln_err_set(err, KILN_ENOMEM, "drift: out of memory for the model");
        for (size_t i = 0; i < cur->n_classes; i++) {
            a->label_to_model[i] = -1;
            for (size_t k = 0; k < a->n_model_classes; k++)
                if (!strcmp(cur->classes[i], str_or_empty(json_array_get(classes, k))))
                    a->label_to_model[i] = (int32_t)k;
        }
    }
    a->confusion = kiln_calloc(a->n_model_classes * a->n_model_classes, sizeof *a->confusion);
    if (!a->confusion)
        return kiln_err_set(err, KILN_ENOMEM, "drift: out of memory");
    a->quality_on = 1;
    return 0;
}

int jb_drift_quality_feed(jb_drift_acc_t *a, const jb_drift_src_t *cur, size_t k, kiln_err_t *err)
{
    if (!a->quality_on)
        return 0;
    const int32_t *pred = a->pred;
    if (!cur->is_pred) {
        int rc = jb_modelfile_predict(&a->model, a->rows, k, a->scores, a->model_pred, err);
        if (rc < 0)
            return rc;
        pred = a->model_pred;
    }
    const size_t K = a->n_model_classes;
    for (size_t i = 0; i < k; i++) {
        int32_t y = a->label[i];
        if (!cur->is_pred)
            y = y >= 0 && (size_t)y < cur->n_classes ? a->label_to_model[y] : -1;
        if (y < 0 || (size_t)y >= K || pred[i] < 0 || (size_t)pred[i] >= K)
            continue;                         /* unknown label: not scored, as score does */
        a->confusion[(size_t)y * K + (size_t)pred[i]]++;
    }
    return 0;
}

/* Accuracy and macro F1 (km_metrics_f1_macro's rule: the classes that occur
 * in y_true or y_pred) from the confusion counts. */
void jb_drift_quality_finish(const jb_drift_acc_t *a, double *acc, double *f1)
{
    const size_t K = a->n_model_classes;
    uint64_t total = 0, right = 0;
    double sum = 0;
    size_t n_f1 = 0;
    for (size_t c = 0; c < K; c++) {
        uint64_t tp = a->confusion[c * K + c], fp = 0, fn = 0;
        for (size_t o = 0; o < K; o++) {
            total += a->confusion[c * K + o];
            if (o != c) {
                fn += a->confusion[c * K + o];
                fp += a->confusion[o * K + c];
            }
        }
        right += tp;
        if (tp + fp + fn) {
            sum += 2.0 * (double)tp / (double)(2 * tp + fp + fn);
            n_f1++;
        }
    }
    *acc = total ? (double)right / (double)total : NAN;
    *f1 = n_f1 ? sum / (double)n_f1 : NAN;
}
