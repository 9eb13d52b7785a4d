#!/usr/bin/env bash
# demo_edge.sh OUT CLUSTER - step 9 of scripts/demo.sh: publish the demo's
# cwru-gbdt model to an edge fleet, have a real kiln-edge agent enroll, pull,
# verify and serve it, then score every CWRU window on the agent and on the
# cluster and compare the float32 bits (docs/edge.md).  CLUSTER is a running
# `kiln local` started with --fleet-listen; OUT/ca holds its test CA.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: demo_edge.sh OUT CLUSTER}
CLUSTER=${2:?usage: demo_edge.sh OUT CLUSTER}
KILN=bin/kiln
EDGE=bin/kiln-edge
PY=$PWD/.venv/bin/python
MODEL=cwru-gbdt
FLEET=demo-line
E=$OUT/edge
fail() {
    echo "demo: $*" >&2
    [ -z "$AGENT_PID" ] || { echo "-- agent log (tail):" >&2; tail -n 15 "$E/agent.log" >&2; }
    exit 1
}
AGENT_PID=
[ -s "$CLUSTER/kilnd.fleet-url" ] || fail "kilnd has no fleet endpoint ($CLUSTER/kilnd.fleet-url)"
FURL=$(cat "$CLUSTER/kilnd.fleet-url")
rm -rf "$E"
mkdir -p "$E"
trap '[ -z "$AGENT_PID" ] || { kill $AGENT_PID 2>/dev/null; wait $AGENT_PID 2>/dev/null; } || true' EXIT
t_start=$(date +%s.%N)
since() { $PY -c "import sys; print(f'{$(date +%s.%N) - float(sys.argv[1]):.1f}')" "$1"; }

echo "-- fleet endpoint $FURL (HTTPS, server certificate from a CA made by certtool for this run)"
$KILN fleet create "$FLEET" --canary 1 --health-seconds 2 --dir "$CLUSTER"
TOKEN=$($KILN device enroll --fleet "$FLEET" --dir "$CLUSTER" 2>/dev/null) || fail "kiln device enroll"
echo "-- one-time enrollment token ${TOKEN:0:8}...; the device makes its own Ed25519 key and enrolls:"
$EDGE enroll --server "$FURL" --ca "$OUT/ca/ca.pem" --token "$TOKEN" --dir "$E/press-1" \
    --name press-1 > "$E/device.id" 2> "$E/enroll.log" || fail "kiln-edge enroll: $(cat "$E/enroll.log")"
echo "device $(cat "$E/device.id") (press-1), keys in $E/press-1"

# The agent: outward HTTPS to the fleet endpoint, windows on a unix socket,
# /metrics on a free loopback port.
$EDGE serve --dir "$E/press-1" --socket "$E/press-1.sock" --metrics 127.0.0.1:0 \
    --poll-seconds 1 --report-seconds 1 > "$E/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 50); do grep -qs 'metrics on http' "$E/agent.log" && break; sleep 0.1; done
MURL=$(grep -so 'metrics on http[^ ]*' "$E/agent.log" | head -n 1 | cut -d' ' -f3 || true)
[ -n "$MURL" ] || fail "kiln-edge serve did not start"
echo "kiln-edge serve: pid $AGENT_PID, socket $E/press-1.sock, $MURL"

VERSION=$($KILN model show "$MODEL" --dir "$CLUSTER" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["version"])') \
    || fail "$MODEL is not in the registry (step 5 trains it)"
$KILN model promote "$MODEL" "$VERSION" --dir "$CLUSTER" > /dev/null || fail "kiln model promote $MODEL $VERSION"
t_pub=$(date +%s.%N)
$KILN publish "$MODEL@production" --fleet "$FLEET" --dir "$CLUSTER" || fail "kiln publish refused $MODEL@production"
# Bounded: the agent polls every second, downloads, verifies, swaps, reports.
running() {
    $KILN device list --fleet "$FLEET" --dir "$CLUSTER" --json | $PY -c '
import json, sys
r = (json.load(sys.stdin)["devices"] or [{}])[0].get("report") or {}
sys.exit(0 if (r.get("model"), r.get("version"), r.get("health")) == (sys.argv[1], int(sys.argv[2]), "ok") else 1)' "$MODEL" "$VERSION"
}
end=$((SECONDS + 20))
until running; do [ $SECONDS -lt $end ] || break; sleep 0.1; done
running || fail "after 20 s the agent does not report $MODEL v$VERSION"
echo "-- the agent reports $MODEL v$VERSION, health ok, $(since "$t_pub") s after the publish:"
grep 'update:' "$E/agent.log" | sed 's/^kiln-edge: update: /   /' | head -n 4
echo "   (envelope signature, bundle sha256, decryption with the fleet key, then an atomic swap:"
echo "    $E/press-1/current -> $(readlink "$E/press-1/current"))"

