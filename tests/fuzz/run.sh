#!/usr/bin/env bash
# run.sh - builds the libFuzzer targets with clang (ASan + UBSan) and runs
# them from a seed corpus made here (valid inputs written by kiln itself).
#   FUZZ_SECONDS (default 20): how long each mutating run lasts.
#   FUZZ_MODE=smoke (what `make test` runs): the job-spec parser and the
#   protocol-frame decoder (at most 10 s), all kiln code, are fuzzed with
#   mutation; the sensor-file target only replays its corpus.  Mutated HDF5 files reach bugs inside libhdf5 1.10 itself (found
#   here: a hang, and a memcpy overlap while reading a string attribute),
#   which would make a timed CI run fail at random; `make fuzz` runs both
#   targets with mutation.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${FUZZ_SECONDS:-20}
OUT=build/fuzz
mkdir -p "$OUT"
# -march=native as in the Makefile: the model kernels use vector types whose
# ABI depends on it.  MPI's flags: cluster/ holds the collectives.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=c11 -g -O1 -march=native -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I.
        $(pkg-config --cflags hdf5 jansson libzmq libarchive libsodium) $(pkg-config --cflags ompi-c 2>/dev/null)"
LIBS="$(pkg-config --libs hdf5 jansson matio sqlite3 libzmq libarchive libsodium libcrypto) $(pkg-config --libs ompi-c 2>/dev/null)
      -lm -lpthread"
SRC="core/*.c kernels/cpu/*.c kernels/cuda_stub/*.c storage/*.c cluster/*.c jobs/*.c scheduler/sched*.c scheduler/idmap.c scheduler/cron.c"
# The library sources are compiled once (in parallel) and shared by every
# target: compiling them per target took minutes.
OBJ=$OUT/obj
rm -rf "$OBJ"
mkdir -p "$OBJ"
export CFLAGS SAN OBJ
# shellcheck disable=SC2086
printf '%s\n' $SRC | xargs -P "$(nproc)" -I{} sh -c \
    'clang $CFLAGS $SAN -fsanitize=fuzzer-no-link -c "$1" -o "$OBJ/$(echo "$1" | tr / _).o"' _ {}
for t in fuzz_jobspec fuzz_sensor_file fuzz_frames fuzz_submit fuzz_bundle; do
    # shellcheck disable=SC2086
    clang $CFLAGS $SAN -fsanitize=fuzzer -o "$OUT/$t" tests/fuzz/$t.c "$OBJ"/*.o $LIBS
done

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus/jobspec" "$corpus/sensor" "$corpus/frames" "$corpus/submit" "$corpus/bundle"
# bundles (fuzz_bundle.c): byte 0 odd + a tar, even + an envelope
bt=$(mktemp -d)
printf '{}' >"$bt/manifest.json"; printf 'KMDL' >"$bt/model.kmodel"; printf '{}' >"$bt/featspec.json"
ln -s /etc/passwd "$bt/link"; ln "$bt/model.kmodel" "$bt/hard"
{ printf '\001'; tar -C "$bt" --format=pax -cf - manifest.json model.kmodel featspec.json; } >"$corpus/bundle/tar"
{ printf '\001'; tar -C "$bt" --format=ustar -cf - manifest.json link model.kmodel hard; } >"$corpus/bundle/links"
rm -rf "$bt"
printf '\000{"format":"kiln-envelope/1","manifest":{"schema":"kiln-bundle/1"},"seq":1,"expires":9,"rollback":false,"bundle_sha256":"00","bundle_size":100,"sig":"AAAA"}' >"$corpus/bundle/envelope"
cp examples/cwru_features.json "$corpus/submit/"
printf '{"type":"noop","tasks":3,"priority":5,"project":"p","resources":{"cores":2,"ranks":2}}' >"$corpus/submit/noop"
printf '{"type":"noop","array":"0-9%%2","max_retries":1,"timeout_s":2.5,"depends_on":[1]}' >"$corpus/submit/array"
printf 'K{"type":"noop","fail":"once","marker":"/tmp/m"}' >"$corpus/submit/key"
# protocol messages, frames cut at 0x1e (see fuzz_frames.c)
printf 'hello\x1e{"worker_id":"w1","cores":16,"memory_mb":4096,"gpus":1}' >"$corpus/frames/hello"
printf 'task\x1e{"task_id":7,"job_id":3,"lease_id":"L1","spec":{"type":"featurize"}}' >"$corpus/frames/task"
printf 'progress\x1e{"task_id":7,"lease_id":"L1","done":4,"total":10}' >"$corpus/frames/progress"
printf 'done\x1e{"task_id":7,"lease_id":"L1","output":"o.h5"}\x1eBLOB\x1e' >"$corpus/frames/done"
printf 'failed\x1e{"task_id":7,"lease_id":"L1","reason":"oom"}' >"$corpus/frames/failed"
printf 'cancel\x1e{"task_id":7}' >"$corpus/frames/cancel"
printf 'heartbeat\x1e{"worker_id":"w1"}' >"$corpus/frames/heartbeat"
cp examples/cwru_features.json bench/featurize_bench.json "$corpus/jobspec/"
bin/kiln gen --windows 8 --window-len 64 --rate 1000 --assets 2 --channels a,b -o "$corpus/sensor/small.h5" >/dev/null
bin/kiln gen --windows 4 --window-len 32 --rate 1000 --assets 1 --channels x --compress 4 -o "$corpus/sensor/deflate.h5" >/dev/null

export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp
# -artifact_prefix: a crashing input lands in build/fuzz/, not the work tree
"$OUT/fuzz_jobspec" -max_total_time="$SECS" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$OUT/" "$corpus/jobspec"
# kiln's own parser: mutated in both modes (at most 10 s in smoke mode)
frame_secs=$SECS
if [ "${FUZZ_MODE:-full}" = smoke ] && [ "$SECS" -gt 10 ]; then frame_secs=10; fi
"$OUT/fuzz_frames" -max_total_time="$frame_secs" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$OUT/" "$corpus/frames"
"$OUT/fuzz_submit" -max_total_time="$frame_secs" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$OUT/" "$corpus/submit"
"$OUT/fuzz_bundle" -max_total_time="$frame_secs" -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$OUT/" "$corpus/bundle"
if [ "${FUZZ_MODE:-full}" = smoke ]; then
    "$OUT/fuzz_sensor_file" -runs=0 -artifact_prefix="$OUT/" "$corpus/sensor"
else
    "$OUT/fuzz_sensor_file" -max_total_time="$SECS" -max_len=65536 -print_final_stats=1 \
        -timeout=10 -artifact_prefix="$OUT/" "$corpus/sensor"
fi
