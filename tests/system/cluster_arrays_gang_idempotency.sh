#!/usr/bin/env bash
# Arrays: "0-5%2" never runs more than 2 instances at once and ends
# succeeded with 6 instances.  Gangs: 3 ranks with only 2 slots stay queued
# (reason "gang" or "resources", no rank placed alone); a third worker lets
# all 3 start together.  Idempotency: the same spec posted twice with one
# Idempotency-Key gives the same id, the second with "existed": true.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

D=$T/cl
start_kilnd "$D"
start_worker "$D" w1 --cores 1
start_worker "$D" w2 --cores 1
wait_workers "$D" 2
URL=$(cat "$D/kilnd.url")

# running_sum: tasks running over all workers
running_sum() {
    $KILN workers --dir "$D" --json | "$PY" -c 'import json,sys; print(sum(w["running"] for w in json.load(sys.stdin)["workers"]))'
}

# --- array 0-5%2 (2 workers of 1 core: the cap, not the cores, must limit it to 2...
# so give the cluster 3 cores for this part)
start_worker "$D" w3 --cores 1
wait_workers "$D" 3
arr=$(submit_json "$D" '{"type":"noop","name":"arr","tasks":1,"sleep_ms":600,"array":"0-5%2"}')
maxrun=0; end=$((SECONDS + 40))
while :; do
    read -r st nrun < <($KILN list --dir "$D" --json | "$PY" -c '
import json, sys
P = int(sys.argv[1]); st = "?"; n = 0
for j in json.load(sys.stdin)["jobs"]:
    if j["id"] == P: st = j["state"]
    a = j.get("array") or {}
    if a.get("parent") == P and j["state"] == "running": n += 1
print(st, n)' "$arr")
    [ "$nrun" -gt "$maxrun" ] && maxrun=$nrun
    [ "$nrun" -le 2 ] || die "array: $nrun instances running at once (cap 2)"
    case $st in succeeded) break ;; failed|cancelled|timeout|node_fail|out_of_memory) die "array ended $st" ;; esac
    [ $SECONDS -lt $end ] || die "array not done in 40 s (state $st)"
    sleep 0.1
done
[ "$maxrun" -ge 1 ] || die "never saw an instance running"
inst=$($KILN list --dir "$D" --json | "$PY" -c '
import json, sys
P = int(sys.argv[1]); ok = 0; idx = set()
for j in json.load(sys.stdin)["jobs"]:
    a = j.get("array") or {}
    if a.get("parent") == P:
        idx.add(a["index"]); ok += j["state"] == "succeeded"
print(len(idx), ok, sorted(idx))' "$arr")
log "array $arr: instances/succeeded/indexes: $inst (max running $maxrun)"
case $inst in "6 6 [0, 1, 2, 3, 4, 5]") ;; *) die "array instances: $inst, want 6 succeeded, indexes 0..5" ;; esac
[ "$(job_field "$D" "$arr" array.cap)" = 2 ] || die "array.cap $(job_field "$D" "$arr" array)"
kill9 "${WORKER_PID[w3]}"
# w3 is lost after --lease-ms; wait for it so the gang sees 2 slots only
end=$((SECONDS + 15))
until [ "$(worker_field "$D" w3 state)" = lost ]; do
    [ $SECONDS -lt $end ] || die "w3 not lost"; sleep 0.2
done

# --- gang of 3 ranks, 2 slots
g=$(submit_json "$D" '{"type":"noop","name":"gang","sleep_ms":4000,"resources":{"cores":1,"ranks":3}}')
sleep 1.5
[ "$(job_field "$D" "$g" state)" = queued ] || die "gang state $(job_field "$D" "$g" state) with 2 slots"
rc=$(job_field "$D" "$g" reason.code)
case $rc in gang|resources) ;; *) die "gang reason $(job_field "$D" "$g" reason)" ;; esac
[ "$(running_sum)" = 0 ] || die "a rank of the gang was placed alone"
start_worker "$D" w4 --cores 1
maxrun=0; end=$((SECONDS + 30))
while :; do
    n=$(running_sum); [ "$n" -gt "$maxrun" ] && maxrun=$n
    st=$(job_field "$D" "$g" state)
    [ "$st" = succeeded ] && break
    case $st in queued|running) ;; *) die "gang ended $st" ;; esac
    [ $SECONDS -lt $end ] || die "gang not done in 30 s"
    sleep 0.1
