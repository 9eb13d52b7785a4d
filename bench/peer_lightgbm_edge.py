"""peer_lightgbm_edge.py - kiln's gbdt scored by LightGBM's own predictor, the
edge benchmark's gbdt peer (bench/run.sh, part "edge"), and the check that
tests/system/gbdt_export_lightgbm.sh runs.

  compare MODEL.txt ROWS.f32 KILN_SCORES.f32 [--repeat N]
      MODEL.txt is `kiln export-lightgbm` of the .kmodel that edge_bench
      --rows scored; ROWS.f32 the raw feature rows (n x d float32, as
      peer_onnxruntime.py rows writes them), KILN_SCORES.f32 kiln's scores
      of them (n x n_outputs float32).  Asserts that LightGBM gives kiln's
      predictions, then times single-row predictions two ways, one row per
      call as an edge agent scores each window: LightGBM's C API fast path
      (LGBM_BoosterPredictForMatSingleRowFast through ctypes, set up once)
      and the Python Booster.predict; and, to read the first figure, what
      a trivial C API call through ctypes costs.  Prints one JSON object.
  check MODEL.txt FEATURES.h5 PREDICTIONS.h5
      the same assertions on a feature dataset and `kiln score`'s
      kiln.predictions.v1 file of it (/score, /predicted); prints one JSON
      object, exits non-zero (AssertionError) where they differ.

The same predictions: kiln's raw scores are sums of the same leaf values in
the same order as LightGBM's (the exporter folds the scaler into the
thresholds and the initial score into the first trees, jobs/
model_gbdt_export.h), so the probabilities differ only by kiln's rounding
to float32 (half an ulp of 1.0 is 6e-8): asserted within 1e-6, and the
same predicted class on every row.  A regression value is asserted within
1e-6 relative.
"""
import ctypes
import json
import sys
import time

import numpy as np

TOL = 1e-6


def load(model_txt):
    import lightgbm as lgb
    return lgb, lgb.Booster(model_file=model_txt)


def objective(booster):
    """'binary', 'multiclass' or 'regression', from the model text."""
    obj = booster.dump_model(num_iteration=1)["objective"].split()[0]
    assert obj in ("binary", "multiclass", "regression"), "unexpected objective " + obj
    return obj


def as_kiln_scores(obj, pred):
    """LightGBM's output in kiln's layout: [1 - p, p] for binary."""
    pred = np.asarray(pred, dtype=np.float64)
    if obj == "binary":
        return np.stack([1.0 - pred, pred], axis=1)
    if obj == "regression":
        return pred.reshape(-1, 1)
    return pred


def assert_same(obj, lgb_scores, kiln_scores, kiln_pred=None):
    """Asserts the tolerances the module doc states; returns the figures."""
    assert lgb_scores.shape == kiln_scores.shape, "LightGBM gives %s outputs, kiln %s" % (
        lgb_scores.shape, kiln_scores.shape)
    diff = np.abs(lgb_scores - kiln_scores.astype(np.float64))
    if obj == "regression":
        rel = diff / np.maximum(1.0, np.abs(lgb_scores))
        worst = float(rel.max()) if rel.size else 0.0
        assert worst <= TOL, "LightGBM differs from kiln by %g relative (> %g) at row %d" % (
            worst, TOL, int(rel.argmax()))
        return {"max_rel_value_diff": worst, "same_class_rows": None}
    worst = float(diff.max()) if diff.size else 0.0
    assert worst <= TOL, "LightGBM differs from kiln by %g (> %g) at row %d" % (
        worst, TOL, int(diff.max(1).argmax()))
    lp = lgb_scores.argmax(1)
    kp = kiln_scores.argmax(1) if kiln_pred is None else np.asarray(kiln_pred)
    if kiln_pred is None:
        # kiln's float32 scores can tie where LightGBM's doubles do not
        top2 = np.sort(kiln_scores, 1)[:, -2:]
        tie = top2[:, 1] == top2[:, 0]
    else:
        tie = np.zeros(len(lp), dtype=bool)
    bad = np.flatnonzero((lp != kp) & ~tie)
    assert len(bad) == 0, "predicted class differs on %d rows (first: row %d, kiln %d, LightGBM %d)" % (
        len(bad), bad[0], kp[bad[0]], lp[bad[0]])
    return {"max_abs_prob_diff": worst, "same_class_rows": int(np.sum(lp == kp))}


class FastRow:
    """LightGBM's single-row fast path: the config (threads, iterations,
    float32 rows of d columns) is built once, each call scores one row."""

    def __init__(self, lgb, booster, d, n_out):
        self.lib = lgb.basic._LIB
        self.cfg = ctypes.c_void_p()
        rc = self.lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(0),          # C_API_PREDICT_NORMAL
            ctypes.c_int(0), ctypes.c_int(-1),         # all iterations
            ctypes.c_int(0),                           # C_API_DTYPE_FLOAT32
            ctypes.c_int32(d), ctypes.c_char_p(b"num_threads=1"), ctypes.byref(self.cfg))
        assert rc == 0, "LGBM_BoosterPredictForMatSingleRowFastInit: %s" % (
            self.lib.LGBM_GetLastError().decode())
        self.out_len = ctypes.c_int64()
        self.out = (ctypes.c_double * n_out)()
        self.fn = self.lib.LGBM_BoosterPredictForMatSingleRowFast
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64),
                            ctypes.POINTER(ctypes.c_double)]

    def __call__(self, row_ptr):
        rc = self.fn(self.cfg, row_ptr, ctypes.byref(self.out_len), self.out)
        assert rc == 0, "LGBM_BoosterPredictForMatSingleRowFast failed"
        return self.out

    def close(self):
        self.lib.LGBM_FastConfigFree(self.cfg)


