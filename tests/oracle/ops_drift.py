"""Oracle ops for kernels/drift.h (tests/unit/test_drift.c): scipy's tests
and distances, Evidently 0.7's own stattest functions (PSI, JS, chisquare,
z) and its DataDriftPreset on the same frames.  Evidently is imported only
inside the ops that need it (it is slow to import)."""
import warnings

import numpy as np
import pandas as pd
import scipy.spatial.distance
import scipy.stats

# kn_drift_method_t codes, by Evidently's display names
METHOD_CODES = {"K-S p_value": 1, "Wasserstein distance (normed)": 2, "PSI": 3,
                "Jensen-Shannon distance": 4, "chi-square p_value": 5, "Z-test p_value": 7}


def _split(x, p):
    row = x.ravel()
    n_ref = int(p["n_ref"])
    return row[:n_ref], row[n_ref:]


def drift_numeric(x, p):
    """x = ref then cur in one row, p = {n_ref}: ks_stat ks_p wasserstein
    wasserstein_norm ref_std psi js n_unique (psi, js: Evidently's functions)."""
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.core import ColumnType
    ref, cur = _split(x, p)
    ks = scipy.stats.ks_2samp(ref, cur)
    w = scipy.stats.wasserstein_distance(ref, cur)
    std = float(np.std(ref))
    r, c = pd.Series(ref), pd.Series(cur)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        psi = _psi(r, c, ColumnType.Numerical, 0.1)[0]
        js = _jensenshannon(r, c, ColumnType.Numerical, 0.1)[0]
    return [ks.statistic, ks.pvalue, w, w / max(std, 0.001), std, psi, js,
            pd.concat([r, c]).nunique()]


def drift_class(x, p):
    """x = ref labels then cur labels, p = {n_ref}: chisquare_p (Evidently),
    chi2_contingency stat, p, dof, z_p (Evidently), psi, js (Evidently)."""
    from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
    from evidently.legacy.calculations.stattests.z_stattest import _z_stat_test
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.core import ColumnType
    ref, cur = _split(x, p)
    r, c = pd.Series(ref.astype(np.int64)), pd.Series(cur.astype(np.int64))
    keys = sorted(set(r) | set(c))
    table = np.array([[np.sum(ref == k) for k in keys], [np.sum(cur == k) for k in keys]])
    if len(keys) >= 2:
        stat, pv, dof, _ = scipy.stats.chi2_contingency(table)
    else:
        stat, pv, dof = 0.0, 1.0, 0
    cat = ColumnType.Categorical
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        chi_p = _chi_stat_test(r, c, cat, 0.05)[0] if len(keys) >= 2 else np.nan
        z_p = _z_stat_test(r, c, cat, 0.05)[0]
        psi = _psi(r, c, cat, 0.1)[0]
        js = _jensenshannon(r, c, cat, 0.1)[0]
    return [chi_p, stat, pv, dof, z_p, psi, js]


def drift_jensenshannon(x, p):
    """scipy.spatial.distance.jensenshannon of two count rows (natural log)."""
    return [scipy.spatial.distance.jensenshannon(x[0], x[1])]


def drift_ks_pvalue(x, p):
    """scipy's ks_2samp p-value path for sizes n1, n2 and statistic d: the
    exact/asymptotic choice of method='auto' with D given directly."""
    from scipy.stats._stats_py import _attempt_exact_2kssamp
    from math import gcd
    n1, n2, d = int(p["n1"]), int(p["n2"]), float(p["d"])
    if max(n1, n2) <= 10000:
        ok, _, prob = _attempt_exact_2kssamp(n1, n2, gcd(n1, n2), d, "two-sided")
        if ok:
            return [prob, 1.0]
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return [scipy.stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0]


def drift_chi2_sf(x, p):
    return [scipy.stats.chi2.sf(float(p["x"]), float(p["dof"]))]


def drift_preset(x, p):
    """Evidently's DataDriftPreset on frames: x has n_ref + n_cur rows and
    one column per feature, p = {n_ref, kinds: "n"/"c" per column}.
    Returns per column [method code, score], then n_drifted and the dataset
    verdict (share >= 0.5)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    n_ref, kinds = int(p["n_ref"]), p["kinds"]
    names = ["f%d" % i for i in range(x.shape[1])]
    cols = {}
    for i, k in enumerate(kinds):
        cols[names[i]] = x[:, i].astype(np.int64) if k == "c" else x[:, i]
    frame = pd.DataFrame(cols)
    dd = DataDefinition(numerical_columns=[n for n, k in zip(names, kinds) if k == "n"],
                        categorical_columns=[n for n, k in zip(names, kinds) if k == "c"])
    ref = Dataset.from_pandas(frame.iloc[:n_ref].reset_index(drop=True), data_definition=dd)
    cur = Dataset.from_pandas(frame.iloc[n_ref:].reset_index(drop=True), data_definition=dd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([DataDriftPreset()]).run(cur, ref)
    per, count = {}, None
    for m in snap.dict()["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            count = m["value"]
        elif cfg["type"].endswith("ValueDrift"):
            per[cfg["column"]] = [METHOD_CODES[cfg["method"]], float(m["value"])]
    out = []
    for n in names:
        out += per[n]
    out += [count["count"], 1.0 if count["share"] >= 0.5 else 0.0]
    return out


def drift_psi_quantile(x, p):
    """PSI on the reference's deciles (kernels/drift.h psi_quantile): edges
    np.quantile(ref, linspace(0, 1, 11))[1:-1] made unique, bin = number of
    edges <= x, empty shares filled as Evidently's get_binned_data does."""
    ref, cur = _split(x, p)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11))[1:-1])
    nb = len(edges) + 1
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=nb) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=nb) / len(cur)

    def fill(s):
        nz = s[s != 0]
        if len(nz) == 0:
            return s
        m = nz.min()
        return np.where(s == 0, m / 1e6 if m <= 0.0001 else 0.0001, s)
    r, c = fill(r), fill(c)
    return [float(np.sum((r - c) * np.log(r / c))), nb]


OPS = {"drift_numeric": drift_numeric, "drift_class": drift_class,
       "drift_jensenshannon": drift_jensenshannon, "drift_ks_pvalue": drift_ks_pvalue,
       "drift_chi2_sf": drift_chi2_sf, "drift_preset": drift_preset,
       "drift_psi_quantile": drift_psi_quantile}
