#!/usr/bin/env bash
# kiln-edge against the cluster, bit for bit: `kiln score` on a sensor file
# (featurize with the model's spec, then score) and `kiln-edge serve` fed the
# same windows must give the same float32 features, scores and predictions,
# for gbdt and mlp models, on generated data (with rolling features, so the
# per-asset state is checked too) and on the real CWRU recordings; through
# stdin (binary frames and JSON lines), a unix socket and a real mosquitto
# broker on loopback.  Then: /metrics counts what was scored, a current model
# that fails to load leaves the previous one serving, a broken model alone
# fails the start with the reason, a window of the wrong shape is an error
# that does not stop the agent, and SIGHUP swaps in a new current model.
set -euo pipefail
cd "$KILN_ROOT"
KILN=$KILN_BIN
EDGE=$(dirname "$KILN")/kiln-edge
PY=$KILN_PYTHON
TOOL=tests/system/lib/edge_tool.py
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
die() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.log; do [ -f "$f" ] && { echo "---- $f" >&2; tail -n 12 "$f" >&2; }; done
    exit 1
}
command -v mosquitto >/dev/null || PATH=$PATH:/usr/sbin
command -v mosquitto >/dev/null || die "no mosquitto broker (scripts/deps.sh installs it)"

# make_models NAME SENSOR FEATURIZE_SPEC: features, a gbdt and an mlp model,
# the cluster's predictions of each on the sensor file, one model dir each
make_models() {
    local name=$1 sensor=$2 spec=$3
    "$PY" - "$T" "$name" "$sensor" "$spec" <<'PY'
import json, sys
t, name, sensor, spec = sys.argv[1:]
s = json.load(open(spec))
s["input"], s["output"] = sensor, f"{t}/{name}-feat.h5"
json.dump(s, open(f"{t}/{name}-featurize.json", "w"))
models = {"gbdt": {"kind": "gbdt", "trees": 40, "max_leaves": 15, "min_data_in_leaf": 5},
          "mlp": {"kind": "mlp", "hidden": [32], "epochs": 20}}
for k, m in models.items():
    json.dump({"type": "train", "name": f"{name}-{k}", "input": f"{t}/{name}-feat.h5",
               "output": f"{t}/{name}-{k}.kmodel", "target": "label", "seed": 7, "model": m,
               "validation": {"split": "time", "fraction": 0.25}},
              open(f"{t}/{name}-train-{k}.json", "w"))
    json.dump({"type": "score", "name": f"{name}-score-{k}", "input": sensor,
               "output": f"{t}/{name}-preds-{k}.h5", "model_file": f"{t}/{name}-{k}.kmodel"},
              open(f"{t}/{name}-score-{k}.json", "w"))
PY
    $KILN featurize "$T/$name-featurize.json" >/dev/null 2>&1 || die "$name: featurize"
    for k in gbdt mlp; do
        $KILN train "$T/$name-train-$k.json" >/dev/null 2>&1 || die "$name: train $k"
        $KILN score "$T/$name-score-$k.json" >/dev/null 2>&1 || die "$name: kiln score $k"
        mkdir -p "$T/$name-$k"
        cp "$T/$name-$k.kmodel" "$T/$name-$k/model.kmodel"
        printf '{"name": "%s-%s", "version": 3}\n' "$name" "$k" >"$T/$name-$k/manifest.json"
    done
}

# parity NAME K RESULTS: the edge's results against the cluster's
parity() {
    "$PY" $TOOL compare "$3" "$T/$1-preds-$2.h5" "$T/$1-feat.h5" || die "$1 $2: edge != cluster"
}

# --- generated data: 3 channels x 2,048 samples, rolling features
$KILN gen --windows 400 --window-len 2048 --assets 5 --seed 3 -o "$T/gen.h5" >/dev/null
make_models gen "$T/gen.h5" bench/featurize_bench.json
"$PY" $TOOL frames "$T/gen.h5" vib_x,vib_y,temp "$T/gen.bin" "$T/gen.jsonl" >/dev/null
for k in gbdt mlp; do
    "$EDGE" serve --model-dir "$T/gen-$k" --stdin --features <"$T/gen.bin" >"$T/gen-$k.out" \
        2>"$T/edge-gen-$k.log" || die "gen $k: kiln-edge serve --stdin"
    echo -n "generated, $k, stdin frames: "; parity gen $k "$T/gen-$k.out"
