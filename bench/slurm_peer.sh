#!/usr/bin/env bash
# bench/slurm_peer.sh N_JOBS OUT.json -- Slurm's side of kiln's scheduler benchmark.
#
# Starts a private single-node Slurm (slurm-wlm 22.05 + munge) under one mktemp -d directory, as
# /work/shared/SLURM-LOCAL.md describes: daemons on 127.0.0.1, free ports, nothing in /etc touched,
# no system-wide slurmctld/slurmd/munged touched. Then measures, on that Slurm:
#   * submit-to-start latency on an idle cluster: LAT_N (20) single `sbatch --wrap` jobs, one at a time;
#     the submit time is taken right before sbatch, the job writes `date +%s%N` as its first command;
#     the next job is submitted once the previous one has started and left the queue (idle cluster),
#     after a random 0-999 ms pause (slurmctld schedules from a once-a-second loop; without the pause
#     every submit lands just after a tick and sees the worst case, ~1 s: SLURM_PEER_LAT_JITTER=0).
#     p50 and p99 are nearest-rank (with 20 samples, p99 is the maximum).
#   * throughput: N_JOBS trivial tasks as one job array (`sbatch --array=0-(N-1) -o /dev/null --wrap=true`),
#     wall time from just before that sbatch until squeue shows no task left (polled every 0.1 s,
#     bounded by SLURM_PEER_TIMEOUT_S), and every task is checked to have COMPLETED with exit 0.
# Writes OUT.json and prints one line. Every daemon it started is stopped, and the directory removed,
# on any exit (success, failure, Ctrl-C).
#
# Environment (optional):
#   SLURM_PEER_TIMEOUT_S  bound on the array run (default 1200)
#   SLURM_PEER_LAT_N      latency samples (default 20; 0 skips the latency part)
#   SLURM_PEER_LAT_JITTER 1 (default): random 0-999 ms pause before each latency submit; 0: none
#   SLURM_PEER_SLOTS      CPUs given to the node, i.e. how many 1-CPU jobs run at once (default nproc);
#                         above nproc it uses SlurmdParameters=config_overrides (oversubscribes the cores)
#   SLURM_PEER_EXTRA_CONF slurm.conf lines replacing/adding keys (tuning experiments)
#   SLURM_PEER_KEEP=1     leave the directory (not the daemons) for inspection; its path is printed
set -u -o pipefail

usage() { echo "usage: $0 N_JOBS OUT.json" >&2; exit 2; }
[ $# -eq 2 ] || usage
N=$1; OUTJSON=$2
case "$N" in ''|*[!0-9]*) usage ;; esac
[ "$N" -ge 1 ] || usage
TIMEOUT_S=${SLURM_PEER_TIMEOUT_S:-1200}
LAT_N=${SLURM_PEER_LAT_N:-20}
JITTER=${SLURM_PEER_LAT_JITTER:-1}
NCPU=$(nproc)
SLOTS=${SLURM_PEER_SLOTS:-$NCPU}

die() { echo "slurm_peer: $*" >&2; exit 1; }
for b in munged slurmctld slurmd sbatch squeue sinfo scontrol scancel ss awk; do
    command -v "$b" >/dev/null 2>&1 || die "missing '$b' (apt-get install slurm-wlm munge iproute2)"
done
[ "$(id -u)" -eq 0 ] || die "must run as root (SlurmUser=root, as SLURM-LOCAL.md)"

# Nothing from an enclosing Slurm job/environment may leak into our clients.
for v in $(compgen -e | grep '^SLURM_' | grep -v '^SLURM_PEER_'); do unset "$v"; done
unset SBATCH_ARRAY_INX SQUEUE_FORMAT SQUEUE_SORT SINFO_FORMAT 2>/dev/null || true

