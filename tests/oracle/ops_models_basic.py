"""Oracle ops for the models' shared pieces (tests/unit/test_scaler.c,
test_anomaly.c, test_metrics.c): scikit-learn's StandardScaler, its
covariance estimators' Mahalanobis distances, numpy's quantile and
sklearn.metrics, on the float64 values of the C side's float32 inputs."""
import numpy as np
from sklearn import covariance, metrics
from sklearn.preprocessing import StandardScaler


def standard_scaler(x, p):
    """mean_, var_, scale_, then transform(x) flattened."""
    s = StandardScaler().fit(x)
    return np.concatenate([s.mean_, s.var_, s.scale_, s.transform(x).ravel()])


def mahalanobis(x, p):
    """Rows [0, train) fit the estimator (shrinkage "lw": LedoitWolf; 0:
    EmpiricalCovariance; else ShrunkCovariance(s)); returns the shrinkage,
    location_, covariance_ flattened, then sqrt(mahalanobis) of every row."""
    train = x[: int(p["train"])]
    s = p["shrinkage"]
    if s == "lw":
        est = covariance.LedoitWolf().fit(train)
        shrink = est.shrinkage_
    elif float(s) == 0.0:
        est = covariance.EmpiricalCovariance().fit(train)
        shrink = 0.0
    else:
        est = covariance.ShrunkCovariance(shrinkage=float(s)).fit(train)
        shrink = float(s)
    dist = np.sqrt(est.mahalanobis(x))
    return np.concatenate([[shrink], est.location_, est.covariance_.ravel(), dist])


def quantile(x, p):
    return [np.quantile(x.ravel(), float(p["q"]))]


def classification(x, p):
    """x columns: case, y_true, y_pred; case c has p["n_classes"][c] classes.
    Per case: accuracy, macro F1 (labels as sklearn finds them), then
    confusion_matrix(labels=range(n_classes)) flattened."""
    out = []
    for c, k in enumerate(p["n_classes"]):
        rows = x[x[:, 0] == c]
        t, y = rows[:, 1].astype(int), rows[:, 2].astype(int)
        out += [[metrics.accuracy_score(t, y), metrics.f1_score(t, y, average="macro")],
                metrics.confusion_matrix(t, y, labels=list(range(int(k)))).ravel()]
    return np.concatenate(out)


def roc_auc(x, p):
    """x columns: case, y_true (0/1), score; one AUC per case 0, 1, ..."""
    cases = int(x[:, 0].max()) + 1
    return [metrics.roc_auc_score(x[x[:, 0] == c, 1].astype(int), x[x[:, 0] == c, 2])
            for c in range(cases)]


def regression(x, p):
    """x columns: y_true, y_pred.  RMSE, MAE."""
    t, y = x[:, 0], x[:, 1]
    return [np.sqrt(metrics.mean_squared_error(t, y)), metrics.mean_absolute_error(t, y)]


OPS = {
    "mb_standard_scaler": standard_scaler,
    "mb_mahalanobis": mahalanobis,
    "mb_quantile": quantile,
    "mb_classification": classification,
    "mb_roc_auc": roc_auc,
    "mb_regression": regression,
}
