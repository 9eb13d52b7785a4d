#!/usr/bin/env bash
# Issue 9's attack tests against a live `kiln-edge serve --dir` agent and the
# real kilnd fleet endpoint.  The agent is enrolled through a malicious mirror
# (tests/system/lib/mitm_proxy.py: TLS with the test CA's server certificate,
# forwarding to kilnd) that serves forged envelopes and bundles; the forged
# releases are made by `edge-sign craft` (tests/system/edge_sign.c) with
# kilnd's own publisher key where a later check must be the one that refuses.
# Each attack must be refused with its reason in the agent's log and in its
# next report to kilnd (the mirror logs each report and kilnd's answer; kilnd
# keeps the message, and `kiln device show` prints it), while the agent keeps scoring
# windows with the same model and DIR/current names the same directory.
# Attacks: a flipped byte in a real bundle (and the release installs once the
# tampering stops), another signing key, a replayed older envelope, an
# expired manifest, members "../x" and "/etc/x", a symlink member, a member
# larger than declared, a bundle for another fleet, a revoked device.
# Loopback only; every wait is bounded; every process is killed on exit.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
. tests/system/lib/fleet.sh
cluster_init
EDGE=$BIN_DIR/kiln-edge
fleet_sign_tool

# --- two validated gbdt versions of "bearing" through kilnd
make_features 300 4 5
fleet_frames
fleet_kilnd 1
fleet_train_gbdt 40
fleet_train_gbdt 50
$KILN fleet create plant-7 --canary 1 --health-seconds 1 --dir "$D" >/dev/null || die "fleet create"

# --- the malicious mirror, and one agent enrolled through it
CTL=$T/ctl
mkdir -p "$CTL"
"$PY" tests/system/lib/mitm_proxy.py "$FURL" "$T/ca/server.pem" "$T/ca/server.key" "$T/ca/ca.pem" \
    "$CTL" "$T/mitm.port" >"$T/mitm.log" 2>&1 &
CLUSTER_PIDS+=($!)
wait_for "the mirror" 10 test -s "$T/mitm.port"
MURL=https://127.0.0.1:$(cat "$T/mitm.port")
tok=$($KILN device enroll --fleet plant-7 --dir "$D") || die "token"
A=$T/a1
"$EDGE" enroll --server "$MURL" --ca "$T/ca/ca.pem" --token "$tok" --dir "$A" --name a1 \
    >"$T/a1.id" 2>"$T/a1.enroll.log" || die "enroll: $(cat "$T/a1.enroll.log")"
DEV=$(cat "$T/a1.id")
"$EDGE" serve --dir "$A" --socket "$T/a1.sock" --poll-seconds 1 --report-seconds 1 \
    >>"$T/a1.log" 2>&1 &
AGENT=$!
CLUSTER_PIDS+=($AGENT)

version_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("version", 0))' "$A/state.json" 2>/dev/null || echo 0; }
at_version() { [ "$(version_of)" = "$1" ]; }
score() {  # the model that scores one window through the agent's socket
    timeout 10 "$PY" - "$T/one.bin" "$T/a1.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(8); s.connect(sys.argv[2])
s.sendall(open(sys.argv[1], "rb").read())
buf = b""
while not buf.endswith(b"\n"):
    b = s.recv(65536)
    if not b: break
    buf += b
print(json.loads(buf)["model"])
PY
}
report_says() {  # the device's report, accepted and kept by kilnd, says $1
    local out
    out=$($KILN device show "$DEV" --dir "$D" 2>&1) || return 1
    grep -F "mitm: report to kilnd (HTTP 200)" "$T/mitm.log" | grep -qF "$1" &&
        grep '^  says: ' <<<"$out" | grep -qF "$1"
}
publish_wait() {  # publish_wait VERSION
    $KILN publish "bearing@$1" --fleet plant-7 --dir "$D" >"$T/pub$1.out" 2>&1 ||
        die "publish v$1: $(cat "$T/pub$1.out")"
}

# --- v1 through the mirror untouched; its envelope is captured for a replay
publish_wait 1
wait_for "a1 on v1" 60 at_version 1
cp "$CTL/seen-manifest" "$T/v1.env"
[ "$(score)" = bearing@1 ] || die "a1 does not score with bearing@1"

# untouched: the agent scores with $1 and current names what it named
CUR=
expect_untouched() {
    local m
    m=$(score) || die "$2: the agent no longer scores a window"
    [ "$m" = "$1" ] || die "$2: the agent scores with $m, not $1"
    [ "$(readlink "$A/current")" = "$CUR" ] || die "$2: current moved to $(readlink "$A/current")"
    kill -0 $AGENT || die "$2: the agent exited"
    [ ! -e "$A/models/x" ] && [ ! -e "$A/x" ] && [ ! -e /etc/x ] || die "$2: a file was written outside staging"
}
# refused ATTACK SEQ REASON RUNNING: wait for the agent's refusal of envelope
# SEQ with REASON, then its report, then check the running model
refused() {
    local what=$1 seq=$2 reason=$3 running=$4
    wait_for "$what refused" 30 grep -q "envelope seq $seq refused ($reason)" "$T/a1.log" ||
        die "$what: not refused with $reason: $(tail -5 "$T/a1.log")"
    wait_for "$what in a1's report" 15 report_says "refused seq $seq ($reason)" ||
        die "$what: kilnd did not get the report: $(grep "report to kilnd" "$T/mitm.log" | tail -3)"
    expect_untouched "$running" "$what"
    log "attack $what: refused with $reason"
    echo "attack $what: refused with $reason: $(grep -m1 "envelope seq $seq refused ($reason)" "$T/a1.log" | sed 's/^kiln-edge: update: //')"
}

