# tests/system/lib/cluster.sh - helpers the cluster_*.sh system tests source
# (not a test itself: tests/run.sh runs only tests/system/*.sh).
#
#   cluster_init                  T=$(mktemp -d) under $TMPDIR, trap cleanup on exit
#   start_kilnd DIR [args]        kilnd on 127.0.0.1 (ports picked by the daemon),
#                                 waits for DIR/kilnd.url and DIR/kilnd.zmq; KILND_PID
#   start_worker DIR ID [args]    kiln-worker connected to DIR/kilnd.zmq; WORKER_PID[ID]
#   wait_job_state DIR ID STATE TIMEOUT_S   fails (with the job's JSON) on timeout
#   job_field DIR ID FIELD        a field of `kiln status ID --json` (dotted: tasks.total)
#   stop_all                      kills every process started here (by pid)
#   pyj EXPR < JSON               prints EXPR evaluated with d = the JSON (python syntax)
#   make_features WINDOWS ASSETS SEED   $T/sensor.h5 (kiln gen) and its features
#                                 $T/feat.h5 (bench/featurize_bench.json without rolling)
#
# Every wait is bounded; every process is killed by the EXIT trap.
set -euo pipefail

KILN=${KILN_BIN:?KILN_BIN not set}
BIN_DIR=$(dirname "$KILN")
KILND=$BIN_DIR/kilnd
KWORKER=$BIN_DIR/kiln-worker
PY=${KILN_PYTHON:?KILN_PYTHON not set}

