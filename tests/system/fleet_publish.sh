#!/usr/bin/env bash
# Publish and rollback end to end (docs/edge.md, "Fleet protocol"): a tiny
# logreg trained through kilnd; an encrypted fleet of two curl-signed
# "devices" (tests/system/edge_sign.c) enrolled over the HTTPS fleet
# endpoint, whose enroll answer carries the publisher key (the same that
# `kiln fleet pubkey` prints) and the fleet key; publish starts a canary
# rollout: only the canary gets the envelope, downloads the bundle with a
# Range request resumed in two parts, and the envelope and bundle verify
# and extract as an agent would (edge-sign verify: storage/bundle.h); the
# canary's healthy report moves the rollout to full and the other device
# then gets it too; a model whose run failed its gate, an unknown one and a
# version not above the fleet's are refused; a canary unhealthy on v2 halts
# the rollout; `kiln rollback` gives every device a signed rollback envelope
# (new seq) that verifies as a rollback for a device on v2 and is refused as
# a replay once seen; a second rollback has nothing to go back to; the
# publisher key files are made once (secret 0600) and never rewritten.
# Loopback only; bounded waits; every process is killed on exit.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
. tests/system/lib/fleet.sh
cluster_init
fleet_sign_tool

# --- features and a kilnd with a worker and the fleet endpoint
make_features 240 6 3
fleet_kilnd 1

spec() {
    printf '{"type":"train","name":"%s","input":"%s","output":"%s/%s-%s.kmodel","model":{"kind":"logreg","C":1.0,"max_iter":100},"target":"label","validation":{"split":"time","fraction":0.25%s},"seed":7,"max_retries":0}' \
        "$1" "$T/feat.h5" "$T" "$1" "$RANDOM" "${2:-}"
}
for i in 1 2; do
    id=$(submit_json "$D" "$(spec bearing)") || die "submit train"
    wait_job_state "$D" "$id" succeeded 60
done
id=$(submit_json "$D" "$(spec strict ',"min_accuracy":0.9999')") || die "submit strict train"
wait_job_state "$D" "$id" succeeded 60
$KILN models --dir "$D" --json | pyj '[m["name"] for m in d["models"]]' | grep -q strict \
    && die "the strict run made a version"

# --- an encrypted fleet (the default) and two enrolled devices
$KILN fleet create plant-7 --canary 0.5 --health-seconds 1 --dir "$D" >/dev/null || die "fleet create"
# enroll NAME: a key pair in $T/NAME, the enroll answer in $T/NAME.json
enroll() {
    mkdir -p "$T/$1"
    local tok pk r
    tok=$($KILN device enroll --fleet plant-7 --dir "$D" 2>/dev/null) || die "token"
    pk=$("$SIGN" keygen "$T/$1")
    printf '{"token":"%s","public_key":"%s","name":"%s"}' "$tok" "$pk" "$1" >"$T/$1.req"
    "$SIGN" headers "$T/$1/device.sk" POST /edge/v1/enroll "$T/$1.req" >"$T/h"
    r=$(fcurl -X POST -H @"$T/h" --data-binary @"$T/$1.req" "$FURL/edge/v1/enroll")
    [ "$(status_of "$r")" = 201 ] || die "enroll $1: $r"
    body_of "$r" >"$T/$1.json"
}
enroll press-1
enroll press-2
DEV1=$(pyj 'd["device_id"]' <"$T/press-1.json")
DEV2=$(pyj 'd["device_id"]' <"$T/press-2.json")
# the keys an agent keeps: publisher key (trust anchor) and fleet key
pyj 'd["publisher_key"]' <"$T/press-1.json" | sed '/^$/d' >"$T/publisher.pk"
pyj 'd["fleet_key"]' <"$T/press-1.json" | sed '/^$/d' >"$T/fleet.key"
chmod 0644 "$T/publisher.pk"; chmod 0600 "$T/fleet.key"
grep -q '^KILN-ED25519-PK1 ' "$T/publisher.pk" || die "enroll answer's publisher_key: $(cat "$T/press-1.json")"
grep -q '^KILN-FLEET-KEY1 ' "$T/fleet.key" || die "enroll answer's fleet_key"
[ "$($KILN fleet pubkey plant-7 --dir "$D")" = "$(cat "$T/publisher.pk")" ] || die "kiln fleet pubkey differs from the enroll answer"
$KILN fleet show plant-7 --dir "$D" | grep -q "publisher key.*KILN-ED25519-PK1" || die "fleet show lacks the publisher key"
[ "$(stat -c %a "$D/publisher.sk")" = 600 ] || die "publisher.sk mode $(stat -c %a "$D/publisher.sk")"
PK_SUM=$(sha256sum "$D/publisher.pk" "$D/publisher.sk")
# the admin listener never hands out a fleet key
curl -s "$URL/v1/fleets/plant-7" | grep -q KILN-FLEET-KEY1 && die "fleet key on the admin API"

