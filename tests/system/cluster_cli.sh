#!/usr/bin/env bash
# The kiln CLI over kilnd: submit --wait exits 0 and prints "succeeded" for a
# good job, 1 for a failing one; logs, workers, list --state, status, cancel,
# --idempotency-key, --server / $KILN_DIR, relative paths made absolute,
# usage errors (2) and an unreachable kilnd (1, "cannot reach kilnd").
set -euo pipefail
cd "$KILN_ROOT"
. tests/system/lib/cluster.sh
cluster_init

D=$T/cl
start_kilnd "$D"
start_worker "$D" w1
start_worker "$D" w2
wait_workers "$D" 2
URL=$(cat "$D/kilnd.url")

echo '{"type":"noop","name":"cli-ok","tasks":3,"sleep_ms":100}' >"$T/ok.json"
echo '{"type":"noop","name":"cli-bad","tasks":1,"fail":"always"}' >"$T/bad.json"

# --- submit --wait: success
$KILN submit "$T/ok.json" --dir "$D" --wait >"$T/ok.out" 2>&1 || die "submit --wait of a good job: exit $? ($(cat "$T/ok.out"))"
grep -q succeeded "$T/ok.out" || die "submit --wait output: $(cat "$T/ok.out")"
ok_id=$(sed -n 's/^job \([0-9]*\) submitted.*/\1/p' "$T/ok.out" | head -n1)
[ -n "$ok_id" ] || die "no 'job ID submitted' line: $(cat "$T/ok.out")"
[ "$(job_field "$D" "$ok_id" state)" = succeeded ] || die "job $ok_id not succeeded"

# --- submit --wait: failure exits 1
set +e
$KILN submit "$T/bad.json" --dir "$D" --wait >"$T/bad.out" 2>&1; rc=$?
set -e
[ $rc = 1 ] || die "submit --wait of a failing job: exit $rc, want 1 ($(cat "$T/bad.out"))"
grep -q failed "$T/bad.out" || die "failing submit --wait output: $(cat "$T/bad.out")"
bad_id=$(sed -n 's/^job \([0-9]*\) submitted.*/\1/p' "$T/bad.out" | head -n1)

# --- submit --wait --json prints the final job
$KILN submit "$T/ok.json" --dir "$D" --wait --json >"$T/okj.out" || die "submit --wait --json failed"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["state"]=="succeeded" and d["tasks"]["succeeded"]==3, d' "$T/okj.out" \
    || die "submit --wait --json: $(cat "$T/okj.out")"

# --- logs: the scheduler's lines
$KILN logs "$ok_id" --dir "$D" >"$T/logs.out" || die "kiln logs failed"
grep -q 'submitted' "$T/logs.out" && grep -q 'succeeded' "$T/logs.out" || die "kiln logs: $(cat "$T/logs.out")"
$KILN logs "$bad_id" --dir "$D" >"$T/blogs.out" || die "kiln logs (failed job) failed"
grep -q 'fails as asked' "$T/blogs.out" || die "failed job's log lacks the task output: $(cat "$T/blogs.out")"

# --- workers
$KILN workers --dir "$D" >"$T/workers.out" || die "kiln workers failed"
grep -q '^w1 ' "$T/workers.out" && grep -q '^w2 ' "$T/workers.out" || die "kiln workers: $(cat "$T/workers.out")"
grep -q alive "$T/workers.out" || die "kiln workers shows no alive worker"

# --- list --state
$KILN list --state succeeded --dir "$D" >"$T/list.out" || die "kiln list failed"
grep -Eq "^$ok_id +succeeded" "$T/list.out" || die "list --state succeeded lacks job $ok_id: $(cat "$T/list.out")"
! grep -Eq "^$bad_id " "$T/list.out" || die "list --state succeeded shows failed job $bad_id"
$KILN list --state failed --dir "$D" --json | "$PY" -c '
import json, sys
ids = [j["id"] for j in json.load(sys.stdin)["jobs"]]
assert ids == [int(sys.argv[1])], ids' "$bad_id" || die "list --state failed --json"
if $KILN list --state bogus --dir "$D" >/dev/null 2>"$T/err"; then die "list --state bogus succeeded"; fi
grep -q state "$T/err" || die "list --state bogus: $(cat "$T/err")"

