#!/usr/bin/env bash
# depends_on: B waits (reason "dependency") while A runs; A fails -> B ends
# cancelled with reason "dependency_failed" (never stuck); a chain whose head
# succeeds runs in order.  Retries: fail "once" + marker with max_retries 1
# succeeds with attempts 1; fail "always" with max_retries 1 fails; fail
# "crash" fails and the worker lives on.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

D=$T/cl
start_kilnd "$D"
start_worker "$D" w1
start_worker "$D" w2
wait_workers "$D" 2

# --- A fails after a while; B depends on A
a=$(submit_json "$D" '{"type":"noop","name":"A","tasks":1,"sleep_ms":1500,"fail":"always"}')
b=$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"B\",\"tasks\":1,\"depends_on\":[$a]}")
c=$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"C\",\"tasks\":1,\"depends_on\":[$b]}")
wait_job_state "$D" "$a" running 20
[ "$(job_field "$D" "$b" state)" = queued ] || die "B state $(job_field "$D" "$b" state) while A runs"
[ "$(job_field "$D" "$b" reason.code)" = dependency ] || die "B reason $(job_field "$D" "$b" reason) while A runs"
[ "$(job_field "$D" "$b" started_ns)" = 0 ] || die "B started while A runs"
wait_job_state "$D" "$a" failed 20
wait_job_state "$D" "$b" cancelled 10
[ "$(job_field "$D" "$b" reason.code)" = dependency_failed ] || die "B reason $(job_field "$D" "$b" reason)"
wait_job_state "$D" "$c" cancelled 10
[ "$(job_field "$D" "$c" reason.code)" = dependency_failed ] || die "C reason $(job_field "$D" "$c" reason)"
[ "$(job_field "$D" "$b" tasks.succeeded)" = 0 ] || die "B ran a task"

# --- depends_on a job that succeeds: runs after it
a2=$(submit_json "$D" '{"type":"noop","name":"A2","tasks":2,"sleep_ms":500}')
b2=$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"B2\",\"tasks\":1,\"depends_on\":[$a2]}")
wait_job_state "$D" "$b2" succeeded 30
[ "$(job_field "$D" "$a2" state)" = succeeded ] || die "A2 not succeeded"
[ "$(job_field "$D" "$b2" started_ns)" -ge "$(job_field "$D" "$a2" ended_ns)" ] || die "B2 started before A2 ended"

# --- depends_on a job that already ended: failed -> cancelled at once, succeeded -> runs
d1=$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"on-failed\",\"tasks\":1,\"depends_on\":[$a]}")
d2=$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"on-succeeded\",\"tasks\":1,\"depends_on\":[$a2]}")
wait_job_state "$D" "$d1" cancelled 10
[ "$(job_field "$D" "$d1" reason.code)" = dependency_failed ] || die "on-failed reason $(job_field "$D" "$d1" reason)"
wait_job_state "$D" "$d2" succeeded 20
# --- cancelling a running job cancels its dependents
r=$(submit_json "$D" '{"type":"noop","name":"to-cancel","tasks":1,"sleep_ms":20000}')
rd=$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"on-cancelled\",\"tasks\":1,\"depends_on\":[$r]}")
wait_job_state "$D" "$r" running 20
$KILN cancel "$r" --dir "$D" >/dev/null
wait_job_state "$D" "$rd" cancelled 10
[ "$(job_field "$D" "$rd" reason.code)" = dependency_failed ] || die "on-cancelled reason $(job_field "$D" "$rd" reason)"

# --- depends_on an unknown job: refused at submit
cat >"$T/baddep.json" <<J
{"type":"noop","tasks":1,"depends_on":[99999]}
J
if $KILN submit "$T/baddep.json" --dir "$D" >"$T/baddep.out" 2>&1; then die "submit with an unknown dependency accepted"; fi

# --- fail once with a marker, max_retries 1: the retry succeeds
o=$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"once\",\"tasks\":1,\"fail\":\"once\",\"marker\":\"$T/marker\",\"max_retries\":1}")
wait_job_state "$D" "$o" succeeded 30
[ -f "$T/marker" ] || die "marker not created"
[ "$(job_field "$D" "$o" attempts)" = 1 ] || die "fail-once job attempts $(job_field "$D" "$o" attempts), want 1"

# --- fail always, max_retries 1: failed after 2 tries (attempts counts the
# failed tries: 1 retry + the last one; never a third try)
f=$(submit_json "$D" '{"type":"noop","name":"always","tasks":1,"fail":"always","max_retries":1}')
wait_job_state "$D" "$f" failed 30
[ "$(job_field "$D" "$f" attempts)" = 2 ] || die "fail-always attempts $(job_field "$D" "$f" attempts), want 2"
[ "$(grep -c 'fails as asked$' "$D/logs/$f.log")" = 2 ] || die "fail-always did not run exactly twice"

# --- crash: failed, the worker goes on
x=$(submit_json "$D" '{"type":"noop","name":"crash","tasks":2,"fail":"crash"}')
wait_job_state "$D" "$x" failed 30
grep -qi signal "$D/logs/$x.log" || die "crash not reported as a signal in the job log"
kill -0 "${WORKER_PID[w1]}" && kill -0 "${WORKER_PID[w2]}" || die "a worker died with the crashing task"
sleep 0.5
[ "$(worker_field "$D" w1 state)" = alive ] && [ "$(worker_field "$D" w2 state)" = alive ] || die "a worker not alive after the crash"
# and they still run work
z=$(submit_json "$D" '{"type":"noop","name":"after-crash","tasks":4,"sleep_ms":100}')
wait_job_state "$D" "$z" succeeded 30
echo "ok: dependencies, retries and crash"
