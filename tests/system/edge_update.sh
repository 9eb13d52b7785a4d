#!/usr/bin/env bash
# kiln-edge's update path against the real kilnd (docs/edge.md, "Agent"):
# three agents enrolled with `kiln-edge enroll` (device key, the test CA
# pinned, the publisher and fleet keys from the enroll answer) poll kilnd's
# HTTPS fleet endpoint; one of them reaches it through a proxy that cuts its
# first bundle download half way (it resumes with Range).  kiln publish v1:
# the canary, then after the health window every agent runs it; v2 the same,
# with one agent killed -9 in the middle of its swap (old or new model, never
# neither; restarted it converges); a canary forced unhealthy halts its
# fleet's rollout; kiln rollback: every agent applies the signed rollback;
# kilnd gone: the agents keep scoring windows with the last good model.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
. tests/system/lib/fleet.sh
cluster_init
EDGE=$(dirname "$KILN")/kiln-edge

# --- data, two validated gbdt versions of "bearing" through kilnd
make_features 300 4 5
fleet_frames
fleet_kilnd 1
fleet_train_gbdt 60
fleet_train_gbdt 80

$KILN fleet create plant-7 --canary 0.3 --health-seconds 3 --dir "$D" >/dev/null || die "fleet create"
$KILN fleet create plant-8 --canary 1 --health-seconds 3 --dir "$D" >/dev/null || die "fleet create 8"

# --- the cutting proxy in front of the fleet endpoint, for agent a1
FPORT=${FURL##*:}
"$PY" tests/system/lib/cut_proxy.py "$FPORT" 30000 "$T/proxy.port" >"$T/proxy.log" 2>&1 &
CLUSTER_PIDS+=($!)
wait_for "proxy" 10 test -s "$T/proxy.port"
PURL=https://127.0.0.1:$(cat "$T/proxy.port")

# --- enroll
enroll() {  # enroll NAME FLEET SERVER
    local tok
    tok=$($KILN device enroll --fleet "$2" --dir "$D") || die "token for $1"
    "$EDGE" enroll --server "$3" --ca "$T/ca/ca.pem" --token "$tok" --dir "$T/$1" --name "$1" \
        >"$T/$1.id" 2>"$T/$1.enroll.log" || die "enroll $1: $(cat "$T/$1.enroll.log")"
}
enroll a1 plant-7 "$PURL"
enroll a2 plant-7 "$FURL"
enroll a3 plant-7 "$FURL"
enroll c8 plant-8 "$FURL"
[ "$(stat -c %a "$T/a1/device.sk")" = 600 ] || die "device.sk mode"
[ -s "$T/a1/publisher.pk" ] && [ -s "$T/a1/fleet.key" ] || die "enroll kept no publisher/fleet key"
# the same token twice is refused, by the server, with its reason
declare -A APID
start_agent() {  # start_agent NAME [ARGS]
    local n=$1; shift
    "$EDGE" serve --dir "$T/$n" --socket "$T/$n.sock" --poll-seconds 1 --report-seconds 1 "$@" \
        >>"$T/$n.log" 2>&1 &
    APID[$n]=$!
    CLUSTER_PIDS+=($!)
}
for n in a1 a2 a3; do start_agent $n; done
start_agent c8 --force-unhealthy
sleep 1
for n in a1 a2 a3 c8; do kill -0 "${APID[$n]}" || die "agent $n exited: $(cat "$T/$n.log")"; done
version_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("version", 0))' "$T/$1/state.json" 2>/dev/null || echo 0; }
all_at() { for n in a1 a2 a3; do [ "$(version_of $n)" = "$1" ] || return 1; done; }
count_at() { local k=0; for n in a1 a2 a3; do [ "$(version_of $n)" = "$1" ] && k=$((k + 1)); done; echo $k; }
resolves() { [ -f "$T/$1/current/model.kmodel" ]; }

