"""LightGBM oracle for kiln's gbdt kernel (tests/unit/test_gbdt.c).

gbdt_lightgbm: x is (n_train + n_test) rows of features with the label or
target in the last column; LightGBM trains on the first n_train rows with
the given settings and returns its predictions on the rest (class
probabilities, n_test x n_classes, or the regression value)."""
import lightgbm as lgb
import numpy as np


def gbdt_lightgbm(x, p):
    n_train = int(p["n_train"])
    feats, label = x[:, :-1].astype(np.float32), x[:, -1]
    k = int(p.get("n_classes", 0))
    params = {"num_leaves": int(p["leaves"]), "max_bin": int(p["bins"]),
              "learning_rate": float(p["lr"]), "min_data_in_leaf": int(p["min_data"]),
              "num_threads": 1, "deterministic": True, "verbose": -1, "seed": 1}
    if k == 0:
        params["objective"] = "regression"
    elif k == 2:
        params["objective"] = "binary"
    else:
        params.update(objective="multiclass", num_class=k)
    ds = lgb.Dataset(feats[:n_train], label=label[:n_train], params={"max_bin": int(p["bins"])})
    booster = lgb.train(params, ds, num_boost_round=int(p["rounds"]))
    out = booster.predict(feats[n_train:])
    if k == 2:
        out = np.stack([1.0 - out, out], axis=1)
    return out


OPS = {"gbdt_lightgbm": gbdt_lightgbm}
