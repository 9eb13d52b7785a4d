#!/usr/bin/env bash
# run.sh - the whole benchmark in one run on one data set (`make bench` builds
# first, then calls this): synthetic sensor data, this machine's memory
# bandwidth, `kiln featurize` (2 threads, median of 3 after a warm-up run),
# the numpy/scipy peer on the same file and spec with a parity check, and the
# FFT micro-benchmark; then the scheduler: build/bench/sched_bench (kilnd + 4
# kiln-worker, no-op dispatch rate and submit-to-start latency) against
# bench/slurm_peer.sh (a private local Slurm); then the models: logreg_bench,
# mlp_bench and gbdt_bench (kiln's trainers vs scikit-learn and LightGBM on
# the same synthetic rows).  Prints a table and writes bench/results.json.
#
# Environment:
#   KILN_BENCH_ONLY      the parts to run, comma-separated: featurize (data, membw,
#                        featurize vs numpy, FFT), sched, models, drift (drift_bench vs
#                        scipy and Evidently, and 10M x 50 alone), edge (kiln-edge inference:
#                        in process, through mosquitto, vs onnxruntime), fleet (bench/fleet.sh: a
#                        5 MB model rolled out to 1,000 simulated agents); unset: all six.  A part's
#                        rows in bench/results.json are replaced, the other rows are left as an
#                        earlier run wrote them (e.g. KILN_BENCH_ONLY=models or =sched,models)
#   KILN_BENCH_MODEL_ROWS     rows per model benchmark, 20% held out (default 1000000; x 64 features)
#   KILN_BENCH_MODEL_TIMEOUT  seconds each model benchmark may run, kiln + peer (default 1800)
#   KILN_BENCH_SCHED_TASKS    no-op tasks per kiln throughput job (default 100000)
#   KILN_BENCH_SCHED_REPEATS  timed kiln throughput jobs, median kept (default 3)
#   KILN_BENCH_SCHED_LATENCY  kiln submit-to-start samples (default 200)
#   KILN_BENCH_SLURM_JOBS     trivial jobs in Slurm's array (default 100: Slurm runs ~2/s here)
#   KILN_BENCH_SLURM     0: skip the Slurm peer (the rows say so)
#   KILN_BIN_DIR         where kilnd and kiln-worker are (default bin/)
#   KILN_BENCH_WINDOWS   windows to generate (default 100000: ~2.4 GB of float32 signal)
#   KILN_BENCH_DIR       where data and per-step outputs go (default $B/bench-data)
#   KILN_BENCH_PEER_BUDGET_S  the numpy peer stops at the first chunk past this
#                        many seconds and its time is scaled per window (default 300)
#   KILN_BENCH_PEER_CHUNK  windows per numpy batch (default 1024)
#   KILN_BENCH_REPEATS   timed kiln featurize runs, median kept (default 3)
#   KILN_BIN             the kiln binary (default bin/kiln)
#   KILN_BENCH_EDGE_WINDOWS  windows of the edge benchmark (default 1000: 3 x 2,048 samples each)
#   KILN_BENCH_AGENTS    simulated agents of the fleet rollout (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
PY=$PWD/.venv/bin/python
KILN=${KILN_BIN:-$PWD/bin/kiln}
SPEC=bench/featurize_bench.json
WINDOWS=${KILN_BENCH_WINDOWS:-100000}
WINDOW_LEN=2048
RATE=12000
ASSETS=16
CHANNELS=vib_x,vib_y,temp
SEED=1
THREADS=2
REPEATS=${KILN_BENCH_REPEATS:-3}
PEER_BUDGET_S=${KILN_BENCH_PEER_BUDGET_S:-300}
PEER_CHUNK=${KILN_BENCH_PEER_CHUNK:-1024}
DIR=${KILN_BENCH_DIR:-$B/bench-data}

die() { echo "bench: $*" >&2; exit 1; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$WINDOWS" && [ "$WINDOWS" -ge 1 ] && [ "$WINDOWS" -le 10000000 ] ||
    die "KILN_BENCH_WINDOWS must be 1..10000000, not '$WINDOWS'"
is_uint "$REPEATS" && [ "$REPEATS" -ge 1 ] && [ "$REPEATS" -le 20 ] ||
    die "KILN_BENCH_REPEATS must be 1..20, not '$REPEATS'"
is_uint "$PEER_CHUNK" && [ "$PEER_CHUNK" -ge 1 ] || die "KILN_BENCH_PEER_CHUNK must be >= 1"
is_uint "$PEER_BUDGET_S" || die "KILN_BENCH_PEER_BUDGET_S must be whole seconds"
ONLY=${KILN_BENCH_ONLY:-}
PARTS=${ONLY:-featurize,sched,models,drift,edge,fleet}
for p in ${PARTS//,/ }; do
    case "$p" in featurize|sched|models|drift|edge|fleet) ;;
        *) die "KILN_BENCH_ONLY must be featurize, sched, models, drift, edge and/or fleet (comma-separated), not '$ONLY'" ;;
    esac
done
want() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
MODEL_ROWS=${KILN_BENCH_MODEL_ROWS:-1000000}
MODEL_TIMEOUT=${KILN_BENCH_MODEL_TIMEOUT:-1800}
is_uint "$MODEL_ROWS" && [ "$MODEL_ROWS" -ge 1000 ] && [ "$MODEL_ROWS" -le 50000000 ] ||
    die "KILN_BENCH_MODEL_ROWS must be 1000..50000000, not '$MODEL_ROWS'"
is_uint "$MODEL_TIMEOUT" && [ "$MODEL_TIMEOUT" -ge 1 ] ||
    die "KILN_BENCH_MODEL_TIMEOUT must be whole seconds >= 1, not '$MODEL_TIMEOUT'"
BIN_DIR=${KILN_BIN_DIR:-$PWD/bin}
SCHED_TASKS=${KILN_BENCH_SCHED_TASKS:-100000}
SCHED_REPEATS=${KILN_BENCH_SCHED_REPEATS:-3}
SCHED_LATENCY=${KILN_BENCH_SCHED_LATENCY:-200}
SLURM_JOBS=${KILN_BENCH_SLURM_JOBS:-100}
is_uint "$SCHED_TASKS" && [ "$SCHED_TASKS" -ge 1 ] && [ "$SCHED_TASKS" -le 1000000 ] ||
    die "KILN_BENCH_SCHED_TASKS must be 1..1000000, not '$SCHED_TASKS'"
is_uint "$SCHED_REPEATS" && [ "$SCHED_REPEATS" -ge 1 ] && [ "$SCHED_REPEATS" -le 20 ] ||
    die "KILN_BENCH_SCHED_REPEATS must be 1..20, not '$SCHED_REPEATS'"
is_uint "$SCHED_LATENCY" && [ "$SCHED_LATENCY" -ge 1 ] && [ "$SCHED_LATENCY" -le 100000 ] ||
    die "KILN_BENCH_SCHED_LATENCY must be 1..100000, not '$SCHED_LATENCY'"
is_uint "$SLURM_JOBS" && [ "$SLURM_JOBS" -ge 1 ] && [ "$SLURM_JOBS" -le 100000 ] ||
    die "KILN_BENCH_SLURM_JOBS must be 1..100000, not '$SLURM_JOBS'"
if want sched; then
    for b in kilnd kiln-worker; do
        [ -x "$BIN_DIR/$b" ] || die "no $BIN_DIR/$b (run 'make bench', which builds it)"
    done
    [ -x "$B/bench/sched_bench" ] || die "no $B/bench/sched_bench (run 'make bench')"
