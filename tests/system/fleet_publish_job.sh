#!/usr/bin/env bash
# The publish job type (jobs/type_publish.c, docs/pipelines.md): a pipeline
# train -> publish ends with a canary rollout of the version its train step
# made (model "NAME@latest"), the publish step's log naming the rollout and
# seq; a pipeline whose train run fails its gate fails at its publish step
# with the gate's reason (and publishes nothing older); a publish job of a
# rejected model, and one of a version the fleet already has, fail with the
# reason; bad publish specs are refused at submit naming the field.  A
# cached pipeline train -> publish run twice: the second run's train step is
# cached (the same version) and its publish step succeeds as "already
# published" with the first run's rollout and seq, making no second rollout;
# POST /v1/publish of that version is still a 409.
# Loopback only; bounded waits; every process is killed on exit.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

make_features 240 6 3
D=$T/c
start_kilnd "$D"
start_worker "$D" w1
wait_workers "$D" 1
URL=$(cat "$D/kilnd.url")
$KILN fleet create plant-7 --canary 0.5 --health-seconds 1 --dir "$D" >/dev/null || die "fleet create"

# pipe NAME MODEL [GATE]: a pipeline train (model NAME) -> publish MODEL
pipe() {
    printf '{"type":"pipeline","name":"%s-pipe","cache":false,"steps":[
      {"name":"train","job":{"type":"train","name":"%s","input":"%s","output":"%s/%s.kmodel",
        "model":{"kind":"logreg","C":1.0,"max_iter":100},"target":"label",
        "validation":{"split":"time","fraction":0.25%s},"seed":7,"max_retries":0}},
      {"name":"publish","after":["train"],"job":{"type":"publish","model":"%s","fleet":"plant-7",
        "canary_share":1.0,"expires_s":86400}}]}' "$1" "$1" "$T/feat.h5" "$T" "$1" "${3:-}" "$2"
}
# failed_with ID TEXT: the job failed and its status or log says TEXT
failed_with() {
    wait_job_state "$D" "$1" "failed" 60
    { job_json "$D" "$1"; $KILN logs "$1" --dir "$D"; } >"$T/why" 2>&1 || true
    grep -q "$2" "$T/why" || die "job $1 failed without \"$2\": $(cat "$T/why")"
}

# --- train -> publish: the rollout is the version the train step made
p1=$(submit_json "$D" "$(pipe bearing bearing@latest)") || die "submit pipeline"
wait_job_state "$D" "$p1" succeeded 90
pub=$(job_json "$D" "$p1" | pyj 'd["steps"][1]["job"]')
$KILN logs "$pub" --dir "$D" >"$T/pub.log"
grep -q "published bearing@1 to fleet plant-7: rollout [0-9]* (seq 1, canary" "$T/pub.log" \
    || die "publish step's log: $(cat "$T/pub.log")"
R=$(curl -s "$URL/v1/fleets/plant-7/rollout")
[ "$(pyj '(d["model"], d["version"], d["stage"] in ("canary", "full"))' <<<"$R")" = "('bearing', 1, True)" ] \
    || die "fleet rollout after the pipeline: $R"

# --- a second run makes bearing@2 and publishes it (newer than the fleet's)
p2=$(submit_json "$D" "$(pipe bearing bearing@latest)") || die "submit pipeline 2"
wait_job_state "$D" "$p2" succeeded 90
R=$(curl -s "$URL/v1/fleets/plant-7/rollout")
[ "$(pyj 'd["version"]' <<<"$R")" = 2 ] || die "second pipeline's rollout: $R"

# --- a train run rejected by its gate: the publish step fails with the reason
p3=$(submit_json "$D" "$(pipe strict strict@latest ',"min_accuracy":0.9999')") || die "submit strict"
wait_job_state "$D" "$p3" failed 90
st=$(job_json "$D" "$p3" | pyj '" ".join(s["state"] for s in d["steps"])')
[ "$st" = "succeeded failed" ] || die "strict pipeline steps: $st"
failed_with "$(job_json "$D" "$p3" | pyj 'd["steps"][1]["job"]')" "validation gate"

