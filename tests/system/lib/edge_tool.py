"""edge_tool.py - helpers of tests/system/edge_parity.sh (not a test itself).

  frames SENSOR.h5 CH1,CH2 OUT.bin [OUT.jsonl]   every window as a KEW1 frame
      (edge/frame.h) in the file's order, and as JSON lines
  compare RESULTS.jsonl PREDS.h5 FEATURES.h5      edge results against the
      cluster's predictions and features: float32 bits equal, or exit 1
"""
import json
import struct
import sys

import h5py
import numpy as np


def frames(sensor, channels, out_bin, out_json=None):
    f = h5py.File(sensor, "r")
    rate = float(f.attrs["sample_rate_hz"])
    sig = [f["signals"][c] for c in channels.split(",")]
    asset, ts = f["asset"][:], f["timestamp"][:]
    n, L = sig[0].shape
    jf = open(out_json, "w") if out_json else None
    with open(out_bin, "wb") as fb:
        for i in range(n):
            x = np.stack([s[i] for s in sig]).astype("<f4")
            fb.write(b"KEW1" + struct.pack("<HHIiqd", len(sig), 0, L, int(asset[i]), int(ts[i]), rate))
            fb.write(x.tobytes())
            if jf:
                jf.write(json.dumps({"asset": int(asset[i]), "timestamp_ns": int(ts[i]),
                                     "sample_rate_hz": rate,
                                     "signals": dict(zip(channels.split(","),
                                                         [[float(v) for v in r] for r in x]))}))
                jf.write("\n")
    print(n)


def bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def compare(results, preds, feats):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    p = h5py.File(preds, "r")
    score, pred = p["score"][:], p["predicted"][:]
    x = h5py.File(feats, "r")["features"][:]
    assert len(rows) == len(score) == len(x), (len(rows), len(score), len(x))
    es = np.array([[np.nan if v is None else v for v in r["scores"]] for r in rows], np.float32)
    ep = np.array([r["predicted"] for r in rows], np.int32)
    bad_s = np.flatnonzero((bits(es) != bits(score)).any(axis=1))
    bad_p = np.flatnonzero(ep != pred)
    msg = f"{len(rows)} windows: scores differ in {len(bad_s)}, predictions in {len(bad_p)}"
    if "features" in rows[0]:
        ef = np.array([r["features"] for r in rows], np.float32)
        bad_f = np.flatnonzero((bits(ef) != bits(x)).any(axis=1))
        msg += f", feature rows in {len(bad_f)} (of {x.shape[1]} features)"
        if len(bad_f):
            i = bad_f[0]
            j = np.flatnonzero(bits(ef[i]) != bits(x[i]))[0]
            msg += f"; first: window {i} feature {j}: edge {ef[i, j]!r} cluster {x[i, j]!r}"
    else:
        bad_f = []
    if len(bad_s):
        i = bad_s[0]
        msg += f"; first score: window {i}: edge {es[i]!r} cluster {score[i]!r}"
    print(msg)
    sys.exit(1 if len(bad_s) or len(bad_p) or len(bad_f) else 0)


if __name__ == "__main__":
    if sys.argv[1] == "frames":
        frames(*sys.argv[2:])
    elif sys.argv[1] == "compare":
        compare(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
