#!/usr/bin/env bash
# run.sh - runs every unit test binary (each in its own process, so a crash
# is one failed test) and every system test script, then prints one line
# "N passed, N failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
export KILN_ROOT=$PWD
export KILN_PYTHON=${KILN_PYTHON:-$PWD/.venv/bin/python}
export KILN_DATA=${KILN_DATA:-$PWD/../shared/data}
export KILN_BIN=${KILN_BIN:-$PWD/bin/kiln}
export CMOCKA_MESSAGE_OUTPUT=stdout
TMPROOT=$(mktemp -d /tmp/kiln-test.XXXXXX)
export TMPDIR=$TMPROOT
trap 'rm -rf "$TMPROOT"' EXIT

passed=0; failed=0; failures=""
# Unit test binaries run KILN_TEST_JOBS at a time (default 2: each is one
# process with its own oracle server and scratch files, no ports); their
# results are printed in name order as soon as each is known.
jobs_max=${KILN_TEST_JOBS:-2}
units=()
for t in "$B"/tests/test_*; do
    [ -x "$t" ] && units+=("$t")
done
run_unit() {   # BINARY LOG: the log, then LOG.rc ("exit seconds") last
    local t0=$SECONDS
    timeout 600 "$1" >"$2" 2>&1
    echo "$? $((SECONDS - t0))" >"$2.rc.tmp" && mv "$2.rc.tmp" "$2.rc"
}
started=0; shown=0
while [ $shown -lt ${#units[@]} ]; do
    finished=0
    for ((i = shown; i < started; i++)); do
        [ -f "$TMPROOT/${units[$i]##*/}.log.rc" ] && finished=$((finished + 1))
    done
    if [ $((started - shown - finished)) -lt "$jobs_max" ] && [ $started -lt ${#units[@]} ]; then
        run_unit "${units[$started]}" "$TMPROOT/${units[$started]##*/}.log" &
        started=$((started + 1))
        continue
    fi
    name=${units[$shown]##*/}
    log="$TMPROOT/$name.log"
    if [ ! -f "$log.rc" ]; then
        sleep 0.05
        continue
    fi
    read -r rc secs <"$log.rc"
    run=$(grep -c '^\[ RUN      \]' "$log")
    ok=$(grep -c '^\[       OK \]' "$log")
    skip=$(grep -c '^\[  SKIPPED \]' "$log")
    bad=$((run - ok - skip))
    if [ $rc -ne 0 ] && [ $bad -eq 0 ]; then bad=1; fi
    passed=$((passed + ok)); failed=$((failed + bad))
    if [ $bad -ne 0 ]; then
        failures="$failures $name"
        echo "---- $name (exit $rc, ${secs} s) ----"; tail -n 40 "$log"
    else
        echo "ok   $name ($ok tests, ${secs} s)"
    fi
    shown=$((shown + 1))
done
wait
for s in tests/system/*.sh; do
    [ -f "$s" ] || continue
    name=$(basename "$s" .sh)
    log="$TMPROOT/$name.log"
    t0=$SECONDS
    if timeout 900 bash "$s" >"$log" 2>&1; then
        passed=$((passed + 1)); echo "ok   system/$name ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1)); failures="$failures system/$name"
        echo "---- system/$name ($((SECONDS - t0)) s) ----"; tail -n 40 "$log"
    fi
done
# GPU parity (built by tests/gpu/run.sh): run where a GPU is, else say so.
gpu_checks="parity train_parity"
if [ -x "$B/gpu-test/parity" ] && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    for g in $gpu_checks; do
        gpu_bin="$B/gpu-test/$g"
        [ -x "$gpu_bin" ] || { echo "gpu: $g skipped (not built)"; continue; }
        log="$TMPROOT/gpu_$g.log"
        if [ "$g" = parity ]; then
            timeout 600 "$gpu_bin" "$B/gpu-data" >"$log" 2>&1
        else
            timeout 600 "$gpu_bin" >"$log" 2>&1
        fi
        rc=$?
        ok=$(grep -c '^ok ' "$log"); bad=$(grep -c '^FAIL' "$log")
        if [ $rc -ne 0 ] && [ $bad -eq 0 ]; then bad=1; fi
        passed=$((passed + ok)); failed=$((failed + bad))
        if [ $bad -ne 0 ]; then
            failures="$failures gpu/$g"
            echo "---- gpu/$g (exit $rc) ----"; grep -v '^ok ' "$log" | tail -n 40
        else
            echo "ok   gpu/$g ($ok checks)"
        fi
    done
elif [ -x "$B/gpu-test/parity" ]; then
    echo "gpu: 2 skipped (no GPU: nvidia-smi -L lists none)"
else
    echo "gpu: 2 skipped (no GPU parity binaries: bash tests/gpu/run.sh builds them)"
fi
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
