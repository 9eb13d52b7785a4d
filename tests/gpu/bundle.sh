#!/usr/bin/env bash
# bundle.sh - packs what tests/gpu/e2e.sh needs on a GPU machine that has
# the CUDA runtime but none of kiln's other libraries: the CUDA build of
# kiln, kilnd and kiln-worker, the shared libraries they load (glibc and
# CUDA's own excepted: the GPU machine has those), and the CWRU sensor
# dataset when `make demo` made one, and Open MPI's runtime where there is
# one.  Into build/gpu-e2e and, compressed, build/gpu-e2e.txz (carry that:
# e2e.sh unpacks it).
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
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv)\.so|ld-linux|libcuda|libcudart|libcublas|libcufft|libnccl|libstdc\+\+|libgcc_s' |
    while read -r lib; do cp -L "$lib" "$out/lib/"; done
# Open MPI's launcher, daemon, plugins and configuration at the absolute
# paths Debian's build looks for them (e2e.sh copies them there, never over
# an existing file), so the NCCL-over-MPI train can run on the GPU machine.
if command -v orterun >/dev/null; then
    m=$out/mpi/root
    mkdir -p "$m/usr/bin" "$m/usr/lib/x86_64-linux-gnu" "$m/etc"
    cp -L /usr/bin/orterun /usr/bin/orted "$m/usr/bin/"
    ln -s orterun "$m/usr/bin/mpirun"
    cp -a /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 "$m/usr/lib/x86_64-linux-gnu/"
    cp -a /etc/openmpi "$m/etc/"
    rm -rf "$m/usr/lib/x86_64-linux-gnu/openmpi/include"
    find /usr/bin/orterun /usr/bin/orted /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 \
        -name '*.so*' -o -type f -perm -u+x | { xargs ldd 2>/dev/null || true; } | awk '/=>/ {print $3}' | sort -u |
        grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv)\.so|ld-linux|libcuda|libcudart|libcublas|libcufft|libnccl|libstdc\+\+|libgcc_s' |
        while read -r lib; do if [ -f "$lib" ]; then cp -Ln "$lib" "$out/lib/" || true; fi; done
fi
sensor=${1:-out/demo/cwru.h5}
[ -f "$sensor" ] && cp "$sensor" "$out/data/cwru.h5"
cp bench/featurize_bench.json examples/cwru_features.json "$out/data/"
# One compressed file to carry (the device tool's tree limit is 64 MiB).
tar -C build -cJf "$out.txz" gpu-e2e
du -sh "$out" "$out.txz"
