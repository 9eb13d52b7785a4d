#!/usr/bin/env bash
# Train jobs through kilnd and the model registry: the same logreg spec and
# seed twice gives versions 1 and 2 with the same artifact (the model file
# holds nothing that varies between runs); promote / promote / rollback moves
# production back; `kiln models`, `model show`, `runs`, `runs compare` work; a
# gate outside [0, 1] is refused at submit; a gate the model cannot meet is a
# succeeded job whose run is recorded with accepted false and no version (so
# is a min_auc gate on four classes, which have no ROC-AUC); a gate on a
# metric the job never computes (max_rmse on labels) is a 400; an
# anomaly job succeeds; `kiln train` on this machine writes the very bytes
# the cluster stored; bad specs get a 400 naming the field, and a missing or
# empty input fails the job with a reason that names the file.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

# --- a labelled feature dataset: kiln gen's four classes over 8 assets' lives
make_features 400 8 3
# the same features without /target (for a target "target" spec)
"$PY" - "$T" <<'PY'
import h5py, shutil, sys
t = sys.argv[1]
shutil.copy(t + "/feat.h5", t + "/feat-notarget.h5")
with h5py.File(t + "/feat-notarget.h5", "r+") as f:
    del f["target"]
PY
: >"$T/empty.h5"

D=$T/c
start_kilnd "$D"
start_worker "$D" w1
wait_workers "$D" 1
URL=$(cat "$D/kilnd.url")

# spec NAME MODEL_JSON [EXTRA_JSON_MEMBERS]: a train spec on feat.h5, seed 7
spec() {
    printf '{"type":"train","name":"%s","input":"%s","output":"%s/%s.kmodel","model":%s,"target":"label","validation":{"split":"time","fraction":0.25}%s,"seed":7,"max_retries":0}' \
        "$1" "$T/feat.h5" "$T" "$1-$RANDOM" "$2" "${3:-}"
}
# run_job SPEC_JSON STATE: submits, waits (bounded) for STATE, prints the id
run_job() {
    local id
    id=$(submit_json "$D" "$1") || die "submit failed: $1"
    wait_job_state "$D" "$id" "$2" 30
    echo "$id"
}
LOGREG='{"kind":"logreg","C":1.0,"max_iter":100}'

