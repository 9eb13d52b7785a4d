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
[ -d "$B" ] || [ ! -f "$B.txz" ] || tar -C build -xJf "$B.txz"
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
        >"$out/featurize-$name.txt" 2>&1 || {
        bad "kiln featurize ($name): $(tail -3 "$out/featurize-$name.txt")"
        # where it failed, when the machine has a debugger (the device image has cuda-gdb)
        command -v cuda-gdb >/dev/null && timeout 90 cuda-gdb -batch -ex run -ex bt \
            --args $KILN featurize "$T/gen.json" --output "$T/gen-$name-dbg.h5" "$@" \
            >"$out/featurize-$name-gdb.txt" 2>&1 && tail -25 "$out/featurize-$name-gdb.txt"
    }
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

# --- 4: training on the GPU (logreg, mlp) and scoring every model kind on it,
# against the same commands on the CPU, on the real CWRU features of step 1
if [ -f "$T/cwru-cpu.h5" ]; then
    "$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
kinds = {"logreg": {"kind": "logreg"}, "mlp": {"kind": "mlp", "hidden": [32], "epochs": 30},
         "gbdt": {"kind": "gbdt"},
         "anomaly": {"kind": "anomaly", "healthy_class": 0, "false_alarm_rate": 0.05}}
for k, m in kinds.items():
    json.dump({"type": "train", "input": t + "/cwru-cpu.h5", "target": "label", "seed": 7,
               "validation": {"split": "time", "fraction": 0.25}, "name": "e2e-" + k, "model": m},
              open(f"{t}/train-{k}.json", "w"))
    json.dump({"type": "score", "input": t + "/cwru-cpu.h5", "output": f"{t}/pred-{k}.h5",
               "model_file": f"{t}/{k}-cpu.kmodel"}, open(f"{t}/score-{k}.json", "w"))
PY
    acc() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"].get("accuracy", -1))' "$1"; }
    for k in logreg mlp gbdt anomaly; do
        timeout 120 $KILN train "$T/train-$k.json" --output "$T/$k-cpu.kmodel" --json \
            >"$out/train-$k-cpu.json" 2>"$out/train-$k-cpu.log" || { bad "kiln train $k (CPU)"; continue; }
        if [ $k = logreg ] || [ $k = mlp ]; then
            s0=$(date +%s.%N)
            timeout 120 $KILN train "$T/train-$k.json" --output "$T/$k-gpu.kmodel" --gpu 0 --json \
                >"$out/train-$k-gpu.json" 2>"$out/train-$k-gpu.log" || bad "kiln train $k --gpu 0"
            s1=$(date +%s.%N)
            grep -h "^trained" "$out/train-$k-gpu.log" | head -1
            a=$(acc "$out/train-$k-cpu.json"); b=$(acc "$out/train-$k-gpu.json")
            grep -q "trained $k on GPU 0" "$out/train-$k-gpu.log" &&
                "$PY" -c "import sys; sys.exit(0 if abs($a - $b) <= 0.03 else 1)" \
                && ok "train $k on the GPU: held-out accuracy $b (CPU $a), $(awk "BEGIN {printf \"%.2f\", $s1 - $s0}") s" \
                || bad "train $k on the GPU: accuracy $b vs CPU $a: $(grep -h '^trained' "$out/train-$k-gpu.log")"
        fi
        timeout 60 $KILN score "$T/score-$k.json" --output "$T/pred-$k-cpu.h5" >"$out/score-$k-cpu.log" 2>&1 &&
        timeout 60 $KILN score "$T/score-$k.json" --output "$T/pred-$k-gpu.h5" --gpu 0 >"$out/score-$k-gpu.log" 2>&1 ||
            { bad "kiln score $k: $(tail -n 2 "$out"/score-$k-*.log)"; continue; }
        grep -q "rows on GPU 0" "$out/score-$k-gpu.log" || { bad "score $k did not run on the GPU: $(grep -h '^scoring' "$out/score-$k-gpu.log")"; continue; }
        "$PY" - "$T/pred-$k-cpu.h5" "$T/pred-$k-gpu.h5" "$k" <<'PY' && ok "score $k on the GPU = on the CPU" || bad "score $k on the GPU differs"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
