"""peer_onnxruntime.py - kiln's mlp as ONNX scored by onnxruntime, the edge
benchmark's peer (bench/run.sh, part "edge").

  rows FEATURES.h5 OUT.f32
      the featurize output's "features" rows as raw float32 (n x d), the
      rows edge_bench --rows scores
  compare MODEL.kmodel ROWS.f32 KILN_SCORES.f32 OUT.onnx [--repeat N]
      converts the .kmodel (an mlp) to ONNX with onnx's helper API, checks
      that onnxruntime gives kiln's predictions on the same rows (asserts),
      then times single-row session.run calls (p50/p99, as an edge agent
      would call it) and prints one JSON object

The .kmodel: "KILNMDL1", u32 header length, the JSON header, the scaler
(kernels/cpu/scaler.c: u32 "KSCL", u32 version, u64 d, u64 n_samples, f64
mean[d], var[d], scale[d], u64 checksum), then the mlp (kernels/cpu/mlp_io.c:
u32 "KMLP", u32 version, u32 n_classes, u32 n_layers, u32 size[0..n_layers],
then per layer W [fan_in x fan_out] row-major and its bias, float32), all
little-endian.  The graph: the scaler as kiln computes it (Cast to double,
Sub(mean), Div(scale), Cast to float: the very z), then per layer Gemm
(+ Relu between layers) and Softmax for a classifier.
"""
import json
import struct
import sys
import time

import numpy as np


def read_kmodel(path):
    b = open(path, "rb").read()
    assert b[:8] == b"KILNMDL1", path + ": not a kiln model"
    (hlen,) = struct.unpack_from("<I", b, 8)
    header = json.loads(b[12:12 + hlen])
    assert header["kind"] == "mlp", "%s: a %s model; the ONNX peer converts mlp only" % (
        path, header["kind"])
    off = 12 + hlen
    magic, version, d, _n = struct.unpack_from("<IIQQ", b, off)
    assert magic == 0x4C43534B and version == 1, path + ": unknown scaler format"
    off += 24
    sc = np.frombuffer(b, "<f8", 3 * d, off).reshape(3, d)
    mean, scale = sc[0], sc[2]
    off += 24 * d + 8
    magic, version, n_classes, n_layers = struct.unpack_from("<IIII", b, off)
    assert magic == 0x504C4D4B and version == 1, path + ": unknown mlp format"
    off += 16
    sizes = struct.unpack_from("<%dI" % (n_layers + 1), b, off)
    off += 4 * (n_layers + 1)
    assert sizes[0] == d
    layers = []
    for l in range(n_layers):
        k, n = sizes[l], sizes[l + 1]
        w = np.frombuffer(b, "<f4", k * n, off).reshape(k, n)
        off += 4 * k * n
        bias = np.frombuffer(b, "<f4", n, off)
        off += 4 * n
        layers.append((w, bias))
    assert off == len(b), "%s: %d trailing bytes" % (path, len(b) - off)
    return header, mean, scale, layers, n_classes


