#!/usr/bin/env bash
# demo.sh - the whole pipeline on the real data in ../shared/data: ingest the
# CWRU bearing recordings and the C-MAPSS turbofan runs, featurize the
# bearings, and show how well the features separate the fault classes.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=bin/kiln
DATA=${KILN_DATA:-$PWD/../shared/data}
OUT=${KILN_DEMO_DIR:-out/demo}

if [ ! -d "$DATA/cwru" ]; then
    echo "demo: no data at $DATA (set KILN_DATA to the shared data folder)" >&2
    exit 1
fi
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1. ingest CWRU bearing recordings (.mat, 12 kHz and 48 kHz) -> one 12 kHz sensor dataset"
$KILN ingest cwru --rate 12000 --window-len 2048 -o "$OUT/cwru.h5" "$DATA"/cwru/*.mat
$KILN inspect --verify "$OUT/cwru.h5"

step "2. ingest C-MAPSS FD001 turbofan runs (one row per cycle, target = remaining useful life)"
$KILN ingest cmapss --train "$DATA/cmapss/train_FD001.txt" -o "$OUT/cmapss-train.h5"
$KILN inspect "$OUT/cmapss-train.h5"

step "3. featurize the bearing windows (examples/cwru_features.json, both cores)"
$KILN featurize examples/cwru_features.json --input "$OUT/cwru.h5" \
    --output "$OUT/cwru-features.h5"
$KILN inspect "$OUT/cwru-features.h5"

step "4. which features separate the fault classes (per-class means, Fisher ratio)"
$KILN classes "$OUT/cwru-features.h5" --top 10
$KILN classes "$OUT/cwru-features.h5" \
    --features DE.rms,DE.kurt,DE.crest,DE.env_bpfo,DE.env_bpfi,DE.env_bsf,DE.centroid

step "done: datasets under $OUT"
ls -l "$OUT"
