/* test_trainset.c - feature datasets loaded for training and the
 * time-aware split: per asset, the latest rows are held out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "jobs/trainset.h"
#include "oracle.h"
#include "storage/features.h"

#define N 40
#define D 3

/* 4 assets x 10 rows, timestamps shuffled within the file; label -1 on row 7. */
static void write_file(const char *path, int with_label)
{
    st_features_meta_t m = {0};
    m.n_features = D;
    m.feature_names[0] = "a";
    m.feature_names[1] = "b";
    m.feature_names[2] = "c";
    m.has_label = with_label;
    m.has_target = 1;
    m.n_label_names = 2;
    m.label_names[0] = "normal";
    m.label_names[1] = "fault";
    float x[N * D], target[N];
    int32_t asset[N], label[N];
    int64_t ts[N];
    for (int i = 0; i < N; i++) {
        asset[i] = i % 4;
        ts[i] = (int64_t)((i * 7) % N) * 1000;   /* not in file order */
        label[i] = i == 7 ? -1 : (i / 4) % 2;
        target[i] = (float)i;
        for (int k = 0; k < D; k++)
            x[i * D + k] = (float)(i * 10 + k);
    }
    st_features_writer_t *w;
    kiln_err_t err;
    char hex[65];
    assert_int_equal(st_features_create(path, &m, 0, &w, &err), 0);
    assert_int_equal(st_features_append(w, N, x, asset, ts, with_label ? label : NULL, target,
                                        &err), 0);
    assert_int_equal(st_features_commit(&w, hex, &err), 0);
}

static void test_load_and_split(void **state)
{
    (void)state;
    char path[512];
    oracle_tmp_path(path, "trainset.h5");
    write_file(path, 1);
    kiln_err_t err;
    jb_trainset_t ts;
    assert_int_equal(jb_trainset_load(path, JB_LEARN_LABEL, &ts, &err), 0);
    assert_int_equal(ts.n, N - 1);   /* the unknown label is dropped */
    assert_int_equal(ts.d, D);
    assert_int_equal(ts.n_classes, 2);
    assert_string_equal(ts.class_names[1], "fault");
    assert_string_equal(ts.feature_names[2], "c");
    assert_null(ts.target);
    /* row 8 of the file is the 8th kept row (row 7 dropped) */
    assert_true(ts.x[7 * D] == 80.0f);
    assert_int_equal(strlen(ts.content_sha256), 64);

    size_t *tr, *va, nt, nv;
    assert_int_equal(jb_trainset_split_time(&ts, 0.25, &tr, &nt, &va, &nv, &err), 0);
    assert_int_equal(nt + nv, ts.n);
    /* per asset, every held-out row is later than every training row */
    for (int a = 0; a < 4; a++) {
        int64_t last_train = -1, first_valid = INT64_MAX;
        size_t held = 0, count = 0;
        for (size_t i = 0; i < nt; i++)
            if (ts.asset[tr[i]] == a && ts.timestamp_ns[tr[i]] > last_train)
                last_train = ts.timestamp_ns[tr[i]];
        for (size_t i = 0; i < nv; i++)
            if (ts.asset[va[i]] == a) {
                held++;
                if (ts.timestamp_ns[va[i]] < first_valid)
                    first_valid = ts.timestamp_ns[va[i]];
            }
        for (size_t i = 0; i < ts.n; i++)
            count += ts.asset[i] == a;
        assert_true(first_valid > last_train);
        assert_int_equal(held, (size_t)((count * 25 + 99) / 100));
    }
    float x[N * D];
    int32_t lab[N];
    jb_trainset_gather(&ts, va, nv, x, lab, NULL);
    assert_true(x[0] == ts.x[va[0] * D]);
    assert_int_equal(lab[nv - 1], ts.label[va[nv - 1]]);
    kiln_free(tr);
    kiln_free(va);
    assert_int_equal(jb_trainset_split_time(&ts, 1.0, &tr, &nt, &va, &nv, &err), KILN_ESPEC);
    jb_trainset_free(&ts);

    assert_int_equal(jb_trainset_load(path, JB_LEARN_TARGET, &ts, &err), 0);
    assert_int_equal(ts.n, N);
    assert_non_null(ts.target);
    assert_true(ts.target[39] == 39.0f);
    jb_trainset_free(&ts);
    unlink(path);

    write_file(path, 0);
    assert_int_equal(jb_trainset_load(path, JB_LEARN_LABEL, &ts, &err), KILN_ESPEC);
    assert_non_null(strstr(err.msg, "no /label"));
    unlink(path);
    assert_int_equal(jb_trainset_load(path, JB_LEARN_LABEL, &ts, &err) < 0, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