# --- the same spec and seed twice: versions 1 and 2, one artifact
j1=$(run_job "$(spec bearing "$LOGREG")" succeeded)
j2=$(run_job "$(spec bearing "$LOGREG")" succeeded)
$KILN model show bearing@1 --dir "$D" --json >"$T/v1.json" || die "model show bearing@1"
$KILN model show bearing@2 --dir "$D" --json >"$T/v2.json" || die "model show bearing@2"
a1=$(pyj 'd["artifact_sha256"]' <"$T/v1.json")
a2=$(pyj 'd["artifact_sha256"]' <"$T/v2.json")
[ ${#a1} = 64 ] && [ "$a1" = "$a2" ] || die "versions 1 and 2 of one spec and seed: artifacts $a1 / $a2"
[ "$(pyj '(d["run"]["job_id"], d["run"]["id"])' <"$T/v1.json")" = "($j1, 1)" ] || die "version 1's run: $(cat "$T/v1.json")"
[ "$(pyj '(d["run"]["job_id"], d["run"]["id"])' <"$T/v2.json")" = "($j2, 2)" ] || die "version 2's run: $(cat "$T/v2.json")"
find "$D" -type f -name "*$a1*" | grep -q . || die "artifact $a1 not in kilnd's store"

# --- promote 1, promote 2, rollback: production is 1 again
$KILN model promote bearing 1 --dir "$D" >"$T/out" || die "promote 1: $(cat "$T/out")"
grep -q 'production -> version 1' "$T/out" || die "promote 1 said: $(cat "$T/out")"
$KILN model promote bearing 2 --dir "$D" >/dev/null || die "promote 2"
[ "$($KILN model show bearing@production --dir "$D" --json | pyj 'd["version"]')" = 2 ] || die "production is not 2 after promote 2"
$KILN model rollback bearing --dir "$D" >"$T/out" || die "rollback: $(cat "$T/out")"
grep -q 'production rolled back to version 1' "$T/out" || die "rollback said: $(cat "$T/out")"
[ "$($KILN model show bearing@production --dir "$D" --json | pyj 'd["version"]')" = 1 ] || die "production is not 1 after the rollback"
$KILN model promote bearing 2 --alias staging --json --dir "$D" | pyj 'd["alias"] == "staging" and d["version"] == 2' | grep -q True || die "promote --alias staging"

# --- the text views
$KILN models --dir "$D" >"$T/models.out" || die "kiln models"
grep -Eq '^bearing +2 +2 +production=1 staging=2$' "$T/models.out" || die "kiln models: $(cat "$T/models.out")"
$KILN model show bearing@production --dir "$D" >"$T/show.out" || die "kiln model show"
for want in 'model bearing version 1' 'kind       logreg' 'seed       7' 'accepted   yes' \
    "dataset    $(pyj 'd["run"]["dataset_sha256"]' <"$T/v1.json")" 'code       ' 'accuracy ' \
    'confusion (rows: true class' 'C=1 max_iter=100'; do
    grep -qF "$want" "$T/show.out" || die "model show lacks '$want': $(cat "$T/show.out")"
done
$KILN runs --dir "$D" >"$T/runs.out" || die "kiln runs"
head -n1 "$T/runs.out" | grep -Eq '^ID +MODEL +KIND +ACCEPTED +ACCURACY/RMSE +DURATION$' || die "kiln runs header: $(cat "$T/runs.out")"
grep -Eq '^1 +bearing +logreg +yes +0\.[0-9]{4} +[0-9.]+ s$' "$T/runs.out" || die "kiln runs: $(cat "$T/runs.out")"
$KILN runs compare 1 2 --dir "$D" >"$T/cmp.out" || die "kiln runs compare"
grep -Eq '^dataset +[0-9a-f]{12} +[0-9a-f]{12} +equal$' "$T/cmp.out" || die "compare dataset: $(cat "$T/cmp.out")"
grep -Eq '^params +the same' "$T/cmp.out" || die "compare params: $(cat "$T/cmp.out")"
grep -Eq '^  accuracy +[0-9.]+ +[0-9.]+ +\+0$' "$T/cmp.out" || die "compare accuracy: $(cat "$T/cmp.out")"
$KILN runs compare 1 2 --dir "$D" --json | pyj 'd["dataset_equal"] and d["featspec_equal"] and d["artifact_equal"] and not d["params_differ"] and all(m["equal"] for m in d["metrics"].values())' \
    | grep -q True || die "runs compare --json of two equal runs"

# --- a gate outside [0, 1] is refused at submit; the CLI names the field
spec bearing "$LOGREG" | sed 's/"fraction":0.25}/"fraction":0.25,"min_accuracy":1.01}/' >"$T/gate.json"
set +e; $KILN submit "$T/gate.json" --dir "$D" >/dev/null 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] || die "submit with min_accuracy 1.01: exit $rc, want 1"
grep -q 'validation.min_accuracy' "$T/err" && grep -q 400 "$T/err" || die "min_accuracy 1.01: $(cat "$T/err")"

# --- a gate the model cannot meet: the job succeeds, the run is rejected, no version
js=$(run_job "$(spec bearing "$LOGREG" | sed 's/"fraction":0.25}/"fraction":0.25,"min_accuracy":0.9999}/')" succeeded)
$KILN runs --model bearing --json --dir "$D" >"$T/runs.json"
[ "$(pyj '[(r["id"], r["job_id"], r["accepted"]) for r in d["runs"]][0]' <"$T/runs.json")" = "(3, $js, False)" ] || die "strict-gate run: $(cat "$T/runs.json")"
pyj 'd["runs"][0]["metrics"]["accuracy"] < 0.9999' <"$T/runs.json" | grep -q True || die "a rejected run whose accuracy meets the gate"
[ "$($KILN models --dir "$D" --json | pyj '[(m["latest"], m["versions"]) for m in d["models"] if m["name"] == "bearing"]')" = "[(2, 2)]" ] || die "the rejected run added a version"
$KILN logs "$js" --dir "$D" | grep -q 'model bearing rejected: accuracy .* misses the gate 0.9999' || die "strict-gate job's log: $($KILN logs "$js" --dir "$D")"
$KILN runs --dir "$D" | grep -Eq "^3 +bearing +logreg +no " || die "kiln runs lacks the rejected run"

# min_auc on four classes has no ROC-AUC to check: rejected, not passed silently
js=$(run_job "$(spec bearing "$LOGREG" | sed 's/"fraction":0.25}/"fraction":0.25,"min_auc":0.5}/')" succeeded)
$KILN logs "$js" --dir "$D" | grep -q 'model bearing rejected: min_auc: no roc_auc' || die "min_auc on 4 classes: $($KILN logs "$js" --dir "$D")"
[ "$($KILN models --dir "$D" --json | pyj '[m["versions"] for m in d["models"] if m["name"] == "bearing"]')" = "[2]" ] || die "the min_auc run added a version"

# --- an anomaly detector (healthy class 0) succeeds and gets its own version 1
ja=$(run_job "$(spec bearing-anomaly '{"kind":"anomaly","healthy_class":0}')" succeeded)
$KILN model show bearing-anomaly --dir "$D" --json | pyj '(d["version"], d["run"]["kind"], d["run"]["job_id"], len(d["run"]["metrics"]["confusion"]))' \
    | grep -qx "(1, 'anomaly', $ja, 2)" || die "anomaly model: $($KILN model show bearing-anomaly --dir "$D" --json)"

# --- kiln train on this machine: the cluster's metrics, the cluster's bytes
spec bearing "$LOGREG" >"$T/local.json"
$KILN train "$T/local.json" --output "$T/local.kmodel" --json >"$T/local.out" || die "kiln train: $(cat "$T/local.out")"
"$PY" - "$T/local.out" "$T/v1.json" <<'PY' || die "kiln train's metrics differ from the cluster's"
import json, sys
local, cluster = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert local["metrics"] == cluster["run"]["metrics"], (local["metrics"], cluster["run"]["metrics"])
assert local["accepted"] is True
PY
[ "$(sha256sum "$T/local.kmodel" | cut -d' ' -f1)" = "$a1" ] || die "kiln train's model file is not the cluster's artifact"
$KILN train "$T/local.json" --output "$T/local.kmodel" >"$T/local.txt" || die "kiln train (text)"
grep -Eq '^    inner_race +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+$' "$T/local.txt" || die "kiln train's confusion matrix: $(cat "$T/local.txt")"
spec bearing "$LOGREG" | sed 's/"fraction":0.25}/"fraction":0.25,"min_accuracy":0.9999}/' >"$T/strict.json"
$KILN train "$T/strict.json" --output "$T/strict.kmodel" >"$T/strict.txt" || die "kiln train with an unmet gate: exit $?"
grep -q '^REJECTED: accuracy' "$T/strict.txt" || die "kiln train with an unmet gate: $(cat "$T/strict.txt")"

# --- bad specs: 400 naming the field, and no job
# expect_400 WHAT FIELD SPEC_JSON
expect_400() {
    local code
    code=$(curl -s --max-time 20 -o "$T/err.json" -w '%{http_code}' -X POST "$URL/v1/jobs" \
        -H 'Content-Type: application/json' -d "$3")
    [ "$code" = 400 ] || die "$1: HTTP $code, want 400 ($(cat "$T/err.json"))"
    [ "$(pyj 'd["error"].get("field")' <"$T/err.json")" = "$2" ] || die "$1: field is not $2: $(cat "$T/err.json")"
}
n_jobs=$($KILN list --dir "$D" --json | pyj 'len(d["jobs"])')
expect_400 "unknown model kind" model.kind "$(spec bad '{"kind":"forest"}')"
expect_400 "missing target" target "$(spec bad "$LOGREG" | sed 's/"target":"label",//')"
expect_400 "unknown model field" model.bogus "$(spec bad '{"kind":"logreg","bogus":1}')"
expect_400 "logreg learning a target" target "$(spec bad "$LOGREG" | sed "s|\"target\":\"label\"|\"target\":\"target\"|; s|$T/feat.h5|$T/feat-notarget.h5|")"
expect_400 "empty input" input "$(spec bad "$LOGREG" | sed "s|\"$T/feat.h5\"|\"\"|")"
expect_400 "min_accuracy 1.01" validation.min_accuracy "$(spec bad "$LOGREG" | sed 's/"fraction":0.25}/"fraction":0.25,"min_accuracy":1.01}/')"
expect_400 "max_rmse on a label job" validation.max_rmse "$(spec bad "$LOGREG" | sed 's/"fraction":0.25}/"fraction":0.25,"max_rmse":1}/')"
[ "$($KILN list --dir "$D" --json | pyj 'len(d["jobs"])')" = "$n_jobs" ] || die "a refused spec made a job"

