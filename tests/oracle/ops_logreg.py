"""Oracle ops for kernels/logreg.h (tests/unit/test_logreg.c): scikit-learn's
LogisticRegression (lbfgs, L2), the reference km_logreg_fit must match."""
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression


def logreg_sklearn(x, p):
    """x = [features | label], the first n_train rows to fit, the rest held
    out; p = {C, tol, max_iter, n_train}.  Returns, flattened: the weights in
    kiln's layout (one row [coef, intercept] for two classes, else one per
    class), the held-out accuracy, n_iter, then predict_proba of the held-out
    rows [n_test x n_classes]."""
    n_train = int(p["n_train"])
    feats, y = x[:, :-1], x[:, -1].astype(np.int64)
    clf = LogisticRegression(C=float(p["C"]), tol=float(p["tol"]),
                             max_iter=int(p["max_iter"]), solver="lbfgs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(feats[:n_train], y[:n_train])
    w = np.hstack([clf.coef_, clf.intercept_[:, None]]).ravel()
    test = feats[n_train:]
    acc = float(np.mean(clf.predict(test) == y[n_train:])) if len(test) else 0.0
    proba = clf.predict_proba(test).ravel() if len(test) else np.zeros(0)
    return np.concatenate([w, [acc, float(clf.n_iter_.max())], proba])


OPS = {"logreg_sklearn": logreg_sklearn}