# poll DEV SKDIR: the manifest answer (body, then status)
poll() {
    "$SIGN" headers "$T/$2/device.sk" GET /edge/v1/manifest - "$1" >"$T/h"
    fcurl -H @"$T/h" "$FURL/edge/v1/manifest"
}
# report DEV SKDIR VERSION HEALTH
report() {
    printf '{"model":"bearing","version":%s,"health":"%s"}' "$3" "$4" >"$T/report.json"
    "$SIGN" headers "$T/$2/device.sk" POST /edge/v1/report "$T/report.json" "$1" >"$T/h"
    [ "$(status_of "$(fcurl -X POST -H @"$T/h" --data-binary @"$T/report.json" "$FURL/edge/v1/report")")" = 200 ] \
        || die "report from $1"
}
# wait_stage STAGE: the fleet's current rollout reaches STAGE within 20 s
wait_stage() {
    local i
    for i in $(seq 100); do
        [ "$(curl -s "$URL/v1/fleets/plant-7/rollout" | pyj 'd["stage"]')" = "$1" ] && return 0
        sleep 0.2
    done
    die "rollout never reached $1: $(curl -s "$URL/v1/fleets/plant-7/rollout")"
}

# --- refusals: a model that failed its gate, an unknown one
R=$(curl -s -w '\n%{http_code}' -X POST -d '{"model":"strict@1","fleet":"plant-7"}' "$URL/v1/publish")
[ "$(status_of "$R")" = 409 ] && grep -q "validation gate" <<<"$R" || die "publish of a rejected model: $R"
$KILN publish strict --fleet plant-7 --dir "$D" 2>"$T/err" && die "kiln publish of a rejected model succeeded"
grep -q "validation gate" "$T/err" || die "kiln publish strict said: $(cat "$T/err")"
R=$(curl -s -w '\n%{http_code}' -X POST -d '{"model":"nope@1","fleet":"plant-7"}' "$URL/v1/publish")
[ "$(status_of "$R")" = 404 ] || die "publish of an unknown model: $R"
R=$(curl -s -w '\n%{http_code}' -X POST -d '{"fleet":"plant-7"}' "$URL/v1/rollback")
[ "$(status_of "$R")" = 409 ] && grep -q "nothing to roll back" <<<"$R" || die "rollback before any publish: $R"

# --- publish v1: a canary rollout with one canary of two
$KILN publish bearing@1 --fleet plant-7 --expires-days 7 --dir "$D" --json >"$T/pub1.json" 2>"$T/err" || die "publish bearing@1: $(cat "$T/err")"
[ "$(pyj '(d["stage"], d["seq"], d["canaries"], d["version"])' <"$T/pub1.json")" = "('canary', 1, 1, 1)" ] \
    || die "publish answer: $(cat "$T/pub1.json")"
BUNDLE=$(pyj 'd["bundle_sha256"]' <"$T/pub1.json")
CANARY=$(curl -s "$URL/v1/fleets/plant-7/rollout" | pyj 'd["canary_devices"][0]["id"]')
if [ "$CANARY" = "$DEV1" ]; then C=press-1 O=press-2 OTHER=$DEV2; else C=press-2 O=press-1 OTHER=$DEV1; fi
R=$(poll "$OTHER" "$O")
[ "$(status_of "$R")" = 204 ] || die "a non-canary got the canary's envelope: $R"
R=$(poll "$CANARY" "$C")
[ "$(status_of "$R")" = 200 ] || die "the canary's manifest: $R"
body_of "$R" >"$T/env1.json"
[ "$(pyj '(d["bundle_sha256"], d["seq"], d["rollback"])' <"$T/env1.json")" = "('$BUNDLE', 1, False)" ] \
    || die "envelope: $(cat "$T/env1.json")"
EXP=$(pyj 'd["expires"]' <"$T/env1.json")
NOW=$(date +%s)
[ $((EXP - NOW)) -gt $((6 * 86400)) ] && [ $((EXP - NOW)) -le $((7 * 86400)) ] || die "expires $EXP, now $NOW (7 days asked)"

