"""Oracle ops for kernels/kernels.h (tests/unit/test_{stats,spectrum,envelope,
rolling,resample}.c): each op is the numpy/scipy definition the C kernel must
match.  Every op takes x of shape (rows, cols); row-wise ops return the rows'
results concatenated."""
import warnings

import numpy as np
import scipy.io
import scipy.signal
import scipy.stats


def cwru_window(x, p):
    """A real window: p = {path, channel ("DE"/"FE"/"BA"), start, n} ->
    the n samples from `start` of the channel, then the file's rpm."""
    m = scipy.io.loadmat(p["path"], mat_dtype=True)
    suffix = "_%s_time" % p.get("channel", "DE")
    (name,) = [k for k in m if k.endswith(suffix)]
    (rpm_name,) = [k for k in m if k.endswith("RPM")]
    sig = m[name].ravel()
    start, n = int(p["start"]), int(p["n"])
    if start + n > sig.size:
        raise ValueError("window %d+%d past the end (%d) of %s" % (start, n, sig.size, p["path"]))
    return np.concatenate([sig[start:start + n], [float(m[rpm_name].ravel()[0])]])


def time_stats(x, p):
    """kn_time_stats per row, p = {fs, thr}:
    mean std rms peak p2p crest skew kurt slope util."""
    fs, thr = float(p["fs"]), float(p["thr"])
    out = []
    for row in x:
        n = row.size
        rms = np.sqrt(np.mean(row * row))
        peak = np.max(np.abs(row))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # constant rows
            skew = scipy.stats.skew(row)
            kurt = scipy.stats.kurtosis(row, fisher=False)
        # scipy returns NaN for a (numerically) constant window; the kernel
        # contract says 0 there.
        skew = 0.0 if np.isnan(skew) else skew
        kurt = 0.0 if np.isnan(kurt) else kurt
        slope = np.polyfit(np.arange(n) / fs, row, 1)[0] if n > 1 else 0.0
        out.append([row.mean(), row.std(), rms, peak, np.ptp(row),
                    peak / rms if rms > 0 else 0.0, skew, kurt, slope,
                    np.mean(row > thr)])
    return np.array(out).ravel()


def hanning(x, p):
    return np.hanning(int(p["n"]))


def _bin_hz(n, fs):
    # the kernel's k * fs / n, in the same order of operations
    return np.arange(n // 2 + 1) * fs / n


def power_spectrum(row, window):
    n = row.size
    w = np.hanning(n) if window == "hann" else np.ones(n)
    mag2 = np.abs(np.fft.rfft(row * w)) ** 2 / n**2
    mag2[1:(n + 1) // 2] *= 2    # bins 0 < k < n/2
    return mag2


def spectrum_features(x, p):
    """Per row, p = {fs, window: "hann"|"none", bands: [[lo, hi], ...]}:
    power spectrum (n/2+1), band energies, centroid, dominant frequency."""
    fs = float(p["fs"])
    out = []
    for row in x:
        n = row.size
        pw = power_spectrum(row, p.get("window", "none"))
        f = _bin_hz(n, fs)
        bands = [pw[(f >= lo) & (f < hi)].sum() for lo, hi in p.get("bands", [])]
        centroid = (f * pw).sum() / pw.sum() if pw.sum() > 0 else 0.0
        dominant = f[1 + np.argmax(pw[1:])]
        out.append(np.concatenate([pw, bands, [centroid, dominant]]))
    return np.concatenate(out)


def envelope_spectrum(x, p):
    """Per row, p = {fs, lo, hi}: band-pass by zeroing rfft bins outside
    [lo, hi), analytic signal by scipy.signal.hilbert, envelope e = |.|,
    |rfft(e - mean e)| * 2/n."""
    fs, lo, hi = float(p["fs"]), float(p["lo"]), float(p["hi"])
    out = []
    for row in x:
        n = row.size
        spec = np.fft.rfft(row)
        f = _bin_hz(n, fs)
        spec[(f < lo) | (f >= hi)] = 0
        band = np.fft.irfft(spec, n)
        env = np.abs(scipy.signal.hilbert(band))
        out.append(np.abs(np.fft.rfft(env - env.mean())) * 2 / n)
    return np.concatenate(out)


def bearing_freqs(x, p):
    """p = {z, d, D, contact_deg, shaft_hz} -> bpfo, bpfi, bsf, ftf (Hz)."""
    z, d, D, fr = float(p["z"]), float(p["d"]), float(p["D"]), float(p["shaft_hz"])
    r = d / D * np.cos(np.radians(float(p["contact_deg"])))
    return np.array([z / 2 * fr * (1 - r), z / 2 * fr * (1 + r),
                     D / d * fr * (1 - r * r), fr / 2 * (1 - r)])


def rolling(x, p):
    """Row 0 is a series; p = {k} -> rolling(k, min_periods=1) mean then
    std (ddof=0), as pandas computes them, written out in numpy."""
    v, k = x[0], int(p["k"])
    means, stds = [], []
    for i in range(v.size):
        w = v[max(0, i - k + 1):i + 1]
        means.append(w.mean())
        stds.append(w.std())
    return np.concatenate([means, stds])


def resample_poly(x, p):
    """Row 0 resampled by scipy.signal.resample_poly(x, up, down) with its
    default window ('kaiser', 5.0) and zero padding; with p["lengths"], each
    prefix x[0][:L] in turn, results concatenated."""
    up, down = int(p["up"]), int(p["down"])
    lengths = p.get("lengths", [x.shape[1]])
    return np.concatenate([scipy.signal.resample_poly(x[0][:n], up, down) for n in lengths])


OPS = {
    "kn_cwru_window": cwru_window,
    "kn_time_stats": time_stats,
    "kn_hanning": hanning,
    "kn_spectrum_features": spectrum_features,
    "kn_envelope_spectrum": envelope_spectrum,
    "kn_bearing_freqs": bearing_freqs,
    "kn_rolling": rolling,
    "kn_resample_poly": resample_poly,
}
