#!/usr/bin/env bash
# On one worker with 1 core: timeout_s 1 on a 5 s task ends "timeout";
# cancel of a queued and of a running job ends "cancelled" and the running
# task's child is gone (the worker's core is free again, no child left);
# with the core busy, a high-priority job submitted after a low one starts
# first.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

D=$T/cl
start_kilnd "$D"
start_worker "$D" w1 --cores 1
wait_workers "$D" 1
WP=${WORKER_PID[w1]}

# wait_idle: w1 has its core free and no child process
wait_idle() {
    local end=$((SECONDS + ${1:-15}))
    until [ "$(worker_field "$D" w1 free_cores)" = 1 ] && [ "$(worker_field "$D" w1 running)" = 0 ] &&
          ! pgrep -P "$WP" >/dev/null; do
        [ $SECONDS -lt $end ] || { ps -o pid,args --ppid "$WP" >&2 || true; die "w1 not idle: free_cores $(worker_field "$D" w1 free_cores), running $(worker_field "$D" w1 running)"; }
        sleep 0.1
    done
}

# --- timeout
t=$(submit_json "$D" '{"type":"noop","name":"slow","tasks":1,"sleep_ms":5000,"timeout_s":1}')
wait_job_state "$D" "$t" running 20
wait_job_state "$D" "$t" timeout 15
el=$(( ($(job_field "$D" "$t" ended_ns) - $(job_field "$D" "$t" started_ns)) / 1000000 ))
log "timeout job ended after $el ms"
[ "$el" -lt 4500 ] || die "timeout job ran $el ms (timeout_s 1, task 5000 ms)"
wait_idle

# --- cancel: a running job and a queued one behind it
r=$(submit_json "$D" '{"type":"noop","name":"running","tasks":1,"sleep_ms":30000}')
wait_job_state "$D" "$r" running 20
q=$(submit_json "$D" '{"type":"noop","name":"queued","tasks":1,"sleep_ms":100}')
sleep 0.5
[ "$(job_field "$D" "$q" state)" = queued ] || die "second job not queued behind the first"
pgrep -P "$WP" >/dev/null || die "no task child under w1 for the running job"
$KILN cancel "$q" --dir "$D" >/dev/null
wait_job_state "$D" "$q" cancelled 5
[ "$(job_field "$D" "$q" started_ns)" = 0 ] || die "cancelled queued job started"
$KILN cancel "$r" --dir "$D" >/dev/null
wait_job_state "$D" "$r" cancelled 10
wait_idle 15
[ "$(job_field "$D" "$q" state)" = cancelled ] || die "queued job ran after the cancel"
# cancelling again: already ended
if $KILN cancel "$r" --dir "$D" >/dev/null 2>&1; then die "second cancel succeeded"; fi
kill -0 "$WP" || die "w1 died"

# --- priority: the core is busy, low then high priority submitted
blk=$(submit_json "$D" '{"type":"noop","name":"blocker","tasks":1,"sleep_ms":1500}')
wait_job_state "$D" "$blk" running 20
lo=$(submit_json "$D" '{"type":"noop","name":"low","tasks":1,"sleep_ms":200,"priority":0}')
hi=$(submit_json "$D" '{"type":"noop","name":"high","tasks":1,"sleep_ms":200,"priority":10}')
wait_job_state "$D" "$lo" succeeded 30
wait_job_state "$D" "$hi" succeeded 30
hs=$(job_field "$D" "$hi" started_ns); ls_=$(job_field "$D" "$lo" started_ns)
be=$(job_field "$D" "$blk" ended_ns)
log "blocker ended $be, high started $hs, low started $ls_"
[ "$hs" -lt "$ls_" ] || die "high priority started at $hs, after low at $ls_"
[ "$ls_" -ge "$(job_field "$D" "$hi" ended_ns)" ] || die "low started before high ended on a 1-core worker"
echo "ok: timeout, cancel (queued and running), priority"
