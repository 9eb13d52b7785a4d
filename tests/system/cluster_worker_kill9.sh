#!/usr/bin/env bash
# kill -9 of a worker in the middle of a job: its lease runs out, its tasks
# go back to the queue and the job still succeeds on the other worker; kilnd
# lists the dead worker as "lost".
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

D=$T/cl
start_kilnd "$D"
start_worker "$D" w1
start_worker "$D" w2
wait_workers "$D" 2

id=$(submit_json "$D" '{"type":"noop","name":"kill9","tasks":12,"sleep_ms":400}')
# wait until w1 runs something, then kill it
end=$((SECONDS + 20))
until [ "$(worker_field "$D" w1 running)" -ge 1 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || die "w1 never got a task"
    sleep 0.05
done
kill9 "${WORKER_PID[w1]}"
log "killed w1 (pid ${WORKER_PID[w1]}) while it ran a task"
[ "$(job_field "$D" "$id" state)" != succeeded ] || die "job ended before the kill; test proves nothing"

wait_job_state "$D" "$id" succeeded 50
total=$(job_field "$D" "$id" tasks.total)
succ=$(job_field "$D" "$id" tasks.succeeded)
[ "$total" = 12 ] && [ "$succ" = 12 ] || die "tasks: total $total, succeeded $succ (want 12/12)"
# w1's tasks were requeued and rerun
grep -Eiq 'lost|requeue' "$D/logs/$id.log" || die "job log says nothing of the lost worker"

end=$((SECONDS + 15))
until [ "$(worker_field "$D" w1 state)" = lost ]; do
    [ $SECONDS -lt $end ] || die "w1 state $(worker_field "$D" w1 state), want lost"
    sleep 0.2
done
[ "$(worker_field "$D" w2 state)" = alive ] || die "w2 not alive"

# a worker restarted with the same id comes back alive and takes work
start_worker "$D" w1
end=$((SECONDS + 15))
until [ "$(worker_field "$D" w1 state)" = alive ]; do
    [ $SECONDS -lt $end ] || die "restarted w1 state $(worker_field "$D" w1 state), want alive"
    sleep 0.2
done
kill9 "${WORKER_PID[w2]}"
id2=$(submit_json "$D" '{"type":"noop","name":"after-restart","tasks":4,"sleep_ms":100}')
wait_job_state "$D" "$id2" succeeded 30
echo "ok: job $id succeeded after w1 was killed; w1 lost, then back"
