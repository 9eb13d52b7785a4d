#!/usr/bin/env bash
# The fleet endpoint over HTTPS (docs/edge.md, "Fleet protocol"): kilnd with
# --fleet-listen and a certificate from a test CA made here; an admin makes
# a fleet and a one-time token through the API; curl, trusting only the test
# CA, plays the agent (tests/system/edge_sign.c signs): enroll with proof of
# possession of the key, a signed manifest poll (nothing published: 204) and
# a report that shows in the device list; the token cannot be used twice; a
# bad signature, a replayed call and a stale time get 401; after a revoke
# the device gets 403 naming the revocation; the admin listener serves no
# /edge routes, the fleet listener no admin routes, and plain HTTP to the
# fleet listener gets no answer.  Loopback only; bounded waits.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
. tests/system/lib/fleet.sh
cluster_init
fleet_sign_tool
fleet_kilnd
case "$FURL" in https://127.0.0.1:*) ;; *) die "fleet url $FURL";; esac

# --- admin: a fleet (through the CLI) and a token
$KILN fleet create plant-7 --canary 0.5 --health-seconds 30 --dir "$D" >/dev/null || die "fleet create"
$KILN fleet list --dir "$D" | grep -q plant-7 || die "fleet list"
TOKEN=$($KILN device enroll --fleet plant-7 --dir "$D") || die "device enroll"
[ ${#TOKEN} -eq 64 ] || die "token $TOKEN"

# --- enroll with the device's own key
mkdir -p "$T/dev"
PK=$("$SIGN" keygen "$T/dev")
printf '{"token":"%s","public_key":"%s","name":"press-1"}' "$TOKEN" "$PK" >"$T/enroll.json"
"$SIGN" headers "$T/dev/device.sk" POST /edge/v1/enroll "$T/enroll.json" >"$T/h"
R=$(fcurl -X POST -H @"$T/h" --data-binary @"$T/enroll.json" "$FURL/edge/v1/enroll")
[ "$(status_of "$R")" = 201 ] || die "enroll: $R"
DEV=$(body_of "$R" | pyj 'd["device_id"]')
log "enrolled $DEV"
# the same token again (a new key, correctly signed): refused
mkdir -p "$T/dev2"
PK2=$("$SIGN" keygen "$T/dev2")
printf '{"token":"%s","public_key":"%s"}' "$TOKEN" "$PK2" >"$T/enroll2.json"
"$SIGN" headers "$T/dev2/device.sk" POST /edge/v1/enroll "$T/enroll2.json" >"$T/h"
R=$(fcurl -X POST -H @"$T/h" --data-binary @"$T/enroll2.json" "$FURL/edge/v1/enroll")
[ "$(status_of "$R")" = 401 ] && grep -q "used already" <<<"$R" || die "token reuse: $R"
# enroll signed by another key than the one enrolled: refused
TOKEN2=$($KILN device enroll --fleet plant-7 --dir "$D")
printf '{"token":"%s","public_key":"%s"}' "$TOKEN2" "$PK2" >"$T/enroll3.json"
"$SIGN" headers "$T/dev/device.sk" POST /edge/v1/enroll "$T/enroll3.json" >"$T/h"
R=$(fcurl -X POST -H @"$T/h" --data-binary @"$T/enroll3.json" "$FURL/edge/v1/enroll")
[ "$(status_of "$R")" = 401 ] || die "enroll without possession: $R"

# --- signed calls
"$SIGN" headers "$T/dev/device.sk" GET /edge/v1/manifest - "$DEV" >"$T/h"
R=$(fcurl -H @"$T/h" "$FURL/edge/v1/manifest")
[ "$(status_of "$R")" = 204 ] || die "manifest with nothing published: $R"
# the same signed request again: a replay
R=$(fcurl -H @"$T/h" "$FURL/edge/v1/manifest")
[ "$(status_of "$R")" = 401 ] && grep -q replayed <<<"$R" || die "replay: $R"
# unsigned, bad signature, stale time
R=$(fcurl "$FURL/edge/v1/manifest")
[ "$(status_of "$R")" = 401 ] || die "unsigned: $R"
"$SIGN" headers "$T/dev2/device.sk" GET /edge/v1/manifest - "$DEV" >"$T/h"
R=$(fcurl -H @"$T/h" "$FURL/edge/v1/manifest")
[ "$(status_of "$R")" = 401 ] && grep -q "does not verify" <<<"$R" || die "bad signature: $R"
OLD=$(( $(date +%s) * 1000 - 400000 ))
"$SIGN" headers "$T/dev/device.sk" GET /edge/v1/manifest - "$DEV" "$OLD" >"$T/h"
R=$(fcurl -H @"$T/h" "$FURL/edge/v1/manifest")
[ "$(status_of "$R")" = 401 ] && grep -q clock <<<"$R" || die "stale time: $R"

# --- a report shows in the device list
printf '{"model":"bearing","version":2,"health":"ok","latency_us":{"p50":80,"p99":150},"features":{"rms":{"mean":0.5}}}' >"$T/report.json"
"$SIGN" headers "$T/dev/device.sk" POST /edge/v1/report "$T/report.json" "$DEV" >"$T/h"
R=$(fcurl -X POST -H @"$T/h" --data-binary @"$T/report.json" "$FURL/edge/v1/report")
[ "$(status_of "$R")" = 200 ] || die "report: $R"
J=$(curl -sf "$URL/v1/devices?fleet=plant-7")
[ "$(pyj 'd["devices"][0]["report"]["health"] + str(d["devices"][0]["report"]["version"])' <<<"$J")" = ok2 ] \
    || die "device list: $J"
$KILN device list --fleet plant-7 --dir "$D" | grep "$DEV" | grep -q ok || die "kiln device list"
# a bundle that was never published to this fleet
Z=$(printf '0%.0s' $(seq 64))
"$SIGN" headers "$T/dev/device.sk" GET "/edge/v1/bundle/$Z" - "$DEV" >"$T/h"
R=$(fcurl -H @"$T/h" "$FURL/edge/v1/bundle/$Z")
[ "$(status_of "$R")" = 404 ] || die "unpublished bundle: $R"

# --- the listeners keep apart
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/edge/v1/manifest")" = 404 ] || die "admin serves /edge"
R=$(fcurl "$FURL/v1/fleets")
[ "$(status_of "$R")" = 404 ] || die "fleet endpoint serves admin routes: $R"
R=$(fcurl "$FURL/v1/health")
[ "$(status_of "$R")" = 404 ] || die "fleet endpoint serves /v1/health: $R"
# plain HTTP to the TLS listener: no HTTP answer
PLAIN=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://${FURL#https://}/edge/v1/manifest" || true)
[ "$PLAIN" = 000 ] || die "plain HTTP to the fleet endpoint answered $PLAIN"
# a client that does not trust the test CA refuses the server
if curl -s --max-time 5 -o /dev/null "$FURL/edge/v1/manifest"; then die "untrusted CA accepted"; fi

# --- revoke: the device is refused, saying why
$KILN device revoke "$DEV" --dir "$D" >/dev/null || die "device revoke"
"$SIGN" headers "$T/dev/device.sk" GET /edge/v1/manifest - "$DEV" >"$T/h"
R=$(fcurl -H @"$T/h" "$FURL/edge/v1/manifest")
[ "$(status_of "$R")" = 403 ] && grep -q revoked <<<"$R" || die "revoked device: $R"

# --- publish: only a validated model; a missing one is a 404
R=$(curl -s -w '\n%{http_code}' -X POST -d '{"model":"nope@1","fleet":"plant-7"}' "$URL/v1/publish")
[ "$(status_of "$R")" = 404 ] || die "publish of an unknown model: $R"
log "fleet API ok"
