#!/usr/bin/env bash
# kiln featurize against its numpy/scipy twin (bench/peer_numpy.py, float64)
# on generated data and on the real CWRU windows: every feature column must
# agree within 1e-3 of its scale (the peer's verdict; a wrong definition is
# off by O(1)), with names in the same order.
set -euo pipefail
cd "$KILN_ROOT"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
KILN=$KILN_BIN

$KILN gen --windows 600 --window-len 2048 --rate 12000 --assets 5 --seed 11 -o "$D/gen.h5"
$KILN featurize bench/featurize_bench.json --input "$D/gen.h5" --output "$D/gen-f.h5"
"$KILN_PYTHON" bench/peer_numpy.py bench/featurize_bench.json --input "$D/gen.h5" \
    --compare "$D/gen-f.h5" --json "$D/gen-peer.json" >/dev/null
"$KILN_PYTHON" -c "import json,sys; p=json.load(open(sys.argv[1]))['parity']; print('generated:', p['verdict']); sys.exit(0 if p['ok'] else 1)" "$D/gen-peer.json"

# odd window length (Bluestein FFT path) and no spectrum window
$KILN gen --windows 200 --window-len 1021 --rate 8000 --assets 3 --seed 5 -o "$D/odd.h5"
sed -e 's/"window": "hann"/"window": "none"/' bench/featurize_bench.json > "$D/odd.json"
$KILN featurize "$D/odd.json" --input "$D/odd.h5" --output "$D/odd-f.h5"
"$KILN_PYTHON" bench/peer_numpy.py "$D/odd.json" --input "$D/odd.h5" --compare "$D/odd-f.h5" \
    --json "$D/odd-peer.json" >/dev/null
"$KILN_PYTHON" -c "import json,sys; p=json.load(open(sys.argv[1]))['parity']; print('odd length:', p['verdict']); sys.exit(0 if p['ok'] else 1)" "$D/odd-peer.json"

$KILN ingest cwru -o "$D/cwru.h5" "$KILN_DATA"/cwru/*.mat >/dev/null
$KILN featurize examples/cwru_features.json --input "$D/cwru.h5" --output "$D/cwru-f.h5"
"$KILN_PYTHON" bench/peer_numpy.py examples/cwru_features.json --input "$D/cwru.h5" \
    --compare "$D/cwru-f.h5" --json "$D/cwru-peer.json" >/dev/null
"$KILN_PYTHON" -c "import json,sys; p=json.load(open(sys.argv[1]))['parity']; print('cwru:', p['verdict']); sys.exit(0 if p['ok'] else 1)" "$D/cwru-peer.json"
