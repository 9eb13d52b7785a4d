#!/usr/bin/env bash
# Score jobs through kilnd: a logreg model trained through kilnd and
# promoted is scored by reference ("bearing@production", resolved at
# submit) over its feature dataset with 2 workers and --target-tasks 3: 3
# tasks, one predictions row per input row, the very content hash of
# `kiln score` run on this machine with the registry's artifact, and an
# accuracy above 0.8; scoring the SENSOR dataset the features came from
# (featurized on the way with the model's feature_spec) gives the same
# /score and /predicted; an unknown model reference is a 400 naming
# "model"; a model trained on other features fails the job with a reason
# naming the feature.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

# pyj EXPR < JSON: prints EXPR evaluated with d = the JSON (python syntax)
pyj() { "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# --- labelled sensor data, its features, and features of another spec
$KILN gen --windows 600 --window-len 512 --assets 8 --seed 3 -o "$T/sensor.h5" >/dev/null
"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
s["input"], s["output"] = t + "/sensor.h5", t + "/feat.h5"
json.dump(s, open(t + "/featurize.json", "w"))
# the same windows, time features only: other feature names
s["features"] = {"time": ["rms", "kurt", "mean"]}
s["output"] = t + "/feat-other.h5"
json.dump(s, open(t + "/featurize-other.json", "w"))
PY
$KILN featurize "$T/featurize.json" >/dev/null
$KILN featurize "$T/featurize-other.json" >/dev/null
n_input=$("$PY" -c 'import h5py, sys; print(h5py.File(sys.argv[1])["features"].shape[0])' "$T/feat.h5")

D=$T/c
start_kilnd "$D" --target-tasks 3
start_worker "$D" w1
start_worker "$D" w2
wait_workers "$D" 2
URL=$(cat "$D/kilnd.url")

# run_job SPEC_JSON STATE: submits, waits (bounded) for STATE, prints the id
run_job() {
    local id
    id=$(submit_json "$D" "$1") || die "submit failed: $1"
    wait_job_state "$D" "$id" "$2" 60
    echo "$id"
}
# attr FILE NAME: a root attribute of an HDF5 file
attr() { "$PY" -c 'import h5py, sys; v = h5py.File(sys.argv[1]).attrs[sys.argv[2]]; print(v.decode() if isinstance(v, bytes) else v)' "$1" "$2"; }

# --- train through kilnd, promote version 1 to production
train='{"type":"train","name":"bearing","input":"'$T/feat.h5'","output":"'$T/bearing.kmodel'","model":{"kind":"logreg","C":1.0,"max_iter":100},"target":"label","validation":{"split":"time","fraction":0.25},"seed":7,"max_retries":0}'
run_job "$train" succeeded >/dev/null
$KILN model promote bearing 1 --dir "$D" >/dev/null || die "promote bearing 1"
$KILN model show bearing@production --dir "$D" --json >"$T/prod.json" || die "model show bearing@production"
sha=$(pyj 'd["artifact_sha256"]' <"$T/prod.json")
artifact=$D/artifacts/sha256/${sha:0:2}/$sha
[ -f "$artifact" ] || die "no artifact at $artifact"

# --- score the features by reference: 3 tasks, one row per input row
score='{"type":"score","name":"nightly","model":"bearing@production","input":"'$T/feat.h5'","output":"'$T/preds.h5'","max_retries":0}'
js=$(run_job "$score" succeeded)
[ "$(job_field "$D" "$js" tasks.total)" = 3 ] || die "score job ran as $(job_field "$D" "$js" tasks.total) tasks, want 3"
[ "$(job_field "$D" "$js" tasks.succeeded)" = 3 ] || die "score job: $(job_json "$D" "$js")"
[ -z "$(ls -A "$D/tasks/$js" 2>/dev/null)" ] || die "task outputs left in $D/tasks/$js"
# the spec was stored resolved: the artifact and NAME@VERSION
stored=$(curl -s --max-time 20 "$URL/v1/jobs/$js")
echo "$stored" | grep -q "$sha" || die "the stored spec does not name the artifact: $stored"
[ "$(attr "$T/preds.h5" model)" = bearing@1 ] || die "model attr: $(attr "$T/preds.h5" model)"
[ "$(attr "$T/preds.h5" model_sha256)" = "$sha" ] || die "model_sha256 is not the artifact's"
[ "$(attr "$T/preds.h5" source_sha256)" = "$(attr "$T/feat.h5" content_sha256)" ] || die "source_sha256 is not the input's"
"$PY" - "$T/preds.h5" "$n_input" <<'PY' || die "predictions file"
import h5py, numpy as np, sys
f = h5py.File(sys.argv[1])
n = int(sys.argv[2])
assert f.attrs["schema"] == "kiln.predictions.v1", f.attrs["schema"]
assert f["score"].shape == (n, 4) and f["predicted"].shape == (n,), (f["score"].shape, n)
assert list(f["score"].attrs["output_names"]) == list(f.attrs["class_names"])
p = f["score"][...]
assert np.allclose(p.sum(axis=1), 1, atol=1e-4), "probabilities do not sum to 1"
assert (np.argmax(p, axis=1) == f["predicted"][...]).all(), "predicted is not the argmax"
lab = f["label"][...]
acc = float((f["predicted"][...] == lab)[lab >= 0].mean())
assert acc > 0.8, acc
print("accuracy", acc, file=sys.stderr)
PY

# --- kiln score on this machine with the registry's artifact: the same hash
printf '{"type":"score","name":"local","input":"%s","output":"%s"}' "$T/feat.h5" "$T/local.h5" >"$T/local.json"
$KILN score "$T/local.json" --model-file "$artifact" --json >"$T/local.out" || die "kiln score: $(cat "$T/local.out")"
[ "$(pyj 'd["content_sha256"]' <"$T/local.out")" = "$(attr "$T/preds.h5" content_sha256)" ] \
    || die "kiln score's hash $(pyj 'd["content_sha256"]' <"$T/local.out") != the cluster's $(attr "$T/preds.h5" content_sha256)"
[ "$(pyj 'd["rows"]' <"$T/local.out")" = "$n_input" ] || die "kiln score rows: $(cat "$T/local.out")"
pyj 'd["accuracy"] > 0.8 and sum(d["predicted_counts"].values()) == d["rows"]' <"$T/local.out" | grep -q True \
    || die "kiln score accuracy / counts: $(cat "$T/local.out")"
$KILN score "$T/local.json" --model-file "$artifact" --output "$T/local2.h5" >"$T/local.txt" || die "kiln score (text)"
grep -Eq '^scored [0-9]+ rows in [0-9.]+ s \([0-9]+ rows/s\)' "$T/local.txt" || die "kiln score said: $(cat "$T/local.txt")"
grep -Eq '^  accuracy +0\.[89][0-9]{3} ' "$T/local.txt" || die "kiln score accuracy line: $(cat "$T/local.txt")"
grep -Eq '^    normal +[0-9]+$' "$T/local.txt" || die "kiln score class counts: $(cat "$T/local.txt")"
# without a model file, kiln score cannot resolve a reference: it says so
printf '{"type":"score","model":"bearing@production","input":"%s","output":"%s"}' "$T/feat.h5" "$T/x.h5" >"$T/ref.json"
set +e; $KILN score "$T/ref.json" >/dev/null 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] && grep -q 'model_file' "$T/err" || die "kiln score with only a reference: exit $rc, $(cat "$T/err")"

