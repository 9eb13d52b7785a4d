#!/usr/bin/env bash
# bundle.sh - packs what tests/gpu/e2e.sh needs on a GPU machine that has
# the CUDA runtime but none of kiln's other libraries: the CUDA build of
# kiln, kilnd and kiln-worker, the shared libraries they load (glibc and
# CUDA's own excepted: the GPU machine has those), and the CWRU sensor
# dataset when `make demo` made one.  Into build/gpu-e2e (carry that folder).
#
#   bash tests/gpu/bundle.sh [SENSOR.h5]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/gpu-e2e
command -v nvcc >/dev/null || { echo "bundle.sh: no nvcc: the bundle needs the CUDA build" >&2; exit 1; }
make -s CUDA=1 bin/kiln bin/kilnd bin/kiln-worker
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/data"
cp bin/kiln bin/kilnd bin/kiln-worker "$out/bin/"
ldd bin/kiln bin/kilnd bin/kiln-worker | awk '/=>/ {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv)\.so|ld-linux|libcuda|libcudart|libcublas|libcufft|libstdc\+\+|libgcc_s' |
    while read -r lib; do cp -L "$lib" "$out/lib/"; done
sensor=${1:-out/demo/cwru.h5}
[ -f "$sensor" ] && cp "$sensor" "$out/data/cwru.h5"
cp bench/featurize_bench.json examples/cwru_features.json "$out/data/"
du -sh "$out"