# --- inputs that pass the spec but not the job: failed, with the file named
# expect_fail WHAT SPEC_JSON REASON_GREP
expect_fail() {
    local id reason
    id=$(run_job "$2" failed)
    reason=$(job_field "$D" "$id" reason.text)
    echo "$reason" | grep -q "$3" || die "$1: reason '$reason' lacks '$3'"
}
expect_fail "missing input" "$(spec bad "$LOGREG" | sed "s|$T/feat.h5|$T/nope.h5|")" "$T/nope.h5"
expect_fail "empty input file" "$(spec bad "$LOGREG" | sed "s|$T/feat.h5|$T/empty.h5|")" "$T/empty.h5"
# a kind that can learn a target, on a dataset without one
expect_fail "target without /target" \
    "$(spec bad '{"kind":"mlp","epochs":1}' | sed "s|\"target\":\"label\"|\"target\":\"target\"|; s|$T/feat.h5|$T/feat-notarget.h5|")" \
    "no /target"
[ "$($KILN runs --model bad --dir "$D" --json | pyj 'len(d["runs"])')" = 0 ] || die "a failed job recorded a run"

# --- CLI usage errors (2) and server errors (1)
set +e
$KILN model promote bearing --dir "$D" >/dev/null 2>&1; rc1=$?
$KILN runs compare 1 --dir "$D" >/dev/null 2>&1; rc2=$?
$KILN model show nope --dir "$D" >/dev/null 2>"$T/err"; rc3=$?
$KILN model promote bearing 99 --dir "$D" >/dev/null 2>&1; rc4=$?
$KILN train >/dev/null 2>&1; rc5=$?
set -e
[ "$rc1 $rc2 $rc3 $rc4 $rc5" = "2 2 1 1 2" ] || die "exit statuses $rc1 $rc2 $rc3 $rc4 $rc5, want 2 2 1 1 2"
grep -q 'not found' "$T/err" || die "model show of an unknown model: $(cat "$T/err")"
echo "ok: train and the model registry"
