#!/usr/bin/env bash
# Distributed training through kilnd: a train job with resources.ranks 2 (then
# 3) is a gang placed over two (then three) workers of 1 core; task 0's worker runs
# mpirun over the gang with `kiln-worker --mpi-agent` as its launch agent, so
# mpirun's daemon for the other worker starts beside that worker's holder
# task (no ssh).  Checked:
#  - the job succeeds, its log says where mpirun's daemon ran, the model lands
#    in the registry;
#  - the model file is byte for byte the one `mpirun -np R kiln-worker
#    --train-ranks` writes on this machine for the same spec (the ranks'
#    shards and the allreduce are the same wherever the ranks run);
#  - a gang whose ranks fail (missing input) fails the job, and no mpirun,
#    orted or rank process is left behind;
#  - cancelling a running gang stops mpirun and its daemon.
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

command -v mpirun >/dev/null || die "mpirun not found (scripts/deps.sh installs openmpi-bin)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
pyj() { "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

$KILN gen --windows 600 --window-len 512 --assets 6 --seed 3 -o "$T/sensor.h5" >/dev/null
"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
s["input"], s["output"] = t + "/sensor.h5", t + "/feat.h5"
json.dump(s, open(t + "/featurize.json", "w"))
for r in (2, 3):
    for kind, model in (("logreg", {"kind": "logreg", "C": 1.0, "max_iter": 200, "tol": 1e-10}),
                        ("gbdt", {"kind": "gbdt", "trees": 20, "max_leaves": 7, "min_data_in_leaf": 5})):
        json.dump({"type": "train", "name": f"gang-{kind}-{r}", "input": t + "/feat.h5",
                   "output": f"{t}/{kind}-{r}.kmodel", "model": model, "target": "label",
                   "validation": {"split": "time", "fraction": 0.25}, "seed": 7,
                   "resources": {"cores": 1, "ranks": r}, "max_retries": 0},
                  open(f"{t}/{kind}-{r}.json", "w"))
json.dump({"type": "train", "name": "gang-missing", "input": t + "/no-such.h5",
           "output": t + "/missing.kmodel", "model": {"kind": "logreg"}, "target": "label",
           "resources": {"cores": 1, "ranks": 2}, "max_retries": 0}, open(t + "/missing.json", "w"))
PY
$KILN featurize "$T/featurize.json" >/dev/null

D=$T/c
start_kilnd "$D"
start_worker "$D" w1 --cores 1
start_worker "$D" w2 --cores 1
wait_workers "$D" 2

leftovers() { pgrep -f -- "--train-ranks|orted|mpirun" || true; }

for r in 2 3; do
    if [ "$r" = 3 ]; then
        start_worker "$D" w3 --cores 1
        wait_workers "$D" 3
    fi
    # gbdt makes an allreduce per tree node: over 3 ranks on this 2-core
    # machine it is slow (busy-polling ranks), so 3 ranks run logreg only
    kinds="logreg gbdt"
    [ "$r" = 3 ] && kinds=logreg
    for kind in $kinds; do
        id=$($KILN submit "$T/$kind-$r.json" --dir "$D" --json | pyj 'd["id"]') || die "submit $kind-$r"
        wait_job_state "$D" "$id" succeeded 120
        [ "$(job_field "$D" "$id" tasks.total)" = "$r" ] || die "$kind ranks $r: $(job_field "$D" "$id" tasks.total) tasks"
        $KILN logs "$id" --dir "$D" >"$T/log-$kind-$r" || die "logs $id"
        [ "$(grep -c "mpirun's daemon for worker w[123] runs beside task" "$T/log-$kind-$r")" = $((r - 1)) ] \
            || die "$kind ranks $r: not $((r - 1)) daemons started through workers: $(cat "$T/log-$kind-$r")"
        $KILN model show "gang-$kind-$r" --dir "$D" --json >/dev/null || die "no model gang-$kind-$r"
        # the same spec under mpirun on this machine: the same bytes
        timeout 120 mpirun --oversubscribe --mca btl self,vader -x LSAN_OPTIONS=detect_leaks=0 -np "$r" "$BIN_DIR/kiln-worker" \
            --train-ranks "$T/$kind-$r.json" --output "$T/$kind-$r-direct.kmodel" >"$T/direct.log" 2>&1 \
            || die "mpirun -np $r directly: $(cat "$T/direct.log")"
        cmp -s "$T/$kind-$r.kmodel" "$T/$kind-$r-direct.kmodel" \
            || die "$kind ranks $r: the cluster's model differs from mpirun -np $r's"
        log "$kind ranks $r: job $id, same model bytes as mpirun -np $r directly"
    done
done
sleep 0.5
[ -z "$(leftovers)" ] || die "processes left after the gangs: $(leftovers)"

# --- failing ranks fail the job, nothing left running
id=$($KILN submit "$T/missing.json" --dir "$D" --json | pyj 'd["id"]')
wait_job_state "$D" "$id" failed 120
job_json "$D" "$id" | pyj 'd["reason"]["text"]' | grep -q "mpirun" || die "failed gang reason: $(job_json "$D" "$id")"
sleep 1
[ -z "$(leftovers)" ] || die "processes left after a failed gang: $(leftovers)"

# --- cancel a running gang: mpirun and its daemon stop
"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open(t + "/gbdt-2.json"))
s.update(name="gang-slow", output=t + "/slow.kmodel")
s["model"] = {"kind": "mlp", "hidden": [256, 256], "batch": 8, "epochs": 100000}  # minutes: cancelled long before
json.dump(s, open(t + "/slow.json", "w"))
PY
id=$($KILN submit "$T/slow.json" --dir "$D" --json | pyj 'd["id"]')
end=$((SECONDS + 60))
until $KILN logs "$id" --dir "$D" 2>/dev/null | grep -q "mpirun's daemon"; do
    [ $SECONDS -lt $end ] || die "slow gang never started its daemon: $($KILN logs "$id" --dir "$D")"
    sleep 0.2
done
sleep 1
$KILN cancel "$id" --dir "$D" >/dev/null || die "cancel gang"
wait_job_state "$D" "$id" cancelled 30
end=$((SECONDS + 15))
while [ -n "$(leftovers)" ]; do
    [ $SECONDS -lt $end ] || die "processes left 15 s after cancelling a gang: $(leftovers)"
    sleep 0.2
done
echo "ok: logreg over 2 and 3 ranks, gbdt over 2, on 2-3 workers through kilnd (mpirun with kiln-worker as its agent), same bytes as mpirun alone; failure and cancel leave nothing running"