# --- publish v1: canary first, then everyone after the health window
$KILN publish bearing@1 --fleet plant-7 --dir "$D" >"$T/pub1.out" 2>&1 || die "publish v1: $(cat "$T/pub1.out")"
wait_for "a canary on v1" 30 bash -c "[ \$(cd '$T' && for n in a1 a2 a3; do cat \$n/state.json 2>/dev/null; echo; done | grep -c '\"version\":1') -ge 1 ]"
n1=$(count_at 1)
[ "$n1" -le 2 ] || die "v1 reached $n1 agents before the canary's health window"
wait_for "every agent on v1" 60 all_at 1
log "v1 rolled out (canary first: $n1 agent(s) before the window)"
grep -q "resuming at byte" "$T/a1.log" || die "a1's cut download did not resume: $(cat "$T/a1.log" "$T/proxy.log")"
grep -q "cut a connection" "$T/proxy.log" || die "the proxy cut nothing"
for n in a1 a2 a3; do resolves $n || die "$n: current does not resolve"; done
# reports reach kilnd: model, version, health, latency, feature stats
"$PY" - "$T/one.bin" "$T/a2.sock" <<'PY' >"$T/score.out" || die "a2 did not score a window"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[2]); s.sendall(open(sys.argv[1], "rb").read())
buf = b""
while not buf.endswith(b"\n"): buf += s.recv(65536)
print(buf.decode().strip())
PY
grep -q '"model":"bearing@1"' "$T/score.out" || die "a2 scored with: $(cat "$T/score.out")"
check_report() {
    curl -sf "$URL/v1/devices?fleet=plant-7" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
dev = [x for x in d["devices"] if x["id"] == sys.argv[1]][0]
r = dev["report"]
ok = r["health"] == "ok" and r["version"] == 1 and r["latency_us"]["p99"] > 0 \
    and r["features"]["scored"] >= 1 and len(r["features"]["stats"]) > 0
sys.exit(0 if ok else 1)' "$(cat "$T/a2.id")"
}
wait_for "a2's report with latency and feature stats" 10 check_report

# --- the forced-unhealthy canary halts plant-8's rollout
$KILN publish bearing@1 --fleet plant-8 --dir "$D" >/dev/null 2>&1 || die "publish to plant-8"
halted() { curl -sf "$URL/v1/fleets/plant-8/rollout" | grep -q '"stage": *"halted"'; }
wait_for "plant-8 halted" 30 halted

# --- v2, with a3 killed -9 in the middle of its swap
kill -9 "${APID[a3]}"
KILN_TEST_SWAP_PAUSE=previous:4000 start_agent a3
$KILN publish bearing@2 --fleet plant-7 --dir "$D" >/dev/null 2>&1 || die "publish v2"
wait_for "a3 in its swap" 60 grep -q "pausing at previous" "$T/a3.log"
kill -9 "${APID[a3]}"
resolves a3 || die "a3 killed in its swap: current resolves to nothing"
log "a3 killed mid-swap: current -> $(readlink "$T/a3/current")"
start_agent a3
wait_for "every agent on v2" 90 all_at 2
for n in a1 a2 a3; do resolves $n || die "$n: current does not resolve"; done

# --- signed rollback to v1
$KILN rollback --fleet plant-7 --dir "$D" >"$T/rb.out" 2>&1 || die "rollback: $(cat "$T/rb.out")"
wait_for "every agent back on v1" 60 all_at 1
grep -q "signed rollback to bearing v1" "$T/a2.log" || die "a2: $(tail "$T/a2.log")"

# --- offline: kilnd gone, the agents keep serving
kill -9 "$KILND_PID"
sleep 3
for n in a1 a2 a3; do kill -0 "${APID[$n]}" || die "$n died without kilnd"; done
"$PY" - "$T/one.bin" "$T/a1.sock" <<'PY' >"$T/score2.out" || die "a1 offline did not score"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[2]); s.sendall(open(sys.argv[1], "rb").read())
buf = b""
while not buf.endswith(b"\n"): buf += s.recv(65536)
print(buf.decode().strip())
PY
grep -q '"model":"bearing@1"' "$T/score2.out" || die "a1 offline: $(cat "$T/score2.out")"
grep -q "serving the last good model" "$T/a1.log" || die "a1 did not say it is offline"
for n in a1 a2 a3 c8; do kill "${APID[$n]}"; done
for n in a1 a2 a3 c8; do wait "${APID[$n]}" 2>/dev/null || true; done
! grep -l "runtime error\|AddressSanitizer\|LeakSanitizer" "$T"/*.log || die "sanitizer report in an agent log"
log "edge update path ok"
