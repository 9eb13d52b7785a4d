#!/usr/bin/env bash
# GPU accounting and the GPU path's fallback, on a machine without a GPU (a
# GPU machine runs tests/gpu/e2e.sh instead): a worker started with
# --gpus 1 offers one GPU; a featurize job with resources.gpus 1 gets device
# 0 from the worker, finds no usable GPU there, featurizes on the CPU and
# says so in its log; its output has the same content hash as the same job
# with gpus 0.  A worker started without --gpus finds the GPUs itself (none
# here: 0).
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init
pyj() { "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "ok: skipped (this machine has a GPU: tests/gpu/e2e.sh checks the GPU path)"
    exit 0
fi
$KILN gen --windows 300 --window-len 1024 --assets 3 --seed 2 -o "$T/sensor.h5" >/dev/null
D=$T/c
start_kilnd "$D"
start_worker "$D" wg --gpus 1 --cores 2
start_worker "$D" wa --cores 1
wait_workers "$D" 2
$KILN workers --dir "$D" --json >"$T/workers.json"
[ "$(pyj 'sorted((w["id"], w["gpus"]) for w in d["workers"])' <"$T/workers.json")" = "[('wa', 0), ('wg', 1)]" ] \
    || die "workers' GPUs: $(cat "$T/workers.json")"

for g in 1 0; do
    "$PY" - "$T" "$g" <<'PY'
import json, sys
t, g = sys.argv[1], int(sys.argv[2])
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
s.update(name=f"gpus-{g}", input=t + "/sensor.h5", output=f"{t}/out{g}.h5",
         resources={"cores": 1, "gpus": g})
json.dump(s, open(f"{t}/job{g}.json", "w"))
PY
    id=$(submit_json "$D" "$(cat "$T/job$g.json")")
    wait_job_state "$D" "$id" succeeded 60
    $KILN logs "$id" --dir "$D" >"$T/log$g"
done
grep -q "windows on CPU, .*(GPU 0: " "$T/log1" || die "the gpus 1 job's log does not say it fell back: $(cat "$T/log1")"
grep -q "windows on CPU" "$T/log0" || die "the gpus 0 job's log: $(cat "$T/log0")"
! grep -q "(GPU" "$T/log0" || die "the gpus 0 job tried a GPU: $(cat "$T/log0")"
[ "$(h5_hash "$T/out1.h5")" = "$(h5_hash "$T/out0.h5")" ] || die "the fallback's output differs from the CPU job's"
echo "ok: GPU accounting (wg 1, wa 0 found), a gpus 1 job fell back to the CPU and said so, same hash as gpus 0"