# --- the sensor dataset, featurized on the way: the same predictions
sscore='{"type":"score","name":"nightly-raw","model":"bearing@production","input":"'$T/sensor.h5'","output":"'$T/preds-raw.h5'","max_retries":0}'
jr=$(run_job "$sscore" succeeded)
[ "$(job_field "$D" "$jr" tasks.total)" = 3 ] || die "sensor score job: $(job_field "$D" "$jr" tasks.total) tasks, want 3"
"$PY" - "$T/preds.h5" "$T/preds-raw.h5" <<'PY' || die "scoring the sensor data differs from scoring its features"
import h5py, numpy as np, sys
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
for k in ("score", "predicted", "asset", "timestamp", "label"):
    assert np.array_equal(a[k][...], b[k][...]), k
PY
[ "$(attr "$T/preds-raw.h5" source_sha256)" = "$(attr "$T/sensor.h5" content_sha256)" ] || die "sensor score's source is not the sensor dataset"
[ -z "$(ls -A "$D/tasks/$jr" 2>/dev/null)" ] || die "scratch files left in $D/tasks/$jr: $(ls -A "$D/tasks/$jr")"

# --- an unknown model reference: 400 naming "model", and no job
n_jobs=$($KILN list --dir "$D" --json | pyj 'len(d["jobs"])')
for ref in nope@production bearing@7 bearing@staging; do
    code=$(curl -s --max-time 20 -o "$T/err.json" -w '%{http_code}' -X POST "$URL/v1/jobs" \
        -H 'Content-Type: application/json' -d "${score/bearing@production/$ref}")
    [ "$code" = 400 ] || die "model $ref: HTTP $code, want 400 ($(cat "$T/err.json"))"
    [ "$(pyj 'd["error"].get("field")' <"$T/err.json")" = model ] || die "model $ref: $(cat "$T/err.json")"