D=$(mktemp -d /tmp/kiln-slurm-peer.XXXXXX) || die "mktemp failed"
chmod 755 "$D"
PIDS_MUNGE=""; PIDS_CTLD=""; PIDS_SLURMD=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$PIDS_CTLD" ] && kill -0 "$PIDS_CTLD" 2>/dev/null; then
        timeout 5 scancel --quiet --user=root >/dev/null 2>&1 || true
    fi
    # slurmstepd processes detach from slurmd; ours carry SLURM_CONF=$D/slurm.conf in their environment.
    local p stepds=""
    for p in $(pgrep -x slurmstepd 2>/dev/null); do
        if { tr '\0' '\n' < /proc/$p/environ; } 2>/dev/null | grep -qx "SLURM_CONF=$D/slurm.conf"; then
            stepds="$stepds $p"
        fi
    done
    for p in $PIDS_SLURMD $PIDS_CTLD $stepds $PIDS_MUNGE; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in $PIDS_SLURMD $PIDS_CTLD $stepds $PIDS_MUNGE; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    for p in $PIDS_SLURMD $PIDS_CTLD $stepds $PIDS_MUNGE; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null
    if [ "${SLURM_PEER_KEEP:-0}" = 1 ]; then echo "slurm_peer: kept $D" >&2; else rm -rf "$D"; fi
    exit $rc
}
trap cleanup EXIT
trap 'echo "slurm_peer: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM HUP

show_logs() {
    local f
    for f in "$D/log/slurmctld.log" "$D/log/slurmd.log" "$D/munge/munged.log"; do
        [ -s "$f" ] || continue
        echo "---- tail of $(basename "$f") ----" >&2
        tail -n 25 "$f" >&2
    done
}
fail() { echo "slurm_peer: $*" >&2; show_logs; exit 1; }

# ---- ports: first free pair (ctld, slurmd) starting at 16817/16818 ----
# busy = any TCP socket on that local port except TIME-WAIT leftovers (Slurm binds with SO_REUSEADDR)
port_busy() { ss -Htan state all exclude time-wait "( sport = :$1 )" 2>/dev/null | grep -q .; }
CTLD_PORT=""
for base in 16817 16819 16821 16823 16825 16827 16917 17017 17117 17217 17317 17417; do
    if ! port_busy "$base" && ! port_busy $((base + 1)); then CTLD_PORT=$base; SLURMD_PORT=$((base + 1)); break; fi
done
[ -n "$CTLD_PORT" ] || die "no free port pair found near 16817"

# ---- munge (own key, own socket; foreground so we hold its pid) ----
mkdir -p "$D/state" "$D/spool" "$D/log" "$D/munge" "$D/lat" || die "mkdir under $D failed"
chmod 700 "$D/munge"
head -c 1024 /dev/urandom > "$D/munge/munge.key"; chmod 400 "$D/munge/munge.key"
munged --foreground --socket="$D/munge/munge.sock" --key-file="$D/munge/munge.key" \
       --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/seed" \
       --force >/dev/null 2>>"$D/munge/munged.log" &
PIDS_MUNGE=$!
for _ in $(seq 100); do [ -S "$D/munge/munge.sock" ] && break; kill -0 "$PIDS_MUNGE" 2>/dev/null || break; sleep 0.1; done
[ -S "$D/munge/munge.sock" ] || fail "munged did not start"