fi
if want featurize; then
[ -x "$PY" ] || die "no $PY (run 'make deps' or 'make bench')"
[ -x "$KILN" ] || die "no $KILN (run 'make bench', which builds it)"
"$KILN" featurize --help >/dev/null 2>&1 || die "$KILN has no working 'featurize' command"
fi
if want models; then
    [ -x "$PY" ] || die "no $PY for the models' peers (run 'make deps' or 'make bench')"
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
OUT=$DIR/results
if [ -z "$ONLY" ]; then
    rm -rf "$OUT"
else                           # only the selected parts' outputs: the others' stay
    want sched && rm -rf "$OUT/sched"
    want models && rm -rf "$OUT/models"
    want drift && rm -rf "$OUT/drift"
    want edge && rm -rf "$OUT/edge"
    want fleet && rm -rf "$OUT/fleet"
    if want featurize && [ -d "$OUT" ]; then
        find "$OUT" -mindepth 1 -maxdepth 1 ! -name sched ! -name models ! -name drift ! -name edge \
            ! -name fleet -exec rm -rf {} +
    fi
fi
mkdir -p "$OUT/bin"
if want models; then
    # Snapshot the model binaries and their peers now, at the start of the run, as
    # for the other parts: the programs call bench/peer_*.py relative to their
    # working directory, which will be $OUT/models.
    mkdir -p "$OUT/models/bin" "$OUT/models/bench"
    for b in logreg_bench mlp_bench gbdt_bench; do
        if [ -x "$B/bench/$b" ]; then cp "$B/bench/$b" "$OUT/models/bin/$b"; fi
    done
    for b in peer_logreg.py peer_mlp.py peer_lightgbm.py; do
        if [ -f "bench/$b" ]; then cp "bench/$b" "$OUT/models/bench/$b"; fi
    done
fi

# ---- (h) the scheduler: kiln (sched_bench) vs a private local Slurm ---------
# Defined here, run after the featurize table (or alone with KILN_BENCH_ONLY=sched).
# Its rows replace any earlier scheduler rows in bench/results.json.
run_sched() {
    local S=$OUT/sched b
    mkdir -p "$S/bin"
    # Snapshot the binaries, as for the other parts.
    for b in kilnd kiln-worker; do cp "$BIN_DIR/$b" "$S/bin/$b"; done
    cp "$B/bench/sched_bench" "$S/bin/sched_bench"
    local spy=$PY
    [ -x "$spy" ] || spy=$(command -v python3) || die "no python3 for the scheduler table"
    local load_before load_after commit dirty
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
    echo "bench: sched_bench: kilnd + 4 kiln-worker, $SCHED_TASKS no-op tasks x $SCHED_REPEATS" \
         "(16 and $(nproc) slots per worker), $SCHED_LATENCY submit-to-start samples"
    timeout 1800 "$S/bin/sched_bench" "$S/bin" "$S/kiln.json" --tasks "$SCHED_TASKS" \
        --repeats "$SCHED_REPEATS" --latency-samples "$SCHED_LATENCY" >"$S/kiln.log" 2>&1 ||
        { local rc=$?; tail -n 30 "$S/kiln.log" >&2; die "sched_bench failed (exit $rc)"; }
    sed -n 's/^sched_bench: *//p' "$S/kiln.log" | sed 's/^/bench:   /'

    local slurm_skip=""
    if [ "${KILN_BENCH_SLURM:-1}" = 0 ]; then
        slurm_skip="KILN_BENCH_SLURM=0"
    else
        echo "bench: slurm peer: bench/slurm_peer.sh $SLURM_JOBS (private local Slurm; ~1-2 min)"
        set +e
        timeout 2400 bench/slurm_peer.sh "$SLURM_JOBS" "$S/slurm.json" >"$S/slurm.log" 2>&1
        local src=$?
        set -e
        if [ $src -ne 0 ] || [ ! -s "$S/slurm.json" ]; then
            slurm_skip="bench/slurm_peer.sh exit $src: $(grep -m1 '^slurm_peer:' "$S/slurm.log" ||
                                                       tail -n 1 "$S/slurm.log")"
            [ $src -eq 124 ] && slurm_skip="bench/slurm_peer.sh ran past 2400 s"
            rm -f "$S/slurm.json"
        fi
    fi
    if [ -n "$slurm_skip" ]; then
        {
            echo "bench: ################################################################"
            echo "bench: slurm: skipped ($slurm_skip)"
            echo "bench: the scheduler rows carry kiln's figures only (log: $S/slurm.log)"
            echo "bench: ################################################################"
        } >&2
    fi
    load_after=$(cut -d' ' -f1 /proc/loadavg)

    "$spy" - "$S" "$SLURM_JOBS" "$slurm_skip" "$load_before" "$load_after" "$commit" "$dirty" <<'PYEOF'
import json, os, sys, time

S, slurm_jobs, skip, load_before, load_after, commit, dirty = sys.argv[1:8]
slurm_jobs, dirty = int(slurm_jobs), int(dirty)
k = json.load(open(os.path.join(S, "kiln.json")))
sl = None if skip else json.load(open(os.path.join(S, "slurm.json")))
cfg = {c["cores_per_worker"]: c for c in k["configs"]}
c16 = cfg.get(16, k["configs"][0])
cnp = cfg.get(k["host_cores"], k["configs"][-1])
TARGET_TPS, TARGET_P99_MS = 20000, 5.0

def rnd(x, n):
    return None if x is None else round(x, n)

k_tps, k_tps_np = c16["tasks_per_s"], cnp["tasks_per_s"]
k_lat, k_lat_np = c16["submit_to_start_ms"], cnp["submit_to_start_ms"]
s_tps = sl["tasks_per_s"] if sl else None
s_lat = sl["submit_to_start_ms"] if sl else {}
s_p50, s_p99 = s_lat.get("p50"), s_lat.get("p99")
stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")

