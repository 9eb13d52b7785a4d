"""FFT oracle ops for tests/unit/test_fft.c: numpy's rfft/fft on several
signals of different lengths at once (one python start per test).

x is one row holding the signals back to back; params["lengths"] lists their
lengths (complex ops: each signal is 2*len float values, interleaved re, im).
Results come back concatenated, complex values as interleaved re, im."""
import numpy as np


def _split(flat, lengths, per):
    out, at = [], 0
    for n in lengths:
        out.append(flat[at:at + per * n])
        at += per * n
    if at != flat.size:
        raise ValueError("lengths %r do not cover %d values" % (lengths, flat.size))
    return out


def rfft_multi(x, p):
    segs = _split(x.ravel(), p["lengths"], 1)
    return np.concatenate([np.fft.rfft(s).view(np.float64) for s in segs])


def cfft_multi(x, p):
    res = []
    for s in _split(x.ravel(), p["lengths"], 2):
        z = s[0::2] + 1j * s[1::2]
        # kiln's inverse is unnormalized: n * numpy's ifft
        y = z.size * np.fft.ifft(z) if p.get("inverse") else np.fft.fft(z)
        res.append(np.ascontiguousarray(y).view(np.float64))
    return np.concatenate(res)


OPS = {"fft_rfft_multi": rfft_multi, "fft_cfft_multi": cfft_multi}
