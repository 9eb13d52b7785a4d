#!/usr/bin/env bash
# Pipeline jobs through kilnd (docs/pipelines.md): featurize -> train ->
# score in one spec over 2 workers.
#  - first run: 3 steps run in order and succeed; the model lands in the
#    registry; the predictions are those `kiln score` gives on this machine;
#  - the same spec again: every step "cached", no file rewritten, no new
#    model version;
#  - the train step's C changed: featurize cached, train and score run;
#  - the predictions file changed by hand: only score runs again;
#  - "cache": false: every step runs;
#  - a failing step cancels the steps after it and fails the pipeline;
#    cancelling a pipeline cancels its steps;
#  - kill -9 of kilnd while a pipeline runs: after a restart it finishes;
#  - bad specs are refused at submit with the field named (cycle, unknown
#    reference, unknown type, a nested pipeline, depends_on in a step, a
#    step's own bad field, no steps).
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

pyj() { "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
mtime() { stat -c %Y.%y "$1"; }

$KILN gen --windows 400 --window-len 512 --assets 6 --seed 5 -o "$T/sensor.h5" >/dev/null

# spec.py OUT [C] [CACHE]: the pipeline spec
cat >"$T/spec.py" <<'PY'
import json, sys
t, out = sys.argv[1], sys.argv[2]
C = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
feat = json.load(open("bench/featurize_bench.json"))
feat["features"].pop("rolling", None)
feat.pop("name", None); feat.pop("project", None)
feat["input"], feat["output"] = t + "/sensor.h5", t + "/feat.h5"
spec = {"type": "pipeline", "name": "bearing-weekly", "project": "plant-7", "steps": [
    {"name": "features", "job": feat},
    {"name": "train", "job": {"type": "train", "name": "pipe-bearing",
        "input": "${features.output}", "output": t + "/model.kmodel",
        "model": {"kind": "logreg", "C": C, "max_iter": 100}, "target": "label",
        "validation": {"split": "time", "fraction": 0.25}, "seed": 7}},
    {"name": "score", "job": {"type": "score", "model_file": "${train.output}",
        "input": "${features.output}", "output": t + "/preds.h5"}},
]}
if len(sys.argv) > 4:
    spec["cache"] = sys.argv[4] == "true"
json.dump(spec, open(out, "w"))
PY
"$PY" "$T/spec.py" "$T" "$T/p1.json"

D=$T/c
start_kilnd "$D" --target-tasks 2
start_worker "$D" w1
start_worker "$D" w2
wait_workers "$D" 2

# run_pipe SPEC_FILE: submits, waits for succeeded, prints the id
run_pipe() {
    local id
    id=$($KILN submit "$1" --dir "$D" --json | pyj 'd["id"]') || die "submit $1"
    wait_job_state "$D" "$id" succeeded 120
    echo "$id"
}
# reasons ID: the steps' reason codes, space-separated ("-" for none)
reasons() { job_json "$D" "$1" | pyj '" ".join((s["reason"] or "-") for s in d["steps"])'; }

# --- first run
p1=$(run_pipe "$T/p1.json")
job_json "$D" "$p1" >"$T/p1.out"
[ "$(pyj '[s["name"] for s in d["steps"]]' <"$T/p1.out")" = "['features', 'train', 'score']" ] \
    || die "steps: $(cat "$T/p1.out")"
[ "$(pyj '[s["state"] for s in d["steps"]]' <"$T/p1.out")" = "['succeeded', 'succeeded', 'succeeded']" ] \
    || die "step states: $(cat "$T/p1.out")"
[ "$(reasons "$p1")" = "- - -" ] || die "first run reasons: $(reasons "$p1")"
# each step is a job of its own, named PIPELINE/STEP, waiting for the one before
s=($(pyj '" ".join(str(s["job"]) for s in d["steps"])' <"$T/p1.out"))
[ "$(job_field "$D" "${s[1]}" name)" = bearing-weekly/train ] || die "step job name: $(job_field "$D" "${s[1]}" name)"
[ "$(job_field "$D" "${s[2]}" depends_on)" = "[${s[0]}, ${s[1]}]" ] || die "score step depends_on: $(job_field "$D" "${s[2]}" depends_on)"
$KILN model show pipe-bearing --dir "$D" --json >"$T/m.json" || die "no model pipe-bearing"
[ "$(pyj 'd["version"]' <"$T/m.json")" = 1 ] || die "model version: $(cat "$T/m.json")"
printf '{"type":"score","input":"%s","output":"%s"}' "$T/feat.h5" "$T/local.h5" >"$T/local.json"
$KILN score "$T/local.json" --model-file "$T/model.kmodel" --json >"$T/local.out" || die "kiln score"
[ "$(pyj 'd["content_sha256"]' <"$T/local.out")" = "$(h5_hash "$T/preds.h5")" ] || die "pipeline predictions differ from kiln score's"
m_feat=$(mtime "$T/feat.h5"); m_model=$(mtime "$T/model.kmodel"); m_preds=$(mtime "$T/preds.h5")

# --- the same spec: every step cached, nothing rewritten, no new version
p2=$(run_pipe "$T/p1.json")
[ "$(reasons "$p2")" = "cached cached cached" ] || die "second run reasons: $(reasons "$p2")"
[ "$(mtime "$T/feat.h5")" = "$m_feat" ] && [ "$(mtime "$T/model.kmodel")" = "$m_model" ] \
    && [ "$(mtime "$T/preds.h5")" = "$m_preds" ] || die "a cached step rewrote its output"
[ "$($KILN model show pipe-bearing --dir "$D" --json | pyj 'd["version"]')" = 1 ] || die "a cached train made a version"
$KILN logs "$(job_json "$D" "$p2" | pyj 'd["steps"][1]["job"]')" --dir "$D" | grep -q "cached: same spec and inputs as job" \
    || die "cached step log does not say why"

# --- train's C changed: featurize cached, train and score run
"$PY" "$T/spec.py" "$T" "$T/p3.json" 0.05
p3=$(run_pipe "$T/p3.json")
[ "$(reasons "$p3")" = "cached - -" ] || die "changed train: reasons $(reasons "$p3")"
[ "$($KILN model show pipe-bearing --dir "$D" --json | pyj 'd["version"]')" = 2 ] || die "retrain made no version 2"

# --- the predictions touched by hand: only score runs again
"$PY" -c 'import h5py, sys; f = h5py.File(sys.argv[1], "r+"); f.attrs["content_sha256"] = "0" * 64' "$T/preds.h5"
p4=$(run_pipe "$T/p3.json")
[ "$(reasons "$p4")" = "cached cached -" ] || die "changed output: reasons $(reasons "$p4")"
[ "$(pyj 'd["content_sha256"]' <"$T/local.out")" != "$(h5_hash "$T/preds.h5")" ] || die "C=0.05 predictions equal C=1's"

# --- cache off: every step runs
"$PY" "$T/spec.py" "$T" "$T/p5.json" 0.05 false
p5=$(run_pipe "$T/p5.json")
[ "$(reasons "$p5")" = "- - -" ] || die "cache false: reasons $(reasons "$p5")"

# --- a failing step: what waits for it is cancelled, the pipeline fails
cat >"$T/fail.json" <<'EOF'
{"type":"pipeline","name":"broken","steps":[
 {"name":"a","job":{"type":"noop","tasks":1}},
 {"name":"b","after":["a"],"job":{"type":"noop","tasks":1,"fail":"always"}},
 {"name":"c","after":["b"],"job":{"type":"noop","tasks":1}},
 {"name":"d","after":["a"],"job":{"type":"noop","tasks":1}}]}
EOF
pf=$($KILN submit "$T/fail.json" --dir "$D" --json | pyj 'd["id"]')
wait_job_state "$D" "$pf" failed 60
job_json "$D" "$pf" >"$T/pf.out"
[ "$(pyj '" ".join(s["state"] for s in d["steps"])' <"$T/pf.out")" = "succeeded failed cancelled succeeded" ] \
    || die "failing pipeline steps: $(cat "$T/pf.out")"
[ "$(pyj 'd["reason"]["code"]' <"$T/pf.out")" = steps_failed ] || die "failing pipeline reason: $(cat "$T/pf.out")"
[ "$(pyj 'd["steps"][2]["reason"]' <"$T/pf.out")" = dependency_failed ] || die "step c: $(cat "$T/pf.out")"

# --- cancel a running pipeline: its steps end cancelled
cat >"$T/slow.json" <<'EOF'
{"type":"pipeline","name":"slow","steps":[
 {"name":"a","job":{"type":"noop","tasks":1,"sleep_ms":20000}},
 {"name":"b","after":["a"],"job":{"type":"noop","tasks":1}}]}
EOF
pc=$($KILN submit "$T/slow.json" --dir "$D" --json | pyj 'd["id"]')
wait_job_state "$D" "$pc" running 20
$KILN cancel "$pc" --dir "$D" >/dev/null || die "cancel pipeline"
wait_job_state "$D" "$pc" cancelled 20
[ "$(job_json "$D" "$pc" | pyj '" ".join(s["state"] for s in d["steps"])')" = "cancelled cancelled" ] \
    || die "cancelled pipeline's steps: $(job_json "$D" "$pc")"

# --- kill -9 of kilnd while a pipeline runs: it finishes after a restart
cat >"$T/restart.json" <<'EOF'
{"type":"pipeline","name":"restart","steps":[
 {"name":"a","job":{"type":"noop","tasks":2,"sleep_ms":600}},
 {"name":"b","after":["a"],"job":{"type":"noop","tasks":2,"sleep_ms":300}},
 {"name":"c","after":["b"],"job":{"type":"noop","tasks":1}}]}
EOF
pr=$($KILN submit "$T/restart.json" --dir "$D" --json | pyj 'd["id"]')
wait_job_state "$D" "$pr" running 20
zmq=$(cat "$D/kilnd.zmq")
kill9 "$KILND_PID"
sleep 0.3
start_kilnd "$D" --target-tasks 2 --listen "$zmq"
wait_workers "$D" 2
wait_job_state "$D" "$pr" succeeded 60
[ "$(job_json "$D" "$pr" | pyj '" ".join(s["state"] for s in d["steps"])')" = "succeeded succeeded succeeded" ] \
    || die "pipeline after restart: $(job_json "$D" "$pr")"
[ "$(job_json "$D" "$pr" | pyj 'len(d["steps"])')" = 3 ] || die "steps made twice across the restart"

# --- bad specs: refused at submit, naming the field
bad() {   # bad NAME FIELD JSON
    local f=$T/bad-$1.json
    printf '%s\n' "$3" >"$f"
    set +e; $KILN submit "$f" --dir "$D" >/dev/null 2>"$T/bad.err"; local rc=$?; set -e
    [ $rc != 0 ] || die "bad spec $1 accepted"
    grep -qF "$2" "$T/bad.err" || die "bad spec $1: error does not name $2: $(cat "$T/bad.err")"
}
bad cycle 'a cycle' '{"type":"pipeline","steps":[{"name":"a","after":["b"],"job":{"type":"noop"}},{"name":"b","after":["a"],"job":{"type":"noop"}}]}'
bad ref 'steps[0].job' '{"type":"pipeline","steps":[{"name":"a","job":{"type":"featurize","input":"${nope.output}","output":"x.h5","features":{"time":["rms"]}}}]}'
bad reffield 'STEP.output' '{"type":"pipeline","steps":[{"name":"a","job":{"type":"noop"}},{"name":"b","job":{"type":"score","model_file":"${a.model}","input":"x","output":"y"}}]}'
bad noout 'has no output' '{"type":"pipeline","steps":[{"name":"a","job":{"type":"noop"}},{"name":"b","job":{"type":"score","model_file":"${a.output}","input":"x","output":"y"}}]}'
bad type 'unknown job type' '{"type":"pipeline","steps":[{"name":"a","job":{"type":"frobnicate"}}]}'
bad nested 'a pipeline cannot be a step' '{"type":"pipeline","steps":[{"name":"a","job":{"type":"pipeline","steps":[{"name":"x","job":{"type":"noop"}}]}}]}'
bad deps 'steps[0].job.depends_on' '{"type":"pipeline","steps":[{"name":"a","job":{"type":"noop","depends_on":[1]}}]}'
bad target 'steps[1].job' '{"type":"pipeline","steps":[{"name":"f","job":{"type":"noop"}},{"name":"t","job":{"type":"train","input":"x.h5","model":{"kind":"gbdt"},"target":"colour"}}]}'
bad empty 'field: steps' '{"type":"pipeline","steps":[]}'
bad dup 'also steps[0]' '{"type":"pipeline","steps":[{"name":"a","job":{"type":"noop"}},{"name":"a","job":{"type":"noop"}}]}'
bad after 'no step has that name' '{"type":"pipeline","steps":[{"name":"a","after":["zz"],"job":{"type":"noop"}}]}'
curl -sf --max-time 10 "$(cat "$D/kilnd.url")/v1/health" >/dev/null || die "kilnd unhealthy after bad specs"
echo "ok: pipeline ran, cached (3/3), partially re-ran on a changed spec (2/3) and output (1/3), failed, cancelled, survived kill -9; 11 bad specs refused"
