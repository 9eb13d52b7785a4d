"""peer_logreg.py - scikit-learn's LogisticRegression(lbfgs) on the rows
build/bench/logreg_bench wrote, the peer of km_logreg_fit.

Usage: peer_logreg.py X.f32 Y.i32 N_TRAIN D C
X.f32: raw little-endian float32 [rows x D]; Y.i32: int32 labels; the first
N_TRAIN rows are fitted, the rest held out.  The fit is what a data scientist
would write: LogisticRegression(C=C) with its defaults (lbfgs, tol 1e-4,
max_iter 100); sklearn casts float32 to float64 for lbfgs inside fit(), which
is timed with it.  Best of 3 fits, as the C side.  Prints one JSON line:
{"peer_s", "peer_acc", "peer_iter"}.
"""
import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression


def main():
    x_path, y_path, n_train, d, C = sys.argv[1:6]
    n_train, d, C = int(n_train), int(d), float(C)
    x = np.fromfile(x_path, dtype="<f4").reshape(-1, d)
    y = np.fromfile(y_path, dtype="<i4")
    best, clf = float("inf"), None
    for _ in range(3):
        clf = LogisticRegression(C=C, solver="lbfgs")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x[:n_train], y[:n_train])
        best = min(best, time.perf_counter() - t0)
    acc = float(np.mean(clf.predict(x[n_train:]) == y[n_train:]))
    print(json.dumps({"peer_s": round(best, 4), "peer_acc": acc,
                      "peer_iter": int(clf.n_iter_.max())}))


if __name__ == "__main__":
    main()