# ---- slurm.conf ----
H=$(hostname -s)
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))
MAXARR=$(( N + 1 > 1001 ? N + 1 : 1001 ))
OVERRIDES=""
[ "$SLOTS" -gt "$NCPU" ] && OVERRIDES="SlurmdParameters=config_overrides"
cat > "$D/slurm.conf" <<CONF
ClusterName=kilnpeer
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
MailProg=/bin/true
CommunicationParameters=NoInAddrAny
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000,sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MaxArraySize=$MAXARR
MaxJobCount=$(( N + 1000 > 10000 ? N + 1000 : 10000 ))
$OVERRIDES
NodeName=$H NodeAddr=127.0.0.1 CPUs=$SLOTS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
if [ -n "${SLURM_PEER_EXTRA_CONF:-}" ]; then   # for tuning experiments: lines appended/overriding
    printf '%s\n' "$SLURM_PEER_EXTRA_CONF" > "$D/extra.conf"
    awk -F= 'NR==FNR{k[$1]=1; next} !($1 in k)' "$D/extra.conf" "$D/slurm.conf" > "$D/slurm.conf.new"
    # keep Node/Partition lines last
    { grep -v -e '^NodeName=' -e '^PartitionName=' "$D/slurm.conf.new"; cat "$D/extra.conf"
      grep -e '^NodeName=' -e '^PartitionName=' "$D/slurm.conf.new"; } > "$D/slurm.conf"
fi
export SLURM_CONF="$D/slurm.conf"

# ---- daemons (foreground mode, backgrounded here: we hold their pids) ----
slurmctld -D -i -f "$D/slurm.conf" >>"$D/log/slurmctld.out" 2>&1 &
PIDS_CTLD=$!
slurmd -D -f "$D/slurm.conf" >>"$D/log/slurmd.out" 2>&1 &
PIDS_SLURMD=$!

up=0
for _ in $(seq 600); do   # 60 s
    kill -0 "$PIDS_CTLD" 2>/dev/null || { cat "$D/log/slurmctld.out" >&2; fail "slurmctld exited"; }
    kill -0 "$PIDS_SLURMD" 2>/dev/null || { cat "$D/log/slurmd.out" >&2; fail "slurmd exited"; }
    st=$(timeout 5 sinfo -h -o %t 2>/dev/null | head -n1)
    [ "$st" = idle ] && { up=1; break; }
    sleep 0.1
done
[ $up -eq 1 ] || fail "Slurm did not come up within 60 s (sinfo state: '${st:-none}')"

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }   # bash 5: microseconds, no fork

queue_len() { timeout 10 squeue -h -o %i "$@" 2>/dev/null | wc -l; }

# ---- warm-up: one job, not measured (first launch loads plugins, fills caches) ----
wjid=$(sbatch --parsable -o /dev/null --wrap=true) || fail "sbatch (warm-up) failed"
for _ in $(seq 300); do [ "$(queue_len -j "$wjid")" -eq 0 ] && break; sleep 0.1; done
[ "$(queue_len)" -eq 0 ] || fail "warm-up job did not finish within 30 s"

# ---- latency: LAT_N single jobs, one at a time, on an idle cluster ----
: > "$D/lat.txt"
for ((i = 1; i <= LAT_N; i++)); do
    f="$D/lat/$i"
    # slurmctld (22.05) runs its scheduler from a background loop that wakes once a second; a submit
    # right after the previous job would always land just after a tick (~1 s, the worst case). A random
    # 0-999 ms pause decorrelates the arrivals from that tick (light, independent arrivals).
    [ "$JITTER" = 1 ] && sleep "0.$(printf %03d $((RANDOM % 1000)))"
    t0=$(now_us)
    jid=$(sbatch --parsable -o /dev/null --wrap="date +%s%N > $f.tmp && mv $f.tmp $f") \
        || fail "sbatch (latency job $i) failed"
    ok=0
    for _ in $(seq 6000); do [ -s "$f" ] && { ok=1; break; }; sleep 0.005; done   # <= 30 s
    [ $ok -eq 1 ] || fail "latency job $i ($jid) did not start within 30 s"
    ts=$(cat "$f")
    echo "$t0 $ts" | awk '{printf "%.3f\n", ($2/1000 - $1)/1000}' >> "$D/lat.txt"
    for _ in $(seq 600); do [ "$(queue_len -j "$jid")" -eq 0 ] && break; sleep 0.05; done
