"""peer_lightgbm.py - LightGBM on gbdt_bench's data, the gbdt benchmark's peer.

gbdt_bench.c writes DIR/x.f32 (rows x cols float32, row-major) and
DIR/y.i32 (int32 labels); the first N_TRAIN rows train, the rest are held
out.  Same settings as kiln's side: binary logloss, 100 rounds, 31 leaves,
255 bins, learning rate 0.1, min_data_in_leaf 20, 2 threads.  Fit time
includes building the Dataset (binning), as kiln's includes its bins.

Usage: peer_lightgbm.py DIR ROWS COLS N_TRAIN [ROUNDS]
Prints one JSON object: peer_s, peer_acc, peer_pred_rows_s.
"""
import json
import sys
import time

import lightgbm as lgb
import numpy as np


def main():
    d, rows, cols, n_train = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    x = np.fromfile(d + "/x.f32", dtype="<f4").reshape(rows, cols)
    y = np.fromfile(d + "/y.i32", dtype="<i4")
    params = {"objective": "binary", "num_leaves": 31, "max_bin": 255, "learning_rate": 0.1,
              "min_data_in_leaf": 20, "num_threads": 2, "verbose": -1, "seed": 1}
    t0 = time.perf_counter()
    ds = lgb.Dataset(x[:n_train], label=y[:n_train], params={"max_bin": 255})
    booster = lgb.train(params, ds, num_boost_round=rounds)
    fit_s = time.perf_counter() - t0
    xt, yt = x[n_train:], y[n_train:]
    t0 = time.perf_counter()
    p = booster.predict(xt, num_threads=2)
    pred_s = time.perf_counter() - t0
    acc = float(np.mean((p > 0.5).astype(np.int32) == yt))
    print(json.dumps({"peer_s": fit_s, "peer_acc": acc, "peer_pred_rows_s": len(yt) / pred_s}))


if __name__ == "__main__":
    main()
