"""Oracle ops for the ingest and gen jobs: scipy reads the real CWRU .mat
files and resamples them (scipy.signal.resample_poly), numpy parses C-MAPSS,
scipy.io.savemat writes bad .mat files, and scipy.signal.hilbert gives the
envelope spectrum of a synthetic window."""
import math
import os
import re

import numpy as np
import scipy.io
import scipy.signal

LABELS = {"normal": 0, "inner_race": 1, "outer_race": 2, "ball": 3}


def _cwru_name(path, normal_rate):
    base = os.path.basename(path)
    if "normal" in base.lower():
        label = 0
    elif "_IR" in base:
        label = 1
    elif "_OR" in base:
        label = 2
    elif "_B0" in base:
        label = 3
    else:
        raise ValueError("no class in " + base)
    if base.lower().startswith("12k"):
        rate = 12000
    elif base.lower().startswith("48k"):
        rate = 48000
    else:
        rate = normal_rate
    record = int(re.search(r"(\d+)\.mat$", base).group(1))
    return label, rate, record


def cwru_windows(x, p):
    """Header [n_resampled, n_windows, label, record, rpm] per file, then the
    windows of every file in order, each as channel after channel."""
    out_rate = int(p.get("rate", 12000))
    L = int(p.get("window_len", 2048))
    hop = int(p.get("hop", L))
    chans = p.get("channels", ["DE", "FE"])
    heads, data = [], []
    for path in p["files"]:
        label, rate, record = _cwru_name(path, int(p.get("normal_rate", 48000)))
        m = scipy.io.loadmat(path)
        var = {}
        rpm = 0.0
        for k, v in m.items():
            for c in ("DE", "FE", "BA"):
                if k.endswith("_%s_time" % c):
                    var[c] = np.asarray(v, dtype=np.float64).ravel()
            if k.endswith("RPM"):
                rpm = float(np.asarray(v).ravel()[0])     # stored as uint16
        g = math.gcd(out_rate, rate)
        res = [scipy.signal.resample_poly(var[c], out_rate // g, rate // g) for c in chans]
        n = len(res[0])
        nw = (n - L) // hop + 1 if n >= L else 0
        heads.append([n, nw, label, record, rpm])
        for w in range(nw):
            for r in res:
                data.append(r[w * hop: w * hop + L])
    flat = [np.asarray(heads, dtype=np.float64).ravel()]
    if data:
        flat.append(np.concatenate(data))
    return np.concatenate(flat)


def cmapss(x, p):
    """[n_rows, n_units] then per row: unit, cycle, rul, 24 values (float32-rounded)."""
    d = np.loadtxt(p["path"])
    unit = d[:, 0].astype(int)
    cycle = d[:, 1]
    last = {u: cycle[unit == u].max() for u in np.unique(unit)}
    end = np.zeros(len(d))
    if p.get("rul"):
        rul = np.atleast_1d(np.loadtxt(p["rul"]))
        end = rul[unit - 1]
    target = end + np.array([last[u] for u in unit]) - cycle
    vals = d[:, 2:].astype(np.float32).astype(np.float64)
    rows = np.column_stack([unit, cycle, target.astype(np.float32).astype(np.float64), vals])
    return np.concatenate([[len(d), len(last)], rows.ravel()])


def savemat(x, p):
    """Writes p['vars'] (name -> list of numbers) to p['path'] as a MATLAB 5 file."""
    scipy.io.savemat(p["path"], {k: np.asarray(v, dtype=np.float64).reshape(-1, 1)
                                 for k, v in p["vars"].items()})
    return np.zeros(1)


def savemat_odd(x, p):
    """A .mat whose p['name'] variable is sparse (p['kind'] == 'sparse') or
    logical ('logical') or text ('char'): numeric-looking but not a dense
    numeric array; plus a normal RPM variable."""
    import scipy.sparse
    n = int(p.get("n", 5000))
    kind = p["kind"]
    if kind == "sparse":
        v = scipy.sparse.csc_matrix(np.linspace(0, 1, n).reshape(-1, 1))
    elif kind == "logical":
        v = (np.arange(n) % 2 == 0).reshape(-1, 1)
    else:
        v = "x" * n
    scipy.io.savemat(p["path"], {p["name"]: v, p["rpm"]: np.array([[1797.0]])})
    return np.zeros(1)


def envelope_peak(x, p):
    """Envelope spectrum of each row (band-pass [lo, hi) by zeroing FFT bins,
    scipy.signal.hilbert, |FFT| of the mean-removed envelope); returns per
    row [peak_hz, peak_amp, median_amp] over fmin..fmax."""
    rate = float(p["rate"])
    out = []
    for row in x:
        n = len(row)
        spec = np.fft.rfft(row)
        f = np.fft.rfftfreq(n, 1.0 / rate)
        spec[(f < p["lo"]) | (f >= p["hi"])] = 0
        band = np.fft.irfft(spec, n)
        env = np.abs(scipy.signal.hilbert(band))
        amp = np.abs(np.fft.rfft(env - env.mean())) * 2.0 / n
        sel = (f >= p["fmin"]) & (f <= p["fmax"])
        k = np.argmax(amp[sel])
        out.append([f[sel][k], amp[sel][k], np.median(amp[sel])])
    return np.asarray(out).ravel()


OPS = {"cwru_windows": cwru_windows, "cmapss": cmapss, "savemat": savemat,
       "savemat_odd": savemat_odd,
       "envelope_peak": envelope_peak}
