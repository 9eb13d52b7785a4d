"""peer_numpy.py - the numpy/scipy twin of `kiln featurize`, the benchmark's peer.

What a competent data scientist would write: h5py reads the sensor file in
chunks of windows, every feature is computed vectorized over the chunk in
float64 (each float32 chunk is cast once; np.fft works in float64), rolling
statistics carry each asset's last k-1 values across chunks.  numpy's and
scipy's FFTs run on one thread; the few matmuls go through OpenBLAS, which
may use every core.  Batches of 1024 windows measured faster here than 4096
(whose 64-128 MiB temporaries are page-faulted in afresh on every batch)
and need a third of the memory.  Definitions are
those of docs/featurize.md and kernels/kernels.h, so the output can be
compared with kiln's column by column (--compare).

Usage:
  peer_numpy.py SPEC.json [--input IN.h5] [--output OUT.h5] [--chunk 1024]
                [--time-budget S] [--compare KILN_FEATURES.h5] [--json FILE]

Prints one JSON object on stdout: wall seconds (read + compute + write, after
imports), windows done, per-window time, peak RSS; with --time-budget the run
stops at the first chunk boundary past S seconds and scales the time per
window to the whole file ("extrapolated": true).  --compare adds, per feature
group, the max relative difference against kiln's output on the same rows.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import h5py
import numpy as np
import scipy.signal

TIME_FEATURES = ("mean", "std", "rms", "peak", "p2p", "crest", "skew", "kurt", "slope", "util")
LINES = ("bpfo", "bpfi", "bsf", "ftf")


class Spec:
    """The `features` object of a featurize spec, checked as far as the peer needs."""

    def __init__(self, features, channels_in_file):
        f = features
        self.channels = list(f.get("channels") or channels_in_file)
        for c in self.channels:
            if c not in channels_in_file:
                raise SystemExit("peer: channel %r not in the input (has %s)" % (c, channels_in_file))
        self.time = list(f.get("time", []))
        for t in self.time:
            if t not in TIME_FEATURES:
                raise SystemExit("peer: features.time: unknown %r" % t)
        self.util_threshold = float(f.get("util_threshold", 0.0))
        sp = f.get("spectrum")
        self.has_spectrum = sp is not None
        sp = sp or {}
        self.window = sp.get("window", "hann")
        self.bands = [(float(lo), float(hi)) for lo, hi in sp.get("bands_hz", [])]
        self.centroid = bool(sp.get("centroid", False))
        self.dominant = bool(sp.get("dominant", False))
        env = f.get("envelope")
        self.has_envelope = env is not None
        if env:
            self.env_lo, self.env_hi = (float(v) for v in env["band_hz"])
            self.shaft_hz = float(env["shaft_hz"])
            b = env["bearing"]
            self.bearing = (int(b["n_balls"]), float(b["ball_d"]), float(b["pitch_d"]),
                            float(b.get("contact_deg", 0.0)))
            self.tolerance_hz = float(env["tolerance_hz"])
            self.lines = list(env.get("lines", LINES))
        else:
            self.lines = []
        roll = f.get("rolling")
        self.roll_k = int(roll["k"]) if roll else 0
        self.roll_of = list(roll["of"]) if roll else []

        self.per_channel = (list(self.time)
                            + ["band_%g_%g" % b for b in self.bands]
                            + (["centroid"] if self.centroid else [])
                            + (["dominant"] if self.dominant else [])
                            + ["env_" + l for l in self.lines])
        for r in self.roll_of:
            if r not in self.per_channel:
                raise SystemExit("peer: features.rolling.of: %r is not a per-channel feature" % r)
        self.roll_idx = [self.per_channel.index(r) for r in self.roll_of]
        names = ["%s.%s" % (c, p) for c in self.channels for p in self.per_channel]
        for c in self.channels:
            for r in self.roll_of:
                names += ["%s.%s.roll%d_mean" % (c, r, self.roll_k),
                          "%s.%s.roll%d_std" % (c, r, self.roll_k)]
        self.names = names


def bearing_freqs(n_balls, ball_d, pitch_d, contact_deg, shaft_hz):
    """kernels.h kn_bearing_defect_freqs (BSF: CWRU convention, twice the spin)."""
    r = ball_d / pitch_d * math.cos(math.radians(contact_deg))
    return {"bpfo": n_balls / 2 * shaft_hz * (1 - r),
            "bpfi": n_balls / 2 * shaft_hz * (1 + r),
            "bsf": pitch_d / ball_d * shaft_hz * (1 - r * r),
            "ftf": shaft_hz / 2 * (1 - r)}


class Featurizer:
    """Per-chunk vectorized features for one window length and sample rate."""

    def __init__(self, spec, n, fs):
        self.s, self.n, self.fs = spec, n, fs
        bins = n // 2 + 1
        self.freqs = np.arange(bins) * fs / n
        t = np.arange(n) / fs
        self.tc = t - t.mean()
        self.tss = float(self.tc @ self.tc)
        self.win = np.hanning(n) if spec.window == "hann" else None
        # one-sided scale of |X|^2/n^2: doubled except DC and (even n) Nyquist
        self.scale = np.full(bins, 2.0 / (n * n))
        self.scale[0] = 1.0 / (n * n)
        if n % 2 == 0:
            self.scale[-1] = 1.0 / (n * n)
        # band energies as one matmul: [bins, n_bands] indicator of lo <= f < hi
        self.band_mat = np.stack([((self.freqs >= lo) & (self.freqs < hi)).astype(np.float64)
                                  for lo, hi in spec.bands], axis=1) if spec.bands else None
        if spec.has_envelope:
            self.env_keep = (self.freqs >= spec.env_lo) & (self.freqs < spec.env_hi)
            lines_hz = bearing_freqs(*spec.bearing, spec.shaft_hz)
            self.line_bins = []
            for l in spec.lines:
                f0, tol = lines_hz[l], spec.tolerance_hz
                sel = np.nonzero(np.abs(self.freqs - f0) <= tol)[0]
                if sel.size == 0:  # at least the nearest bin
                    sel = np.array([min(bins - 1, max(0, int(round(f0 * n / fs))))])
                self.line_bins.append((int(sel[0]), int(sel[-1]) + 1))

    def channel(self, x32):
        """x32: float32 [m, n] -> float64 [m, per_channel]."""
        s, n = self.s, self.n
        x = x32.astype(np.float64)
        cols = []
        if s.time:
            mean = x.mean(axis=1)
            d = x - mean[:, None]
            d2 = d * d
            m2 = d2.mean(axis=1)
            m3 = np.einsum("ij,ij->i", d2, d) / n
            m4 = np.einsum("ij,ij->i", d2, d2) / n
            xmax, xmin = x.max(axis=1), x.min(axis=1)
            rms = np.sqrt(np.einsum("ij,ij->i", x, x) / n)
            peak = np.maximum(xmax, -xmin)
            # "constant" as scipy.stats tests it (kernels.h): skew = kurt = 0 there
            flat = m2 <= (np.finfo(np.float64).eps * mean) ** 2
            with np.errstate(divide="ignore", invalid="ignore"):
                skew = np.where(flat, 0.0, m3 / m2 ** 1.5)
                kurt = np.where(flat, 0.0, m4 / (m2 * m2))
                crest = np.where(rms == 0, 0.0, peak / rms)
            tf = {"mean": mean, "std": np.sqrt(m2), "rms": rms, "peak": peak,
                  "p2p": xmax - xmin, "crest": crest, "skew": skew, "kurt": kurt,
                  "slope": d @ self.tc / self.tss,
                  "util": np.count_nonzero(x > s.util_threshold, axis=1) / n}
            cols += [tf[t] for t in s.time]
        if s.has_spectrum:
            X = np.fft.rfft(x * self.win if self.win is not None else x, axis=1)
            p = (X.real ** 2 + X.imag ** 2) * self.scale
            if self.band_mat is not None:
                cols += list((p @ self.band_mat).T)
            if s.centroid:
                tot = p.sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cols.append(np.where(tot == 0, 0.0, p @ self.freqs / tot))
            if s.dominant:
                cols.append(self.freqs[1 + np.argmax(p[:, 1:], axis=1)])
        if s.has_envelope:
            # Randall & Antoni 2011: band-pass by zeroing bins, Hilbert envelope,
            # spectrum of the mean-removed envelope, amplitude-scaled 2/n.
            X = np.fft.rfft(x, axis=1)
            X[:, ~self.env_keep] = 0
            xb = np.fft.irfft(X, n, axis=1)
            e = np.abs(scipy.signal.hilbert(xb, axis=1))
            e -= e.mean(axis=1, keepdims=True)
            amp = np.abs(np.fft.rfft(e, axis=1)) * (2.0 / n)
            cols += [amp[:, lo:hi].max(axis=1) for lo, hi in self.line_bins]
        return np.stack(cols, axis=1) if cols else np.zeros((x.shape[0], 0))


class Rolling:
    """Rolling mean / population std (min_periods=1) per asset in dataset
    order, over chunks: each asset's last k-1 rows are carried to the next."""

    def __init__(self, k, width):
        self.k, self.width = k, width
        self.hist_asset = np.zeros(0, dtype=np.int64)
        self.hist_vals = np.zeros((0, width))

    def push(self, asset, vals):
        k = self.k
        a = np.concatenate([self.hist_asset, asset.astype(np.int64)])
        v = np.concatenate([self.hist_vals, vals])
        n_hist = self.hist_asset.size
        order = np.argsort(a, kind="stable")       # groups, dataset order inside
        sa, sv = a[order], v[order]
        start = np.r_[0, np.nonzero(sa[1:] != sa[:-1])[0] + 1]
        gstart = np.repeat(start, np.diff(np.r_[start, sa.size]))
        idx = np.arange(sa.size)[:, None] - np.arange(k)[None, :]     # [m, k]
        valid = idx >= gstart[:, None]
        w = sv[np.where(valid, idx, 0)]                                # [m, k, width]
        cnt = valid.sum(axis=1)[:, None]
        w = np.where(valid[:, :, None], w, 0.0)
        mean = w.sum(axis=1) / cnt
        dev = np.where(valid[:, :, None], w - mean[:, None, :], 0.0)
        std = np.sqrt((dev * dev).sum(axis=1) / cnt)
        out_mean = np.empty_like(mean)
        out_std = np.empty_like(std)
        out_mean[order], out_std[order] = mean, std
        # keep the last k-1 rows of each asset (in dataset order) for the next chunk
        end = np.r_[start[1:], sa.size]
        keep = np.concatenate([np.arange(max(s, e - (k - 1)), e) for s, e in zip(start, end)]) \
            if k > 1 else np.zeros(0, dtype=np.int64)
        keep = np.sort(order[keep])
        self.hist_asset, self.hist_vals = a[keep], v[keep]
        return out_mean[n_hist:], out_std[n_hist:]


