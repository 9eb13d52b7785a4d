#!/usr/bin/env bash
# Featurize memory stays bounded whatever a file's shape: a small sparse file
# that claims 256 windows x 2 channels x 1 Mi samples (2 GiB of signal, read
# back as HDF5's fill zeros) is featurized in batches sized in bytes, so the
# peak RSS stays far below the 2 GiB a 256-window batch would take.
set -euo pipefail
cd "$KILN_ROOT"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
KILN=$KILN_BIN

"$KILN_PYTHON" - "$D/long.h5" <<'PY'
import sys, h5py, numpy as np
n, L = 256, 1 << 20
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["schema"] = "kiln.sensor.v1"
    f.attrs["sample_rate_hz"] = 48000.0
    f.attrs["window_len"] = np.int64(L)
    f.attrs["created"] = "2026-01-01T00:00:00Z"
    f.attrs["source"] = "sparse test file"
    f.attrs["content_sha256"] = "0" * 64
    g = f.create_group("signals")
    for c in ("a", "b"):
        g.create_dataset(c, shape=(n, L), dtype="<f4", chunks=(1, L), fillvalue=0.0)
    g.attrs["channels"] = ["a", "b"]
    f.create_dataset("asset", data=np.zeros(n, dtype="<i4"))
    f.create_dataset("timestamp", data=np.arange(n, dtype="<i8"))
PY
ls -l "$D/long.h5"
printf '{"type":"featurize","features":{"time":["rms","peak"]}}' > "$D/spec.json"
$KILN featurize "$D/spec.json" --input "$D/long.h5" --output "$D/out.h5" \
    --stats-json "$D/stats.json"
"$KILN_PYTHON" - "$D/stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
mib = s["peak_rss_kib"] / 1024
print("windows %d, signal %.0f MiB, peak RSS %.0f MiB" % (s["windows"], s["signal_bytes"] / 2**20, mib))
assert s["windows"] == 256
assert mib < 512, "peak RSS must not follow the batch's window count"
PY