rows = [
    {"name": "dispatch_vs_slurm", "value": rnd(k_tps, 1), "unit": "tasks/s",
     "peer": sl["peer"] if sl else "slurm", "peer_value": s_tps,
     "ratio": rnd(k_tps / s_tps, 1) if s_tps else None,
     "kiln_tasks_per_s_16_slots": rnd(k_tps, 1), "kiln_tasks_per_s_nproc_slots": rnd(k_tps_np, 1),
     "ratio_nproc_slots": rnd(k_tps_np / s_tps, 1) if s_tps else None,
     "kiln_slots": "4 workers x 16 (64) | 4 workers x %d (%d)" % (cnp["cores_per_worker"], cnp["slots"]),
     "kiln_tasks": k["tasks"], "kiln_repeats": k["repeats"],
     "kiln_runs_tasks_per_s": [rnd(r["tasks_per_s"], 1) for r in c16["runs"]],
     "kiln_runs_tasks_per_s_nproc_slots": [rnd(r["tasks_per_s"], 1) for r in cnp["runs"]],
     "kilnd_cpu_us_per_task": c16["kilnd_cpu_us_per_task"],
     "kilnd_cpu_us_per_task_nproc_slots": cnp["kilnd_cpu_us_per_task"],
     "workers_cpu_us_per_task": c16["workers_cpu_us_per_task"],
     "slurm_jobs": sl["n_jobs"] if sl else slurm_jobs, "slurm_seconds": sl["seconds"] if sl else None,
     "slurm_cpus": sl["cpus"] if sl else None,
     "target_tasks_per_s": TARGET_TPS, "meets_target": k_tps >= TARGET_TPS,
     "meets_target_nproc_slots": k_tps_np >= TARGET_TPS,
     "slurm_skipped": skip or None,
     "note": ("kiln ran %d no-op tasks in one job (median of %d), Slurm ran %d trivial jobs "
              "('sbatch --wrap=true') as one array: the ratio compares rates, not equal work. "
              "ratio = kiln / slurm (>1: kiln faster)" % (k["tasks"], k["repeats"],
                                                          sl["n_jobs"] if sl else slurm_jobs))},
    {"name": "submit_to_start_p99", "value": rnd(k_lat["p99"], 3), "unit": "ms",
     "peer": sl["peer"] if sl else "slurm", "peer_value": s_p99,
     "ratio": rnd(s_p99 / k_lat["p99"], 1) if s_p99 else None,
     "kiln_p50_ms": rnd(k_lat["p50"], 3), "kiln_p99_ms": rnd(k_lat["p99"], 3),
     "kiln_max_ms": rnd(k_lat["max"], 3), "kiln_n": k_lat["n"],
     "kiln_p50_ms_nproc_slots": rnd(k_lat_np["p50"], 3), "kiln_p99_ms_nproc_slots": rnd(k_lat_np["p99"], 3),
     "slurm_p50_ms": s_p50, "slurm_p99_ms": s_p99, "slurm_n": s_lat.get("n"),
     "ratio_p50": rnd(s_p50 / k_lat["p50"], 1) if s_p50 else None,
     "target_p99_ms": TARGET_P99_MS, "meets_target": k_lat["p99"] < TARGET_P99_MS,
     "slurm_skipped": skip or None,
     "note": ("idle cluster, one job at a time, nearest-rank percentiles. kiln: start = kilnd "
              "dispatched the job's first task (started_ns) minus the client's clock before "
              "POST /v1/jobs, polled every 1 ms; Slurm: the batch script's first command "
              "(date +%%s%%N) minus the time before sbatch, each submit after a random 0-999 ms "
              "pause, n=%s (p99 = max). ratio = slurm / kiln (>1: kiln faster)"
              % (s_lat.get("n", "-")))},
    {"name": "sched_meta", "value": None, "unit": None, "peer": None, "peer_value": None, "ratio": None,
     "measured_at": stamp, "git_commit": commit, "git_modified_tracked_files": dirty,
     "kilnd_version": k["kilnd_version"], "host_cores": k["host_cores"],
     "loadavg_1min_before": float(load_before), "loadavg_1min_after": float(load_after),
     "slurm_version": sl.get("slurm_version") if sl else None,
     "slurm_config": sl.get("config") if sl else None},
]
names = {r["name"] for r in rows}
old = []
try:
    old = json.load(open("bench/results.json"))
    if not isinstance(old, list):
        old = []
except (OSError, ValueError):
    pass
out = [r for r in old if isinstance(r, dict) and r.get("name") not in names] + rows
with open("bench/results.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")

def fmt(v, spec):
    return (spec % v) if v is not None else "-"

print()
print("kiln scheduler vs Slurm: this machine (%d cores), commit %s%s, kilnd %s, %s"
      % (k["host_cores"], commit, " + %d modified files" % dirty if dirty else "",
         k["kilnd_version"], sl["peer"] if sl else "Slurm skipped"))
print("%-44s %12s %12s %9s %s" % ("", "kiln", "slurm", "ratio", "target"))
print("%-44s %12.0f %12s %9s %s" % ("no-op tasks/s (4 workers x 16 slots)", k_tps, fmt(s_tps, "%.2f"),
      fmt(k_tps / s_tps if s_tps else None, "%.0fx"), ">= %d: %s" % (TARGET_TPS, "MET" if k_tps >= TARGET_TPS else "MISSED")))
print("%-44s %12.0f %12s %9s %s" % ("no-op tasks/s (4 workers x %d slots = nproc)" % cnp["cores_per_worker"],
      k_tps_np, fmt(s_tps, "%.2f"), fmt(k_tps_np / s_tps if s_tps else None, "%.0fx"),
      ">= %d: %s" % (TARGET_TPS, "MET" if k_tps_np >= TARGET_TPS else "MISSED")))
print("%-44s %12.3f %12s %9s" % ("submit-to-start p50 ms", k_lat["p50"], fmt(s_p50, "%.1f"),
      fmt(s_p50 / k_lat["p50"] if s_p50 else None, "%.0fx")))
print("%-44s %12.3f %12s %9s %s" % ("submit-to-start p99 ms", k_lat["p99"], fmt(s_p99, "%.1f"),
      fmt(s_p99 / k_lat["p99"] if s_p99 else None, "%.0fx"),
      "< %g: %s" % (TARGET_P99_MS, "MET" if k_lat["p99"] < TARGET_P99_MS else "MISSED")))
print("  kiln: %d tasks in one noop job, median of %d (runs %s tasks/s; nproc slots: %s); kilnd CPU %.1f us/task"
      " (16 slots), %.1f (nproc slots); workers %.1f us/task"
      % (k["tasks"], k["repeats"], ", ".join("%.0f" % r["tasks_per_s"] for r in c16["runs"]),
         ", ".join("%.0f" % r["tasks_per_s"] for r in cnp["runs"]), c16["kilnd_cpu_us_per_task"],
         cnp["kilnd_cpu_us_per_task"], c16["workers_cpu_us_per_task"]))
print("  kiln latency: n=%d, dispatch of the first task; nproc slots p50 %.3f / p99 %.3f ms"
      % (k_lat["n"], k_lat_np["p50"], k_lat_np["p99"]))
if sl:
    print("  slurm: %d trivial jobs as one array in %.1f s; latency n=%d (p99 = max), start = the batch"
          " script's first command" % (sl["n_jobs"], sl["seconds"], s_lat.get("n", 0)))
    print("  ratios compare rates: kiln ran %d tasks, Slurm %d jobs; ratio > 1: kiln faster"
          % (k["tasks"], sl["n_jobs"]))
else:
    print("  slurm: skipped (%s)" % skip)
print("  1-min load average: %s before, %s after" % (load_before, load_after))
print("\nwrote bench/results.json (scheduler rows)")
PYEOF
}