# --- status
$KILN status "$ok_id" --dir "$D" >"$T/status.out" || die "kiln status failed"
grep -q succeeded "$T/status.out" || die "kiln status: $(cat "$T/status.out")"
if $KILN status 999999 --dir "$D" >/dev/null 2>&1; then die "status of an unknown job exited 0"; fi

# --- --server and $KILN_DIR instead of --dir
$KILN status "$ok_id" --server "$URL" --json >/dev/null || die "--server failed"
KILN_DIR=$D $KILN status "$ok_id" --json >/dev/null || die "\$KILN_DIR failed"

# --- idempotency key: the same job twice
a=$($KILN submit "$T/ok.json" --dir "$D" --idempotency-key cli-key-1 --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
b=$($KILN submit "$T/ok.json" --dir "$D" --idempotency-key cli-key-1 --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["existed"] is True, d; print(d["id"])')
[ "$a" = "$b" ] || die "--idempotency-key: ids $a and $b"

# --- cancel
echo '{"type":"noop","name":"cli-long","tasks":1,"sleep_ms":30000}' >"$T/long.json"
l=$($KILN submit "$T/long.json" --dir "$D" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
wait_job_state "$D" "$l" running 20
$KILN cancel "$l" --dir "$D" >"$T/cancel.out" || die "kiln cancel failed"
grep -q cancelled "$T/cancel.out" || die "kiln cancel: $(cat "$T/cancel.out")"
wait_job_state "$D" "$l" cancelled 10
set +e; $KILN cancel "$l" --dir "$D" >/dev/null 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] || die "cancel of an ended job: exit $rc, want 1"
grep -q 409 "$T/err" || grep -qi 'already ended' "$T/err" || die "cancel of an ended job: $(cat "$T/err")"

# --- relative input/output become absolute (against the CLI's cwd)
mkdir -p "$T/rel"
$KILN gen --windows 200 --window-len 512 --seed 2 -o "$T/rel/in.h5" >/dev/null
"$PY" - "$T/rel/spec.json" <<'PY'
import json, sys
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
s["input"] = "in.h5"; s["output"] = "sub/out.h5"; s["name"] = "cli-relative"
json.dump(s, open(sys.argv[1], "w"))
PY
mkdir -p "$T/rel/sub"
r=$(cd "$T/rel" && $KILN submit spec.json --dir "$D" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
wait_job_state "$D" "$r" succeeded 40
[ "$(job_field "$D" "$r" spec.input)" = "$T/rel/in.h5" ] || die "spec.input sent as $(job_field "$D" "$r" spec.input)"
[ "$(job_field "$D" "$r" spec.output)" = "$T/rel/sub/out.h5" ] || die "spec.output sent as $(job_field "$D" "$r" spec.output)"
[ -f "$T/rel/sub/out.h5" ] || die "relative output not written"

# --- usage errors: exit 2
set +e
$KILN submit --dir "$D" >/dev/null 2>&1; rc=$?
set -e
[ $rc = 2 ] || die "submit without a spec: exit $rc, want 2"
set +e; $KILN list --bogus-option --dir "$D" >/dev/null 2>&1; rc=$?; set -e
[ $rc = 2 ] || die "list --bogus-option: exit $rc, want 2"
# a missing spec file is an error (not a usage error), and submits nothing
n0=$($KILN list --dir "$D" --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
if $KILN submit "$T/nope.json" --dir "$D" >/dev/null 2>&1; then die "submit of a missing file exited 0"; fi
echo '{"type":"noop","tasks":"x"}' >"$T/inv.json"
set +e; $KILN submit "$T/inv.json" --dir "$D" >/dev/null 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] || die "submit of an invalid spec: exit $rc, want 1"
grep -q tasks "$T/err" || die "invalid spec message does not name the field: $(cat "$T/err")"
[ "$($KILN list --dir "$D" --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')" = "$n0" ] || die "a bad submit created a job"

# --- kilnd unreachable: exit 1 after its retries, "cannot reach kilnd"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
set +e
timeout 20 $KILN submit "$T/ok.json" --server "http://127.0.0.1:$port" >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc = 1 ] || die "submit to a dead kilnd: exit $rc, want 1 ($(cat "$T/err"))"
grep -q 'cannot reach kilnd' "$T/err" || die "submit to a dead kilnd: $(cat "$T/err")"
echo "ok: CLI"
