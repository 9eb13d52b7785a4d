#!/usr/bin/env bash
# A featurize job split into shards over 2 workers (kilnd --target-tasks 4)
# writes the same dataset as `kiln featurize` alone: identical content_sha256.
# The spec has no rolling features, so the job shards (>1 task).
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

$KILN gen --windows 3000 --window-len 1024 --rate 12000 --assets 6 --seed 7 -o "$T/gen.h5" >/dev/null
"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
s["input"] = t + "/gen.h5"
s["output"] = t + "/out-b.h5"
s["name"] = "split-parity"
json.dump(s, open(t + "/spec.json", "w"))
PY

$KILN featurize "$T/spec.json" --output "$T/out-a.h5" --threads 1 >/dev/null
ha=$(h5_hash "$T/out-a.h5")
[ -n "$ha" ] || die "no content hash for out-a.h5"

D=$T/cl
start_kilnd "$D" --target-tasks 4
start_worker "$D" w1
start_worker "$D" w2
wait_workers "$D" 2

id=$($KILN submit "$T/spec.json" --dir "$D" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
wait_job_state "$D" "$id" succeeded 50
total=$(job_field "$D" "$id" tasks.total)
succ=$(job_field "$D" "$id" tasks.succeeded)
log "job $id: $total tasks, $succ succeeded"
[ "$total" -gt 1 ] || die "featurize job ran as $total task(s), expected a split"
[ "$succ" = "$total" ] || die "tasks.succeeded $succ != tasks.total $total"
[ -f "$T/out-b.h5" ] || die "job output missing"
hb=$(h5_hash "$T/out-b.h5")
log "alone: $ha"
log "split: $hb"
[ "$ha" = "$hb" ] || die "content_sha256 differs: alone $ha, cluster $hb"
$KILN inspect --verify "$T/out-b.h5" >/dev/null || die "out-b.h5 fails --verify"
# the shards are removed once merged (docs/cluster.md)
[ -z "$(ls -A "$D/tasks/$id" 2>/dev/null)" ] || die "task outputs left in $D/tasks/$id"
echo "ok: $total shards, content_sha256 $hb"