# --- the bundle in two Range requests, as a resumed download
SIZE=$(pyj 'd["bundle_size"]' <"$T/env1.json")
HALF=$((SIZE / 2))
"$SIGN" headers "$T/$C/device.sk" GET "/edge/v1/bundle/$BUNDLE" - "$CANARY" >"$T/h"
code=$(curl -sS --max-time 10 --cacert "$T/ca/ca.pem" -H @"$T/h" -H "Range: bytes=0-$((HALF - 1))" \
    -o "$T/part1" -w '%{http_code}' "$FURL/edge/v1/bundle/$BUNDLE")
[ "$code" = 206 ] && [ "$(stat -c %s "$T/part1")" = "$HALF" ] || die "first part: $code, $(stat -c %s "$T/part1") bytes"
"$SIGN" headers "$T/$C/device.sk" GET "/edge/v1/bundle/$BUNDLE" - "$CANARY" >"$T/h"
curl -sS --max-time 10 --cacert "$T/ca/ca.pem" -H @"$T/h" -H "Range: bytes=$HALF-" -D "$T/hdr2" \
    -o "$T/part2" "$FURL/edge/v1/bundle/$BUNDLE"
grep -qi "^content-range: bytes $HALF-$((SIZE - 1))/$SIZE" "$T/hdr2" || die "second part's headers: $(cat "$T/hdr2")"
cat "$T/part1" "$T/part2" >"$T/bundle1"
[ "$(sha256sum <"$T/bundle1" | cut -d' ' -f1)" = "$BUNDLE" ] || die "the resumed bundle's sha256"
# what an agent checks, then extracts; the bundle is encrypted: no fleet key, no bundle
V=$("$SIGN" verify "$T/env1.json" "$T/publisher.pk" plant-7 - 0 "$T/bundle1" "$T/fleet.key" "$T/stage1") \
    || die "verify v1: $V"
[ "$V" = "ok bearing 1 seq=1 rollback=0" ] || die "verify v1 said: $V"
for m in manifest.json model.kmodel featspec.json; do [ -f "$T/stage1/$m" ] || die "extracted $m missing"; done
V=$("$SIGN" verify "$T/env1.json" "$T/publisher.pk" plant-7 - 0 "$T/bundle1" - "$T/stage1b") && die "extracted without the fleet key: $V"
V=$("$SIGN" verify "$T/env1.json" "$T/publisher.pk" plant-8 - 0) && die "another fleet accepted: $V"
grep -q fleet <<<"$V" || die "another fleet's refusal: $V"

# --- the canary reports healthy: full, and the other device gets v1 too
report "$CANARY" "$C" 1 ok
wait_stage full
R=$(poll "$OTHER" "$O")
[ "$(status_of "$R")" = 200 ] && [ "$(body_of "$R" | pyj 'd["seq"]')" = 1 ] || die "non-canary after full: $R"
report "$OTHER" "$O" 1 ok
wait_stage done

# --- a version not above the fleet's is refused; v2 with an unhealthy canary halts
R=$(curl -s -w '\n%{http_code}' -X POST -d '{"model":"bearing@1","fleet":"plant-7"}' "$URL/v1/publish")
[ "$(status_of "$R")" = 409 ] && grep -q "newer version" <<<"$R" || die "republish of v1: $R"
$KILN publish bearing@2 --fleet plant-7 --dir "$D" --json >"$T/pub2.json" 2>"$T/err" || die "publish bearing@2: $(cat "$T/err")"
[ "$(pyj '(d["seq"], d["version"])' <"$T/pub2.json")" = "(2, 2)" ] || die "publish 2: $(cat "$T/pub2.json")"
CANARY=$(curl -s "$URL/v1/fleets/plant-7/rollout" | pyj 'd["canary_devices"][0]["id"]')
if [ "$CANARY" = "$DEV1" ]; then C=press-1 O=press-2 OTHER=$DEV2; else C=press-2 O=press-1 OTHER=$DEV1; fi
R=$(poll "$OTHER" "$O")
[ "$(body_of "$R" | pyj '(d["manifest"]["model"]["version"], d["seq"])')" = "(1, 1)" ] || die "non-canary during v2's canary: $R"
report "$CANARY" "$C" 2 unhealthy
wait_stage halted

# --- rollback: a signed rollback envelope, seq 3, for every device
$KILN rollback --fleet plant-7 --dir "$D" >"$T/rb.out" || die "kiln rollback: $(cat "$T/rb.out")"
grep -q "(rollback)" "$T/rb.out" && grep -q "seq 3" "$T/rb.out" || die "rollback said: $(cat "$T/rb.out")"
[ "$(curl -s "$URL/v1/fleets/plant-7/rollout" | pyj '(d["stage"], d["rollback"], d["version"])')" = "('full', True, 1)" ] \
    || die "rollback rollout: $(curl -s "$URL/v1/fleets/plant-7/rollout")"
