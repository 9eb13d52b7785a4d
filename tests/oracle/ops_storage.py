"""Oracle ops for storage tests: h5py reads what the C writer wrote, writes
files in (and deliberately out of) the kiln layout for the C reader, and an
independent implementation of the content hash defined in storage/sensor.h.

Values come back as float64; int64 columns come back split ("split64") as
pairs (value >> 32, value & 0xffffffff) so they stay exact.  Strings come back
as their UTF-8 bytes, each element followed by a 0 byte.
"""
import hashlib
import struct

import h5py
import numpy as np

SENSOR = "kiln.sensor.v1"
FEATURES = "kiln.features.v1"


def _digest_out(d):
    return np.frombuffer(d, dtype=np.uint8).astype(np.float64)


def op_sha256(x, p):
    """x holds byte values; params "lens" splits them into messages (default:
    one message of "n" or all bytes).  Returns the 32-byte digests in order."""
    data = np.asarray(x).ravel().astype(np.uint8).tobytes()
    lens = p.get("lens", [int(p.get("n", len(data)))])
    out, at = [], 0
    for n in lens:
        out.append(_digest_out(hashlib.sha256(data[at:at + n]).digest()))
        at += n
    return np.concatenate(out)


def _split64(a):
    a = np.asarray(a, dtype=np.int64).ravel()
    out = np.empty(2 * a.size, dtype=np.float64)
    out[0::2] = a >> 32
    out[1::2] = a & 0xFFFFFFFF
    return out


def op_h5_dataset(x, p):
    with h5py.File(p["path"], "r") as f:
        a = f[p["name"]][...]
    if p.get("split64"):
        return _split64(a)
    return a.astype(np.float64).ravel()


def op_h5_info(x, p):
    """[itemsize, kind (1 float, 2 int, 3 uint), ndim, maxshape0 (-1 unlimited),
    chunk0 (0 if contiguous), compression (1 gzip), shuffle, shape...]"""
    with h5py.File(p["path"], "r") as f:
        d = f[p["name"]]
        kind = {"f": 1, "i": 2, "u": 3}.get(d.dtype.kind, 0)
        m0 = d.maxshape[0]
        return [d.dtype.itemsize, kind, d.ndim, -1 if m0 is None else m0,
                d.chunks[0] if d.chunks else 0, 1 if d.compression == "gzip" else 0,
                1 if d.shuffle else 0] + list(d.shape)


def _as_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def op_h5_attr(x, p):
    with h5py.File(p["path"], "r") as f:
        v = f[p.get("obj", "/")].attrs[p["name"]]
    if isinstance(v, (str, bytes)) or (isinstance(v, np.ndarray) and v.dtype.kind in "OSU"):
        items = [v] if isinstance(v, (str, bytes)) else list(np.asarray(v).ravel())
        raw = b"".join(_as_str(s).encode() + b"\0" for s in items)
        return np.frombuffer(raw, dtype=np.uint8).astype(np.float64) if raw else np.zeros(0)
    return np.asarray(v, dtype=np.float64).ravel()


def _strs_attr(f, obj, name):
    if name not in f[obj].attrs:
        return []
    v = f[obj].attrs[name]
    return [_as_str(s) for s in np.asarray(v).ravel()]


def content_hash(path):
    """The content hash of sensor.h, written from its comment alone."""
    with h5py.File(path, "r") as f:
        schema = _as_str(f.attrs["schema"])
        h = hashlib.sha256()

        def s(t):
            h.update(t.encode() + b"\0")

        def u64(v):
            h.update(struct.pack("<Q", v))

        def strs(name, items):
            s(name)
            u64(len(items))
            for t in items:
                s(t)

        s(schema)
        if schema == SENSOR:
            s("sample_rate_hz")
            h.update(struct.pack("<d", float(f.attrs["sample_rate_hz"])))
            s("window_len")
            u64(int(f.attrs["window_len"]))
            channels = _strs_attr(f, "signals", "channels") or sorted(f["signals"].keys())
            strs("channels", channels)
            strs("label_names", _strs_attr(f, "/", "label_names"))
            paths = ["/signals/" + c for c in channels]
        elif schema == "kiln.predictions.v1":
            # storage/predictions.h: output and class names, the model's and
            # the source's hashes, then the records
            strs("output_names", _strs_attr(f, "score", "output_names"))
            strs("class_names", _strs_attr(f, "/", "class_names"))
            for k in ("model_sha256", "source_sha256"):
                s(k)
                s(_as_str(f.attrs[k]) if k in f.attrs else "")
            paths = [q for q in ("/label", "/predicted", "/score", "/target") if q in f]
            paths = ["/asset", "/timestamp"] + paths
            paths = sorted(set(paths), key=lambda t: t.encode())
        else:
            strs("feature_names", _strs_attr(f, "features", "feature_names"))
            strs("label_names", _strs_attr(f, "/", "label_names"))
            for k in ("source_sha256", "spec_sha256"):
                s(k)
                s(_as_str(f.attrs[k]) if k in f.attrs else "")
            paths = ["/features"]
        if schema != "kiln.predictions.v1":
            paths += ["/asset", "/timestamp"] + [q for q in ("/label", "/target") if q in f]
        le = {"f": "<f4", "i4": "<i4", "i8": "<i8"}
        for q in sorted(paths, key=lambda t: t.encode()):
            a = f[q][...]
            dt = le["f"] if a.dtype.kind == "f" else le["i%d" % a.dtype.itemsize]
            s(q)
            u64(a.shape[0])
            u64(int(np.prod(a.shape[1:])) if a.ndim > 1 else 1)
            h.update(hashlib.sha256(np.ascontiguousarray(a, dtype=dt).tobytes()).digest())
        return h.digest()