# The same windows on both sides: every window of cwru.h5 on the agent's
# socket (binary KEW1 frames, DE and FE, in the file's order, so each
# bearing's rolling features see the same history), and the cluster's score
# job with the registry's cwru-gbdt@production on the same file.
$PY - "$OUT" "$MODEL" <<'PYEOF'
import json, os, sys
out = os.path.abspath(sys.argv[1])
json.dump({"type": "score", "name": "cwru-edge-check", "project": "demo",
           "model": f"{sys.argv[2]}@production", "input": f"{out}/cwru.h5",
           "output": f"{out}/edge/cluster-predictions.h5"},
          open(f"{out}/job-edge-score.json", "w"), indent=1)
PYEOF
timeout 120 $KILN submit "$OUT/job-edge-score.json" --dir "$CLUSTER" --wait > /dev/null \
    || fail "the cluster's score job failed or took over 120 s"
$PY - "$OUT/cwru.h5" "$E/press-1.sock" "$E/cluster-predictions.h5" "$E/edge-results.jsonl" <<'PYEOF' || fail "edge and cluster differ"
import json, socket, struct, sys, h5py, numpy as np
sensor, sock_path, preds, results = sys.argv[1:]
with h5py.File(sensor, "r") as f:
    rate = float(f.attrs["sample_rate_hz"])
    de, fe = f["signals"]["DE"][:], f["signals"]["FE"][:]
    asset, ts, label = f["asset"][:], f["timestamp"][:], f["label"][:]
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sock_path)
rows, buf = [], b""
for i in range(len(de)):   # one window in flight: send a frame, read its result line
    x = np.stack([de[i], fe[i]]).astype("<f4")
    s.sendall(b"KEW1" + struct.pack("<HHIiqd", 2, 0, x.shape[1], int(asset[i]), int(ts[i]), rate)
              + x.tobytes())
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("the agent closed the socket")
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    rows.append(json.loads(line))
s.close()
with open(results, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
with h5py.File(preds, "r") as p:
    score, pred = p["score"][:], p["predicted"][:]
edge_score = np.array([r["scores"] for r in rows], np.float32)
edge_pred = np.array([r["predicted"] for r in rows])
same = (edge_score.view(np.uint32) == score.astype(np.float32).view(np.uint32)).all(axis=1) \
    & (edge_pred == pred)
n = len(rows)
print(f"one result line: {json.dumps({k: rows[0][k] for k in ('model', 'asset', 'predicted', 'class', 'scores', 'latency_us')})}")
print(f"edge and cluster: {same.sum()}/{n} windows, same scores bit for bit (float32, "
      f"{edge_score.shape[1]} classes) and the same predicted class")
print(f"the edge's predictions against the recorded fault labels: {np.mean(edge_pred == label):.4f} "
      f"(the training windows included)")
sys.exit(0 if same.all() and n == len(score) else 1)
PYEOF
# The listing shows the agent's last report: wait (bounded) for one that
# counts the windows just scored, with their latency quantiles.
N=$(wc -l < "$E/edge-results.jsonl")
reported() {
    $KILN device list --fleet "$FLEET" --dir "$CLUSTER" --json | $PY -c '
import json, sys
r = json.load(sys.stdin)["devices"][0].get("report") or {}
sys.exit(0 if (r.get("features") or {}).get("scored", 0) >= int(sys.argv[1]) else 1)' "$N"
}
end=$((SECONDS + 5))
until reported; do [ $SECONDS -lt $end ] || break; sleep 0.1; done
reported || fail "after 5 s the agent's report does not count the $N windows it scored"
echo "-- kiln device list --fleet $FLEET (the agent's last report: model, health, latency):"
$KILN device list --fleet "$FLEET" --dir "$CLUSTER"
echo "-- the agent's /metrics ($MURL):"
curl -sf --max-time 5 "$MURL" > "$E/metrics.txt" || fail "no /metrics at $MURL"
grep -E '^kiln_edge_(windows_scored_total|inference_seconds_(sum|count)|model_info)' "$E/metrics.txt" \
    || fail "/metrics has no kiln_edge_ lines"
kill $AGENT_PID; wait $AGENT_PID 2>/dev/null || true
tail -n 1 "$E/agent.log" | $PY -c '
import json, sys
print("-- agent stopped: %(windows_in)d windows in, %(scored)d scored (%(from_socket)d from the "
      "socket), latency mean %(mean_latency_us)s us, max %(max_latency_us)s us"
      % json.loads(sys.stdin.read()))' || fail "the agent did not print its counters at exit"
echo "-- step 9 took $(since "$t_start") s"
