#!/usr/bin/env bash
# A dataset's recorded content hash catches a changed sample: kiln inspect
# --verify says OK on what kiln wrote and MISMATCH (exit 1) once one float
# is altered in place; the same generator seed gives the same hash; repeated
# channel or class names are refused; and a crash mid-write (kill -9) leaves
# nothing under the final name.
set -euo pipefail
cd "$KILN_ROOT"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
KILN=$KILN_BIN

$KILN gen --windows 300 --window-len 1024 --rate 10000 --assets 3 --seed 4 -o "$D/a.h5" >/dev/null
$KILN gen --windows 300 --window-len 1024 --rate 10000 --assets 3 --seed 4 -o "$D/b.h5" >/dev/null
ha=$($KILN inspect "$D/a.h5" | awk '/^content_sha256/{print $2}')
hb=$($KILN inspect "$D/b.h5" | awk '/^content_sha256/{print $2}')
[ -n "$ha" ] && [ "$ha" = "$hb" ]
$KILN inspect --verify "$D/a.h5" | grep -q "verify: *OK"

"$KILN_PYTHON" - "$D/a.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["signals/vib_x"][123, 45] += 0.5
PY
set +e
out=$($KILN inspect --verify "$D/a.h5" 2>&1); rc=$?
set -e
echo "$out" | grep verify
[ $rc -eq 1 ] && grep -q MISMATCH <<<"$out"

# a file whose channel list names one dataset twice, or whose class names
# repeat, is refused at open (it would read one channel twice, skip another)
$KILN gen --windows 20 --window-len 64 --rate 1000 --assets 1 --channels a,b -o "$D/c.h5" >/dev/null
cp "$D/c.h5" "$D/dup-chan.h5"; cp "$D/c.h5" "$D/dup-label.h5"
"$KILN_PYTHON" - "$D/dup-chan.h5" "$D/dup-label.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["signals"].attrs["channels"] = ["a", "a"]
with h5py.File(sys.argv[2], "r+") as f:
    f.attrs["label_names"] = ["normal", "ball", "ball", "outer_race"]
PY
for f in dup-chan dup-label; do
    set +e; out=$($KILN inspect "$D/$f.h5" 2>&1); rc=$?; set -e
    echo "$f: $out"
    [ $rc -eq 1 ] && grep -q "given twice" <<<"$out" && grep -q "$f.h5" <<<"$out"
done

# kill -9 in the middle of a large write: no file under the final name
$KILN gen --windows 200000 --window-len 2048 -o "$D/big.h5" >/dev/null 2>&1 &
pid=$!
sleep 1
kill -9 $pid
wait $pid 2>/dev/null || true
[ ! -e "$D/big.h5" ]
echo "killed writer left: $(ls "$D")"