# --- 1. one flipped byte in the bundle of a real publication (v2, seq 2)
CUR=$(readlink "$A/current")
touch "$CTL/flip"
publish_wait 2
refused "flipped-byte" 2 bundle-sha256 bearing@1
grep -q "flipped byte" "$T/mitm.log" || die "the mirror flipped nothing"
# a refused bundle is fetched again only after a backoff (2 polls, then 4, ...)
grep -q "the bundle of seq 2 was refused (1 in a row); next download in 2 s" "$T/a1.log" ||
    die "no backoff after the refused bundle: $(grep 'seq 2' "$T/a1.log" | tail -3)"
# the tampering stops: the same signed release installs (no freeze)
rm -f "$CTL/flip"
wait_for "a1 on v2 once the tampering stopped" 30 at_version 2 ||
    die "a1 never installed v2 after a transient tamper: $(tail -5 "$T/a1.log")"
[ "$(score)" = bearing@2 ] || die "a1 does not score with bearing@2"
CUR=$(readlink "$A/current")
PK_SK=$D/publisher.sk
[ -f "$PK_SK" ] || die "no publisher key at $PK_SK"
FK=$A/fleet.key
"$SIGN" signkey "$T/other.sk" "$T/other.pk" || die "signkey"

# forge KIND SEQ SK: a release the mirror serves from now on
forge() {
    rm -f "$CTL/manifest" "$CTL/bundle"
    "$SIGN" craft "$1" "$A/current" "$3" "$FK" "$2" 3 "$T/$1.env" "$T/$1.bundle" ||
        die "craft $1"
    cp "$T/$1.bundle" "$CTL/bundle.tmp" && mv "$CTL/bundle.tmp" "$CTL/bundle"
    cp "$T/$1.env" "$CTL/manifest.tmp" && mv "$CTL/manifest.tmp" "$CTL/manifest"
}
# control: the same forging, well-formed but from another key, differs only
# in the key (the next cases use kilnd's key and a correct signature)
forge good 101 "$T/other.sk"
refused "another-key" 101 signature bearing@2
# the replay: v1's genuine envelope, captured by the mirror, served again
rm -f "$CTL/bundle"
cp "$T/v1.env" "$CTL/manifest.tmp" && mv "$CTL/manifest.tmp" "$CTL/manifest"
refused "replayed-older" 1 older-version bearing@2
forge expired 102 "$PK_SK";  refused "expired" 102 expired bearing@2
forge dotdot 103 "$PK_SK";   refused "member-../x" 103 member-path bearing@2
forge absolute 104 "$PK_SK"; refused "member-/etc/x" 104 member-path bearing@2
forge symlink 105 "$PK_SK";  refused "symlink-member" 105 member-link bearing@2
forge toobig 106 "$PK_SK";   refused "larger-than-declared" 106 member-too-big bearing@2
forge fleet 107 "$PK_SK";    refused "other-fleet" 107 fleet bearing@2
rm -f "$CTL/manifest" "$CTL/bundle"
# nothing refused was kept: seq and version are still v2's
[ "$(version_of)" = 2 ] || die "state.json moved to version $(version_of)"
"$PY" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["last_seq"] == 2 else 1)' \
    "$A/state.json" || die "last_seq moved: $(cat "$A/state.json")"
# the control: a well-formed release with kilnd's key is accepted, so the
# refusals above came from the attack, not from the forging
forge good 110 "$PK_SK"
wait_for "a1 on the forged control v3" 30 at_version 3 ||
    die "a1 refused a well-formed release: $(tail -5 "$T/a1.log")"
log "control: a well-formed release signed with kilnd's key installs (v3)"
rm -f "$CTL/manifest" "$CTL/bundle"
CUR=$(readlink "$A/current")

# --- revoked enrollment: kilnd refuses the device, which keeps serving
$KILN device revoke "$DEV" --dir "$D" >/dev/null || die "revoke"
curl -sf "$URL/v1/devices/$DEV" | grep -q '"revoked": *true' || die "kilnd does not show $DEV revoked"
wait_for "a1 told it was revoked" 30 grep -q "was revoked" "$T/a1.log" ||
    die "revoked: the agent did not say so: $(tail -5 "$T/a1.log")"
grep -q '" 403 ' "$T/mitm.log" || die "revoked: kilnd did not answer 403"
sleep 2
expect_untouched bearing@3 revoked
echo "attack revoked-device: refused by kilnd with 403: $(grep -m1 "was revoked" "$T/a1.log" | sed 's/^kiln-edge: update: //')"
log "attack revoked-device: refused by kilnd (403), agent still serving bearing@3"

kill $AGENT
wait $AGENT 2>/dev/null || true
! grep -l "runtime error\|AddressSanitizer\|LeakSanitizer" "$T"/*.log || die "sanitizer report in a log"
log "edge attacks ok"