done
code=$(curl -s --max-time 20 -o "$T/err.json" -w '%{http_code}' -X POST "$URL/v1/jobs" \
    -H 'Content-Type: application/json' -d "${score/\"bearing@production\"/42}")
[ "$code" = 400 ] && [ "$(pyj 'd["error"].get("field")' <"$T/err.json")" = model ] || die "model 42: HTTP $code $(cat "$T/err.json")"
[ "$($KILN list --dir "$D" --json | pyj 'len(d["jobs"])')" = "$n_jobs" ] || die "a refused score spec made a job"

# --- a model trained on other features: the job fails naming the feature
printf '{"type":"train","name":"other","input":"%s","model":{"kind":"logreg"},"target":"label","seed":7}' "$T/feat-other.h5" >"$T/other.json"
$KILN train "$T/other.json" --output "$T/other.kmodel" >/dev/null || die "kiln train other"
first=$("$PY" -c 'import h5py, sys; print(h5py.File(sys.argv[1])["features"].attrs["feature_names"][0])' "$T/feat.h5")
want=$("$PY" -c 'import h5py, sys; print(h5py.File(sys.argv[1])["features"].attrs["feature_names"][0])' "$T/feat-other.h5")
jf=$(run_job '{"type":"score","name":"mismatch","model_file":"'$T/other.kmodel'","input":"'$T/feat.h5'","output":"'$T/bad.h5'","max_retries":0}' failed)
reason=$(job_field "$D" "$jf" reason.text)
echo "$reason" | grep -qF "feature 0 is '$first' but model other.kmodel expects '$want'" || die "feature mismatch reason: $reason"
[ ! -e "$T/bad.h5" ] || die "a failed score job left $T/bad.h5"

# --- a sensor input to a model without a feature spec fails naming "input"
"$PY" - "$T" <<'PY'
import h5py, shutil, sys
t = sys.argv[1]
shutil.copy(t + "/feat.h5", t + "/feat-nospec.h5")
with h5py.File(t + "/feat-nospec.h5", "r+") as f:
    del f.attrs["spec_json"]
PY
printf '{"type":"train","name":"nospec","input":"%s","model":{"kind":"logreg"},"target":"label","seed":7}' "$T/feat-nospec.h5" >"$T/nospec.json"
$KILN train "$T/nospec.json" --output "$T/nospec.kmodel" >/dev/null || die "kiln train nospec"
printf '{"type":"score","model_file":"%s","input":"%s","output":"%s"}' "$T/nospec.kmodel" "$T/sensor.h5" "$T/x.h5" >"$T/nospec-score.json"
set +e; $KILN score "$T/nospec-score.json" >/dev/null 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] && grep -q 'field: input' "$T/err" && grep -q 'no feature_spec' "$T/err" || die "sensor input without a feature spec: exit $rc, $(cat "$T/err")"
echo "ok: score jobs ($n_input rows, hash $(attr "$T/preds.h5" content_sha256))"