done
cat "$T/gen.jsonl" | "$EDGE" serve --model-dir "$T/gen-gbdt" --stdin --features \
    >"$T/gen-json.out" 2>"$T/edge-json.log" || die "gen: JSON lines on stdin"
echo -n "generated, gbdt, stdin JSON lines: "; parity gen gbdt "$T/gen-json.out"
grep -q '"from_stdin":400' "$T/edge-json.log" || die "the exit report does not count 400 windows"

# --- the real CWRU recordings (DE and FE accelerometers, 12 kHz)
$KILN ingest cwru --rate 12000 --window-len 2048 -o "$T/cwru.h5" "$KILN_DATA"/cwru/*.mat >/dev/null
make_models cwru "$T/cwru.h5" examples/cwru_features.json
"$PY" $TOOL frames "$T/cwru.h5" DE,FE "$T/cwru.bin" >/dev/null
for k in gbdt mlp; do
    "$EDGE" serve --model-dir "$T/cwru-$k" --stdin --features <"$T/cwru.bin" >"$T/cwru-$k.out" \
        2>"$T/edge-cwru-$k.log" || die "cwru $k: kiln-edge serve --stdin"
    echo -n "CWRU, $k, stdin frames: "; parity cwru $k "$T/cwru-$k.out"
done

# --- a real broker on loopback, the socket, /metrics
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$T/mosquitto.conf"
mosquitto -c "$T/mosquitto.conf" >"$T/mosquitto.log" 2>&1 &
PIDS+=($!)
"$EDGE" serve --model-dir "$T/gen-gbdt" --mqtt "127.0.0.1:$port" --device press-7 \
    --socket "$T/edge.sock" --metrics 127.0.0.1:0 --features 2>"$T/agent.log" &
AGENT=$!
PIDS+=($AGENT)
for _ in $(seq 100); do grep -q 'mqtt: subscribed' "$T/agent.log" && break; sleep 0.1; done
grep -q 'mqtt: subscribed to kiln/edge/press-7/windows' "$T/agent.log" || die "agent did not subscribe"
"$EDGE" send --mqtt "127.0.0.1:$port" --device press-7 <"$T/gen.bin" >"$T/mqtt.out" \
    2>"$T/send.log" || die "kiln-edge send"
echo -n "generated, gbdt, MQTT: "; parity gen gbdt "$T/mqtt.out"
grep -o '"rtt_p99_us":[0-9.]*' "$T/send.log"
sock_send() {
    "$PY" - "$1" "$T/gen.bin" "$2" <<'PY' || die "socket client"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(open(sys.argv[2], "rb").read())
out = b""
while out.count(b"\n") < 400:
    chunk = s.recv(1 << 20)
    if not chunk:
        break
    out += chunk
open(sys.argv[3], "wb").write(out)
PY
}
# the socket's windows come after the MQTT ones (the assets' rolling state
# has moved on): here the count; parity through a socket on a fresh agent below
sock_send "$T/edge.sock" "$T/sock.out"
[ "$(grep -c '"predicted"' "$T/sock.out")" = 400 ] || die "socket: $(wc -l <"$T/sock.out") results, want 400"
url=$(grep -o 'http://[^ ]*/metrics' "$T/agent.log")
curl -sf "$url" >"$T/metrics.txt" || die "GET /metrics"
grep -q '^kiln_edge_windows_scored_total{source="mqtt"} 400$' "$T/metrics.txt" || die "metrics: mqtt count"
grep -q '^kiln_edge_windows_scored_total{source="socket"} 400$' "$T/metrics.txt" || die "metrics: socket count"
grep -q '^kiln_edge_inference_seconds_count{source="mqtt"} 400$' "$T/metrics.txt" || die "metrics: histogram"
grep -q '^kiln_edge_model_info{name="gen-gbdt",version="3",kind="gbdt",sha256="' "$T/metrics.txt" || die "metrics: model info"
grep -q '^kiln_edge_model_version 3$' "$T/metrics.txt" || die "metrics: model version"
echo "metrics: 400 + 400 windows scored, model gen-gbdt@3"

