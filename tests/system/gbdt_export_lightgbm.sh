#!/usr/bin/env bash
# `kiln export-lightgbm` against LightGBM itself: small gbdt models trained
# with `kiln train` on generated features (4 classes: multiclass softmax; the
# labels folded to normal/fault: binary; the /target: regression) are
# exported, loaded with lightgbm.Booster(model_file=...), and must give
# `kiln score`'s /score within 1e-6 and its /predicted on every row
# (bench/peer_lightgbm_edge.py check).  Then: a leaf value changed in the
# text is caught (the check can fail), a logreg model is refused naming its
# kind, and a missing -o is a usage error.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init
CHECK=bench/peer_lightgbm_edge.py

make_features 400 4 5
"$PY" - "$T" <<'PY'
import json, sys
import h5py, numpy as np
t = sys.argv[1]
# the same rows with two classes: normal (0) against any fault
with h5py.File(f"{t}/feat.h5", "r") as src, h5py.File(f"{t}/feat-bin.h5", "w") as dst:
    for k in src:
        src.copy(k, dst)
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    dst["label"][...] = (src["label"][:] != 0).astype("i4")
    dst.attrs.create("label_names", np.array(["normal", "fault"], dtype=object),
                     dtype=h5py.string_dtype("utf-8"))
gbdt = {"kind": "gbdt", "trees": 15, "max_leaves": 7, "min_data_in_leaf": 5}
for name, inp, target, model in [
        ("multi", "feat.h5", "label", gbdt), ("bin", "feat-bin.h5", "label", gbdt),
        ("reg", "feat.h5", "target", gbdt),
        ("logreg", "feat.h5", "label", {"kind": "logreg"})]:
    json.dump({"type": "train", "name": f"export-{name}", "input": f"{t}/{inp}",
               "output": f"{t}/{name}.kmodel", "target": target, "seed": 7, "model": model,
               "validation": {"split": "time", "fraction": 0.25}},
              open(f"{t}/train-{name}.json", "w"))
    json.dump({"type": "score", "name": f"score-{name}", "input": f"{t}/{inp}",
               "output": f"{t}/pred-{name}.h5", "model_file": f"{t}/{name}.kmodel"},
              open(f"{t}/score-{name}.json", "w"))
PY

for m in multi bin reg; do
    in=$T/feat.h5
    [ $m = bin ] && in=$T/feat-bin.h5
    $KILN train "$T/train-$m.json" >"$T/train-$m.log" 2>&1 || die "kiln train $m"
    $KILN score "$T/score-$m.json" >"$T/score-$m.log" 2>&1 || die "kiln score $m"
    $KILN export-lightgbm "$T/$m.kmodel" -o "$T/$m.txt" >"$T/export-$m.log" 2>&1 ||
        die "kiln export-lightgbm $m"
    "$PY" $CHECK check "$T/$m.txt" "$in" "$T/pred-$m.h5" >"$T/check-$m.json" 2>"$T/check-$m.log" ||
        die "LightGBM does not reproduce kiln's $m scores"
    log "$m: $(cat "$T/check-$m.json")"
done
grep -q '"objective": "multiclass"' "$T/check-multi.json" || die "multi is not a multiclass model"
grep -q '"objective": "binary"' "$T/check-bin.json" || die "bin is not a binary model"
grep -q '"objective": "regression"' "$T/check-reg.json" || die "reg is not a regression model"
grep -q '"same_class_rows": 400' "$T/check-multi.json" || die "multi: not every row checked"

# the check fails when the text scores differently: one leaf of Tree=0, same length
"$PY" - "$T/multi.txt" "$T/multi-bad.txt" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
i = s.index("\nleaf_value=", s.index("Tree=0\n")) + len("\nleaf_value=")
m = re.match(r"-?(\d)", s[i:])
j = i + m.start(1)
s = s[:j] + str((int(s[j]) + 5) % 10) + s[j + 1:]        # moves the value by >= 1
open(sys.argv[2], "w").write(s)
PY
if "$PY" $CHECK check "$T/multi-bad.txt" "$T/feat.h5" "$T/pred-multi.h5" >/dev/null 2>"$T/bad.log"; then
    die "the check passed a model with a changed leaf"
fi
grep -q "differs from kiln" "$T/bad.log" || die "changed leaf: not the expected failure: $(tail -n 1 "$T/bad.log")"

# not a gbdt: refused, naming the kind; no output file
$KILN train "$T/train-logreg.json" >"$T/train-logreg.log" 2>&1 || die "kiln train logreg"
if $KILN export-lightgbm "$T/logreg.kmodel" -o "$T/logreg.txt" 2>"$T/refused.log"; then
    die "a logreg model was exported"
fi
grep -q "logreg.kmodel: a logreg model: only gbdt models" "$T/refused.log" ||
    die "logreg refusal: $(cat "$T/refused.log")"
[ ! -e "$T/logreg.txt" ] || die "a refused export left $T/logreg.txt"
rc=0
$KILN export-lightgbm "$T/multi.kmodel" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || die "export-lightgbm without -o: exit $rc, want 2"
log "ok"
