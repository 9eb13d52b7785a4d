#!/usr/bin/env bash
# kill -9 of kiln-edge at every point of its update's swap (docs/edge.md,
# "Agent", "Swap"): one agent of a one-device fleet, started with the test
# hook KILN_TEST_SWAP_PAUSE=POINT:MS (edge/store.h, ke_store_test_pause), is
# killed -9 while paused at POINT:
#   staged           the bundle extracted into models/, the swap not begun
#   previous         previous relinked, current not yet
#   current-link     .current.new made, not yet renamed over current
#   current-renamed  current renamed, DIR not yet fsync'd
#   state            the new model loaded, state.json not yet written
# Each time a new swap comes from kilnd (publish of a new version, or
# `kiln rollback`).  After the kill DIR/current must resolve to a complete
# model directory (every member of its manifest.json there with its sha256),
# exactly the old one (the first three points) or the new one (the last
# two), and state.json must agree with current or be the old record that a
# restart corrects.  Restarted without the hook, the agent must first serve
# what current names (not fall back to previous), then converge to the
# fleet's version and seq and score a window with it through --socket.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
. tests/system/lib/fleet.sh
cluster_init
EDGE=$(dirname "$KILN")/kiln-edge
t0=$SECONDS

make_features 300 4 5
fleet_frames
fleet_kilnd 1
for trees in 60 70 80; do fleet_train_gbdt $trees; done    # bearing v1, v2, v3

$KILN fleet create line-9 --canary 1 --health-seconds 1 --dir "$D" >/dev/null ||
    die "fleet create"
tok=$($KILN device enroll --fleet line-9 --dir "$D" 2>/dev/null) || die "enroll token"
A=$T/a
"$EDGE" enroll --server "$FURL" --ca "$T/ca/ca.pem" --token "$tok" --dir "$A" --name a \
    >/dev/null 2>"$T/enroll.log" || die "enroll: $(cat "$T/enroll.log")"

APID=
RUN=0
start_agent() {  # start_agent [ENV=VALUE...]: a new log $T/agent.RUN.log
    RUN=$((RUN + 1))
    env "$@" "$EDGE" serve --dir "$A" --socket "$T/a.sock" --poll-seconds 1 \
        --report-seconds 1 >"$T/agent.$RUN.log" 2>&1 &
    APID=$!
    CLUSTER_PIDS+=($!)
}
kill9_agent() { kill -9 "$APID"; wait "$APID" 2>/dev/null || true; }
state_field() {
    "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' \
        "$A/state.json" "$1" 2>/dev/null || echo ""
}
rollout_stage() {
    curl -sf "$URL/v1/fleets/line-9/rollout" | "$PY" -c \
        'import json,sys; print(json.load(sys.stdin)["stage"])' 2>/dev/null || echo ""
}
# new_release CMD...: runs `kiln publish` or `kiln rollback`; VER and SEQ of the new rollout
new_release() {
    "$@" --dir "$D" >"$T/release.out" 2>&1 || die "$*: $(cat "$T/release.out")"
    VER=$(sed -n 's/^rollout [0-9]*: bearing@\([0-9]*\) .*/\1/p' "$T/release.out")
    SEQ=$(sed -n 's/^  seq \([0-9]*\),.*/\1/p' "$T/release.out")
    [ -n "$VER" ] && [ -n "$SEQ" ] || die "$*: no version or seq in: $(cat "$T/release.out")"
}
# complete DIR/current: a models/ directory with every member its manifest
# lists, sizes and sha256 as listed, and the manifest's version; prints it
check_model_dir() {
    "$PY" - "$A" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
target = os.readlink(os.path.join(d, "current"))
assert target.startswith("models/") and "/" not in target[7:], target
m = json.load(open(os.path.join(d, "current", "manifest.json")))
for mem in m["members"]:
    data = open(os.path.join(d, "current", mem["name"]), "rb").read()
    assert len(data) == mem["size"], (mem["name"], len(data))
    assert hashlib.sha256(data).hexdigest() == mem["sha256"], mem["name"]
print(target, m["model"]["version"])
PY
}
score() {  # prints the model a window is scored with through the socket
    "$PY" - "$T/one.bin" "$T/a.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[2])
s.sendall(open(sys.argv[1], "rb").read())
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk: break
    buf += chunk
print(json.loads(buf.decode().splitlines()[0])["model"])
PY
}
# converged: state.json, current and the running engine all on VER/SEQ
converged() {
    [ "$(state_field version)" = "$VER" ] && [ "$(state_field last_seq)" = "$SEQ" ] &&
        [ "$(state_field current)" = "$(readlink "$A/current")" ] &&
        readlink "$A/current" | grep -q "^models/s$SEQ-v$VER-" &&
        grep -q "serving bearing@$VER (current)" "$T/agent.$RUN.log"
}
settle() {  # the agent on VER/SEQ, scoring with it, and the rollout done
    wait_for "the agent on v$VER (seq $SEQ)" 30 converged
    wait_for "rollout of v$VER done" 30 bash -c "[ \"\$(curl -sf '$URL/v1/fleets/line-9/rollout' | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"stage\"])')\" = done ]"
    local m
    m=$(score) || die "no score through the socket"
    [ "$m" = "bearing@$VER" ] || die "scored with $m, the fleet is on bearing@$VER"
}

