"""Oracle ops for kernels/logreg.h (tests/unit/test_logreg.c): scikit-learn's
LogisticRegression (lbfgs, L2), the reference km_logreg_fit must match."""
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression


def _fit_one(feats, y, n_train, C, tol, max_iter):
    clf = LogisticRegression(C=C, tol=tol, max_iter=max_iter, solver="lbfgs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(feats[:n_train], y[:n_train])
    w = np.hstack([clf.coef_, clf.intercept_[:, None]]).ravel()
    test = feats[n_train:]
    acc = float(np.mean(clf.predict(test) == y[n_train:])) if len(test) else 0.0
    proba = clf.predict_proba(test).ravel() if len(test) else np.zeros(0)
    return np.concatenate([w, [acc, float(clf.n_iter_.max())], proba])


def logreg_sklearn(x, p):
    """x = [features | label], the first n_train rows to fit, the rest held
    out; p = {C, tols: [...], max_iters: [...], n_train}: one fit per
    (tol, max_iter), so one python start serves several fits.  Returns, per
    fit and flattened: the weights in kiln's layout (one row [coef, intercept]
    for two classes, else one per class), the held-out accuracy, n_iter, then
    predict_proba of the held-out rows [n_test x n_classes]."""
    n_train = int(p["n_train"])
    feats, y = x[:, :-1], x[:, -1].astype(np.int64)
    return np.concatenate([_fit_one(feats, y, n_train, float(p["C"]), float(tol), int(it))
                           for tol, it in zip(p["tols"], p["max_iters"])])


OPS = {"logreg_sklearn": logreg_sklearn}