def op_content_hash(x, p):
    return _digest_out(content_hash(p["path"]))


def _str_attr(obj, name, value, fixed=False):
    if fixed:
        obj.attrs.create(name, np.bytes_(value.encode()))
    else:
        obj.attrs.create(name, value, dtype=h5py.string_dtype())


def _strs(obj, name, values, fixed=False):
    if fixed:
        width = max([len(v.encode()) for v in values] + [1])
        obj.attrs.create(name, np.array([v.encode() for v in values], dtype="S%d" % width))
    else:
        obj.attrs.create(name, np.array(values, dtype=object), dtype=h5py.string_dtype())


def op_h5_write(x, p):
    """Writes a kind = "sensor" | "features" file with numpy data from seed, then
    applies `defect`; returns the values as the C reader should see them:
    sensor: each channel's signals, asset, timestamp (split64), label, target;
    features: features, asset, timestamp (split64), label, target."""
    path, kind, defect = p["path"], p.get("kind", "sensor"), p.get("defect", "")
    if defect == "text":
        with open(path, "w") as f:
            f.write("window,DE\n0,1.5\n")
        return np.zeros(1)
    if defect == "empty":
        open(path, "wb").close()
        return np.zeros(1)
    rng = np.random.default_rng(int(p.get("seed", 1)))
    n = int(p.get("n", 100))
    labels = p.get("label_names", ["normal", "inner_race", "outer_race"])
    fixed = bool(p.get("fixed_strings", False))
    asset = rng.integers(0, 5, n).astype(np.int32)
    ts = (1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 85_333_333
          + rng.integers(0, 1000, n))
    label = rng.integers(-1, len(labels), n).astype(np.int32)
    target = rng.uniform(0, 500, n).astype(np.float32)
    out = []
    with h5py.File(path, "w") as f:
        _str_attr(f, "schema", p.get("schema", SENSOR if kind == "sensor" else FEATURES), fixed)
        _str_attr(f, "created", "2026-01-01T00:00:00Z", fixed)
        _strs(f, "label_names", labels, fixed)
        if kind == "sensor":
            wl = int(p.get("window_len", 64))
            channels = p.get("channels", ["DE", "FE"])
            f.attrs["sample_rate_hz"] = float(p.get("sample_rate_hz", 12000.0))
            f.attrs["window_len"] = np.int64(wl)
            _str_attr(f, "source", "h5py oracle", fixed)
            g = f.create_group("signals")
            if p.get("channels_attr", True):
                _strs(g, "channels", channels, fixed)
            for i, c in enumerate(channels):
                sig = rng.standard_normal((n, wl)).astype(np.float32)
                if defect == "nan_signal" and i == 0:
                    sig[int(p.get("bad_row", 5)), 3] = np.nan
                dtype = np.float64 if defect == "float64_signals" and i == len(channels) - 1 else np.float32
                if defect == "signals_rank1" and i == 0:
                    g.create_dataset(c, data=sig.ravel())
                elif defect == "lzf_signals" and i == 0:
                    g.create_dataset(c, data=sig, chunks=(min(n, 16), wl), compression="lzf")
                elif defect == "signals_short" and i == 1:
                    g.create_dataset(c, data=sig[:-1])
                else:
                    g.create_dataset(c, data=sig.astype(dtype), chunks=(min(n, 16), wl),
                                     maxshape=(None, wl))
                out.append(sig.ravel().astype(np.float64))
        else:
            names = p.get("feature_names", ["DE.rms", "DE.kurtosis", "FE.rms", "FE.bpfo"])
            feats = rng.standard_normal((n, len(names))).astype(np.float32)
            if defect == "nan_feature":
                feats[int(p.get("bad_row", 5)), 1] = np.inf
            d = f.create_dataset("features", data=feats.astype(
                np.float64 if defect == "float64_features" else np.float32))
            _strs(d, "feature_names", names[:-1] if defect == "feature_names_count" else names, fixed)
            _str_attr(f, "source_sha256", "ab" * 32, fixed)
            _str_attr(f, "spec_sha256", "cd" * 32, fixed)
            _str_attr(f, "spec_json", '{"features": ["rms"]}', fixed)
            out.append(feats.ravel().astype(np.float64))
        if defect == "inf_target":
            target[int(p.get("bad_row", 5))] = np.inf
        if defect != "missing_asset":
            a = asset[:-1] if defect == "asset_len" else asset
            f.create_dataset("asset", data=a.astype(np.int64 if defect == "int64_asset" else np.int32))
        if defect != "missing_timestamp":
            f.create_dataset("timestamp", data=ts)
        if defect == "label_out_of_range":
            label[7] = len(labels)
        f.create_dataset("label", data=label)
        f.create_dataset("target", data=target)
        for name, value in p.get("set_attrs", {}).items():
            f.attrs[name] = value
        for name in p.get("del_attrs", []):
            del f.attrs[name]
        if defect == "missing_signals":
            del f["signals"]
        if defect == "signals_is_dataset":
            del f["signals"]
            f.create_dataset("signals", data=np.zeros(3, np.float32))
    if not defect and not p.get("set_attrs") and not p.get("del_attrs") and "schema" not in p:
        with h5py.File(path, "a") as f:
            _str_attr(f, "content_sha256", content_hash(path).hex())
    out += [asset.astype(np.float64), _split64(ts), label.astype(np.float64),
            target.astype(np.float64)]
    return np.concatenate(out)


OPS = {
    "sha256": op_sha256,
    "h5_dataset": op_h5_dataset,
    "h5_info": op_h5_info,
    "h5_attr": op_h5_attr,
    "content_hash": op_content_hash,
    "h5_write": op_h5_write,
}
