#!/usr/bin/env bash
# The real data end to end through the kiln binary: ingest the CWRU
# recordings, verify the stored hash, featurize with 1 and 2 threads and
# different batch sizes (same output bytes: the work split must not change a
# feature), and rank the features by class separation.
set -euo pipefail
cd "$KILN_ROOT"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
KILN=$KILN_BIN

$KILN ingest cwru --rate 12000 --window-len 2048 -o "$D/cwru.h5" "$KILN_DATA"/cwru/*.mat
$KILN inspect --verify "$D/cwru.h5" | tee "$D/inspect.txt"
grep -q "normal" "$D/inspect.txt"
grep -q "outer_race" "$D/inspect.txt"

$KILN featurize examples/cwru_features.json --input "$D/cwru.h5" --output "$D/f1.h5" \
    --threads 1 --batch 100 --stats-json "$D/s1.json"
$KILN featurize examples/cwru_features.json --input "$D/cwru.h5" --output "$D/f2.h5" \
    --threads 2 --batch 256 --stats-json "$D/s2.json"
h1=$(grep -o '"output_sha256": "[0-9a-f]*"' "$D/s1.json")
h2=$(grep -o '"output_sha256": "[0-9a-f]*"' "$D/s2.json")
echo "1 thread: $h1"; echo "2 threads: $h2"
[ "$h1" = "$h2" ]
$KILN inspect --verify "$D/f2.h5"
# no temporary file is left beside the outputs
! ls "$D" | grep -q '\.tmp\.'

# the envelope line at BPFO separates outer-race windows from the rest
$KILN classes "$D/f2.h5" --features DE.env_bpfo | tee "$D/classes.txt"
"$KILN_PYTHON" - "$D/f2.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
names = [n.decode() if isinstance(n, bytes) else n for n in f["features"].attrs["feature_names"]]
labels = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["label_names"]]
x = f["features"][:, names.index("DE.env_bpfo")]
y = f["label"][:]
outer = np.median(x[y == labels.index("outer_race")])
normal = np.median(x[y == labels.index("normal")])
print("median DE.env_bpfo outer_race %.4g normal %.4g" % (outer, normal))
assert outer > 5 * normal, "outer-race BPFO envelope line should stand out"
PY
