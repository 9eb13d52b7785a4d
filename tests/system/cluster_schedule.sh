#!/usr/bin/env bash
# Recurring jobs: a noop template "@every 2s" stays queued (reason
# "schedule") and makes instances NAME@<time> that run and succeed; kill -9
# of kilnd and a restart resume the firing with no fire time run twice (the
# catch-up fires once); cancelling the template stops new instances while
# the template shows its runs; a bad expression is a 400 naming "schedule".
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

D=$T/cl
start_kilnd "$D"
start_worker "$D" w1
wait_workers "$D" 1
url() { cat "$D/kilnd.url"; }

# instances TEMPLATE: "id state name" per instance, oldest first
instances() {
    curl -sf "$(url)/v1/jobs?limit=100000" | "$PY" -c '
import json, sys
jobs = [j for j in json.load(sys.stdin)["jobs"] if j.get("scheduled_by") == int(sys.argv[1])]
for j in sorted(jobs, key=lambda j: j["id"]):
    print(j["id"], j["state"], j["name"])' "$1"
}
n_succeeded() { instances "$1" | awk '$2 == "succeeded"' | wc -l; }
at_least_succeeded() { [ "$(n_succeeded "$1")" -ge "$2" ]; }

# every name NAME@YYYY-MM-DDTHH:MM:SSZ, each fire time once, on the 2 s grid
check_names() {
    instances "$1" | "$PY" -c '
import re, sys, datetime
names = [l.split()[2] for l in sys.stdin if l.strip()]
assert names, "no instances"
times = []
for n in names:
    m = re.fullmatch(r"drift@(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", n)
    assert m, "bad instance name %r" % n
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    times.append(int(t.timestamp()))
assert len(set(times)) == len(times), "a fire time ran twice: %s" % names
assert all(t % 2 == 0 for t in times), "off the @every 2s grid: %s" % names
assert times == sorted(times), "instances out of order: %s" % names
print(len(names))' || die "instance names: $(instances "$1" | tr '\n' ';')"
}

# --- a template fires instances that run
tp=$(submit_json "$D" '{"type":"noop","name":"drift","schedule":"@every 2s","tasks":1,"sleep_ms":100}')
[ "$(job_field "$D" "$tp" state)" = queued ] || die "template state $(job_field "$D" "$tp" state)"
[ "$(job_field "$D" "$tp" reason.code)" = schedule ] || die "template reason $(job_field "$D" "$tp" reason)"
job_field "$D" "$tp" reason.text | grep -Eq '^next run at [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \([0-9]+ runs? so far\)$' \
    || die "template reason text: $(job_field "$D" "$tp" reason.text)"
[ "$(job_field "$D" "$tp" schedule.expr)" = "@every 2s" ] || die "schedule.expr $(job_field "$D" "$tp" schedule)"
wait_for "2 instances of $tp succeeded" 10 at_least_succeeded "$tp" 2
[ "$(job_field "$D" "$tp" state)" = queued ] || die "template left queued"
[ "$(job_field "$D" "$tp" reason.code)" = schedule ] || die "template reason $(job_field "$D" "$tp" reason)"
[ "$(job_field "$D" "$tp" started_ns)" = 0 ] || die "the template itself ran"
first=$(instances "$tp" | awk 'NR == 1 {print $1}')
[ "$(job_field "$D" "$first" scheduled_by)" = "$tp" ] || die "instance $first scheduled_by $(job_field "$D" "$first" scheduled_by)"
[ "$(job_field "$D" "$first" spec.schedule)" = null ] || die "instance $first has a schedule"
runs=$(job_field "$D" "$tp" schedule.runs)
[ "$runs" -ge 2 ] || die "schedule.runs $runs"
check_names "$tp" >/dev/null
log "before the kill: $(instances "$tp" | wc -l) instances, runs $runs"

# --- kill -9 kilnd, stay down over at least one fire time, restart
zmq=$(cat "$D/kilnd.zmq")
kill9 "$KILND_PID"
n_before=$("$PY" -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM jobs WHERE scheduled_by = ?", (int(sys.argv[2]),)).fetchone()[0])' \
    "$D/state.db" "$tp")
# down 4.5 s: at least two fire times of the 2 s grid pass (the catch-up runs them once)
sleep 4.5
start_kilnd "$D" --listen "$zmq"
wait_workers "$D" 1
target=$((n_before + 2))
wait_for "firing resumed after the restart" 12 at_least_succeeded "$tp" "$target"
n=$(check_names "$tp")
log "after the restart: $n instances"
grep -q "missed the runs from" "$D/logs/$tp.log" || die "no catch-up line in the template's log"

# --- cancel the template: no new instances; the template shows its runs
$KILN cancel "$tp" --dir "$D" >/dev/null
wait_job_state "$D" "$tp" cancelled 5
[ "$(job_field "$D" "$tp" schedule.next_run_ns)" = null ] || die "a cancelled template has a next run"
n_cancel=$(instances "$tp" | wc -l)
sleep 4.5
[ "$(instances "$tp" | wc -l)" = "$n_cancel" ] || die "instances made after the template was cancelled"
[ "$(job_field "$D" "$tp" schedule.runs)" = "$n_cancel" ] || die "schedule.runs $(job_field "$D" "$tp" schedule.runs), $n_cancel instances"
check_names "$tp" >/dev/null

# --- bad expressions: 400 naming the field
bad() {
    local body=$1 want=$2 out code
    out=$(curl -s -o "$T/bad.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -d "$body" "$(url)/v1/jobs")
    code=$out
    [ "$code" = 400 ] || die "$body: HTTP $code, want 400: $(cat "$T/bad.json")"
    grep -q "$want" "$T/bad.json" || die "$body: $(cat "$T/bad.json") does not say $want"
    grep -q '"field": *"schedule"' "$T/bad.json" || die "$body: no field schedule: $(cat "$T/bad.json")"
}
bad '{"type":"noop","schedule":"0 25 * * *"}' 'schedule: field 2 (hour): 25 is out of 0-23'
bad '{"type":"noop","schedule":"@every 0s"}' 'schedule: @every'
bad '{"type":"noop","schedule":"* * *"}' 'schedule: \\"\* \* \*\\" has 3 fields'
bad '{"type":"noop","schedule":"@daily","depends_on":[1]}' 'cannot have depends_on'
echo "ok: recurring jobs"
