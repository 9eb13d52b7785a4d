#!/usr/bin/env bash
# kilnd's HTTP API against bad requests: each gets the documented status and
# a JSON error ({"error": {"status", "message", "field"?}}), none changes the
# state (job count unchanged) and kilnd stays healthy.  Admission: with
# --max-active-jobs 5, a 6th active job gets 429 with Retry-After.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

D=$T/cl
start_kilnd "$D" --max-active-jobs 5
start_worker "$D" w1 --cores 1
wait_workers "$D" 1
URL=$(cat "$D/kilnd.url")

# one finished job to cancel later
done_id=$(submit_json "$D" '{"type":"noop","name":"finished","tasks":1}')
wait_job_state "$D" "$done_id" succeeded 20

njobs() { $KILN list --dir "$D" --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))'; }
n0=$(njobs)

# req NAME WANT_STATUS WANT_FIELD(- for none, * for any) curl-args...
req() {
    local name=$1 want=$2 field=$3; shift 3
    local code
    code=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' "$@") || die "$name: curl failed"
    [ "$code" = "$want" ] || die "$name: HTTP $code, want $want: $(head -c 300 "$T/body")"
    "$PY" - "$T/body" "$want" "$field" "$name" <<'PY' || die "$name: bad error body: $(head -c 300 "$T/body")"
import json, sys
body, want, field, name = sys.argv[1:]
e = json.load(open(body))["error"]
assert e["status"] == int(want), e
assert isinstance(e["message"], str) and e["message"], e
if field == "-":
    assert "field" not in e or e["field"] in (None, ""), e
elif field != "*":
    assert e.get("field") == field, e
    assert field in e["message"], e
print(f"{name}: {want} {e}")
PY
    grep -qi '^content-type: application/json' "$T/hdr" || die "$name: not application/json"
}

J=(-H 'Content-Type: application/json')
req "bad json"        400 '*' -X POST "${J[@]}" --data '{"type": "noop", "tasks": ' "$URL/v1/jobs"
req "not an object"   400 '*' -X POST "${J[@]}" --data '[1,2,3]' "$URL/v1/jobs"
req "empty body"      400 '*' -X POST "${J[@]}" --data '' "$URL/v1/jobs"
req "unknown field"   400 bogus_field -X POST "${J[@]}" --data '{"type":"noop","tasks":1,"bogus_field":1}' "$URL/v1/jobs"
req "wrong type"      400 tasks -X POST "${J[@]}" --data '{"type":"noop","tasks":"many"}' "$URL/v1/jobs"
req "wrong res type"  400 resources.cores -X POST "${J[@]}" --data '{"type":"noop","resources":{"cores":"x"}}' "$URL/v1/jobs"
req "unknown type"    400 type -X POST "${J[@]}" --data '{"type":"no-such-type"}' "$URL/v1/jobs"
req "bad priority"    400 priority -X POST "${J[@]}" --data '{"type":"noop","priority":"high"}' "$URL/v1/jobs"
req "bad array"       400 array -X POST "${J[@]}" --data '{"type":"noop","array":"5-1%x"}' "$URL/v1/jobs"
req "bad depends_on"  400 '*' -X POST "${J[@]}" --data '{"type":"noop","depends_on":["a"]}' "$URL/v1/jobs"
head -c $((1024 * 1024 + 100)) /dev/zero | tr '\0' ' ' >"$T/big.json"
req "body > 1 MiB"    413 '*' -X POST "${J[@]}" --data-binary "@$T/big.json" "$URL/v1/jobs"
req "unknown job"     404 '*' "$URL/v1/jobs/987654"
req "non-numeric id"  400 '*' "$URL/v1/jobs/abc"
req "negative id"     400 '*' "$URL/v1/jobs/-3"
req "unknown logs"    404 '*' "$URL/v1/jobs/987654/logs"
req "unknown cancel"  404 '*' -X POST "$URL/v1/jobs/987654/cancel"
req "unknown path"    404 '*' "$URL/v1/nope"
req "unknown path 2"  404 '*' "$URL/"
req "wrong method"    405 '*' -X DELETE "$URL/v1/jobs"
req "wrong method 2"  405 '*' -X GET "$URL/v1/jobs/$done_id/cancel"
req "wrong method 3"  405 '*' -X POST "${J[@]}" --data '{}' "$URL/v1/health"
req "bad state"       400 state "$URL/v1/jobs?state=sleeping"
req "bad limit"       400 limit "$URL/v1/jobs?limit=0"
req "bad limit 2"     400 limit "$URL/v1/jobs?limit=ten"
req "cancel finished" 409 '*' -X POST "$URL/v1/jobs/$done_id/cancel"
grep -q succeeded "$T/body" || die "409 message does not say the state: $(cat "$T/body")"

# nothing changed
[ "$(njobs)" = "$n0" ] || die "job count $(njobs) after bad requests, was $n0"
[ "$(job_field "$D" "$done_id" state)" = succeeded ] || die "finished job changed state"
curl -sf "$URL/v1/health" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["status"]=="ok", d' || die "kilnd unhealthy"
kill -0 "$KILND_PID" || die "kilnd died"

# --- admission: 5 active jobs fill the limit, the 6th gets 429
ids=()
for i in 1 2 3 4 5; do
    ids+=("$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"adm-$i\",\"tasks\":1,\"sleep_ms\":20000}")")
done
req "over admission" 429 '-' -X POST "${J[@]}" --data '{"type":"noop","name":"adm-6","tasks":1}' "$URL/v1/jobs"
grep -qi '^retry-after: *1' "$T/hdr" || die "429 without Retry-After: 1"
[ "$(njobs)" = $((n0 + 5)) ] || die "job count $(njobs), want $((n0 + 5))"
# a freed slot admits again
$KILN cancel "${ids[0]}" --dir "$D" >/dev/null
wait_job_state "$D" "${ids[0]}" cancelled 10
six=$(submit_json "$D" '{"type":"noop","name":"adm-6","tasks":1}')
[ -n "$six" ] || die "submit after a cancel refused"
for id in "${ids[@]:1}"; do $KILN cancel "$id" --dir "$D" >/dev/null; done
curl -sf "$URL/v1/health" >/dev/null || die "kilnd unhealthy at the end"
echo "ok: bad input answered, state unchanged, admission 429"
