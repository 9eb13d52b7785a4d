# tests/system/lib/fleet.sh - setup the fleet and edge system tests share
# (sourced after cluster.sh and cluster_init; not a test itself).
#
#   fleet_sign_tool               SIGN: the edge-sign helper (tests/system/edge_sign.c)
#   fleet_kilnd [WORKERS]         a test CA in $T/ca; kilnd in D=$T/c with the HTTPS
#                                 fleet listener and WORKERS (0) workers; URL, FURL
#   fleet_train_gbdt TREES        a validated gbdt version of "bearing" from $T/feat.h5
#   fleet_frames                  $T/w.bin: frames of $T/sensor.h5; $T/one.bin: the first
#   fcurl ARGS                    curl to the fleet endpoint trusting only the test CA;
#                                 prints the body, then the status (status_of, body_of)
. tests/system/lib/testca.sh

fleet_sign_tool() {
    case "$BIN_DIR" in
        */build/san/bin) SIGN=$BIN_DIR/../tests/edge-sign ;;
        *) SIGN=${EDGE_SIGN:-$KILN_ROOT/build/tests/edge-sign} ;;
    esac
    [ -x "$SIGN" ] || die "$SIGN not built (make)"
}

fleet_kilnd() {
    local n=${1:-0} i
    make_test_ca "$T/ca" || die "cannot make the test CA"
    D=$T/c
    start_kilnd "$D" --fleet-listen 127.0.0.1:0 --fleet-cert "$T/ca/server.pem" \
        --fleet-key "$T/ca/server.key"
    for ((i = 1; i <= n; i++)); do start_worker "$D" "w$i"; done
    [ "$n" -eq 0 ] || wait_workers "$D" "$n"
    URL=$(cat "$D/kilnd.url")
    FURL=$(cat "$D/kilnd.fleet-url")
}

fleet_train_gbdt() {
    local id
    id=$(submit_json "$D" "$(printf '{"type":"train","name":"bearing","input":"%s","output":"%s/b-%s.kmodel","model":{"kind":"gbdt","trees":%s,"max_leaves":15},"target":"label","validation":{"split":"time","fraction":0.25},"seed":7,"max_retries":0}' "$T/feat.h5" "$T" "$1" "$1")")
    wait_job_state "$D" "$id" succeeded 60
}

fleet_frames() {
    "$PY" tests/system/lib/edge_tool.py frames "$T/sensor.h5" vib_x,vib_y,temp "$T/w.bin" >/dev/null
    head -c $((32 + 4 * 3 * 512)) "$T/w.bin" >"$T/one.bin"
}

fcurl() { curl -sS --max-time 10 --cacert "$T/ca/ca.pem" -w '\n%{http_code}' "$@"; }
status_of() { tail -n1 <<<"$1"; }
body_of() { sed '$d' <<<"$1"; }