# --- publish jobs alone: a rejected model, a version the fleet already has
j=$(submit_json "$D" '{"type":"publish","model":"strict","fleet":"plant-7"}') || die "submit publish strict"
failed_with "$j" "validation gate"
j=$(submit_json "$D" '{"type":"publish","model":"bearing@1","fleet":"plant-7"}') || die "submit publish bearing@1"
failed_with "$j" "only a newer version"
R=$(curl -s "$URL/v1/fleets/plant-7/rollout")
[ "$(pyj 'd["version"]' <<<"$R")" = 2 ] || die "a refused publish changed the rollout: $R"

# --- bad specs are refused at submit, naming the field
for bad in '{"type":"publish","fleet":"plant-7"}|model' \
           '{"type":"publish","model":"/tmp/x.kmodel","fleet":"plant-7"}|model' \
           '{"type":"publish","model":"bearing@1"}|fleet' \
           '{"type":"publish","model":"bearing@1","fleet":"plant-7","canary_share":2}|canary_share' \
           '{"type":"publish","model":"bearing@1","fleet":"plant-7","extra":1}|extra'; do
    spec=${bad%|*} field=${bad##*|}
    if submit_json "$D" "$spec" >"$T/out" 2>&1; then die "accepted: $spec"; fi
    grep -q "$field" "$T/out" || die "refusal of $spec does not name $field: $(cat "$T/out")"
done
# --- a cached pipeline run twice: the second publish is "already published"
$KILN fleet create plant-9 --canary 1 --health-seconds 1 --dir "$D" >/dev/null || die "fleet create 9"
cached_pipe() {
    printf '{"type":"pipeline","name":"gearbox-pipe","steps":[
      {"name":"train","job":{"type":"train","name":"gearbox","input":"%s","output":"%s/gearbox.kmodel",
        "model":{"kind":"logreg","C":1.0,"max_iter":100},"target":"label",
        "validation":{"split":"time","fraction":0.25},"seed":7,"max_retries":0}},
      {"name":"publish","after":["train"],"job":{"type":"publish","model":"gearbox@latest",
        "fleet":"plant-9","canary_share":1.0}}]}' "$T/feat.h5" "$T"
}
c1=$(submit_json "$D" "$(cached_pipe)") || die "submit cached pipeline"
wait_job_state "$D" "$c1" succeeded 90
$KILN logs "$(job_json "$D" "$c1" | pyj 'd["steps"][1]["job"]')" --dir "$D" >"$T/c1.log"
first=$(sed -n 's/.*published gearbox@1 to fleet plant-9: rollout \([0-9]*\) (seq \([0-9]*\),.*/\1 \2/p' "$T/c1.log")
[ -n "$first" ] || die "first cached pipeline's publish log: $(cat "$T/c1.log")"
c2=$(submit_json "$D" "$(cached_pipe)") || die "submit cached pipeline again"
wait_job_state "$D" "$c2" succeeded 90
train2=$(job_json "$D" "$c2" | pyj 'd["steps"][0]["job"]')
[ "$(job_json "$D" "$train2" | pyj 'd["reason"]["code"]')" = cached ] ||
    die "the second run's train step was not cached: $(job_json "$D" "$train2")"
$KILN logs "$(job_json "$D" "$c2" | pyj 'd["steps"][1]["job"]')" --dir "$D" >"$T/c2.log"
set -- $first
grep -q "already published: rollout $1, seq $2, stage [a-z]* (gearbox@1 on fleet plant-9" "$T/c2.log" ||
    die "second publish step's log (first: rollout $1, seq $2): $(cat "$T/c2.log")"
n=$(curl -s "$URL/v1/rollouts?fleet=plant-9" | pyj 'len(d["rollouts"])')
[ "$n" = 1 ] || die "$n rollouts of plant-9 after the pipeline ran twice, expected 1"
code=$(curl -s -o "$T/pub409" -w '%{http_code}' -X POST "$URL/v1/publish" \
    -d '{"model":"gearbox@1","fleet":"plant-9"}')
[ "$code" = 409 ] || die "POST /v1/publish of the same version: HTTP $code $(cat "$T/pub409")"
log "fleet publish job ok"