declare -a CLUSTER_PIDS=()
declare -A WORKER_PID=()
KILND_PID=

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() {
    echo "FAIL: $*" >&2
    if [ -n "${T:-}" ]; then
        for f in "$T"/*.log "$T"/*/*.log "$T"/*/logs/*.log; do
            [ -f "$f" ] || continue
            echo "---- $f (tail) ----" >&2; tail -n 15 "$f" >&2 || true
        done
    fi
    exit 1
}

stop_all() {
    local p kids=
    # the task children of live workers (a worker's SIGTERM stops them too,
    # but one that is stuck must not outlive the test)
    for p in "${CLUSTER_PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        kids="$kids $(pgrep -P "$p" 2>/dev/null | tr '\n' ' ' || true)"
        kill -TERM "$p" 2>/dev/null || true
    done
    local end=$((SECONDS + 3))
    for p in "${CLUSTER_PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
        kill -9 "$p" 2>/dev/null || true
    done
    for p in $kids; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${CLUSTER_PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        wait "$p" 2>/dev/null || true
    done
    CLUSTER_PIDS=()
}

cluster_cleanup() {
    local rc=$?
    set +e
    stop_all
    # a task child the dead worker left behind (noop sleep): by the scratch dir
    if [ -n "${T:-}" ] && [ -d "$T" ]; then rm -rf "$T"; fi
    exit $rc
}

cluster_init() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cluster.XXXXXX")
    trap cluster_cleanup EXIT
    trap 'exit 130' INT TERM
}

# wait_for DESC TIMEOUT_S CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
    local desc=$1 timeout=$2; shift 2
    local end=$((SECONDS + timeout))
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "timed out after ${timeout}s waiting for $desc"
        sleep 0.1
    done
}

start_kilnd() {
    local dir=$1; shift
    mkdir -p "$dir"
    rm -f "$dir/kilnd.url" "$dir/kilnd.zmq"
    local listen='tcp://127.0.0.1:*'
    local a
    for a in "$@"; do [ "$a" = --listen ] && listen=; done
    if [ -n "$listen" ]; then set -- --listen "$listen" "$@"; fi
    "$KILND" --dir "$dir" --http 127.0.0.1:0 --lease-ms 1500 --retry-backoff-ms 200 "$@" \
        >>"$dir/kilnd.log" 2>&1 &
    KILND_PID=$!
    CLUSTER_PIDS+=("$KILND_PID")
    local end=$((SECONDS + 20))
    while ! { [ -s "$dir/kilnd.url" ] && [ -s "$dir/kilnd.zmq" ]; }; do
        kill -0 "$KILND_PID" 2>/dev/null || die "kilnd exited at start"
        [ $SECONDS -lt $end ] || die "kilnd did not write kilnd.url/kilnd.zmq in 20 s"
        sleep 0.1
    done
    wait_for "kilnd health" 20 curl -sf "$(cat "$dir/kilnd.url")/v1/health"
}

start_worker() {
    local dir=$1 id=$2; shift 2
    mkdir -p "$dir/w-$id"
    "$KWORKER" --connect "$(cat "$dir/kilnd.zmq")" --id "$id" --cores 2 --memory-mb 2048 \
        --heartbeat-ms 200 --dir "$dir/w-$id" "$@" >>"$dir/worker-$id.log" 2>&1 &
    WORKER_PID[$id]=$!
    CLUSTER_PIDS+=("$!")
}

# kill9 PID: SIGKILL and reap (quietly)
kill9() {
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# worker_alive DIR ID: kilnd lists worker ID as alive
worker_alive() {
    [ "$(worker_field "$1" "$2" state)" = alive ]
}

# wait_workers DIR N: N workers alive
wait_workers() {
    local dir=$1 n=$2
    local end=$((SECONDS + 20))
    while :; do
        local k
        k=$("$KILN" workers --dir "$dir" --json 2>/dev/null | "$PY" -c \
            'import json,sys; print(sum(1 for w in json.load(sys.stdin)["workers"] if w["state"]=="alive"))' \
            2>/dev/null || echo 0)
        [ "$k" -ge "$n" ] && return 0
        [ $SECONDS -lt $end ] || die "only $k of $n workers alive after 20 s"
        sleep 0.1
    done
}

# worker_field DIR ID FIELD
worker_field() {
    "$KILN" workers --dir "$1" --json | "$PY" -c '
import json, sys
for w in json.load(sys.stdin)["workers"]:
    if w["id"] == sys.argv[1]:
        print(w[sys.argv[2]]); break
else:
    print("")' "$2" "$3"
}

# job_json DIR ID
job_json() { "$KILN" status "$2" --dir "$1" --json; }

# job_field DIR ID FIELD (dotted path, e.g. tasks.total or reason.code; null -> "null")
job_field() {
    job_json "$1" "$2" | "$PY" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("null" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else v))' "$3"
}

# wait_job_state DIR ID STATE TIMEOUT_S (STATE may be "a|b" for either)
wait_job_state() {
    local dir=$1 id=$2 want=$3 timeout=$4
    local end=$((SECONDS + timeout)) st=
    while :; do
        st=$(job_field "$dir" "$id" state 2>/dev/null || echo "?")
        case "|$want|" in *"|$st|"*) return 0 ;; esac
        if [ $SECONDS -ge $end ]; then
            job_json "$dir" "$id" >&2 || true
            die "job $id: state $st, wanted $want within ${timeout}s"
        fi
        sleep 0.2
    done
}

# submit_json DIR JSON_TEXT: submits and prints the job id
submit_json() {
    local dir=$1 spec=$2 f
    f=$(mktemp "$dir/spec.XXXXXX")
    printf '%s\n' "$spec" >"$f"
    "$KILN" submit "$f" --dir "$dir" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# h5_hash FILE: content_sha256 from `kiln inspect --json`
h5_hash() {
    "$KILN" inspect --json "$1" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
def find(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "content_sha256": return v
            r = find(v)
            if r: return r
    return None
print(find(d) or "")'
}

pyj() { "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

make_features() {
    $KILN gen --windows "$1" --window-len 512 --assets "$2" --seed "$3" -o "$T/sensor.h5" >/dev/null
    "$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
s["input"], s["output"] = t + "/sensor.h5", t + "/feat.h5"
json.dump(s, open(t + "/featurize.json", "w"))
PY
    $KILN featurize "$T/featurize.json" >/dev/null
}