done
[ "$maxrun" = 3 ] || die "gang: saw at most $maxrun ranks running at once, want 3"
[ "$(job_field "$D" "$g" tasks.total)" = 3 ] || die "gang tasks.total $(job_field "$D" "$g" tasks.total)"

# --- a gang whose rank fails: the job fails, no rank left running
gf=$(submit_json "$D" '{"type":"noop","name":"gang-fail","fail":"always","resources":{"cores":1,"ranks":3}}')
wait_job_state "$D" "$gf" failed 30
end=$((SECONDS + 10))
until [ "$(running_sum)" = 0 ]; do
    [ $SECONDS -lt $end ] || die "ranks still running after the gang failed"; sleep 0.1
done

# --- cancel of a running array: every instance ends, none left queued
ca=$(submit_json "$D" '{"type":"noop","name":"arr-cancel","tasks":1,"sleep_ms":20000,"array":"0-9%2"}')
wait_job_state "$D" "$ca" running 20
end=$((SECONDS + 10))
until [ "$(running_sum)" -ge 1 ]; do
    [ $SECONDS -lt $end ] || die "no instance of the array started"; sleep 0.1
done
$KILN cancel "$ca" --dir "$D" >/dev/null || die "cancel of the array failed"
wait_job_state "$D" "$ca" cancelled 10
left=$($KILN list --dir "$D" --json | "$PY" -c '
import json, sys
P = int(sys.argv[1])
print(sum(1 for j in json.load(sys.stdin)["jobs"]
          if (j.get("array") or {}).get("parent") == P and j["state"] in ("queued", "running")))' "$ca")
[ "$left" = 0 ] || die "$left instances of the cancelled array still queued/running"
end=$((SECONDS + 10))
until [ "$(running_sum)" = 0 ]; do
    [ $SECONDS -lt $end ] || die "instances still running on workers after the array's cancel"; sleep 0.1
done

# --- idempotency
spec='{"type":"noop","name":"idem","tasks":1}'
post() { curl -s -X POST "$URL/v1/jobs" -H 'Content-Type: application/json' -H 'Idempotency-Key: kiln-test-key-0001' -d "$spec" -w '\n%{http_code}'; }
r1=$(post); r2=$(post)
c1=$(tail -n1 <<<"$r1"); c2=$(tail -n1 <<<"$r2")
[ "$c1" = 201 ] || die "first submit: HTTP $c1 ($r1)"
[ "$c2" = 200 ] || die "second submit: HTTP $c2 ($r2)"
"$PY" - "$(head -n1 <<<"$r1")" "$(head -n1 <<<"$r2")" <<'PY' || die "idempotent submit answers: $r1 / $r2"
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a["id"] == b["id"], (a, b)
assert a["existed"] is False and b["existed"] is True, (a, b)
PY
id1=$(head -n1 <<<"$r1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
n=$($KILN list --dir "$D" --json | "$PY" -c 'import json,sys; print(sum(1 for j in json.load(sys.stdin)["jobs"] if j["name"]=="idem"))')
[ "$n" = 1 ] || die "$n jobs named idem"
wait_job_state "$D" "$id1" succeeded 20
# the key still answers after the job ended
r3=$(post); [ "$(tail -n1 <<<"$r3")" = 200 ] || die "third submit: $r3"
"$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["id"]==int(sys.argv[2]) and d["existed"] is True' "$(head -n1 <<<"$r3")" "$id1" || die "third answer $r3"
echo "ok: array cap, gang, idempotency"
