#!/usr/bin/env bash
# kiln featurize on bad input: a clear message naming the file or field,
# exit status 1, and nothing left under the output name.
set -uo pipefail
cd "$KILN_ROOT"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
KILN=$KILN_BIN
fails=0
expect() {  # expect WORD-IN-MESSAGE -- command...
    local want=$1; shift 2
    out=$("$@" 2>&1); rc=$?
    if [ $rc -ne 1 ] || ! grep -q -- "$want" <<<"$out"; then
        echo "FAIL: '$*' rc=$rc, wanted '$want' in: $out"; fails=$((fails + 1))
    else
        echo "ok: $want"
    fi
}
echo "not hdf5" > "$D/text.h5"
printf '{"type":"featurize","features":{"time":["rms"]}}' > "$D/spec.json"
printf '{"type":"featurize","features":{"time":["rms"]},"oops":1}' > "$D/unknown.json"
printf '{"type":"featurize",\n"features":{' > "$D/broken.json"
printf '{"type":"featurize","features":{"channels":["XX"],"time":["rms"]}}' > "$D/chan.json"
$KILN gen --windows 64 --window-len 256 --rate 1000 --assets 2 --seed 3 -o "$D/small.h5" >/dev/null

expect "text.h5" -- $KILN featurize "$D/spec.json" --input "$D/text.h5" --output "$D/o.h5"
expect "missing.h5" -- $KILN featurize "$D/spec.json" --input "$D/missing.h5" --output "$D/o.h5"
expect "oops" -- $KILN featurize "$D/unknown.json" --input "$D/small.h5" --output "$D/o.h5"
expect "broken.json:" -- $KILN featurize "$D/broken.json" --input "$D/small.h5" --output "$D/o.h5"
expect "no channel 'XX'" -- $KILN featurize "$D/chan.json" --input "$D/small.h5" --output "$D/o.h5"
expect "input missing" -- $KILN featurize "$D/spec.json" --output "$D/o.h5"
expect "cannot open" -- $KILN featurize "$D/nospec.json" --input "$D/small.h5" --output "$D/o.h5"
expect_usage() {  # expect_usage WORD-IN-MESSAGE -- command...: exit status 2
    local want=$1; shift 2
    out=$("$@" 2>&1); rc=$?
    if [ $rc -ne 2 ] || ! grep -q -- "$want" <<<"$out"; then
        echo "FAIL: '$*' rc=$rc, wanted '$want' in: $out"; fails=$((fails + 1))
    else
        echo "ok: $want"
    fi
}
expect_usage "--batch must be" -- $KILN featurize "$D/spec.json" --batch -1
expect_usage "--threads must be" -- $KILN featurize "$D/spec.json" --threads abc
expect_usage "--compress must be" -- $KILN featurize "$D/spec.json" --compress 10

# rolling state is bounded: k=100000 over 400 assets needs more than 256 MiB
$KILN gen --windows 400 --window-len 16 --rate 1000 --assets 400 --channels a --seed 1 \
    -o "$D/many.h5" >/dev/null
printf '{"type":"featurize","features":{"time":["rms"],"rolling":{"k":100000,"of":["rms"]}}}' \
    > "$D/roll.json"
expect "distinct assets with rolling" -- $KILN featurize "$D/roll.json" --input "$D/many.h5" \
    --output "$D/o.h5"

[ ! -e "$D/o.h5" ] || { echo "FAIL: output left behind"; fails=$((fails + 1)); }
ls "$D" | grep -q '\.tmp\.' && { echo "FAIL: temp file left"; fails=$((fails + 1)); }
exit $fails
