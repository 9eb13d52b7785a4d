"""Oracle ops for kernels/mlp.h (tests/unit/test_mlp.c): scikit-learn's
MLPClassifier / MLPRegressor (solver="adam") on the rows the C test sends,
with the same layers, epochs, batch, lr and alpha, scored on a held-out
split.  x's last column is the label (or target); rows [0, n_train) train.
Each op averages over params["seeds"] random_states, so one lucky or unlucky
initialisation does not decide the comparison."""
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor


def _fit_score(cls, x, p, score):
    n_train = int(p["n_train"])
    feats, label = x[:, :-1].astype(np.float32), x[:, -1]
    out = []
    for seed in range(int(p.get("seeds", 1))):
        model = cls(hidden_layer_sizes=tuple(int(h) for h in p["hidden"]), solver="adam",
                    batch_size=int(p["batch"]), max_iter=int(p["epochs"]),
                    learning_rate_init=float(p["lr"]), alpha=float(p["alpha"]),
                    shuffle=True, random_state=seed, tol=0.0, n_iter_no_change=10**6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(feats[:n_train], label[:n_train])
        out.append(score(model.predict(feats[n_train:]), label[n_train:]))
    return np.array([np.mean(out)])


def classifier_accuracy(x, p):
    """Mean held-out accuracy of MLPClassifier over the seeds."""
    return _fit_score(MLPClassifier, np.column_stack([x[:, :-1], x[:, -1].astype(np.int64)]), p,
                      lambda pred, y: np.mean(pred == y))


def regressor_rmse(x, p):
    """Mean held-out RMSE of MLPRegressor over the seeds."""
    return _fit_score(MLPRegressor, x, p, lambda pred, y: np.sqrt(np.mean((pred - y) ** 2)))


OPS = {
    "mlp_classifier_accuracy": classifier_accuracy,
    "mlp_regressor_rmse": regressor_rmse,
}