sa, sb = a["score"][...].astype(np.float64), b["score"][...].astype(np.float64)
pa, pb = a["predicted"][...], b["predicted"][...]
scale = max(np.abs(sa).max(), 1e-12)
err = np.abs(sa - sb).max() / scale
same = (pa == pb).mean()
print(f"  {sys.argv[3]}: {len(pa)} rows, scores within {err:.1e} of their scale, {same:.4f} of predictions equal")
sys.exit(0 if err <= 1e-4 and same >= 0.99 else 1)
PY
    done
fi

# --- 5: end-to-end featurize of a larger HDF5 file (file in, file out):
# the GPU path against the CPU path on all cores, same file, same run
BIG=${KILN_E2E_BIG:-100000}
if [ "$BIG" -gt 0 ]; then
    $KILN gen --windows $BIG --window-len 2048 --assets 16 --seed 5 -o "$T/big.h5" >/dev/null &&
    "$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open(t + "/gen.json"))
s["input"], s["output"] = t + "/big.h5", t + "/big-out.h5"
json.dump(s, open(t + "/big.json", "w"))
PY
    for run in "cpu" "gpu --gpu 0" "cpu" "gpu --gpu 0" "cpu" "gpu --gpu 0"; do
        set -- $run
        name=$1; shift
        rm -f "$T/big-out.h5"
        timeout 120 $KILN featurize "$T/big.json" --stats-json "$T/big-$name.json" "$@" >>"$out/big-$name.txt" 2>&1 \
            || bad "featurize $BIG windows ($name)"
        "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], d["seconds"])' "$T/big-$name.json" "$name" >>"$T/big-times.txt"
    done
    "$PY" - "$T/big-times.txt" "$out/e2e_bench.json" "$BIG" <<'PY' && ok "HDF5 end-to-end featurize timed" || bad "HDF5 end-to-end timing"
import json, sys, statistics as st
t = {"cpu": [], "gpu": []}
for line in open(sys.argv[1]):
    k, v = line.split()
    t[k].append(float(v))
c, g = st.median(t["cpu"]), st.median(t["gpu"])
n = int(sys.argv[3])
gb = n * 3 * 2048 * 4 / 1e9
r = {"windows": n, "signal_gb": gb, "cpu_s": t["cpu"], "gpu_s": t["gpu"], "cpu_median_s": c,
     "gpu_median_s": g, "gpu_vs_cpu": c / g, "gpu_gb_per_s": gb / g, "cpu_gb_per_s": gb / c}
json.dump(r, open(sys.argv[2], "w"), indent=1)
print(f"  {n} windows x 3 x 2048 ({gb:.2f} GB of signal): CPU {c:.3f} s ({gb / c:.2f} GB/s), "
      f"GPU {g:.3f} s ({gb / g:.2f} GB/s): {c / g:.2f}x")
PY
fi

# --- 6: data-parallel training over MPI ranks, a GPU each, sums through
# NCCL (its id broadcast through MPI); two ranks on this one GPU must agree
# to fall back to MPI sums (NCCL refuses two ranks on one device), not hang
if [ -d "$B/mpi/root" ] && [ -f "$T/cwru-cpu.h5" ]; then
    (cd "$B/mpi/root" && find . ! -type d | while read -r f; do
        [ -e "/$f" ] || [ -L "/$f" ] || { mkdir -p "/$(dirname "$f")" && cp -a "$f" "/$f"; }; done)
    mpi_ok=1
    timeout 30 mpirun --allow-run-as-root -np 1 true >"$out/mpi-sanity.log" 2>&1 || mpi_ok=0
fi
if [ "${mpi_ok:-0}" = 0 ]; then
    echo "mpi: skipped (mpirun cannot start here: $(tail -n 1 "$out/mpi-sanity.log" 2>/dev/null || echo 'no bundle'))"
else
    "$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open(t + "/train-logreg.json"))
