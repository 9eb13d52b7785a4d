#!/usr/bin/env bash
# demo.sh - the whole pipeline on the real data in ../shared/data: ingest the
# CWRU bearing recordings and the C-MAPSS turbofan runs, featurize the
# bearings, and show how well the features separate the fault classes; train,
# score, run a pipeline, check drift, and serve the model on an edge agent.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=bin/kiln
PY=$PWD/.venv/bin/python
DATA=${KILN_DATA:-$PWD/../shared/data}
OUT=${KILN_DEMO_DIR:-out/demo}

if [ ! -d "$DATA/cwru" ]; then
    echo "demo: no data at $DATA (set KILN_DATA to the shared data folder)" >&2
    exit 1
fi
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1. ingest CWRU bearing recordings (.mat, 12 kHz and 48 kHz) -> one 12 kHz sensor dataset"
$KILN ingest cwru --rate 12000 --window-len 2048 -o "$OUT/cwru.h5" "$DATA"/cwru/*.mat
$KILN inspect --verify "$OUT/cwru.h5"

step "2. ingest C-MAPSS FD001 turbofan runs (one row per cycle, target = remaining useful life)"
$KILN ingest cmapss --train "$DATA/cmapss/train_FD001.txt" -o "$OUT/cmapss-train.h5"
$KILN inspect "$OUT/cmapss-train.h5"

step "3. featurize on the cluster: kiln local (kilnd + 2 workers), two jobs, the second after the first"
CLUSTER=$OUT/cluster
rm -rf "$CLUSTER"
# kilnd also opens the edge agents' HTTPS fleet endpoint (step 9), on a free
# loopback port, with a throwaway CA and server certificate made now.
. tests/system/lib/testca.sh
rm -rf "$OUT/ca"
make_test_ca "$OUT/ca" || { echo "demo: cannot make the test CA with certtool" >&2; exit 1; }
$KILN local --workers 2 --dir "$CLUSTER" --fleet-listen 127.0.0.1:0 \
    --fleet-cert "$OUT/ca/server.pem" --fleet-key "$OUT/ca/server.key" > "$OUT/local.log" 2>&1 &
LOCAL_PID=$!
trap 'kill -INT $LOCAL_PID 2>/dev/null; wait $LOCAL_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$CLUSTER/kilnd.url" ] && break; sleep 0.1; done
[ -s "$CLUSTER/kilnd.url" ] || { cat "$OUT/local.log"; echo "demo: kiln local did not start" >&2; exit 1; }
head -n 2 "$OUT/local.log"
# The example spec with this run's paths; a copy without rolling features
# (rolling needs each asset's windows in order, so that job is one task)
# splits into window-range shards over both workers.
$PY - "$OUT" <<'PYEOF'
import json, os, sys
out = os.path.abspath(sys.argv[1])
spec = json.load(open("examples/cwru_features.json"))
spec.update(input=f"{out}/cwru.h5", output=f"{out}/cwru-features.h5")
json.dump(spec, open(f"{out}/job-features.json", "w"), indent=1)
spec["features"].pop("rolling")
spec.update(name="cwru-features-sharded", output=f"{out}/cwru-features-sharded.h5")
json.dump(spec, open(f"{out}/job-sharded.json", "w"), indent=1)
PYEOF
A=$($KILN submit "$OUT/job-features.json" --dir "$CLUSTER" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])')
$PY - "$OUT/job-sharded.json" "$A" <<'PYEOF'
import json, sys
spec = json.load(open(sys.argv[1])); spec["depends_on"] = [int(sys.argv[2])]
json.dump(spec, open(sys.argv[1], "w"), indent=1)
PYEOF
echo "submitted job $A; job-sharded.json depends on it:"
$KILN submit "$OUT/job-sharded.json" --dir "$CLUSTER" --wait
$KILN list --dir "$CLUSTER"
$KILN workers --dir "$CLUSTER"
echo "-- log of job $A:"
$KILN logs "$A" --dir "$CLUSTER"
$KILN inspect "$OUT/cwru-features.h5"
echo "-- the sharded cluster output equals kiln featurize on one machine:"
$KILN featurize "$OUT/job-sharded.json" --output "$OUT/cwru-features-single.h5" > /dev/null
h1=$($KILN inspect "$OUT/cwru-features-sharded.h5" | awk '/content_sha256/ {print $NF}')
h2=$($KILN inspect "$OUT/cwru-features-single.h5" | awk '/content_sha256/ {print $NF}')
echo "cluster $h1"
echo "single  $h2"
[ -n "$h1" ] && [ "$h1" = "$h2" ] || { echo "demo: hashes differ" >&2; exit 1; }
step "4. which features separate the fault classes (per-class means, Fisher ratio)"
$KILN classes "$OUT/cwru-features.h5" --top 10
$KILN classes "$OUT/cwru-features.h5" \
    --features DE.rms,DE.kurt,DE.crest,DE.env_bpfo,DE.env_bpfi,DE.env_bsf,DE.centroid

step "5. train on the cluster: logreg, mlp, gbdt and an anomaly detector on the bearing features, and gbdt over 2 MPI ranks"
# Validation holds out the last quarter of each recording's windows (time-aware,
# never a shuffle); every run goes to the registry with its lineage and metrics.
$PY - "$OUT" <<'PYEOF'
import json, os, sys
out = os.path.abspath(sys.argv[1])
base = {"type": "train", "project": "demo", "input": f"{out}/cwru-features.h5",
        "target": "label", "seed": 7,
        "validation": {"split": "time", "fraction": 0.25, "min_accuracy": 0.9}}
jobs = {"cwru-logreg": {"kind": "logreg", "C": 1.0},
        "cwru-mlp": {"kind": "mlp", "hidden": [32], "epochs": 30},
        "cwru-gbdt": {"kind": "gbdt", "trees": 50, "max_leaves": 15, "min_data_in_leaf": 5}}
for name, model in jobs.items():
    json.dump(dict(base, name=name, model=model), open(f"{out}/job-{name}.json", "w"), indent=1)
anomaly = dict(base, name="cwru-anomaly",
               model={"kind": "anomaly", "healthy_class": 0, "false_alarm_rate": 0.05},
               validation={"split": "time", "fraction": 0.25, "min_auc": 0.9})
anomaly.pop("target")
json.dump(anomaly, open(f"{out}/job-cwru-anomaly.json", "w"), indent=1)
# data-parallel over 2 MPI ranks: kilnd places the gang, mpirun runs it
json.dump(dict(base, name="cwru-gbdt-2ranks", model=jobs["cwru-gbdt"],
               resources={"cores": 1, "ranks": 2}),
          open(f"{out}/job-cwru-gbdt-2ranks.json", "w"), indent=1)
PYEOF
for m in cwru-logreg cwru-mlp cwru-gbdt cwru-anomaly cwru-gbdt-2ranks; do
    $KILN submit "$OUT/job-$m.json" --dir "$CLUSTER" --wait
done
$KILN models --dir "$CLUSTER"
$KILN model promote cwru-logreg 1 --dir "$CLUSTER"
echo "-- held-out accuracy and confusion matrix of cwru-logreg@production:"
$KILN model show cwru-logreg@production --dir "$CLUSTER"
$KILN runs --dir "$CLUSTER"

step "6. score the raw bearing recordings with cwru-logreg@production (featurized on the fly with the model's own feature spec)"
$PY - "$OUT" <<'PYEOF'
import json, os, sys
out = os.path.abspath(sys.argv[1])
json.dump({"type": "score", "name": "cwru-score", "project": "demo",
           "model": "cwru-logreg@production", "input": f"{out}/cwru.h5",
           "output": f"{out}/cwru-predictions.h5"}, open(f"{out}/job-score.json", "w"), indent=1)
PYEOF
$KILN submit "$OUT/job-score.json" --dir "$CLUSTER" --wait
$KILN inspect "$OUT/cwru-predictions.h5"
$PY - "$OUT/cwru-predictions.h5" <<'PYEOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    pred, label = f["predicted"][:], f["label"][:]
print(f"agreement of the predictions with the recorded fault labels: {np.mean(pred == label):.4f} "
      f"over {len(pred)} windows (the training windows included)")
PYEOF
step "7. the same loop as one pipeline job (featurize -> train gbdt -> score), run twice: the second run is all cached"
$PY - "$OUT" <<'PYEOF'
import json, os, sys
out = os.path.abspath(sys.argv[1])
feat = json.load(open("examples/cwru_features.json"))
feat["features"].pop("rolling")
feat.pop("name"); feat.pop("project")
feat.update(input=f"{out}/cwru.h5", output=f"{out}/pipe-features.h5")
json.dump({"type": "pipeline", "name": "cwru-weekly", "project": "demo", "steps": [
    {"name": "features", "job": feat},
    {"name": "train", "job": {"type": "train", "name": "cwru-pipe-gbdt", "input": "${features.output}",
        "output": f"{out}/cwru-pipe-gbdt.kmodel", "target": "label", "seed": 7,
        "model": {"kind": "gbdt", "trees": 50, "max_leaves": 15, "min_data_in_leaf": 5},
        "validation": {"split": "time", "fraction": 0.25, "min_accuracy": 0.9}}},
    {"name": "score", "job": {"type": "score", "model_file": "${train.output}",
        "input": f"{out}/cwru.h5", "output": f"{out}/pipe-predictions.h5"}}]},
    open(f"{out}/job-pipeline.json", "w"), indent=1)
PYEOF
for run in first second; do
    t0=$(date +%s.%N)
    P=$($KILN submit "$OUT/job-pipeline.json" --dir "$CLUSTER" --wait --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    t1=$(date +%s.%N)
    echo "-- $run run: pipeline job $P in $($PY -c "print(f'{$t1 - $t0:.2f}')") s"
    $KILN status "$P" --dir "$CLUSTER" --json | $PY -c '
import json, sys
d = json.load(sys.stdin)
for s in d["steps"]:
    print("   %-9s job %-4s %-10s %s" % (s["name"], s["job"], s["state"], s["reason"] or "ran"))'
done

step "8. drift: the model's training data (cwru-logreg@production) against another fault mix (outer race + ball only)"
$KILN ingest cwru --rate 12000 --window-len 2048 -o "$OUT/cwru-or-ball.h5" \
    "$DATA"/cwru/12k_Drive_End_OR0*.mat "$DATA"/cwru/12k_Drive_End_B0*.mat > /dev/null
$KILN featurize examples/cwru_features.json --input "$OUT/cwru-or-ball.h5" \
    --output "$OUT/cwru-or-ball-features.h5" > /dev/null
$PY - "$OUT" <<'PYEOF'
import json, os, sys
out = os.path.abspath(sys.argv[1])
json.dump({"type": "drift", "name": "cwru-drift", "project": "demo",
           "reference": {"model": "cwru-logreg@production"},
           "current": f"{out}/cwru-or-ball-features.h5", "by_asset": True,
           "output": f"{out}/cwru-drift.json", "report": f"{out}/cwru-drift.html",
           "on_drift": {"submit": {"type": "noop", "name": "cwru-retrain-placeholder"}}},
          open(f"{out}/job-drift.json", "w"), indent=1)
PYEOF
DR=$($KILN submit "$OUT/job-drift.json" --dir "$CLUSTER" --wait --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])')
$KILN drift show "$DR" --dir "$CLUSTER" | head -n 20
echo "-- verdict: $($KILN drift show "$DR" --dir "$CLUSTER" | head -n 1)"
echo "-- report: $OUT/cwru-drift.html (JSON: $OUT/cwru-drift.json)"

step "9. edge: publish cwru-gbdt@production to a fleet; a kiln-edge agent enrolls, pulls, verifies and serves it; edge vs cluster on every CWRU window"
scripts/demo_edge.sh "$OUT" "$CLUSTER"

kill -INT $LOCAL_PID; wait $LOCAL_PID || true
trap - EXIT
tail -n 1 "$OUT/local.log"

step "done: datasets under $OUT"
ls -l "$OUT"
