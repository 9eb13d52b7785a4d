"""Peer of bench/drift_bench.c: the same drift statistics as a user would
compute them, on the same bytes.  Usage: peer_drift.py DIR ROWS COLS
(DIR/ref.f32, DIR/cur.f32: float32, column-major).  Times scipy (ks_2samp
+ wasserstein_distance per column) and Evidently's DataDriftPreset (numeric
columns declared), each once, and prints one JSON line."""
import json
import sys
import time
import warnings

import numpy as np
import pandas as pd
import scipy.stats


def main():
    d, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ref = np.fromfile(d + "/ref.f32", dtype="<f4").reshape(cols, rows)
    cur = np.fromfile(d + "/cur.f32", dtype="<f4").reshape(cols, rows)
    t0 = time.perf_counter()
    ks_p, wd = [], []
    for j in range(cols):
        ks_p.append(scipy.stats.ks_2samp(ref[j], cur[j]).pvalue)
        wd.append(scipy.stats.wasserstein_distance(ref[j], cur[j]))
    scipy_s = time.perf_counter() - t0

    ev_s, ev_drifted, ev_err = None, None, None
    try:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
        names = ["f%d" % j for j in range(cols)]
        rf = pd.DataFrame({n: ref[j] for j, n in enumerate(names)})
        cf = pd.DataFrame({n: cur[j] for j, n in enumerate(names)})
        dd = DataDefinition(numerical_columns=names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cf, data_definition=dd),
                                                   Dataset.from_pandas(rf, data_definition=dd))
            res = snap.dict()
            ev_s = time.perf_counter() - t0
        for m in res["metrics"]:
            if m["config"]["type"].endswith("DriftedColumnsCount"):
                ev_drifted = m["value"]["count"]
    except Exception as e:      # the row says why; scipy's figure still stands
        ev_err = "%s: %s" % (type(e).__name__, e)
    import evidently
    print(json.dumps({"scipy_s": scipy_s, "evidently_s": ev_s, "evidently_drifted": ev_drifted,
                      "evidently_error": ev_err, "scipy": scipy.__version__,
                      "evidently": evidently.__version__, "pandas": pd.__version__}))


if __name__ == "__main__":
    main()