def to_onnx(mean, scale, layers, n_classes):
    from onnx import TensorProto, helper, numpy_helper, checker
    d = len(mean)
    # the scaler as kiln computes it: (double(x) - mean) / scale, rounded to float
    init = [numpy_helper.from_array(mean.astype(np.float64), "mean"),
            numpy_helper.from_array(scale.astype(np.float64), "scale")]
    nodes = [helper.make_node("Cast", ["x"], ["xd"], to=TensorProto.DOUBLE),
             helper.make_node("Sub", ["xd", "mean"], ["xc"]),
             helper.make_node("Div", ["xc", "scale"], ["zd"]),
             helper.make_node("Cast", ["zd"], ["h0"], to=TensorProto.FLOAT)]
    for l, (w, bias) in enumerate(layers):
        init += [numpy_helper.from_array(np.ascontiguousarray(w), "W%d" % l),
                 numpy_helper.from_array(np.ascontiguousarray(bias), "b%d" % l)]
        last = l == len(layers) - 1
        out = ("logits" if n_classes else "y") if last else "z%d" % (l + 1)
        nodes.append(helper.make_node("Gemm", ["h%d" % l, "W%d" % l, "b%d" % l], [out]))
        if not last:
            nodes.append(helper.make_node("Relu", [out], ["h%d" % (l + 1)]))
    n_out = layers[-1][0].shape[1]
    if n_classes:
        nodes.append(helper.make_node("Softmax", ["logits"], ["y"], axis=1))
    graph = helper.make_graph(
        nodes, "kiln_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_out])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="kiln bench/peer_onnxruntime.py")
    model.ir_version = 8
    checker.check_model(model)
    return model


def rows(features, out):
    import h5py
    x = h5py.File(features, "r")["features"][:].astype("<f4")
    x.tofile(out)
    print(json.dumps({"rows": x.shape[0], "features": x.shape[1]}))


def compare(kmodel, rows_path, kiln_scores, out_onnx, repeat):
    import onnx
    import onnxruntime as ort
    header, mean, scale, layers, n_classes = read_kmodel(kmodel)
    d, n_out = len(mean), layers[-1][0].shape[1]
    x = np.fromfile(rows_path, "<f4").reshape(-1, d)
    ks = np.fromfile(kiln_scores, "<f4").reshape(-1, n_out)
    assert ks.shape[0] == x.shape[0], "kiln scored %d rows, there are %d" % (ks.shape[0], x.shape[0])
    model = to_onnx(mean, scale, layers, n_classes)
    onnx.save(model, out_onnx)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1          # one core, as kiln's edge loop
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(out_onnx, so, providers=["CPUExecutionProvider"])
    ys = sess.run(["y"], {"x": x})[0]
    # Same predictions: probabilities within 5e-6 (the same z, then float32
    # GEMMs summed in another order and another expf: up to ~12 ulps of 1.0
    # seen here, x6 for margin), the same class except where kiln's top two
    # are within that of each other.
    tol = 5e-6
    diff = float(np.max(np.abs(ys - ks)))
    assert diff <= tol, "onnxruntime differs from kiln by %g (> %g)" % (diff, tol)
    if n_classes:
        kp, op = ks.argmax(1), ys.argmax(1)
        top2 = np.sort(ks, 1)[:, -2:]
        close = (top2[:, 1] - top2[:, 0]) <= tol
        bad = np.flatnonzero((kp != op) & ~close)
        assert len(bad) == 0, "predicted class differs on %d rows (first %d)" % (len(bad), bad[0])
        same_class = int(np.sum(kp == op))
    else:
        same_class = None
    # single-row calls, as an agent scores each window: one warm-up pass
    one = [x[i:i + 1] for i in range(x.shape[0])]
    for r in one:
        sess.run(["y"], {"x": r})
    lat = []
    for _ in range(repeat):
        for r in one:
            t0 = time.perf_counter_ns()
            sess.run(["y"], {"x": r})
            lat.append((time.perf_counter_ns() - t0) / 1e3)
    lat = np.sort(np.array(lat))
    print(json.dumps({
        "peer": "onnxruntime %s (Python API, CPUExecutionProvider, 1 thread), onnx %s, opset 17"
                % (ort.__version__, onnx.__version__),
        "rows": int(x.shape[0]), "features": d, "outputs": n_out,
        "layers": [int(layers[0][0].shape[0])] + [int(w.shape[1]) for w, _ in layers],
        "calls": int(len(lat)), "p50_us": float(lat[len(lat) // 2]),
        "p99_us": float(lat[int((len(lat) - 1) * 0.99)]), "mean_us": float(lat.mean()),
        "max_abs_prob_diff": diff, "same_class_rows": same_class, "tolerance": tol}))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "rows":
        rows(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 6 and sys.argv[1] == "compare":
        repeat = int(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[6] == "--repeat" else 5
        compare(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], repeat)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