def percentiles(lat):
    lat = np.sort(np.array(lat))
    return {"calls": int(len(lat)), "p50_us": float(lat[len(lat) // 2]),
            "p99_us": float(lat[int((len(lat) - 1) * 0.99)]), "mean_us": float(lat.mean())}


def compare(model_txt, rows_path, kiln_scores, repeat):
    lgb, booster = load(model_txt)
    obj = objective(booster)
    d = booster.num_feature()
    x = np.ascontiguousarray(np.fromfile(rows_path, "<f4").reshape(-1, d))
    n_out = 2 if obj == "binary" else 1 if obj == "regression" else booster.dump_model(
        num_iteration=1)["num_class"]
    ks = np.fromfile(kiln_scores, "<f4").reshape(-1, n_out)
    assert ks.shape[0] == x.shape[0], "kiln scored %d rows, there are %d" % (ks.shape[0], x.shape[0])
    same = assert_same(obj, as_kiln_scores(obj, booster.predict(x, num_threads=1)), ks)

    # the fast path must give what the batch predict gave, row by row
    fast = FastRow(lgb, booster, d, n_out if obj == "multiclass" else 1)
    ptrs = [x[i].ctypes.data for i in range(x.shape[0])]
    one = np.array([list(fast(p)) for p in ptrs])
    same_fast = assert_same(obj, as_kiln_scores(obj, one if obj == "multiclass" else one[:, 0]), ks)

    lat_fast, lat_py = [], []
    rows1 = [x[i:i + 1] for i in range(x.shape[0])]
    for r in rows1[:200]:                       # warm-up, not timed
        booster.predict(r, num_threads=1)
    for _ in range(repeat):
        for p in ptrs:
            t0 = time.perf_counter_ns()
            fast(p)
            lat_fast.append((time.perf_counter_ns() - t0) / 1e3)
    for _ in range(repeat):
        for r in rows1:
            t0 = time.perf_counter_ns()
            booster.predict(r, num_threads=1)
            lat_py.append((time.perf_counter_ns() - t0) / 1e3)
    fast.close()
    # what a ctypes call costs by itself, for reading the fast path's figure:
    # a C API call that does nothing but read a field
    get_nf, nf, lat_call = fast.lib.LGBM_BoosterGetNumFeature, ctypes.c_int(), []
    for _ in range(repeat):
        for _ in ptrs:
            t0 = time.perf_counter_ns()
            get_nf(booster._handle, ctypes.byref(nf))
            lat_call.append((time.perf_counter_ns() - t0) / 1e3)
    f, p = percentiles(lat_fast), percentiles(lat_py)
    print(json.dumps({
        "peer": "LightGBM %s: LGBM_BoosterPredictForMatSingleRowFast (C API via ctypes, "
                "num_threads=1, float32 row), and Booster.predict from Python" % lgb.__version__,
        "objective": obj, "rows": int(x.shape[0]), "features": d, "outputs": n_out,
        "trees": booster.num_trees(), "rounds": booster.current_iteration(),
        **f, "python_predict": p, "ctypes_call_p50_us": percentiles(lat_call)["p50_us"],
        "max_abs_prob_diff": max(same.get("max_abs_prob_diff") or 0.0,
                                 same_fast.get("max_abs_prob_diff") or 0.0),
        "max_rel_value_diff": same.get("max_rel_value_diff"),
        "same_class_rows": same["same_class_rows"], "tolerance": TOL}))


def check(model_txt, features, predictions):
    import h5py
    _, booster = load(model_txt)
    obj = objective(booster)
    x = np.ascontiguousarray(h5py.File(features, "r")["features"][:].astype("<f4"))
    with h5py.File(predictions, "r") as p:
        ks = p["score"][:]
        kp = p["predicted"][:] if obj != "regression" else None
    assert booster.num_feature() == x.shape[1], "the model takes %d features, %s has %d" % (
        booster.num_feature(), features, x.shape[1])
    assert ks.shape[0] == x.shape[0], "kiln scored %d rows, %s has %d" % (
        ks.shape[0], features, x.shape[0])
    same = assert_same(obj, as_kiln_scores(obj, booster.predict(x, num_threads=1)), ks, kp)
    print(json.dumps({"objective": obj, "rows": int(x.shape[0]), "features": int(x.shape[1]),
                      "trees": booster.num_trees(), **same, "tolerance": TOL}))


def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "compare":
        repeat = int(a[5]) if len(a) > 5 and a[4] == "--repeat" else 5
        compare(a[1], a[2], a[3], repeat)
    elif len(a) == 4 and a[0] == "check":
        check(a[1], a[2], a[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
