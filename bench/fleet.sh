#!/usr/bin/env bash
# fleet.sh - the fleet part of `make bench` (bench/run.sh calls it with
# KILN_BENCH_ONLY=fleet or with all parts): a rollout of a ~5 MB model to
# KILN_BENCH_AGENTS (default 1000) simulated agents on loopback.
#   setup   a test CA (tests/system/lib/testca.sh), kilnd with its HTTPS
#           fleet endpoint and one worker, an mlp with wide hidden layers
#           (1024 x 1152: a 5 MB .kmodel) trained through kilnd so the
#           registry holds a validated version
#   runs    3 times: a fresh kilnd on the same directory, then
#           build/bench/fleet_bench (one process, libcurl multi, each agent
#           its own Ed25519 key) on a new fleet (canary share 1%, health
#           window 2 s): enroll all, publish, time until the last agent's
#           healthy report on the new version; kilnd's CPU over that span
# The rows (medians) replace fleet_rollout_1000 and fleet_rollout_cpu in
# bench/results.json.
#
# Environment (run.sh sets the first four): B, BIN_DIR (kiln, kilnd,
# kiln-worker), PY (the venv's python), OUT (this part's output folder);
# KILN_BENCH_AGENTS (default 1000), KILN_BENCH_FLEET_TIMEOUT (seconds a
# rollout may take, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${B:-build}
BIN_DIR=${BIN_DIR:-$PWD/bin}
PY=${PY:-$PWD/.venv/bin/python}
OUT=${OUT:-$B/bench-data/results/fleet}
AGENTS=${KILN_BENCH_AGENTS:-1000}
TIMEOUT=${KILN_BENCH_FLEET_TIMEOUT:-300}
RUNS=3

die() { echo "bench: fleet: $*" >&2; exit 1; }
[[ $AGENTS =~ ^[0-9]+$ ]] && [ "$AGENTS" -ge 1 ] && [ "$AGENTS" -le 20000 ] ||
    die "KILN_BENCH_AGENTS must be 1..20000, not '$AGENTS'"
