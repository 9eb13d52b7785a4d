#!/usr/bin/env bash
# kilnd --quota PROJECT=CORES caps the cores a project's running tasks use:
# with plant-7=1 on a 4-core worker, plant-7's tasks run one at a time
# (reason "project_quota" while they wait) while another project's job runs
# beside them.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

D=$T/cl
start_kilnd "$D" --quota plant-7=1
start_worker "$D" w1 --cores 4
wait_workers "$D" 1

q=$(submit_json "$D" '{"type":"noop","name":"capped","project":"plant-7","tasks":4,"sleep_ms":700}')
o=$(submit_json "$D" '{"type":"noop","name":"other","project":"plant-8","tasks":3,"sleep_ms":2000}')
maxq=0; maxall=0; saw_reason=0; end=$((SECONDS + 40))
while :; do
    read -r qs qrun qrc os < <($KILN list --dir "$D" --json | "$PY" -c '
import json, sys
q, o = int(sys.argv[1]), int(sys.argv[2]); r = {}
for j in json.load(sys.stdin)["jobs"]: r[j["id"]] = j
Q, O = r[q], r[o]
print(Q["state"], Q["tasks"]["running"], (Q["reason"] or {}).get("code") or "-", O["state"])' "$q" "$o")
    all=$(worker_field "$D" w1 running)
    [ "$qrun" -gt "$maxq" ] && maxq=$qrun
    [ "$all" -gt "$maxall" ] && maxall=$all
    [ "$qrc" = project_quota ] && saw_reason=1
    [ "$qrun" -le 1 ] || die "plant-7 runs $qrun tasks at once under a 1-core quota"
    [ "$qs" = succeeded ] && [ "$os" = succeeded ] && break
    [ $SECONDS -lt $end ] || die "jobs not done in 40 s: $qs / $os"
    sleep 0.1
done
log "max plant-7 running $maxq, max on w1 $maxall, project_quota reason seen: $saw_reason"
[ "$maxq" = 1 ] || die "plant-7 never ran a task"
[ "$maxall" -ge 2 ] || die "the other project never ran beside plant-7"
[ "$saw_reason" = 1 ] || die "plant-7 never showed reason project_quota while waiting"
echo "ok: quota"