for dev in "$CANARY:$C" "$OTHER:$O"; do
    R=$(poll "${dev%%:*}" "${dev##*:}")
    [ "$(status_of "$R")" = 200 ] || die "manifest after rollback: $R"
    body_of "$R" >"$T/env-rb.json"
    [ "$(pyj '(d["rollback"], d["seq"], d["bundle_sha256"])' <"$T/env-rb.json")" = "(True, 3, '$BUNDLE')" ] \
        || die "rollback envelope: $(cat "$T/env-rb.json")"
done
V=$("$SIGN" verify "$T/env-rb.json" "$T/publisher.pk" plant-7 bearing@2 2 "$T/bundle1" "$T/fleet.key" "$T/stage-rb") \
    || die "verify rollback: $V"
[ "$V" = "ok bearing 1 seq=3 rollback=1" ] || die "verify rollback said: $V"
# the first envelope (v1, not a rollback) is refused by a device on v2; the
# rollback envelope by one that saw seq 3 already
V=$("$SIGN" verify "$T/env1.json" "$T/publisher.pk" plant-7 bearing@2 2) && die "v1 taken over v2 without rollback: $V"
grep -q older-version <<<"$V" || die "v1 over v2 refused for: $V"
V=$("$SIGN" verify "$T/env-rb.json" "$T/publisher.pk" plant-7 bearing@2 3) && die "replayed rollback accepted: $V"
grep -q replayed-seq <<<"$V" || die "replayed rollback refused for: $V"
# nothing before v1 went full: a second rollback has nowhere to go
R=$(curl -s -w '\n%{http_code}' -X POST -d '{"fleet":"plant-7"}' "$URL/v1/rollback")
[ "$(status_of "$R")" = 409 ] && grep -q "nothing to roll back to" <<<"$R" || die "second rollback: $R"
[ "$(sha256sum "$D/publisher.pk" "$D/publisher.sk")" = "$PK_SUM" ] || die "the publisher key files changed"
curl -s "$URL/v1/rollouts?fleet=plant-7" | pyj '[(r["id"], r["stage"]) for r in d["rollouts"]]' >"$T/ro"
grep -q "(1, 'done'), \|(1, 'done')]" "$T/ro" || grep -q "(1, 'done')" "$T/ro" || die "rollouts: $(cat "$T/ro")"

# --- re-signing: a release signed for 4 s is re-signed by kilnd once half of
# that has passed (same seq and bundle), so it still verifies after the
# first expiry, while the first envelope is refused as expired
$KILN fleet create plant-r --no-encrypt --dir "$D" >/dev/null || die "fleet create plant-r"
R=$(curl -s -w '\n%{http_code}' -X POST -d '{"model":"bearing@2","fleet":"plant-r","expires_s":4}' "$URL/v1/publish")
[ "$(status_of "$R")" = 201 ] || die "publish to plant-r: $R"
E0=$(body_of "$R" | pyj 'd["envelope_sha256"]')
X0=$(body_of "$R" | pyj 'd["expires_at"]')
resigned() { [ "$(curl -s "$URL/v1/fleets/plant-r/rollout" | pyj 'd["envelope_sha256"]')" != "$E0" ]; }
wait_for "kilnd to re-sign plant-r's envelope" 10 resigned || die "plant-r's envelope never re-signed"
for _ in $(seq 50); do [ "$(date +%s)" -gt "$X0" ] && break; sleep 0.2; done
RO=$(curl -s "$URL/v1/fleets/plant-r/rollout")
E1=$(pyj 'd["envelope_sha256"]' <<<"$RO")
[ "$(pyj 'd["expires_at"] > '"$X0"' and d["bundle_sha256"] == "'"$(body_of "$R" | pyj 'd["bundle_sha256"]')"'"' <<<"$RO")" = True ] ||
    die "re-signed rollout: $RO"
V=$("$SIGN" verify "$D/artifacts/sha256/${E1:0:2}/$E1" "$T/publisher.pk" plant-r - 0) || die "re-signed envelope: $V"
[ "$V" = "ok bearing 2 seq=1 rollback=0" ] || die "re-signed envelope said: $V"
V=$("$SIGN" verify "$D/artifacts/sha256/${E0:0:2}/$E0" "$T/publisher.pk" plant-r - 0) && die "expired envelope taken: $V"
grep -q expired <<<"$V" || die "the first envelope refused for: $V"
grep -q "fleet plant-r: rollout [0-9]*'s envelope re-signed" "$D/kilnd.log" || die "kilnd did not log the re-signing"
log "fleet publish ok: $(cat "$T/ro")"