def dataset_channels(f):
    """Channel order: attr `channels` on /signals (sensor.h), else name order."""
    g = f["signals"]
    if "channels" in g.attrs:
        return [c.decode() if isinstance(c, bytes) else str(c) for c in g.attrs["channels"]]
    return sorted(g.keys())


def featurize(spec_json, in_path, out_path, chunk, time_budget):
    t0 = time.perf_counter()
    fin = h5py.File(in_path, "r")
    fs = float(fin.attrs["sample_rate_hz"])
    spec = Spec(spec_json["features"], dataset_channels(fin))
    sig = [fin["signals"][c] for c in spec.channels]
    n_windows, n = sig[0].shape
    asset_all = fin["asset"]
    fz = Featurizer(spec, n, fs)
    pc = len(spec.per_channel)
    n_feat = len(spec.names)
    rolling = Rolling(spec.roll_k, len(spec.channels) * len(spec.roll_idx)) if spec.roll_k else None

    fout = None
    if out_path:
        tmp = out_path + ".tmp.%d" % os.getpid()
        fout = h5py.File(tmp, "w")
        fout.attrs["schema"] = "kiln.features.v1"
        fout.attrs["producer"] = "bench/peer_numpy.py"
        dfeat = fout.create_dataset("features", (n_windows, n_feat), dtype="<f4",
                                    chunks=(min(chunk, n_windows), n_feat),
                                    maxshape=(None, n_feat))
        dfeat.attrs["feature_names"] = spec.names
    result = np.empty((n_windows, n_feat), dtype=np.float64)

    done = 0
    while done < n_windows:
        m = min(chunk, n_windows - done)
        rows = slice(done, done + m)
        per = [fz.channel(d[rows]) for d in sig]
        block = np.empty((m, n_feat))
        for ci, p in enumerate(per):
            block[:, ci * pc:(ci + 1) * pc] = p
        if rolling:
            # rolled over the float32 feature table, as pandas would over the
            # stored features (and as kiln rolls its float32 outputs)
            vals = np.concatenate([p[:, spec.roll_idx] for p in per], axis=1)
            vals = vals.astype(np.float32).astype(np.float64)
            rmean, rstd = rolling.push(asset_all[rows], vals)
            base = len(spec.channels) * pc
            block[:, base::2] = rmean
            block[:, base + 1::2] = rstd
        result[rows] = block
        if fout:
            dfeat[rows] = block.astype(np.float32)
        done += m
        if time_budget and time.perf_counter() - t0 > time_budget:
            break
    if fout:
        for name in ("asset", "timestamp", "label", "target"):
            if name in fin:
                fout.create_dataset(name, data=fin[name][:done])
        if done < n_windows:
            dfeat.resize((done, n_feat))
            fout.attrs["rows_done"] = done
        fout.close()
        os.replace(tmp, out_path)
    fin.close()
    seconds = time.perf_counter() - t0
    bytes_read = done * n * 4 * len(spec.channels)
    return spec, result[:done], {
        "windows": int(done), "windows_total": int(n_windows), "channels": len(spec.channels),
        "window_len": int(n), "n_features": n_feat, "dtype": "float64", "chunk": chunk,
        "seconds": seconds, "seconds_per_window": seconds / max(done, 1),
        "seconds_full_scaled": seconds / max(done, 1) * n_windows,
        "extrapolated": bool(done < n_windows),
        "signal_bytes": bytes_read, "gbps": bytes_read / seconds / 1e9,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def group_of(name):
    """Feature group of a column name: time features by name, then band,
    centroid, dominant, env, roll."""
    parts = name.split(".")
    if len(parts) == 3:
        return "roll"
    p = parts[1]
    for g in ("band", "env"):
        if p.startswith(g + "_"):
            return g
    return p


DISCRETE = ("dominant",)


def compare(spec, peer, kiln_path):
    """Per feature group: max_rel = max |kiln - peer| / max(|peer|, 1e-6 * scale)
    per value; max_err_over_scale = max |kiln - peer| / scale, scale = the
    column's largest |peer| (the normwise view: float32 rounding is relative
    to the signal's range, not to each tiny bin); the fraction of cells with
    max_rel > 1e-3; and the worst column of each."""
    with h5py.File(kiln_path, "r") as f:
        d = f["features"]
        names = [x.decode() if isinstance(x, bytes) else str(x) for x in d.attrs["feature_names"]]
        kiln = d[:peer.shape[0]].astype(np.float64)
    rep = {"rows": int(peer.shape[0]), "names_match": names == spec.names}
    if names != spec.names:
        rep["kiln_names"], rep["peer_names"] = names, spec.names
        return rep
    if kiln.shape != peer.shape:
        rep["shape_mismatch"] = [list(kiln.shape), list(peer.shape)]
        return rep
    groups = {}
    for j, name in enumerate(names):
        k, p = kiln[:, j], peer[:, j]
        scale = float(np.max(np.abs(p))) if p.size else 0.0
        err = np.abs(k - p)
        nonfinite = int(np.count_nonzero(~np.isfinite(k)))
        err = np.where(np.isfinite(err), err, np.inf)
        rel = err / np.maximum(np.abs(p), max(1e-6 * scale, 1e-30))
        g = groups.setdefault(group_of(name), {
            "max_rel": 0.0, "worst_column": None, "max_err_over_scale": 0.0,
            "worst_column_scaled": None, "median_rel": 0.0, "cells_over_1e-3": 0,
            "cells": 0, "nonfinite_kiln": 0})
        worst = float(rel.max()) if rel.size else 0.0
        if g["worst_column"] is None or worst > g["max_rel"]:
            g["max_rel"], g["worst_column"] = worst, name
        ws = float(err.max()) / scale if scale > 0 else float(err.max()) if err.size else 0.0
        if g["worst_column_scaled"] is None or ws > g["max_err_over_scale"]:
            g["max_err_over_scale"], g["worst_column_scaled"] = ws, name
        g["median_rel"] = max(g["median_rel"], float(np.median(rel)) if rel.size else 0.0)
        g["cells_over_1e-3"] += int(np.count_nonzero(rel > 1e-3))
        g["cells"] += int(rel.size)
        g["nonfinite_kiln"] += nonfinite
    for g in groups.values():
        g["frac_over_1e-3"] = g["cells_over_1e-3"] / max(g["cells"], 1)
    rep["groups"] = groups
    return rep


def verdict(rep):
    """Pass when names and shapes agree, kiln has no non-finite value, every
    continuous group is within 1e-3 of its column's scale (float32 kiln vs
    float64 peer; a wrong definition is off by O(1)), and a discrete group
    (dominant: a near-tie between two bins can flip) differs on at most 0.1%
    of its cells.  Groups within that but with single values off by more
    than 1e-3 relative are named as notes."""
    if not rep.get("names_match") or "shape_mismatch" in rep:
        return False, "feature names or shapes differ", []
    bad, notes = [], []
    for name, g in rep["groups"].items():
        if g["nonfinite_kiln"]:
            bad.append("%s: %d non-finite" % (name, g["nonfinite_kiln"]))
        elif name in DISCRETE:
            if g["frac_over_1e-3"] > 1e-3:
                bad.append("%s: %.3g%% of cells differ" % (name, 100 * g["frac_over_1e-3"]))
        elif g["max_err_over_scale"] > 1e-3:
            bad.append("%s: error %.3g of the column scale on %s"
                       % (name, g["max_err_over_scale"], g["worst_column_scaled"]))
        elif g["max_rel"] > 1e-3:
            notes.append("%s: %.3g%% of cells off by > 1e-3 relative (worst %.3g on %s), "
                         "within %.2g of the column scale"
                         % (name, 100 * g["frac_over_1e-3"], g["max_rel"], g["worst_column"],
                            g["max_err_over_scale"]))
    return (not bad), ("; ".join(bad) if bad else "all groups within tolerance"), notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("spec")
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--time-budget", type=float, default=0.0,
                    help="stop after the chunk that passes S seconds, scale per window")
    ap.add_argument("--compare", metavar="KILN_FEATURES_H5")
    ap.add_argument("--json", help="also write the result object here")
    a = ap.parse_args()
    if a.chunk < 1 or a.chunk > 1 << 20:
        sys.exit("peer: --chunk must be 1..1048576")
    with open(a.spec) as f:
        spec_json = json.load(f)
    in_path = a.input or spec_json.get("input")
    if not in_path:
        sys.exit("peer: no input (spec has none and --input not given)")
    spec, feats, res = featurize(spec_json, in_path, a.output, a.chunk, a.time_budget)
    res["name"] = "featurize_numpy"
    res["numpy"], res["scipy"], res["h5py"] = np.__version__, scipy.__version__, h5py.__version__
    if a.compare:
        rep = compare(spec, feats, a.compare)
        ok, why, notes = verdict(rep)
        rep["ok"], rep["verdict"], rep["notes"] = ok, why, notes
        res["parity"] = rep
    out = json.dumps(res)
    print(out)
    if a.json:
        with open(a.json, "w") as f:
            f.write(out + "\n")
    if a.compare and not res["parity"]["ok"]:
        sys.exit(3)


if __name__ == "__main__":
    main()
