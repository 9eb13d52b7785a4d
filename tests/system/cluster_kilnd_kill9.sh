#!/usr/bin/env bash
# kill -9 of kilnd with jobs queued and running, then a restart on the same
# --dir and the same worker endpoint (a fresh HTTP port): the workers keep
# running and reconnect by themselves, every accepted job ends succeeded,
# none is lost or duplicated, and the featurize job's output equals
# `kiln featurize` alone.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

$KILN gen --windows 6000 --window-len 1024 --rate 12000 --assets 4 --seed 3 -o "$T/gen.h5" >/dev/null
"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
s["input"] = t + "/gen.h5"
s["output"] = t + "/feat-cluster.h5"
s["name"] = "restart-featurize"
json.dump(s, open(t + "/feat.json", "w"))
PY
$KILN featurize "$T/feat.json" --output "$T/feat-alone.h5" --threads 1 >/dev/null

D=$T/cl
start_kilnd "$D" --target-tasks 4
start_worker "$D" w1
start_worker "$D" w2
wait_workers "$D" 2

ids=()
for i in 1 2 3; do
    ids+=("$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"sleepy-$i\",\"tasks\":8,\"sleep_ms\":800}")")
done
ids+=("$($KILN submit "$T/feat.json" --dir "$D" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')")
ids+=("$(submit_json "$D" '{"type":"noop","name":"sleepy-4","tasks":4,"sleep_ms":300}')")
# a dependent job, an array (instances made as they start) and a keyed submit
ids+=("$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"dep\",\"tasks\":2,\"depends_on\":[${ids[1]}]}")")
arr=$(submit_json "$D" '{"type":"noop","name":"arr","tasks":1,"sleep_ms":300,"array":"0-3%1"}')
ids+=("$arr")
echo '{"type":"noop","name":"keyed","tasks":2,"sleep_ms":200}' >"$T/keyed.json"
keyed=$($KILN submit "$T/keyed.json" --dir "$D" --idempotency-key restart-key --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
ids+=("$keyed")
log "submitted: ${ids[*]}"

# kill kilnd while the first job runs
wait_job_state "$D" "${ids[0]}" "running|succeeded" 20
sleep 0.3
zmq=$(cat "$D/kilnd.zmq")
kill9 "$KILND_PID"
log "killed kilnd; restarting on $zmq"
sleep 0.5
kill -0 "${WORKER_PID[w1]}" && kill -0 "${WORKER_PID[w2]}" || die "a worker died with kilnd"

start_kilnd "$D" --target-tasks 4 --listen "$zmq"
wait_workers "$D" 2

# a second kill -9, this time while the featurize job runs (when caught running)
feat=${ids[3]}
end=$((SECONDS + 30)); fst=
while [ $SECONDS -lt $end ]; do
    fst=$(curl -s "$(cat "$D/kilnd.url")/v1/jobs/$feat" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null || echo "?")
    [ "$fst" = queued ] || [ "$fst" = "?" ] || break
    sleep 0.05
done
if [ "$fst" = running ]; then
    kill9 "$KILND_PID"
    log "killed kilnd again while featurize job $feat ran"
    start_kilnd "$D" --target-tasks 4 --listen "$zmq"
    wait_workers "$D" 2
else
    log "featurize job $feat was $fst, not caught running: second kill skipped"
fi

# the key is still known after the restart
again=$($KILN submit "$T/keyed.json" --dir "$D" --idempotency-key restart-key --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["existed"] is True, d; print(d["id"])') \
    || die "keyed resubmit after restart not answered as existing"
[ "$again" = "$keyed" ] || die "keyed resubmit after restart: id $again, was $keyed"

for id in "${ids[@]}"; do
    wait_job_state "$D" "$id" succeeded 50
done
[ "$(job_field "$D" "${ids[5]}" started_ns)" -ge "$(job_field "$D" "${ids[1]}" ended_ns)" ] || die "dependent job started before its dependency ended"

# nothing lost, nothing duplicated
got=$($KILN list --dir "$D" --json | "$PY" -c 'import json,sys; print(" ".join(str(j["id"]) for j in sorted(json.load(sys.stdin)["jobs"], key=lambda j: j["id"]) if not (j.get("array") or {}).get("parent")))')
inst=$($KILN list --dir "$D" --json | "$PY" -c '
import json, sys
P = int(sys.argv[1]); idx = [j["array"]["index"] for j in json.load(sys.stdin)["jobs"] if (j.get("array") or {}).get("parent") == P]
print(sorted(idx))' "$arr")
[ "$inst" = "[0, 1, 2, 3]" ] || die "array instances after restart: $inst (want one each of 0..3)"
want=$(printf '%s\n' "${ids[@]}" | sort -n | tr '\n' ' ' | sed 's/ $//')
[ "$got" = "$want" ] || die "kiln list has [$got], submitted [$want]"

for id in "${ids[@]}"; do
    t=$(job_field "$D" "$id" tasks.total); s=$(job_field "$D" "$id" tasks.succeeded)
    [ "$t" = "$s" ] || die "job $id: $s of $t tasks succeeded"
done
ha=$(h5_hash "$T/feat-alone.h5"); hb=$(h5_hash "$T/feat-cluster.h5")
[ -n "$ha" ] && [ "$ha" = "$hb" ] || die "featurize after restart: content_sha256 $hb, alone $ha"
kill -0 "${WORKER_PID[w1]}" && kill -0 "${WORKER_PID[w2]}" || die "a worker died"
echo "ok: ${#ids[@]} jobs succeeded across a kilnd kill -9; featurize hash $hb"