# --- the first model, without the hook
start_agent
new_release $KILN publish bearing@1 --fleet line-9
settle
log "v1 installed ($((SECONDS - t0)) s)"

# --- each point: a new release, the agent paused there, kill -9, check, restart
for step in "staged new publish bearing@2 old" "previous rollback - old" \
    "current-link rollback - old" "current-renamed rollback - new" \
    "state new publish bearing@3 new"; do
    set -- $step
    point=$1
    expect=${!#}
    old_target=$(readlink "$A/current")
    old_ver=$(state_field version)
    kill -TERM "$APID"; wait "$APID" 2>/dev/null || true
    start_agent KILN_TEST_SWAP_PAUSE="$point:30000"
    if [ "$2" = new ]; then
        new_release $KILN publish "$4" --fleet line-9
    else
        new_release $KILN rollback --fleet line-9
    fi
    wait_for "the agent paused at $point" 20 grep -q "swap: pausing at $point (" "$T/agent.$RUN.log"
    kill9_agent
    got=$(check_model_dir) || die "$point: current is not a complete model dir: $(ls -l "$A" "$A/models")"
    target=${got% *}; got_ver=${got#* }
    if [ "$expect" = old ]; then
        [ "$target" = "$old_target" ] && [ "$got_ver" = "$old_ver" ] ||
            die "$point: current -> $target (v$got_ver), expected the old $old_target (v$old_ver)"
        [ "$(state_field current)" = "$target" ] && [ "$(state_field version)" = "$old_ver" ] ||
            die "$point: state.json does not name the old model: $(cat "$A/state.json")"
    else
        case "$target" in models/s$SEQ-v$VER-*) ;; *)
            die "$point: current -> $target (v$got_ver), expected the new seq $SEQ v$VER" ;;
        esac
        [ "$got_ver" = "$VER" ] || die "$point: current's manifest says v$got_ver, not v$VER"
        # state.json still has the old record: the restart must correct it
        [ "$(state_field version)" = "$old_ver" ] ||
            die "$point: state.json changed before its write: $(cat "$A/state.json")"
    fi
    start_agent
    wait_for "the restarted agent serving" 10 grep -q "serving bearing@" "$T/agent.$RUN.log"
    first=$(grep -m1 "serving bearing@" "$T/agent.$RUN.log")
    [ "$first" = "kiln-edge: serving bearing@$got_ver (current)" ] ||
        die "$point: restarted, the agent first said \"$first\", expected bearing@$got_ver from current"
    settle
    [ ! -e "$A/.current.new" ] || die "$point: .current.new left behind after the next swap"
    log "$point: killed with current on the $expect model (v$got_ver); restarted on v$VER ($((SECONDS - t0)) s)"
done

# one rollout per release: no swap was published twice
n=$(curl -sf "$URL/v1/rollouts?fleet=line-9&limit=50" | "$PY" -c \
    'import json,sys; print(len(json.load(sys.stdin)["rollouts"]))')
[ "$n" = 6 ] || die "$n rollouts, expected 6"
kill "$APID"; wait "$APID" 2>/dev/null || true
! grep -l "runtime error\|AddressSanitizer\|LeakSanitizer" "$T"/agent.*.log ||
    die "sanitizer report in an agent log"
log "kill -9 at every swap point: old or new model, never neither ($((SECONDS - t0)) s)"
