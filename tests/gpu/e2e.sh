#!/usr/bin/env bash
# e2e.sh - kiln's GPU path end to end, on a machine with a GPU, from the
# bundle tests/gpu/bundle.sh made (build/gpu-e2e):
#  1. `kiln featurize` of generated windows (2048 samples, 3 channels, the
#     benchmark's 75 features) on the CPU and with --gpu 0: every feature
#     column within 1e-3 of its scale (tests/gpu/README.md's rule for a
#     feature row is tighter per kernel; this is the whole-file check), and
#     the same for the real CWRU windows with the example spec;
#  2. the wall time of both;
#  3. `kiln local` with a worker that finds the GPU by itself: a featurize
#     job with resources.gpus 1 runs on it (its log names the GPU), the
#     same job with gpus 0 on the CPU, and their outputs agree as in 1.
# Prints "gpu e2e: N passed, N failed"; exits non-zero on a failure.  Every
# step is bounded (timeout): the whole script ends within about 3 minutes.
#
#   bash tests/gpu/e2e.sh OUTDIR      (e.g. through the device tool: $OUT)
set -u
cd "$(dirname "$0")/../.."
B=build/gpu-e2e
out=${1:-out-gpu-e2e}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
KILN=$PWD/$B/bin/kiln
T=$(mktemp -d)
trap 'kill $LOCAL 2>/dev/null; rm -rf "$T"' EXIT
LOCAL=
pass=0; fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
PY=${KILN_PYTHON:-python3}

compare() {   # compare NAME A.h5 B.h5: every column within 1e-3 of its scale
    "$PY" - "$2" "$3" <<'PY' && ok "$1" || bad "$1"
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1])["features"][...].astype(np.float64)
b = h5py.File(sys.argv[2])["features"][...].astype(np.float64)
names = [n.decode() if isinstance(n, bytes) else n for n in h5py.File(sys.argv[1])["features"].attrs["feature_names"]]
assert a.shape == b.shape, (a.shape, b.shape)
scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
err = (np.abs(a - b) / scale).max(axis=0)
worst = int(np.argmax(err))
print(f"  {a.shape[0]} rows x {a.shape[1]} features; worst column {names[worst]}: {err[worst]:.2e} of its scale")
sys.exit(0 if err.max() <= 1e-3 else 1)
PY
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/nvidia-smi.txt"
$KILN gen --windows 20000 --window-len 2048 --assets 8 --seed 3 -o "$T/gen.h5" >/dev/null || bad "kiln gen"
"$PY" - "$T" "$B/data" <<'PY'
import json, sys
t, d = sys.argv[1], sys.argv[2]
s = json.load(open(d + "/featurize_bench.json"))
s["features"].pop("rolling", None)
s["input"], s["output"] = t + "/gen.h5", t + "/cpu.h5"
json.dump(s, open(t + "/gen.json", "w"))
c = json.load(open(d + "/cwru_features.json"))
c["features"].pop("rolling", None)
c["input"], c["output"] = d + "/cwru.h5", t + "/cwru-cpu.h5"
json.dump(c, open(t + "/cwru.json", "w"))
PY

# --- 1, 2: kiln featurize, CPU and GPU
for run in "cpu" "gpu --gpu 0"; do
    set -- $run
    name=$1; shift
    timeout 60 $KILN featurize "$T/gen.json" --output "$T/gen-$name.h5" --stats-json "$T/stats-$name.json" "$@" \
        >"$out/featurize-$name.txt" 2>&1 || bad "kiln featurize ($name): $(tail -3 "$out/featurize-$name.txt")"
    grep -E " on |windows/s" "$out/featurize-$name.txt"
done
grep -q "on GPU 0" "$out/featurize-gpu.txt" && ok "kiln featurize --gpu 0 ran on the GPU" \
    || bad "kiln featurize --gpu 0 did not run on the GPU: $(grep ' on ' "$out/featurize-gpu.txt")"
compare "generated windows: GPU features = CPU features" "$T/gen-cpu.h5" "$T/gen-gpu.h5"
if [ -f "$B/data/cwru.h5" ]; then
    $KILN featurize "$T/cwru.json" >"$out/cwru-cpu.txt" 2>&1 &&
    $KILN featurize "$T/cwru.json" --output "$T/cwru-gpu.h5" --gpu 0 >"$out/cwru-gpu.txt" 2>&1 \
        && compare "CWRU windows: GPU features = CPU features" "$T/cwru-cpu.h5" "$T/cwru-gpu.h5" \
        || bad "kiln featurize on CWRU: $(tail -n 2 "$out"/cwru-*.txt)"
fi

# --- 3: through kilnd, a worker that finds its GPU
timeout 120 $KILN local --workers 1 --dir "$T/c" >"$out/local.log" 2>&1 &
LOCAL=$!
for _ in $(seq 1 100); do [ -s "$T/c/kilnd.url" ] && break; sleep 0.1; done
sleep 1
$KILN workers --dir "$T/c" | tee "$out/workers.txt"
for g in 1 0; do
    "$PY" - "$T" "$g" <<'PY'
import json, sys
t, g = sys.argv[1], int(sys.argv[2])
s = json.load(open(t + "/gen.json"))
s.update(name=f"feat-gpus-{g}", output=f"{t}/job-gpus{g}.h5", resources={"cores": 1, "gpus": g})
json.dump(s, open(f"{t}/job{g}.json", "w"))
PY
    id=$(timeout 60 $KILN submit "$T/job$g.json" --dir "$T/c" --wait --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["id"] if d["state"]=="succeeded" else "")')
    [ -n "$id" ] && ok "featurize job with gpus $g succeeded" || { bad "featurize job with gpus $g"; continue; }
    $KILN logs "$id" --dir "$T/c" >"$out/job-gpus$g.log"
    grep -h "featurized .* windows on" "$out/job-gpus$g.log" | head -3
done
grep -q "windows on GPU 0" "$out/job-gpus1.log" && ok "the gpus 1 job ran on the worker's GPU" || bad "the gpus 1 job did not run on the GPU"
grep -q "windows on CPU" "$out/job-gpus0.log" && ok "the gpus 0 job ran on the CPU" || bad "the gpus 0 job did not run on the CPU"
compare "kilnd: GPU job output = CPU job output" "$T/job-gpus0.h5" "$T/job-gpus1.h5"
kill -INT $LOCAL 2>/dev/null; wait $LOCAL 2>/dev/null; LOCAL=
echo "gpu e2e: $pass passed, $fail failed"
[ $fail = 0 ]