# ---- (i) the models: kiln's trainers vs scikit-learn and LightGBM ----------
# Defined here, run last (or alone with KILN_BENCH_ONLY=models).  Each program
# makes its synthetic rows, fits kiln, runs its Python peer on the same bytes
# and prints one JSON line; its rows replace any earlier model rows in
# bench/results.json.  A benchmark that fails is skipped loudly (its rows say
# so, with null figures) and the others still run.
run_models() {
    local M=$OUT/models b
    mkdir -p "$M/data"      # bin/ and bench/: snapshotted at the start of the run
    local rows=$MODEL_ROWS train=$((MODEL_ROWS - MODEL_ROWS / 5))
    local commit dirty load_before load_after
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
    load_before=$(cut -d' ' -f1 /proc/loadavg)

    # model_run NAME PEER_SCRIPT ARGS...: runs $M/bin/NAME in $M; NAME.out (stdout),
    # NAME.log (stderr), NAME.meta (exit status, seconds, load before/after), and
    # NAME.skip (the reason) when it gave no kiln figure.
    model_run() {
        local name=$1 peer=$2 rc t0 l0 reason=""
        shift 2
        rm -rf "${M:?}/data" && mkdir -p "$M/data"
        if [ ! -x "$M/bin/$name" ]; then
            reason="no $B/bench/$name (run 'make bench', which builds it)"
        elif [ ! -f "$M/bench/$peer" ]; then
            reason="no bench/$peer"
        fi
        if [ -z "$reason" ]; then
            echo "bench: $name $* (kiln $THREADS threads, then bench/$peer)"
            t0=$SECONDS l0=$(cut -d' ' -f1 /proc/loadavg)
            set +e
            (cd "$M" && env KILN_PYTHON="$PY" TMPDIR="$M/data" KILN_MLP_BENCH_THREADS="$THREADS" \
                 OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" \
                 timeout --kill-after=30 "$MODEL_TIMEOUT" "bin/$name" "$@") >"$M/$name.out" 2>"$M/$name.log"
            rc=$?
            set -e
            echo "$rc $((SECONDS - t0)) $l0 $(cut -d' ' -f1 /proc/loadavg)" >"$M/$name.meta"
            sed -n 's/^\(kiln\|peer\): */bench:   \1: /p' "$M/$name.log"
            if [ $rc -eq 124 ]; then
                reason="$name ran past KILN_BENCH_MODEL_TIMEOUT=$MODEL_TIMEOUT s"
            elif ! grep -q '^{"kiln_s": *[0-9]' "$M/$name.out"; then
                reason="$name exit $rc, no result line: $(grep -v '^ *$' "$M/$name.log" | tail -n 1)"
            fi
        fi
        if [ -n "$reason" ]; then
            printf '%s\n' "$reason" >"$M/$name.skip"
            {
                echo "bench: ################################################################"
                echo "bench: $name: skipped ($reason)"
                echo "bench: its rows carry no figures (log: $M/$name.log)"
                echo "bench: ################################################################"
            } >&2
        fi
        rm -rf "${M:?}/data"
        return 0
    }
    echo "bench: models: $rows rows x 64 features each (20% held out), kiln $THREADS threads"
    # logreg_bench's rows are N_TRAIN + N_TRAIN/4: N_TRAIN = 80% of the rows.
    model_run logreg_bench peer_logreg.py "$train" 64 2 1.0
    model_run mlp_bench peer_mlp.py "$rows" "$M/data"
    model_run gbdt_bench peer_lightgbm.py --rows "$rows" --dir "$M/data/gbdt" --python "$PY"
    load_after=$(cut -d' ' -f1 /proc/loadavg)

    "$PY" - "$M" "$rows" "$THREADS" "$commit" "$dirty" "$load_before" "$load_after" <<'PYEOF'
import json, os, re, sys, time

M, rows, threads, commit, dirty, load_before, load_after = sys.argv[1:8]
rows, threads, dirty = int(rows), int(threads), int(dirty)
ACC_TOL = 0.002     # "equal accuracy": kiln's held-out accuracy at most 0.2 points below the peer's

def versions():
    v = {}
    for mod in ("sklearn", "lightgbm", "numpy"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception as e:          # the peer's own failure is reported by its row
            v[mod] = "unavailable (%s)" % type(e).__name__
    return v
ver = versions()

def result(name):
    """(the program's JSON line or None, skip reason or None, meta dict, peer-failure text)."""
    skip = None
    p = os.path.join(M, name + ".skip")
    if os.path.exists(p):
        skip = open(p).read().strip()
    meta = {}
    try:
        rc, secs, l0, l1 = open(os.path.join(M, name + ".meta")).read().split()
        meta = {"exit": int(rc), "wall_s": int(secs), "loadavg_1min_before": float(l0),
                "loadavg_1min_after": float(l1)}
    except (OSError, ValueError):
        pass
    res = None
    if skip is None:
        for line in open(os.path.join(M, name + ".out")):
            if line.startswith("{"):
                # printf("%f", NAN) writes nan / -nan: not JSON, so null
                line = re.sub(r'(:\s*)-?(nan|inf)\b', r'\1null', line, flags=re.I)
                try:
                    res = json.loads(line)
                except ValueError:
                    pass
        if res is None or not isinstance(res.get("kiln_s"), (int, float)):
            skip, res = "%s printed no parsable result line" % name, None
    peer_err = None
    if res is not None and not isinstance(res.get("peer_s"), (int, float)):
        log = [l.strip() for l in open(os.path.join(M, name + ".log")) if l.strip()]
        hits = [l for l in log if "peer" in l.lower() or "error" in l.lower()]
        peer_err = (hits or log or ["no output"])[-1][:300]
    return res, skip, meta, peer_err

def num(x):
    return x if isinstance(x, (int, float)) else None

def rnd(x, n):
    return None if x is None else round(x, n)

n_train, n_test = rows - rows // 5, rows // 5
stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
out, table, loud = [], [], []

def add(name, unit, peer, res, skip, meta, peer_err, value_key, peer_key, ratio_fn, target,
        target_text, extra_ok=None, **fields):
    value = num(res.get(value_key)) if res else None
    peer_value = num(res.get(peer_key)) if res else None
    ratio = ratio_fn(value, peer_value) if value and peer_value else None
    kacc, pacc = (num(res.get("kiln_acc")), num(res.get("peer_acc"))) if res else (None, None)
    met = None
    if ratio is not None:
        met = ratio >= target
        if extra_ok is not None:
            met = met and extra_ok(kacc, pacc)
    r = {"name": name, "value": rnd(value, 4 if unit == "s" else 0), "unit": unit, "peer": peer,
         "peer_value": rnd(peer_value, 4 if unit == "s" else 0), "ratio": rnd(ratio, 3),
         "kiln_acc": kacc, "peer_acc": pacc,
         "acc_diff": rnd(kacc - pacc, 5) if kacc is not None and pacc is not None else None,
         "rows": rows, "rows_train": fields.pop("rows_train", n_train),
         "rows_test": fields.pop("rows_test", n_test), "features": fields.pop("features", 64),
         "kiln_threads": threads, "target": target_text, "target_ratio": target,
         "meets_target": met, "skipped": skip, "peer_skipped": peer_err,
         "measured_at": stamp}
    r.update(fields)
    r["run"] = meta
    r["bench_output"] = res
    out.append(r)
    table.append(r)
    if peer_err:
        loud.append("%s: peer skipped (%s): kiln's figures only" % (name, peer_err))

speedup = lambda k, p: p / k          # peer time / kiln time: > 1 means kiln faster
rate = lambda k, p: k / p             # kiln rows/s / peer rows/s: > 1 means kiln faster

res, skip, meta, perr = result("logreg_bench")
add("logreg_train_vs_sklearn", "s", "scikit-learn %s LogisticRegression(lbfgs)" % ver["sklearn"],
    res, skip, meta, perr, "kiln_s", "peer_s", speedup, 2.0, "ratio >= 2 (sklearn fit s / kiln fit s)",
    rows_train=(res or {}).get("n_train", n_train),
    rows_test=(res or {}).get("n_train", n_train) // 4,
    features=(res or {}).get("d", 64), n_classes=(res or {}).get("n_classes", 2),
    C=(res or {}).get("C", 1.0), kiln_iter=(res or {}).get("kiln_iter"),
    peer_iter=(res or {}).get("peer_iter"),
    note="fit seconds, best of 3 fits on each side; C=1, tol 1e-4, max_iter 100 (sklearn's "
         "defaults) on both; held-out accuracy of the last fit. ratio = sklearn / kiln (>1: kiln faster)")

res, skip, meta, perr = result("mlp_bench")
add("mlp_train_vs_sklearn", "s", "scikit-learn %s MLPClassifier (64, 32)" % ver["sklearn"],
    res, skip, meta, perr, "kiln_s", "peer_s", speedup, 5.0, "ratio >= 5 (sklearn fit s / kiln fit s)",
    rows_train=(res or {}).get("n_train", n_train), rows_test=(res or {}).get("n_test", n_test),
    n_classes=3, peer_threads="OMP/OPENBLAS_NUM_THREADS=%d" % threads,
    note="one fit each side: hidden (64, 32) relu, Adam lr 1e-3, batch 200, alpha 1e-4, 5 full "
         "epochs (sklearn tol=0), float32 on both. ratio = sklearn / kiln (>1: kiln faster)")

res, skip, meta, perr = result("gbdt_bench")
lgb = "LightGBM %s" % ver["lightgbm"]
eq_acc = lambda k, p: k is not None and p is not None and k >= p - ACC_TOL
gb_common = dict(n_classes=2, rounds=100, num_leaves=31, max_bin=255, learning_rate=0.1,
                 peer_threads=threads, equal_accuracy_tolerance=ACC_TOL)
add("gbdt_train_vs_lightgbm", "s", lgb, res, skip, meta, perr, "kiln_s", "peer_s", speedup, 1.0,
    "ratio >= 1 (LightGBM fit s / kiln fit s) at equal accuracy (kiln_acc >= peer_acc - %g)" % ACC_TOL,
    extra_ok=eq_acc, **gb_common,
    note="one fit each side, binning included (kiln's bins, LightGBM's Dataset). ratio = LightGBM / "
         "kiln (>1: kiln faster); gbdt_bench's own 'ratio' field is kiln_s / peer_s, not used")
add("gbdt_score_vs_lightgbm", "rows/s", lgb, res, skip, meta, None, "kiln_pred_rows_s",
    "peer_pred_rows_s", rate, 3.0, "ratio >= 3 (kiln predict rows/s / LightGBM's)", **gb_common,
    scored_rows=n_test,
    note="one predict call over the held-out rows each side, timed once (LightGBM's through its "
         "Python API, 2 threads). ratio = kiln / LightGBM (>1: kiln faster)")
# the scoring row shares gbdt_train_vs_lightgbm's run: one copy of the program's output is enough
out[-1].pop("bench_output", None)

meta_row = {"name": "models_meta", "value": None, "unit": None, "peer": None, "peer_value": None,
            "ratio": None, "measured_at": stamp, "git_commit": commit,
            "git_modified_tracked_files": dirty, "host_cores": os.cpu_count(), "rows": rows,
            "features": 64, "kiln_threads": threads, "peer_versions": ver,
            "loadavg_1min_before": float(load_before), "loadavg_1min_after": float(load_after)}
out.append(meta_row)

names = {r["name"] for r in out}
old = []
try:
    old = json.load(open("bench/results.json"))
    if not isinstance(old, list):
        old = []
except (OSError, ValueError):
    pass
merged = [r for r in old if isinstance(r, dict) and r.get("name") not in names] + out
with open("bench/results.json", "w") as f:
    json.dump(merged, f, indent=1)
    f.write("\n")

def fmt(v, spec):
    return (spec % v) if v is not None else "-"

print()
print("kiln models vs scikit-learn %s / LightGBM %s: %d rows x 64 features (%d train, %d held out), "
      "this machine (%d cores), commit %s%s"
      % (ver["sklearn"], ver["lightgbm"], rows, n_train, n_test, os.cpu_count(), commit,
         " + %d modified files" % dirty if dirty else ""))
print("%-26s %12s %12s %8s %8s %8s  %s" % ("", "kiln", "peer", "ratio", "kiln_acc", "peer_acc", "target"))
for r in table:
    unit = "s" if r["unit"] == "s" else "rows/s"
    spec = "%.2f" if unit == "s" else "%.0f"
    verdict = ("skipped (%s)" % r["skipped"] if r["skipped"] else
               "n/a (no peer figure)" if r["meets_target"] is None else
               "MET" if r["meets_target"] else "NOT MET")
    print("%-26s %12s %12s %8s %8s %8s  %s: %s"
          % (r["name"], fmt(r["value"], spec), fmt(r["peer_value"], spec), fmt(r["ratio"], "%.2fx"),
             fmt(r["kiln_acc"], "%.4f"), fmt(r["peer_acc"], "%.4f"), r["target"].split(" (")[0]
             + (" at equal acc" if r["name"] == "gbdt_train_vs_lightgbm" else ""), verdict))
print("  seconds are fit times (kiln %d threads, peers %d); ratio > 1: kiln better. logreg: best of"
      " 3 fits each side; mlp, gbdt: one fit each" % (threads, threads))
print("  1-min load average: %s before, %s after (%d cores): compare figures within one run only"
      % (load_before, load_after, os.cpu_count()))
for l in loud:
    print("bench: ################################################################", file=sys.stderr)
    print("bench: " + l, file=sys.stderr)
    print("bench: ################################################################", file=sys.stderr)
for r in table:
    if r["skipped"]:
        print("bench: %s: skipped (%s)" % (r["name"], r["skipped"]), file=sys.stderr)
print("\nwrote bench/results.json (model rows)")
PYEOF
}

# ---- (j) drift: kiln's drift statistics vs scipy and Evidently -------------
# drift_bench compare: 200,000 x 20 reference and current, kiln (best of 3
# in-process) then bench/peer_drift.py (scipy ks_2samp + wasserstein_distance,
# Evidently's DataDriftPreset) on the same bytes; drift_bench big: kiln alone
# on 10,000,000 x 50 generated in chunks.  Each program runs 3 times; the rows
# (medians) replace earlier drift rows in bench/results.json.
run_drift() {
    local D=$OUT/drift i
    mkdir -p "$D/bin" "$D/data"
    [ -x "$B/bench/drift_bench" ] || die "no $B/bench/drift_bench (run 'make bench')"
    [ -x "$PY" ] || die "no $PY for the drift peers (run 'make deps' or 'make bench')"
    cp "$B/bench/drift_bench" "$D/bin/drift_bench"
    for i in 1 2 3; do
        echo "bench: drift compare 200000 x 20, run $i (kiln $THREADS threads, then scipy and Evidently)"
        KILN_PYTHON="$PY" OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
            "$D/bin/drift_bench" compare 200000 20 "$D/data" "$THREADS" >"$D/compare-$i.json" 2>"$D/compare-$i.log" ||
            echo "bench: drift compare run $i failed (exit $?), see $D/compare-$i.log" >&2
        echo "bench: drift big 10000000 x 50, run $i (kiln alone)"
        "$D/bin/drift_bench" big 10000000 50 "$THREADS" >"$D/big-$i.json" 2>"$D/big-$i.log" ||
            echo "bench: drift big run $i failed (exit $?), see $D/big-$i.log" >&2
    done
    rm -rf "${D:?}/data"
    "$PY" - "$D" "$THREADS" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PYEOF'
import json, os, statistics, sys, time
D, threads, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def runs(stem):
    out = []
    for i in (1, 2, 3):
        try:
            for line in open(os.path.join(D, "%s-%d.json" % (stem, i))):
                if line.startswith("{"):
                    out.append(json.loads(line))
        except (OSError, ValueError):
            pass
    return out

def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None

cmp_runs, big_runs = runs("compare"), runs("big")
k = med([r["kiln_s"] for r in cmp_runs])
sc = med([(r.get("peer") or {}).get("scipy_s") for r in cmp_runs])
ev = med([(r.get("peer") or {}).get("evidently_s") for r in cmp_runs])
peer = next((r["peer"] for r in cmp_runs if r.get("peer")), {}) or {}
vps = med([r["values_per_s"] for r in big_runs])
rss = max([r["peak_rss_mib"] for r in big_runs], default=None)
stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
ratio = lambda p: round(p / k, 2) if p and k else None
common = {"runs": len(cmp_runs), "kiln_threads": threads, "measured_at": stamp, "git_commit": commit,
          "host_cores": os.cpu_count()}
rows = [
    dict(name="drift_vs_evidently", value=k and round(k, 4), unit="s",
         peer="Evidently %s DataDriftPreset (pandas %s)" % (peer.get("evidently"), peer.get("pandas")),
         peer_value=ev and round(ev, 4), ratio=ratio(ev), target="ratio >= 100",
         meets_target=(ratio(ev) or 0) >= 100 if ev and k else None, rows=200000, features=20,
         kiln_runs=[r["kiln_s"] for r in cmp_runs], peer_runs=[(r.get("peer") or {}).get("evidently_s") for r in cmp_runs],
         kiln_drifted=[r.get("kiln_drifted") for r in cmp_runs],
         peer_drifted=[(r.get("peer") or {}).get("evidently_drifted") for r in cmp_runs],
         note="median of 3 runs; kiln: best of 3 in-process (feed + finish, all statistics), 2 threads; "
              "Evidently: one Report.run each; ratio = Evidently / kiln", **common),
    dict(name="drift_vs_scipy", value=k and round(k, 4), unit="s",
         peer="scipy %s ks_2samp + wasserstein_distance per column" % peer.get("scipy"),
         peer_value=sc and round(sc, 4), ratio=ratio(sc), target="ratio >= 10",
         meets_target=(ratio(sc) or 0) >= 10 if sc and k else None, rows=200000, features=20,
         peer_runs=[(r.get("peer") or {}).get("scipy_s") for r in cmp_runs],
         note="same data and run as drift_vs_evidently; ratio = scipy / kiln", **common),
    dict(name="drift_10m_x_50", value=vps and round(vps), unit="values/s", peer=None, peer_value=None,
         ratio=None, target=">= 1e8 values/s", meets_target=vps >= 1e8 if vps else None,
         rows=10000000, features=50, runs_values_per_s=[r["values_per_s"] for r in big_runs],
         sketched=big_runs[0].get("sketched") if big_runs else None,
         max_ks_error_bound=big_runs[0].get("max_ks_error_bound") if big_runs else None,
         max_wasserstein_norm_error_bound=big_runs[0].get("max_wasserstein_norm_error_bound") if big_runs else None,
         note="2 x 10M x 50 values / seconds inside kiln's calls (generation in 65536-row chunks not timed); median of 3",
         **common),
    dict(name="drift_peak_rss", value=rss, unit="MiB", peer=None, peer_value=None, ratio=None,
         target="< 1024 MiB", meets_target=rss < 1024 if rss else None,
         runs_mib=[r["peak_rss_mib"] for r in big_runs],
         note="peak RSS of the whole drift_bench big process (max of 3)", **common),
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
print("kiln drift (%d threads), medians of %d runs:" % (threads, len(cmp_runs)))
f = lambda v, s: s % v if v is not None else "-"
print("  200000 x 20: kiln %s s, scipy %s s (%sx), Evidently %s s (%sx)"
      % (f(k, "%.3f"), f(sc, "%.2f"), f(ratio(sc), "%.1f"), f(ev, "%.2f"), f(ratio(ev), "%.1f")))
print("  10M x 50: %s values/s, peak RSS %s MiB" % (f(vps, "%.3g"), f(rss, "%.0f")))
print("wrote bench/results.json (drift rows)")
PYEOF
}

# ---- (k) edge inference: bench/edge.sh (its own rows in bench/results.json) --
run_edge() {
    B="$B" BIN_DIR="$BIN_DIR" PY="$PY" OUT="$OUT/edge" bash bench/edge.sh ||
        echo "bench: edge part failed (exit $?), see $OUT/edge" >&2
}
# ---- (l) fleet rollout: bench/fleet.sh (its own rows in bench/results.json) --
run_fleet() {
    B="$B" BIN_DIR="$BIN_DIR" PY="$PY" OUT="$OUT/fleet" bash bench/fleet.sh ||
        echo "bench: fleet part failed (exit $?), see $OUT/fleet" >&2
}

if ! want featurize; then
    if want sched; then run_sched; fi
    if want models; then run_models; fi
    if want drift; then run_drift; fi
    if want edge; then run_edge; fi
    if want fleet; then run_fleet; fi
    exit 0
fi
# Every figure comes from the same binaries: snapshot them now, so a rebuild
# of the tree while this runs cannot swap one in halfway.
cp "$KILN" "$OUT/bin/kiln"
KILN=$OUT/bin/kiln
for b in membw bench_fft; do
    if [ -x "$B/bench/$b" ]; then cp "$B/bench/$b" "$OUT/bin/$b"; fi
done
DATA=$DIR/sensor-w$WINDOWS-n$WINDOW_LEN-r$RATE-a$ASSETS-c3-s$SEED.h5
KILN_FEAT=$DIR/features-kiln.h5
PEER_FEAT=$DIR/features-numpy.h5

# ---- (a) data: reused when a file with the same parameters is there -------
# kiln writes to a temporary name and renames, so a file under the final name
# is complete; its shape is still checked before it is trusted.
data_ok() {
    [ -f "$DATA" ] && "$PY" - "$DATA" "$WINDOWS" "$WINDOW_LEN" "$CHANNELS" <<'EOF' 2>/dev/null
import sys, h5py
path, nw, n, chans = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
with h5py.File(path, "r") as f:
    ok = all(f["signals"][c].shape == (nw, n) for c in chans)
sys.exit(0 if ok else 1)
EOF
}
if data_ok; then
    echo "bench: reusing $DATA"
else
    rm -f "$DATA"
    echo "bench: generating $WINDOWS windows x $WINDOW_LEN samples x 3 channels -> $DATA"
    t0=$SECONDS
    timeout 3600 "$KILN" gen --windows "$WINDOWS" --window-len "$WINDOW_LEN" --rate "$RATE" \
        --assets "$ASSETS" --channels "$CHANNELS" --seed "$SEED" -o "$DATA" >"$OUT/gen.log" 2>&1 ||
        { cat "$OUT/gen.log" >&2; die "kiln gen failed"; }
    echo "bench: generated in $((SECONDS - t0)) s"
    data_ok || die "$DATA does not have the expected shape after kiln gen"
fi

# ---- page cache: does the file fit? ----------------------------------------
file_bytes=$(stat -c %s "$DATA")
avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
total_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
resident() {  # bytes of the file in the page cache, or -1 when fincore is missing
    if command -v fincore >/dev/null 2>&1; then
        fincore --bytes --noheadings --output RES "$DATA" 2>/dev/null | tr -d ' ' || echo -1
    else
        echo -1
    fi
}

# ---- (c) memory bandwidth ---------------------------------------------------
if [ -x "$OUT/bin/membw" ]; then
    echo "bench: membw (1 and 2 threads, 1.5 GiB of arrays, best of 7)"
    timeout 600 "$OUT/bin/membw" --max-threads "$THREADS" >"$OUT/membw.jsonl" 2>"$OUT/membw.log" ||
        { cat "$OUT/membw.log" >&2; die "membw failed"; }
else
    die "no $B/bench/membw (run 'make bench')"
fi

# ---- (d) kiln featurize: one warm-up run, then REPEATS timed runs ---------
TIMEV=()
if [ -x /usr/bin/time ]; then
    TIMEV=(/usr/bin/time -f '{"wall_s":%e,"user_s":%U,"sys_s":%S,"maxrss_kib":%M}' -o)
fi
run_kiln() {  # $1 threads, $2 stats file
    rm -f "$KILN_FEAT"
    local tv=()
    [ ${#TIMEV[@]} -gt 0 ] && tv=("${TIMEV[@]}" "${2%.json}.time")
    timeout 3600 "${tv[@]}" "$KILN" featurize "$SPEC" --input "$DATA" --output "$KILN_FEAT" \
        --threads "$1" --stats-json "$2" >>"$OUT/featurize.log" 2>&1 ||
        { tail -n 20 "$OUT/featurize.log" >&2; die "kiln featurize failed"; }
}
load_before=$(cut -d' ' -f1 /proc/loadavg)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
res_before=$(resident)
echo "bench: kiln featurize warm-up run (page cache)"
run_kiln "$THREADS" "$OUT/kiln-warm.json"
res_after=$(resident)
echo "bench: kiln featurize --threads 1 (one run, per-core figure)"
run_kiln 1 "$OUT/kiln-1thread.json"
for i in $(seq 1 "$REPEATS"); do
    echo "bench: kiln featurize --threads $THREADS, run $i/$REPEATS"
    run_kiln "$THREADS" "$OUT/kiln-$i.json"
done

# ---- (e) numpy/scipy peer, same file and spec, then the parity check -------
echo "bench: numpy/scipy peer (budget ${PEER_BUDGET_S} s, then scaled per window)"
set +e
ptv=()
[ ${#TIMEV[@]} -gt 0 ] && ptv=("${TIMEV[@]}" "$OUT/peer.time")
timeout $((PEER_BUDGET_S * 3 + 600)) "${ptv[@]}" "$PY" bench/peer_numpy.py "$SPEC" --input "$DATA" \
    --output "$PEER_FEAT" --time-budget "$PEER_BUDGET_S" --chunk "$PEER_CHUNK" --compare "$KILN_FEAT" \
    --json "$OUT/peer.json" >"$OUT/peer.log" 2>&1
peer_rc=$?
set -e
load_after=$(cut -d' ' -f1 /proc/loadavg)
if [ $peer_rc -ne 0 ] && [ $peer_rc -ne 3 ]; then
    tail -n 20 "$OUT/peer.log" >&2
    die "numpy peer failed (exit $peer_rc)"
fi

# ---- (f) FFT micro-benchmark, when built ------------------------------------
: >"$OUT/bench_fft.jsonl"
if [ -x "$OUT/bin/bench_fft" ]; then
    echo "bench: bench_fft"
    timeout 600 "$OUT/bin/bench_fft" >"$OUT/bench_fft.jsonl" 2>"$OUT/bench_fft.log" ||
        echo "bench: bench_fft failed (exit $?), its rows are left out" >&2
else
    echo "bench: no $B/bench/bench_fft, fft_vs_fftw left out"
fi

# ---- (g) table and bench/results.json ---------------------------------------
"$PY" - "$OUT" "$REPEATS" "$THREADS" "$file_bytes" "$avail_kib" "$total_kib" \
    "$res_before" "$res_after" "$WINDOWS" "$peer_rc" "$load_before" "$load_after" "$commit" "$dirty" <<'EOF'
import json, os, platform, statistics, sys

out, repeats, threads, file_bytes, avail_kib, total_kib, res_before, res_after, windows, peer_rc = sys.argv[1:11]
load_before, load_after = float(sys.argv[11]), float(sys.argv[12])
commit, dirty = sys.argv[13], int(sys.argv[14])
repeats, threads, file_bytes = int(repeats), int(threads), int(file_bytes)
avail_kib, total_kib, windows, peer_rc = int(avail_kib), int(total_kib), int(windows), int(peer_rc)

def jsonl(path):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    return rows

def load(path):
    with open(path) as f:
        return json.load(f)

membw = {r["name"]: r for r in jsonl(os.path.join(out, "membw.jsonl"))}
runs = [load(os.path.join(out, "kiln-%d.json" % i)) for i in range(1, repeats + 1)]
warm = load(os.path.join(out, "kiln-warm.json"))
one = load(os.path.join(out, "kiln-1thread.json"))
peer = load(os.path.join(out, "peer.json"))
fft = [r for r in jsonl(os.path.join(out, "bench_fft.jsonl")) if r.get("name", "").startswith("fft_vs_fftw")]

def cpu_s(stem):
    """user+sys seconds from /usr/bin/time, None when it was not there."""
    try:
        t = load(os.path.join(out, stem + ".time"))
        return t["user_s"] + t["sys_s"]
    except (OSError, ValueError, KeyError):
        return None

k_cpu = [cpu_s("kiln-%d" % i) for i in range(1, repeats + 1)]
k_cpu = statistics.median(k_cpu) if None not in k_cpu else None
p_cpu = cpu_s("peer")

k_s = statistics.median(r["seconds"] for r in runs)
k_rss_mib = max(r["peak_rss_kib"] for r in runs) / 1024
sig_bytes = runs[0]["signal_bytes"]
k_gbps = sig_bytes / k_s / 1e9
p_s = peer["seconds_full_scaled"]                 # = measured seconds when not extrapolated
p_rss_mib = peer["peak_rss_kib"] / 1024
p_gbps = peer["signal_bytes"] / peer["seconds"] / 1e9
bw_read = membw.get("membw_read", {}).get("value")
bw_triad = membw.get("membw_triad", {}).get("value")
fits = file_bytes < avail_kib * 1024 * 0.8
parity = peer.get("parity", {})

def row(name, value, unit, peer_name=None, peer_value=None, ratio=None, **extra):
    r = {"name": name, "value": value, "unit": unit, "peer": peer_name,
         "peer_value": peer_value, "ratio": ratio}
    r.update(extra)
    return r

common = {"windows": windows, "channels": runs[0]["channels"], "window_len": runs[0]["window_len"]}
results = [
    row("featurize_vs_numpy", round(k_s, 4), "s", "numpy/scipy", round(p_s, 4),
        round(p_s / k_s, 3), kiln_threads=threads, numpy_threads="1 (FFTs; OpenBLAS matmuls may use more)", kiln_runs=[r["seconds"] for r in runs],
        kiln_warmup_s=warm["seconds"], numpy_windows_measured=peer["windows"],
        numpy_extrapolated=peer["extrapolated"], numpy_dtype=peer["dtype"],
        parity_ok=parity.get("ok"), kiln_cpu_s=k_cpu, numpy_cpu_s=p_cpu, **common),
    row("featurize_vs_numpy_1thread", round(one["seconds"], 4), "s", "numpy/scipy", round(p_s, 4),
        round(p_s / one["seconds"], 3), kiln_threads=1, **common),
    row("featurize_cpu_vs_numpy", round(k_cpu, 3) if k_cpu is not None else None, "cpu s",
        "numpy/scipy", round(p_cpu * (p_s / peer["seconds"]), 3) if p_cpu is not None else None,
        round(p_cpu * (p_s / peer["seconds"]) / k_cpu, 3) if k_cpu and p_cpu else None,
        note="user+sys CPU seconds of the whole process (median kiln run; numpy scaled like its "
             "wall time when extrapolated): less sensitive than wall time to a busy machine"),
    row("featurize_windows_per_s", round(windows / k_s, 1), "windows/s", "numpy/scipy",
        round(windows / p_s, 1), round((windows / k_s) / (windows / p_s), 3), kiln_threads=threads),
    row("featurize_gbps", round(k_gbps, 4), "GB/s", "numpy/scipy", round(p_gbps, 4),
        round(k_gbps / p_gbps, 3) if p_gbps else None,
        fraction_of_membw_read=round(k_gbps / bw_read, 4) if bw_read else None,
        membw_read_gbps=bw_read, signal_bytes=sig_bytes,
        note="raw float32 signal bytes / featurize seconds; ratio = kiln / numpy (>1: kiln faster)"),
    row("featurize_peak_rss", round(k_rss_mib, 1), "MiB", "numpy/scipy", round(p_rss_mib, 1),
        round(p_rss_mib / k_rss_mib, 3), note="ratio = numpy / kiln (>1: kiln uses less)"),
]
for f in fft:
    f = dict(f)
    results.append(row(f.pop("name"), f.pop("value", None), f.pop("unit", "ns"), f.pop("peer", "fftw3f"),
                       f.pop("peer_value", None), f.pop("ratio", None), **f))
if not fft:
    results.append(row("fft_vs_fftw", None, "ns", "fftw3f", None, None, note="bench_fft not built or failed"))
for name in sorted(membw):
    m = membw[name]
    results.append(row(name, m["value"], "GB/s", threads=m.get("threads")))

meta = {"cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()),
        "cores": os.cpu_count(), "mem_total_gib": round(total_kib / 2**20, 1),
        "file_bytes": file_bytes, "file_fits_page_cache": fits,
        "resident_bytes_before_warmup": int(res_before), "resident_bytes_after_warmup": int(res_after),
        "loadavg_1min_before": load_before, "loadavg_1min_after": load_after,
        "git_commit": commit, "git_modified_tracked_files": dirty}
results.append(row("bench_meta", None, None, **meta))
# The other parts' rows (scheduler, models) stay as an earlier run wrote them.
try:
    old = json.load(open("bench/results.json"))
    old = old if isinstance(old, list) else []
except (OSError, ValueError):
    old = []
mine = ("featurize_", "fft_vs_fftw", "membw_", "bench_meta")
results += [r for r in old if isinstance(r, dict) and not str(r.get("name", "")).startswith(mine)]
with open("bench/results.json", "w") as f:
    json.dump(results, f, indent=1)
    f.write("\n")

gib = 2**30
print()
print("kiln bench: %d windows x %d samples x %d channels, %.2f GiB file, %s, %d cores, commit %s%s"
      % (windows, runs[0]["window_len"], runs[0]["channels"], file_bytes / gib, meta["cpu"], meta["cores"],
         commit, " + %d modified files" % dirty if dirty else ""))
print("page cache: file %.2f GiB, MemAvailable %.1f GiB -> %s; resident before/after warm-up: %s / %s"
      % (file_bytes / gib, avail_kib / 2**20, "fits (timed runs read from page cache)" if fits
         else "DOES NOT FIT (timed runs include disk reads)",
         "%.2f GiB" % (int(res_before) / gib) if int(res_before) >= 0 else "n/a",
         "%.2f GiB" % (int(res_after) / gib) if int(res_after) >= 0 else "n/a"))
print()
print("%-40s %12s %12s %9s" % ("", "kiln", "numpy/scipy", "ratio"))
print("%-40s %12.2f %12.2f %8.1fx" % ("featurize s (kiln %d thr, median of %d)" % (threads, repeats),
                                      k_s, p_s, p_s / k_s))
print("%-40s %12.2f %12.2f %8.1fx" % ("featurize s (kiln 1 thread)", one["seconds"], p_s, p_s / one["seconds"]))
print("%-40s %12.0f %12.0f %8.1fx" % ("windows/s", windows / k_s, windows / p_s, p_s / k_s))
print("%-40s %12.3f %12.3f %8.1fx" % ("GB/s of raw signal", k_gbps, p_gbps, k_gbps / p_gbps))
print("%-40s %12.0f %12.0f %8.1fx" % ("peak RSS MiB", k_rss_mib, p_rss_mib, p_rss_mib / k_rss_mib))
if k_cpu is not None and p_cpu is not None:
    p_cpu_full = p_cpu * (p_s / peer["seconds"])
    print("%-40s %12.2f %12.2f %8.1fx" % ("CPU s, user+sys (whole process)", k_cpu, p_cpu_full,
                                          p_cpu_full / k_cpu))
if peer["extrapolated"]:
    print("  numpy ran %d of %d windows (first chunks, %.1f s) and is scaled per window to the whole file"
          % (peer["windows"], peer["windows_total"], peer["seconds"]))
print("  numpy: float64, batches of %d windows, FFTs on 1 thread (OpenBLAS matmuls may use all cores);"
      % peer["chunk"])
print("  kiln: float32 signal and FFTs, statistics summed in double")
print("  kiln runs: %s s (warm-up %.2f s)" % (", ".join("%.2f" % r["seconds"] for r in runs), warm["seconds"]))
print("  1-min load average: %.2f before the kiln runs, %.2f after the numpy run (%d cores)"
      % (load_before, load_after, meta["cores"]))
print()
print("memory bandwidth: read %s GB/s, triad %s GB/s (best of 1..%d threads); %s"
      % (bw_read, bw_triad, threads,
         ", ".join("%s %.1f" % (n[6:], membw[n]["value"]) for n in sorted(membw) if n.endswith("t"))))
if bw_read:
    print("featurize raw-signal rate = %.1f%% of measured read bandwidth" % (100 * k_gbps / bw_read))
for f in fft:
    print("FFT n=%s: kiln %.0f %s vs %s %.0f -> ratio %.2f (>1: kiln faster)"
          % (f.get("n"), f["value"], f.get("unit", "ns"), f.get("peer"), f["peer_value"], f["ratio"]))
if not fft:
    print("FFT vs FFTW: bench_fft not available")
print()
if "groups" in parity:
    print("parity (kiln float32 vs numpy float64, %d rows): %s -- %s"
          % (parity["rows"], "OK" if parity["ok"] else "FAIL", parity["verdict"]))
    print("  %-9s %9s %-24s %10s %10s" % ("group", "max_rel", "(worst column)", "err/scale", "> 1e-3"))
    for g, v in parity["groups"].items():
        print("  %-9s %9.2e %-24s %10.2e %9.3f%%"
              % (g, v["max_rel"], "(%s)" % v["worst_column"], v["max_err_over_scale"],
                 100 * v["frac_over_1e-3"]))
    for n in parity.get("notes", []):
        print("  note: " + n)
else:
    print("parity: FAIL -- %s" % parity.get("verdict", "no comparison"))
print("\nwrote bench/results.json")
EOF
if want sched; then run_sched; fi
if want models; then run_models; fi
if want drift; then run_drift; fi
if want edge; then run_edge; fi
if want fleet; then run_fleet; fi
