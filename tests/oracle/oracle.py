"""Test oracle: numpy/scipy answers for kiln's C unit tests.

Usage: oracle.py OP PARAMS.json IN.f64 ROWS COLS OUT.f64   (one call)
       oracle.py --serve FD                                (tests/unit/oracle.c)
Every tests/oracle/ops_*.py module exports OPS = {name: fn(x, params) -> array},
where x is a float64 array of shape (ROWS, COLS). The result is written as
raw little-endian float64 (flattened, C order).

--serve answers many calls in one process, so each import (Evidently's
takes seconds) is paid once per test binary: FD is a stream socket; each
request is one line "OP\\tPARAMS.json\\tIN.f64\\tROWS\\tCOLS\\tOUT.f64" and
each answer one line, "ok" or "error" (the traceback goes to stderr).
"""
import ast
import glob
import importlib.util
import json
import os
import socket
import sys
import traceback

import numpy as np


class OracleError(Exception):
    pass


class Ops:
    """The ops by name.  Which module holds an op is read from the OPS dict
    literal of each ops_*.py without running it; a module is imported at
    the first call of one of its ops, so a test binary that asks only h5py
    questions never imports scikit-learn, LightGBM or Evidently.  A module
    whose OPS is not a literal dict is imported at once."""

    def __init__(self):
        self.path_of, self.loaded = {}, {}
        here = os.path.dirname(os.path.abspath(__file__))
        for path in sorted(glob.glob(os.path.join(here, "ops_*.py"))):
            names = self._literal_names(path)
            if names is None:
                names = list(self._load(path))
            for name in names:
                self.path_of[name] = path

    @staticmethod
    def _literal_names(path):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "OPS"):
                if not isinstance(node.value, ast.Dict) or not all(
                        isinstance(k, ast.Constant) and isinstance(k.value, str)
                        for k in node.value.keys):
                    return None
                return [k.value for k in node.value.keys]
        return None

    def _load(self, path):
        if path not in self.loaded:
            spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            self.loaded[path] = mod.OPS
        return self.loaded[path]

    def get(self, op):
        if op not in self.path_of:
            raise OracleError("oracle: unknown op %r (have %s)" % (op, ", ".join(sorted(self.path_of))))
        return self._load(self.path_of[op])[op]


def run(ops, op, params_path, in_path, rows, cols, out_path):
    with open(params_path) as f:
        params = json.load(f)
    x = np.fromfile(in_path, dtype="<f8").reshape(int(rows), int(cols))
    y = np.asarray(ops.get(op)(x, params), dtype="<f8")
    y.ravel(order="C").tofile(out_path)


def serve(fd):
    ops = Ops()
    sock = socket.socket(fileno=fd)
    requests = sock.makefile("rb")
    for line in requests:
        try:
            fields = line.decode().rstrip("\n").split("\t")
            if len(fields) != 6:
                raise OracleError("oracle: bad request %r" % line[:200])
            run(ops, *fields)
            answer = b"ok\n"
        except OracleError as e:
            print(e, file=sys.stderr)
            answer = b"error\n"
        except Exception:
            traceback.print_exc()
            answer = b"error\n"
        sys.stdout.flush()
        sys.stderr.flush()
        sock.sendall(answer)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        return
    try:
        run(Ops(), *sys.argv[1:7])
    except OracleError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