# a window of the wrong shape (2 channels for a 3-channel model): an error, the agent goes on
"$PY" - "$T/edge.sock" <<'PY' || die "bad window"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"KEW1" + struct.pack("<HHIiqd", 2, 0, 16, 1, 0, 12000.0) + bytes(2 * 16 * 4))
s.close()
PY
sleep 0.3
kill -0 $AGENT || die "the agent died on a bad window"
grep -q '2 channels, model gen-gbdt@3 takes 3' "$T/agent.log" || die "no message for the bad window"

# SIGHUP: a model dir with current/ and previous/, current swapped to mlp
md=$T/agent-dir
mkdir -p "$md/current" "$md/previous"
cp "$T/gen-gbdt/"* "$md/current/"; cp "$T/gen-gbdt/"* "$md/previous/"
kill $AGENT; wait $AGENT 2>/dev/null || true
"$EDGE" serve --model-dir "$md" --socket "$T/edge2.sock" --metrics 127.0.0.1:0 --features \
    2>"$T/agent2.log" &
AGENT=$!
PIDS+=($AGENT)
for _ in $(seq 100); do grep -q 'metrics on' "$T/agent2.log" && break; sleep 0.1; done
grep -q 'serving gen-gbdt@3 (current)' "$T/agent2.log" || die "agent2 does not serve current"
sock_send "$T/edge2.sock" "$T/sock2.out"
echo -n "generated, gbdt, unix socket: "; parity gen gbdt "$T/sock2.out"
rm -rf "$md/current.new"; cp -r "$T/gen-mlp" "$md/current.new"
mv "$md/current" "$md/old" && mv "$md/current.new" "$md/current" && rm -rf "$md/old"
kill -HUP $AGENT
for _ in $(seq 50); do grep -q 'serving gen-mlp@3 (current)' "$T/agent2.log" && break; sleep 0.1; done
grep -q 'serving gen-mlp@3 (current)' "$T/agent2.log" || die "SIGHUP did not load the new current"
url=$(grep -o 'http://[^ ]*/metrics' "$T/agent2.log")
page=$(curl -sf "$url")   # whole, then grep: an early grep -q exit would SIGPIPE curl under pipefail
grep -q 'kiln_edge_model_info{name="gen-mlp",version="3",kind="mlp"' <<<"$page" || die "metrics after reload"
echo "SIGHUP: now serving gen-mlp@3"
kill $AGENT; wait $AGENT 2>/dev/null || true

# a broken current model: previous serves, and says why
printf 'KILNMDL1 not a model' >"$md/current/model.kmodel"
"$EDGE" serve --model-dir "$md" --stdin <"$T/gen.bin" >"$T/prev.out" 2>"$T/prev.log" || die "fallback to previous"
grep -q 'current model failed' "$T/prev.log" || die "no word of the failed current model"
grep -q 'serving gen-gbdt@3 (previous)' "$T/prev.log" || die "previous does not serve"
[ "$(wc -l <"$T/prev.out")" = 400 ] || die "previous scored $(wc -l <"$T/prev.out") windows"
echo "broken current: previous serves"
# a model alone that fails: no start, the reason on stderr
mkdir -p "$T/broken"; printf 'KILNMDL1 not a model' >"$T/broken/model.kmodel"
if "$EDGE" serve --model-dir "$T/broken" --stdin </dev/null 2>"$T/broken.log"; then
    die "a broken model started"
fi
grep -q 'broken/model.kmodel' "$T/broken.log" || die "the failure does not name the model file"
echo "broken model alone: refused ($(tail -n 1 "$T/broken.log"))"
# under make SAN=1: no sanitizer report from any agent (the killed ones too)
if grep -l 'Sanitizer' "$T"/*.log 2>/dev/null; then die "a sanitizer report (above)"; fi
echo "edge parity: ok"
