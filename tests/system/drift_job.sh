#!/usr/bin/env bash
# Drift jobs through kilnd on the shared CWRU data (docs/drift.md):
#   - reference = normal + inner-race windows, current = outer-race + ball
#     windows (another fault mix): drifted; its on_drift noop job is
#     submitted (id in the stored result) and runs; report HTML + JSON exist;
#   - a random half of all windows against the other half: no drift, and no
#     on_drift job;
#   - reference {"model": "bearing@production"} (the training input recorded
#     on the model's run) against the held-back half: no drift, the model's
#     accuracy / macro F1 on the current labels beside the run's metrics;
#     kiln_feature_drift_score{model="bearing"} on /metrics;
#   - kiln drift show (text, --json), kiln drift list --model;
#   - a recurring drift job ("schedule") makes instances that succeed;
#   - refused at submit, naming the field: no reference, a reference file
#     that is not there, a bad method name, a bad on_drift spec; failed at run
#     time with a clear reason: features that do not match, an empty current set.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

pyj() { "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# --- data: CWRU ingested in fault groups, featurized with one spec
C=$KILN_DATA/cwru
ingest() { local out=$1; shift; $KILN ingest cwru --rate 12000 --window-len 2048 --hop 1024 -o "$out" "$@" >/dev/null; }
ingest "$T/ref_s.h5" "$C/normal_0_97.mat" "$C"/12k_Drive_End_IR0*.mat
ingest "$T/cur_s.h5" "$C"/12k_Drive_End_OR0*.mat "$C"/12k_Drive_End_B0*.mat
ingest "$T/all_s.h5" "$C"/*.mat
for x in ref cur all; do
    $KILN featurize examples/cwru_features.json --input "$T/${x}_s.h5" --output "$T/$x.h5" >/dev/null
done
# other features of the same windows (schemas that do not match)
"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open("examples/cwru_features.json"))
s["features"] = {"time": ["rms", "kurt", "mean"]}
json.dump(s, open(t + "/other_spec.json", "w"))
PY
$KILN featurize "$T/other_spec.json" --input "$T/cur_s.h5" --output "$T/other.h5" >/dev/null
# a random split of all windows (seeded) and an empty current set, written
# with h5py as kiln.features.v1 (the same attributes, rows chosen)
"$PY" - "$T" <<'PY'
import sys, h5py, numpy as np
t = sys.argv[1]
src = h5py.File(t + "/all.h5", "r")
n = src["features"].shape[0]
perm = np.random.default_rng(11).permutation(n)
def write(path, rows):
    rows = np.sort(rows)
    with h5py.File(path, "w") as f:
        for k, v in src.attrs.items():
            f.attrs[k] = v
        for name in ("features", "asset", "timestamp", "label", "target"):
            if name not in src:
                continue
            d = src[name]
            data = d[...][rows] if len(rows) else np.zeros((0,) + d.shape[1:], d.dtype)
            out = f.create_dataset(name, data=data, maxshape=(None,) + d.shape[1:],
                                   chunks=(64,) + d.shape[1:])
            for k, v in d.attrs.items():
                out.attrs[k] = v
write(t + "/half_a.h5", perm[: n // 2])
write(t + "/half_b.h5", perm[n // 2 :])
write(t + "/empty.h5", np.array([], dtype=np.int64))
print("windows: all %d, halves %d + %d" % (n, n // 2, n - n // 2))
PY

D=$T/c
start_kilnd "$D"
start_worker "$D" w1 --cores 2
wait_workers "$D" 1
URL=$(cat "$D/kilnd.url")
mkdir -p "$T/out"

run_job() {
    local id
    id=$(submit_json "$D" "$1") || die "submit failed: $1"
    wait_job_state "$D" "$id" "$2" 120
    echo "$id"
}
# refused SPEC FIELD: `kiln submit` exits 1 and the error names FIELD
refused() {
    local f out
    f=$(mktemp "$D/spec.XXXXXX")
    printf '%s\n' "$1" >"$f"
    if out=$($KILN submit "$f" --dir "$D" 2>&1); then die "accepted, want refused ($2): $1"; fi
    echo "$out" | grep -q -- "$2" || die "refusal does not name $2: $out"
    echo "refused ($2): $(echo "$out" | head -n 2 | tr '\n' ' ')"
}
show_json() { $KILN drift show "$1" --dir "$D" --json; }

# --- another fault mix: drifted, on_drift submits its job, which runs
spec='{"type":"drift","name":"faults","reference":"'$T/ref.h5'","current":"'$T/cur.h5'","by_asset":true,"output":"'$T/out/faults.json'","max_retries":0,"on_drift":{"submit":{"type":"noop","name":"retrain-after-drift"}}}'
j1=$(run_job "$spec" succeeded)
show_json "$j1" >"$T/j1.json"
drifted=$(pyj 'd["drifted"]' <"$T/j1.json")
share=$(pyj 'd["share"]' <"$T/j1.json")
child=$(pyj 'd.get("on_drift_job", 0)' <"$T/j1.json")
echo "fault mix: drifted=$drifted share=$share on_drift job=$child"
[ "$drifted" = True ] || die "the fault-mix change was not detected: $(cat "$T/j1.json")"
[ "$child" -gt 0 ] || die "no on_drift job recorded: $(cat "$T/j1.json")"
wait_job_state "$D" "$child" succeeded 60
[ "$(job_field "$D" "$child" name)" = retrain-after-drift ] || die "on_drift job's name: $(job_json "$D" "$child")"
[ -s "$T/out/faults.json" ] || die "no JSON output"
[ -s "$T/out/faults.html" ] || die "no HTML report beside the output"
grep -qi "<svg" "$T/out/faults.html" || die "the report has no SVG chart"
"$PY" - "$T/out/faults.json" <<'PY' || die "the output JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["summary"]["drifted"] is True, d["summary"]
names = [c["name"] for c in d["columns"]]
assert "label" in names and "DE.rms" in names, names
assert len(d["assets"]) == 4, d["assets"]          # the four outer-race / ball recordings
print("columns %d, drifted %d, assets %s" % (d["summary"]["n_columns"], d["summary"]["n_drifted"],
      [a["asset"] for a in d["assets"]]))
PY
$KILN logs "$j1" --dir "$D" | grep -q "on_drift: job $child" || die "the drift job's log does not name its on_drift job"

# --- a random split of the same data: no drift, no on_drift job
spec='{"type":"drift","name":"split","reference":"'$T/half_a.h5'","current":"'$T/half_b.h5'","output":"'$T/out/split.json'","max_retries":0,"on_drift":{"submit":{"type":"noop","name":"must-not-run"}}}'
j2=$(run_job "$spec" succeeded)
show_json "$j2" >"$T/j2.json"
echo "random split: drifted=$(pyj 'd["drifted"]' <"$T/j2.json") share=$(pyj 'd["share"]' <"$T/j2.json")"
[ "$(pyj 'd["drifted"]' <"$T/j2.json")" = False ] || die "a random split drifted: $(cat "$T/j2.json")"
[ "$(pyj 'd.get("on_drift_job", 0)' <"$T/j2.json")" = 0 ] || die "on_drift ran without drift"
! $KILN list --dir "$D" --json | grep -q must-not-run || die "the on_drift job was submitted without drift"

# --- the reference recorded on a model: train on one half, compare the other
train='{"type":"train","name":"bearing","input":"'$T/half_a.h5'","output":"'$T/bearing.kmodel'","model":{"kind":"logreg","C":1.0,"max_iter":200},"target":"label","validation":{"split":"time","fraction":0.25},"seed":7,"max_retries":0}'
run_job "$train" succeeded >/dev/null
$KILN model promote bearing 1 --dir "$D" >/dev/null || die "promote bearing 1"
spec='{"type":"drift","name":"bearing-nightly","reference":{"model":"bearing@production"},"current":"'$T/half_b.h5'","output":"'$T/out/model.json'","report":"'$T/out/model-report.html'","max_retries":0}'
j3=$(run_job "$spec" succeeded)
show_json "$j3" >"$T/j3.json"
"$PY" - "$T/j3.json" "$T/half_a.h5" <<'PY' || die "drift by model reference: $(cat "$T/j3.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["model"] == "bearing" and d["model_version"] == 1, d
assert d["drifted"] is False, d
r = d["result"]
assert r["reference"]["path"] == sys.argv[2], r["reference"]
q = {x["metric"]: x for x in r["quality"]}
assert q["accuracy"]["current"] > 0.8 and q["accuracy"]["reference"] is not None, q
print("model reference: drifted=%s share=%.3f accuracy current %.3f (run %.3f), macro_f1 current %.3f (run %.3f)"
      % (d["drifted"], d["share"], q["accuracy"]["current"], q["accuracy"]["reference"],
         q["macro_f1"]["current"], q["macro_f1"]["reference"]))
PY
[ -s "$T/out/model-report.html" ] || die "no report at the spec's report path"
# the same model against the other fault mix
spec='{"type":"drift","name":"bearing-faults","reference":{"model":"bearing@1"},"current":"'$T/cur.h5'","output":"'$T/out/model-faults.json'","max_retries":0}'
j4=$(run_job "$spec" succeeded)
echo "model reference vs outer race + ball: $($KILN drift show "$j4" --dir "$D" | head -n 1)"

# --- the CLI: text and JSON, list by model; /metrics
$KILN drift show "$j1" --dir "$D" | tee "$T/show.txt" | head -n 12
grep -q "DRIFTED" "$T/show.txt" || die "drift show: no verdict"
grep -q "faults.html" "$T/show.txt" || die "drift show: no report path"
grep -q "job $child" "$T/show.txt" || die "drift show: no on_drift job"
n=$($KILN drift list --model bearing --dir "$D" --json | pyj 'len(d["drift"])')
[ "$n" = 2 ] || die "drift list --model bearing: $n results, want 2"
$KILN drift list --dir "$D" | grep -q "^$j1 " || die "drift list: no job $j1"
# (the page is read whole first: grep -q leaving early would SIGPIPE curl under pipefail)
metrics=$(curl -sf --max-time 20 "$URL/metrics")
grep -q 'kiln_feature_drift_score{model="bearing",feature="DE.rms"}' <<<"$metrics" ||
    die "no kiln_feature_drift_score for model bearing on /metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$URL/v1/drift/$child")
[ "$code" = 404 ] || die "GET /v1/drift/<a noop job>: $code, want 404"

# --- a recurring drift job: instances on the schedule, each with a result
spec='{"type":"drift","name":"every2s","schedule":"@every 2s","reference":"'$T/ref.h5'","current":"'$T/cur.h5'","output":"'$T/out/sched-%t.json'","max_retries":0}'
tid=$(submit_json "$D" "$spec") || die "submit the recurring drift job"
end=$((SECONDS + 60))
while :; do
    n=$(curl -sf --max-time 20 "$URL/v1/jobs?limit=100000" | "$PY" -c '
import json, sys
print(sum(1 for j in json.load(sys.stdin)["jobs"] if j.get("scheduled_by") == int(sys.argv[1]) and j["state"] == "succeeded"))' "$tid")
    [ "$n" -ge 2 ] && break
    [ $SECONDS -lt $end ] || die "the recurring drift job made $n succeeded instances in 60 s"
    sleep 0.5
done
$KILN cancel "$tid" --dir "$D" >/dev/null || die "cancel the recurring drift job"
ls "$T"/out/sched-*.json >/dev/null 2>&1 || die "no scheduled outputs"
ls "$T"/out/sched-*.html >/dev/null 2>&1 || die "no scheduled reports"
echo "recurring: $n instances succeeded"

# --- bad specs
refused '{"type":"drift","name":"x","current":"'$T/cur.h5'","output":"'$T/out/x.json'"}' reference
refused '{"type":"drift","name":"x","reference":"'$T/nope.h5'","current":"'$T/cur.h5'","output":"'$T/out/x.json'"}' "nope.h5"
refused '{"type":"drift","name":"x","reference":{"model":"nosuchmodel@1"},"current":"'$T/cur.h5'","output":"'$T/out/x.json'"}' reference.model
refused '{"type":"drift","name":"x","reference":"'$T/ref.h5'","current":"'$T/cur.h5'","output":"'$T/out/x.json'","columns":{"DE.rms":{"method":"kolmogorov"}}}' columns.DE.rms.method
refused '{"type":"drift","name":"x","reference":"'$T/ref.h5'","current":"'$T/cur.h5'","output":"'$T/out/x.json'","on_drift":{"submit":{"type":"train","name":"r","input":"'$T/ref.h5'","model":{"kind":"forest"},"target":"label"}}}' on_drift.submit.model.kind
refused '{"type":"drift","name":"x","reference":"'$T/ref.h5'","current":"'$T/cur.h5'","output":"'$T/out/x.json'","on_drift":{"submit":{"type":"score","name":"s","model":"nosuchmodel@production","input":"'$T/cur.h5'","output":"'$T/out/p.h5'"}}}' on_drift.submit.model
refused '{"type":"drift","name":"x","reference":"'$T/ref.h5'","current":"'$T/cur.h5'","output":"'$T/out/x.json'","on_drift":{"submit":{"type":"nosuchtype"}}}' on_drift.submit.type
# failed at run time, with the reason
spec='{"type":"drift","name":"mismatch","reference":"'$T/ref.h5'","current":"'$T/other.h5'","output":"'$T/out/mismatch.json'","max_retries":0}'
j5=$(run_job "$spec" failed)
why=$(job_json "$D" "$j5")
echo "$why" | grep -q "do not match" || die "schema mismatch reason: $why"
echo "$why" | grep -q "DE.kurt" || echo "$why" | grep -q "only in the reference" || die "the reason does not name columns: $why"
echo "mismatched schemas: $(echo "$why" | grep -o 'current: [^"]*' | head -n 1)"
spec='{"type":"drift","name":"empty","reference":"'$T/ref.h5'","current":"'$T/empty.h5'","output":"'$T/out/empty.json'","max_retries":0}'
j6=$(run_job "$spec" failed)
why=$(job_json "$D" "$j6")
echo "$why" | grep -q "has no rows" || die "empty current reason: $why"
echo "empty current: $(echo "$why" | grep -o 'current: [^"]*' | head -n 1)"
echo "drift_job: ok"
