"""peer_mlp.py - scikit-learn's side of bench/mlp_bench.c.

Usage: peer_mlp.py DIR N D N_TRAIN
Reads DIR/x.f32 (N x D little-endian float32) and DIR/y.i32, fits
MLPClassifier(hidden_layer_sizes=(64, 32), solver="adam", batch_size=200,
max_iter=5, learning_rate_init=1e-3, alpha=1e-4) on the first N_TRAIN rows
(float32 kept: sklearn >= 1.2 trains in the input's dtype) and prints
"FIT_SECONDS HELD_OUT_ACCURACY" on one line.  tol=0 and n_iter_no_change
above max_iter: all 5 epochs run, as kiln's do.
"""
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier


def main():
    d, n, cols, n_train = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    x = np.fromfile(d + "/x.f32", dtype="<f4").reshape(n, cols)
    y = np.fromfile(d + "/y.i32", dtype="<i4")
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), solver="adam", batch_size=200, max_iter=5,
                        learning_rate_init=1e-3, alpha=1e-4, shuffle=True, random_state=0,
                        tol=0.0, n_iter_no_change=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(x[:n_train], y[:n_train])
        fit_s = time.perf_counter() - t0
    acc = float(np.mean(clf.predict(x[n_train:]) == y[n_train:]))
    print("%.4f %.6f" % (fit_s, acc))


if __name__ == "__main__":
    main()