done
read -r P50 P99 LMIN LMAX <<<"$(sort -g "$D/lat.txt" | awk '{v[NR]=$1} END{
    n=NR; if (n==0) { print "null null null null"; exit }
    i50=int(n*0.50); if (i50<n*0.50) i50++; i99=int(n*0.99); if (i99<n*0.99) i99++;
    printf "%.1f %.1f %.1f %.1f", v[i50], v[i99], v[1], v[n]}')"

# ---- throughput: one array of N trivial tasks ----
t0=$(now_us)
ajid=$(sbatch --parsable --array=0-$((N - 1)) -o /dev/null --wrap=true) || fail "sbatch --array failed"
t_sub=$(now_us)
deadline=$(( t0 + TIMEOUT_S * 1000000 ))
done_=0
while :; do
    q=$(timeout 10 squeue -h -r -j "$ajid" -o %i 2>/dev/null | wc -l); qrc=$?
    t1=$(now_us)
    [ $qrc -eq 0 ] && [ "$q" -eq 0 ] && { done_=1; break; }
    [ "$t1" -gt "$deadline" ] && break
    sleep 0.1
done
if [ $done_ -ne 1 ]; then
    timeout 10 squeue -h -r -j "$ajid" -o '%i %T %R' | head -n 5 >&2
    fail "array $ajid not finished after ${TIMEOUT_S} s ($q tasks left)"
fi
# every task must have COMPLETED with exit 0 (records kept for MinJobAge=300 s)
ncomp=$(timeout 30 scontrol -o show job "$ajid" 2>/dev/null | grep -c 'JobState=COMPLETED .*ExitCode=0:0')
[ "$ncomp" -eq "$N" ] || fail "only $ncomp of $N array tasks COMPLETED with exit 0"

read -r SECS TPS SUBS <<<"$(awk -v a="$t0" -v b="$t1" -v s="$t_sub" -v n="$N" \
    'BEGIN{d=(b-a)/1e6; printf "%.3f %.2f %.3f", d, n/d, (s-a)/1e6}')"

cfg_sched=$(grep '^SchedulerParameters=' "$D/slurm.conf" | cut -d= -f2-)
cfg_ptrack=$(grep '^ProctrackType=' "$D/slurm.conf" | cut -d= -f2-)
cfg_stype=$(grep '^SchedulerType=' "$D/slurm.conf" | cut -d= -f2-)
VER=$(slurmctld -V 2>/dev/null | awk '{print $2}')
mkdir -p "$(dirname "$OUTJSON")"
cat > "$OUTJSON.tmp.$$" <<JSON
{"peer":"slurm 22.05 (local single node)","n_jobs":$N,"seconds":$SECS,"tasks_per_s":$TPS,"submit_to_start_ms":{"p50":$P50,"p99":$P99,"n":$LAT_N,"jitter_0_1s":$([ "$JITTER" = 1 ] && echo true || echo false),"min":$LMIN,"max":$LMAX,"percentile":"nearest-rank; with n=20 p99 is the max"},"array_submit_s":$SUBS,"slurm_version":"$VER","cpus":$SLOTS,"host_cores":$NCPU,"config":{"SchedulerType":"$cfg_stype","SchedulerParameters":"$cfg_sched","ProctrackType":"$cfg_ptrack","TaskPlugin":"task/none","SelectType":"select/cons_tres CR_Core"},"method":"array of n_jobs 'sbatch --wrap=true -o /dev/null' tasks, wall from before sbatch to empty squeue (0.1 s polls), all COMPLETED exit 0; latency: single jobs one at a time on an idle cluster, each after a random 0-999 ms pause (unless jitter_0_1s is false), submit time before sbatch, start = job's first 'date +%s%N'"}
JSON
mv "$OUTJSON.tmp.$$" "$OUTJSON" || fail "cannot write $OUTJSON"
echo "slurm $VER local 1 node ($SLOTS cpus): $N array tasks in ${SECS} s = ${TPS} tasks/s; submit-to-start p50 ${P50} ms, p99 ${P99} ms (n=$LAT_N, p99=max) -> $OUTJSON"