[[ $TIMEOUT =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -ge 10 ] || die "KILN_BENCH_FLEET_TIMEOUT must be >= 10 s"
[ -x "$PY" ] || die "no $PY (run 'make deps' or 'make bench')"
for b in kiln kilnd kiln-worker; do [ -x "$BIN_DIR/$b" ] || die "no $BIN_DIR/$b (run 'make bench')"; done
[ -x "$B/bench/fleet_bench" ] || die "no $B/bench/fleet_bench (run 'make bench')"
. tests/system/lib/testca.sh

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/data"
OUT=$(cd "$OUT" && pwd)
cp "$BIN_DIR/kiln" "$BIN_DIR/kilnd" "$BIN_DIR/kiln-worker" "$B/bench/fleet_bench" "$OUT/bin/"
KILN=$OUT/bin/kiln
D=$OUT/data
K=$D/kilnd
KPID= WPID=
stop() {    # stop PID: TERM, then KILL after 5 s, reaped
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() { stop "$WPID"; stop "$KPID"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# kilnd on $K with the fleet endpoint; KPID, URL, FURL
start_kilnd() {
    rm -f "$K/kilnd.url" "$K/kilnd.zmq" "$K/kilnd.fleet-url"
    mkdir -p "$K"
    "$OUT/bin/kilnd" --dir "$K" --http 127.0.0.1:0 --listen 'tcp://127.0.0.1:*' \
        --fleet-listen 127.0.0.1:0 --fleet-cert "$D/ca/server.pem" --fleet-key "$D/ca/server.key" \
        >>"$OUT/kilnd.log" 2>&1 &
    KPID=$!
    for _ in $(seq 200); do
        [ -s "$K/kilnd.url" ] && [ -s "$K/kilnd.zmq" ] && [ -s "$K/kilnd.fleet-url" ] && break
        kill -0 "$KPID" 2>/dev/null || die "kilnd exited at start (see $OUT/kilnd.log)"
        sleep 0.1
    done
    [ -s "$K/kilnd.fleet-url" ] || die "kilnd did not write its URLs in 20 s"
    URL=$(cat "$K/kilnd.url") FURL=$(cat "$K/kilnd.fleet-url")
    for _ in $(seq 100); do curl -sf "$URL/v1/health" >/dev/null && return 0; sleep 0.1; done
    die "kilnd not healthy in 10 s"
}

# ---- the model: features, then a wide mlp trained through kilnd -------------
echo "bench: fleet: setup (test CA, features, a 1024x1152 mlp trained through kilnd)"
make_test_ca "$D/ca" || die "cannot make the test CA"
"$KILN" gen --windows 240 --window-len 512 --assets 6 --seed 3 -o "$D/sensor.h5" >/dev/null
"$PY" - "$D" <<'PY'
import json, sys
d = sys.argv[1]
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
s["input"], s["output"] = d + "/sensor.h5", d + "/feat.h5"
json.dump(s, open(d + "/featurize.json", "w"))
json.dump({"type": "train", "name": "fleetbench", "input": d + "/feat.h5",
           "output": d + "/fleetbench.kmodel", "target": "label", "seed": 7,
           "model": {"kind": "mlp", "hidden": [1024, 1152], "epochs": 2},
           "validation": {"split": "time", "fraction": 0.25}, "max_retries": 0},
          open(d + "/train.json", "w"))
PY
"$KILN" featurize "$D/featurize.json" >"$OUT/featurize.log" 2>&1 || die "kiln featurize (see $OUT/featurize.log)"
start_kilnd
"$OUT/bin/kiln-worker" --connect "$(cat "$K/kilnd.zmq")" --id w1 --cores 2 --memory-mb 2048 \
    --dir "$K/w-w1" >>"$OUT/worker.log" 2>&1 &
WPID=$!
JOB=$("$KILN" submit "$D/train.json" --dir "$K" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])') ||
    die "submit the training job"
for _ in $(seq 600); do
    st=$("$KILN" status "$JOB" --dir "$K" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    case $st in succeeded) break ;; failed|cancelled) die "training job $JOB $st (see $OUT/worker.log)" ;; esac
    sleep 0.2
done
[ "$st" = succeeded ] || die "training job $JOB: $st after 120 s"
stop "$WPID"; WPID=
MODEL_BYTES=$(stat -c %s "$D/fleetbench.kmodel")
echo "bench: fleet: model fleetbench@1, .kmodel $MODEL_BYTES bytes"

# ---- the rollouts ---------------------------------------------------------------
for i in $(seq 1 $RUNS); do
    [ "$i" = 1 ] || { stop "$KPID"; start_kilnd; }
    echo "bench: fleet: run $i/$RUNS: $AGENTS agents, fleet bench-$i"
    "$OUT/bin/fleet_bench" "$URL" "$FURL" "$D/ca/ca.pem" "bench-$i" fleetbench@1 "$KPID" \
        --agents "$AGENTS" --timeout-s "$TIMEOUT" >"$OUT/run-$i.json" 2>"$OUT/run-$i.log" ||
        { tail -n 5 "$OUT/run-$i.log" >&2; die "fleet_bench run $i (see $OUT/run-$i.log)"; }
    sed 's/^/bench: fleet:   /' "$OUT/run-$i.log" | grep -v ' s: ' || true
done
stop "$KPID"; KPID=

# ---- rows and table -------------------------------------------------------------
"$PY" - "$OUT" "$RUNS" "$MODEL_BYTES" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)" <<'PYEOF'
import json, os, statistics, sys, time
O, runs, model_bytes, commit, dirty = sys.argv[1:6]
runs, model_bytes, dirty = int(runs), int(model_bytes), int(dirty)
rs = [json.loads(open(os.path.join(O, "run-%d.json" % i)).read()) for i in range(1, runs + 1)]
med = lambda k: statistics.median(r[k] for r in rs)
n = rs[0]["agents"]
common = {"agents": n, "runs": runs, "model_kmodel_bytes": model_bytes,
          "bundle_bytes_each": rs[0]["bundle_bytes"] // max(n, 1),
          "poll_ms": rs[0]["poll_ms"], "canary_share": rs[0]["canary_share"],
          "health_window_s": rs[0]["health_window_s"], "client_threads": rs[0]["threads"],
          "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": commit,
          "git_modified_tracked_files": dirty, "host_cores": os.cpu_count()}
