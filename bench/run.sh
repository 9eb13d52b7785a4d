#!/usr/bin/env bash
# run.sh - the whole benchmark in one run on one data set (`make bench` builds
# first, then calls this): synthetic sensor data, this machine's memory
# bandwidth, `kiln featurize` (2 threads, median of 3 after a warm-up run),
# the numpy/scipy peer on the same file and spec with a parity check, and the
# FFT micro-benchmark.  Prints a table and writes bench/results.json.
#
# Environment:
#   KILN_BENCH_WINDOWS   windows to generate (default 100000: ~2.4 GB of float32 signal)
#   KILN_BENCH_DIR       where data and per-step outputs go (default $B/bench-data)
#   KILN_BENCH_PEER_BUDGET_S  the numpy peer stops at the first chunk past this
#                        many seconds and its time is scaled per window (default 300)
#   KILN_BENCH_PEER_CHUNK  windows per numpy batch (default 1024)
#   KILN_BENCH_REPEATS   timed kiln featurize runs, median kept (default 3)
#   KILN_BIN             the kiln binary (default bin/kiln)
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
[ -x "$PY" ] || die "no $PY (run 'make deps' or 'make bench')"
[ -x "$KILN" ] || die "no $KILN (run 'make bench', which builds it)"
"$KILN" featurize --help >/dev/null 2>&1 || die "$KILN has no working 'featurize' command"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
OUT=$DIR/results
rm -rf "$OUT"
mkdir -p "$OUT/bin"
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