for name, res in (("r1g", {"ranks": 1, "gpus": 1}), ("r2g", {"ranks": 2, "gpus": 1}),
                  ("r1c", {"ranks": 1})):
    json.dump(dict(s, resources=res, output=f"{t}/mpi-{name}.kmodel"), open(f"{t}/mpi-{name}.json", "w"))
PY
    for run in "r1c 1" "r1g 1" "r2g 2"; do
        set -- $run
        s0=$(date +%s.%N)
        timeout 120 mpirun --allow-run-as-root --oversubscribe -np $2 --mca btl self,tcp \
            --mca rtc_hwloc_vmhole none -x LD_LIBRARY_PATH $PWD/$B/bin/kiln-worker --train-ranks "$T/mpi-$1.json" \
            >"$out/mpi-$1.log" 2>&1 || { bad "mpirun -np $2 train ($1): $(tail -n 3 "$out/mpi-$1.log")"; continue; }
        echo "  $1: $(grep -h '^rank' "$out/mpi-$1.log" | tr '\n' ';') $(awk "BEGIN {printf \"%.2f\", $(date +%s.%N) - $s0}") s"
    done
    grep -q "rank 0 of 1: trained on GPU 0, sums through NCCL" "$out/mpi-r1g.log" &&
        ok "one rank on the GPU with NCCL sums" || bad "one rank: not GPU + NCCL: $(grep -h '^rank' "$out/mpi-r1g.log")"
    [ "$(grep -c 'sums through MPI (not NCCL' "$out/mpi-r2g.log")" = 2 ] || grep -q "of 2: .*sums through NCCL" "$out/mpi-r2g.log" &&
        ok "two ranks on one GPU agreed on a path and finished" || bad "two ranks on one GPU: $(grep -h '^rank' "$out/mpi-r2g.log")"
    for m in r1c r1g r2g; do
        [ -f "$T/mpi-$m.kmodel" ] && $KILN score "$T/score-logreg.json" --model-file "$T/mpi-$m.kmodel" \
            --output "$T/mpi-pred-$m.h5" >/dev/null 2>&1
    done
    for m in r1g r2g; do
        "$PY" - "$T/mpi-pred-r1c.h5" "$T/mpi-pred-$m.h5" <<'PY' && ok "ranks $m: predictions = the CPU ranks' ones" || bad "ranks $m: predictions differ from the CPU ranks' ones"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1])["predicted"][...], h5py.File(sys.argv[2])["predicted"][...]
print(f"  {(a == b).mean():.4f} of {len(a)} predictions equal")
sys.exit(0 if (a == b).mean() >= 0.99 else 1)
PY
    done
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
# a train job and a score job asking for a GPU, through kilnd
if [ -f "$T/mlp-cpu.kmodel" ]; then
    "$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open(t + "/train-mlp.json"))
s.update(name="e2e-mlp-gpu", output=t + "/mlp-job.kmodel", resources={"cores": 1, "gpus": 1})
json.dump(s, open(t + "/train-job.json", "w"))
s = json.load(open(t + "/score-mlp.json"))
s.update(name="e2e-score-gpu", output=t + "/pred-job.h5", resources={"cores": 1, "gpus": 1})
json.dump(s, open(t + "/score-job.json", "w"))
PY
    for j in train score; do
        id=$(timeout 120 $KILN submit "$T/$j-job.json" --dir "$T/c" --wait --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["id"] if d["state"]=="succeeded" else "")')
        [ -n "$id" ] || { bad "$j job with gpus 1"; continue; }
        $KILN logs "$id" --dir "$T/c" >"$out/job-$j-gpu.log"
        grep -q -E "(trained mlp|rows) on GPU 0" "$out/job-$j-gpu.log" && ok "the $j job with gpus 1 ran on the GPU" \
            || bad "the $j job with gpus 1 did not run on the GPU: $(grep -E '^(trained|scoring)' "$out/job-$j-gpu.log")"
    done
fi
kill -INT $LOCAL 2>/dev/null; wait $LOCAL 2>/dev/null; LOCAL=
echo "gpu e2e: $pass passed, $fail failed"
[ $fail = 0 ]