rollout, cpu = med("rollout_s"), med("kilnd_cpu_s")
rows = [
    dict(name="fleet_rollout_%d" % n if n != 1000 else "fleet_rollout_1000", value=round(rollout, 2),
         unit="s", peer=None, peer_value=None, ratio=None, target="< 30 s (1,000 agents)",
         meets_target=rollout < 30 if n >= 1000 else None,
         runs_s=[round(r["rollout_s"], 2) for r in rs], first_agent_s=round(med("first_agent_s"), 2),
         rollout_stage=[r["rollout_stage"] for r in rs],
         bytes_served=int(med("bytes_served")), requests=int(med("requests")),
         errors=[r["errors"] for r in rs], busy_answers=[r["busy_answers"] for r in rs],
         resumed_downloads=[r.get("resumes", 0) for r in rs],
         client_verify_s=round(med("client_verify_s"), 2), client_cpu_s=round(med("client_cpu_s"), 2),
         client_peak_rss_mib=round(med("client_peak_rss_mib"), 1),
         note="from just before POST /v1/publish to the last agent's healthy report on the new "
              "version answered 200: canary stage (1%% of the fleet, health window 2 s, kilnd's "
              "rollout tick 1 s), then the full rollout; every agent polls the manifest every "
              "~%d ms (+-20%%), verifies the envelope, downloads the encrypted bundle over HTTPS "
              "(keep-alive, TLS sessions shared per client thread), checks and decrypts it in memory "
              "(st_bundle_unpack) and reports; all %d agents in one process (fleet_bench) on the "
              "same cores as kilnd; median of %d runs" % (rs[0]["poll_ms"], n, runs), **common),
    dict(name="fleet_rollout_cpu", value=round(cpu, 2), unit="s", peer=None, peer_value=None,
         ratio=None, runs_s=[round(r["kilnd_cpu_s"], 2) for r in rs],
         kilnd_peak_rss_mib=round(med("kilnd_peak_rss_mib"), 1),
         note="kilnd's CPU (utime + stime, /proc/PID/stat) over the same span: TLS, signature "
              "checks, state writes for each call, serving the bundle; peak RSS = VmHWM of the "
              "whole kilnd run; median of %d runs" % runs, **common),
]
names = {r["name"] for r in rows}
try:
    old = json.load(open("bench/results.json"))
    old = old if isinstance(old, list) else []
except (OSError, ValueError):
    old = []
with open("bench/results.json", "w") as f:
    json.dump([r for r in old if isinstance(r, dict) and r.get("name") not in names] + rows, f, indent=1)
    f.write("\n")
print()
print("fleet rollout, %d agents, %.1f MB model (%d-byte bundle), medians of %d runs, commit %s%s, %d cores"
      % (n, model_bytes / 1e6, common["bundle_bytes_each"], runs, commit,
         " + %d modified files" % dirty if dirty else "", os.cpu_count()))
print("%-44s %10.2f   %s" % ("publish -> last agent runs it (s)", rollout,
      "< 30: %s" % ("MET" if rollout < 30 else "MISSED") if n >= 1000 else "(target is for 1,000)"))
print("%-44s %10.2f" % ("kilnd CPU over that span (s)", cpu))
print("%-44s %10.1f" % ("kilnd peak RSS (MiB)", med("kilnd_peak_rss_mib")))
print("%-44s %10.1f" % ("bytes served (MB)", med("bytes_served") / 1e6))
print("%-44s %10.2f" % ("client: verify + unpack (s, all agents)", med("client_verify_s")))
print("runs: %s s" % ", ".join("%.2f" % r["rollout_s"] for r in rs))
print("wrote bench/results.json (fleet rows)")
PYEOF
