"""Test oracle: numpy/scipy answers for kiln's C unit tests.

Usage: oracle.py OP PARAMS.json IN.f64 ROWS COLS OUT.f64
Every tests/oracle/ops_*.py module exports OPS = {name: fn(x, params) -> array},
where x is a float64 array of shape (ROWS, COLS). The result is written as
raw little-endian float64 (flattened, C order).
"""
import glob
import importlib.util
import json
import os
import sys

import numpy as np


def load_ops():
    ops = {}
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "ops_*.py"))):
        spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        ops.update(mod.OPS)
    return ops


def main():
    op, params_path, in_path, rows, cols, out_path = sys.argv[1:7]
    with open(params_path) as f:
        params = json.load(f)
    x = np.fromfile(in_path, dtype="<f8").reshape(int(rows), int(cols))
    ops = load_ops()
    if op not in ops:
        sys.exit("oracle: unknown op %r (have %s)" % (op, ", ".join(sorted(ops))))
    y = np.asarray(ops[op](x, params), dtype="<f8")
    y.ravel(order="C").tofile(out_path)


if __name__ == "__main__":
    main()
