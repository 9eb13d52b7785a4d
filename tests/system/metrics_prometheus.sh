#!/usr/bin/env bash
# metrics_prometheus.sh - a real Prometheus (Debian's package, started by
# hand on 127.0.0.1 with a temp config and TSDB, never the service) scrapes
# kilnd's /metrics and one worker's (--metrics) every second; after jobs
# run, kiln metrics are read back through Prometheus's own HTTP API and
# checked against what kilnd's JSON API says.  promtool lints both pages
# first (its parser is the one the scrape uses).  Skips, saying so, only
# when prometheus is not installed and cannot be.
source "$(dirname "$0")/lib/cluster.sh"
cluster_init

if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "prometheus missing: apt-get install prometheus"
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends \
        prometheus >"$T/apt.log" 2>&1 || tail -n 5 "$T/apt.log" >&2
fi
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    echo "SKIP: prometheus/promtool not installed and not installable (scripts/deps.sh)"
    exit 0
fi

D=$T/c
start_kilnd "$D"
start_worker "$D" w1 --metrics 127.0.0.1:0
wait_workers "$D" 1
wait_for "the worker's metrics.url" 20 test -s "$D/w-w1/metrics.url"
K_URL=$(cat "$D/kilnd.url")/metrics
W_URL=$(cat "$D/w-w1/metrics.url")
log "kilnd $K_URL, worker $W_URL"

# --- the pages themselves: Content-Type, and promtool's lint (format and naming)
ctype=$(curl -sf -o /dev/null -w '%{content_type}' --max-time 10 "$K_URL") || die "GET $K_URL failed"
[ "$ctype" = "text/plain; version=0.0.4; charset=utf-8" ] || die "kilnd /metrics Content-Type: $ctype"
for u in "$K_URL" "$W_URL"; do
    curl -sf --max-time 10 "$u" >"$T/page.txt" || die "GET $u failed"
    promtool check metrics <"$T/page.txt" >"$T/lint.txt" 2>&1 || die "promtool check metrics on $u: $(cat "$T/lint.txt")"
done
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "$K_URL")
[ "$code" = 405 ] || die "POST /metrics: HTTP $code, want 405"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${W_URL%/metrics}/nope")
[ "$code" = 404 ] || die "worker GET /nope: HTTP $code, want 404"

# --- Prometheus on a free loopback port, scraping both every second
P_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hostport() { local u=${1#http://}; echo "${u%%/*}"; }
cat >"$T/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kilnd
    static_configs: [{targets: ['$(hostport "$K_URL")']}]
  - job_name: kiln-worker
    static_configs: [{targets: ['$(hostport "$W_URL")']}]
EOF
promtool check config "$T/prometheus.yml" >"$T/config.txt" 2>&1 || die "prometheus.yml: $(cat "$T/config.txt")"
prometheus --config.file="$T/prometheus.yml" --web.listen-address="127.0.0.1:$P_PORT" \
    --storage.tsdb.path="$T/tsdb" --log.level=warn >"$T/prometheus.log" 2>&1 &
CLUSTER_PIDS+=("$!")
P=http://127.0.0.1:$P_PORT
wait_for "prometheus ready" 60 curl -sf --max-time 2 "$P/-/ready"

# query EXPR: the instant vector as JSON {"labels...": value}, from Prometheus's API
query() {
    curl -sf --max-time 5 -G "$P/api/v1/query" --data-urlencode "query=$1" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
assert d["status"] == "success", d
print(json.dumps({",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k not in ("instance",)):
                  float(r["value"][1]) for r in d["data"]["result"]}, sort_keys=True))'
}
# value_is EXPR WANT: the query's single value equals WANT
value_is() {
    local got
    got=$(query "$1") || return 1
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if len(d)==1 and list(d.values())[0]==float(sys.argv[2]) else 1)' "$got" "$2"
}
wait_value() {
    local expr=$1 want=$2 timeout=$3 end=$((SECONDS + $3))
    until value_is "$expr" "$want"; do
        [ $SECONDS -lt $end ] || die "Prometheus: $expr never became $want in ${timeout}s (last: $(query "$expr" || echo error); targets: $(curl -s "$P/api/v1/targets" | head -c 1500))"
        sleep 0.5
    done
}

wait_value 'up{job="kilnd"}' 1 30
wait_value 'up{job="kiln-worker"}' 1 30
wait_value 'kiln_workers{state="alive"}' 1 30

# --- jobs: two that succeed (3 tasks each, in children), one that fails
echo '{"type":"noop","name":"m-ok","tasks":3,"sleep_ms":150}' >"$T/ok.json"
echo '{"type":"noop","name":"m-bad","tasks":1,"fail":"always"}' >"$T/bad.json"
timeout 120 $KILN submit "$T/ok.json" --dir "$D" --wait >"$T/ok1.out" 2>&1 || die "ok job 1: $(cat "$T/ok1.out")"
timeout 120 $KILN submit "$T/ok.json" --dir "$D" --wait >"$T/ok2.out" 2>&1 || die "ok job 2: $(cat "$T/ok2.out")"
set +e
timeout 120 $KILN submit "$T/bad.json" --dir "$D" --wait >"$T/bad.out" 2>&1; rc=$?
set -e
[ $rc = 1 ] || die "the failing job: exit $rc ($(cat "$T/bad.out"))"

# What kilnd's JSON API says happened: the reference for what Prometheus read.
curl -sf --max-time 10 "$(cat "$D/kilnd.url")/v1/jobs" >"$T/jobs.json" || die "GET /v1/jobs failed"
read -r n_ok n_bad n_tasks <<<"$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
jobs = d["jobs"]
ok = sum(j["state"] == "succeeded" for j in jobs)
bad = sum(j["state"] == "failed" for j in jobs)
tasks = sum(j["tasks"]["succeeded"] + j["tasks"]["failed"] for j in jobs)
print(ok, bad, tasks)' "$T/jobs.json")"
[ "$n_ok" = 2 ] && [ "$n_bad" = 1 ] || die "kilnd's API: $n_ok succeeded, $n_bad failed (want 2, 1): $(cat "$T/jobs.json")"
log "API: $n_ok succeeded, $n_bad failed, $n_tasks task results"

# --- read back through Prometheus (the brief's check: kiln_jobs_total)
wait_value 'kiln_jobs_total{type="noop",state="succeeded"}' "$n_ok" 30
wait_value 'kiln_jobs_total{type="noop",state="failed"}' "$n_bad" 30
wait_value 'kiln_jobs_total{type="noop",state="submitted"}' 3 30
wait_value 'sum(kiln_jobs_total{state="cancelled"}) or vector(0)' 0 30
wait_value 'kiln_queue_depth' 0 30
# one histogram observation per task attempt that ended: 6 done + 1 failed
wait_value 'kiln_task_duration_seconds_count{type="noop"}' "$n_tasks" 30
wait_value 'kiln_task_duration_seconds_bucket{type="noop",le="+Inf"}' "$n_tasks" 30
# each ok task sleeps 150 ms: none of the 6 fits under the 0.1 s bucket
wait_value 'kiln_task_duration_seconds_bucket{type="noop",le="0.1"} <= bool 1' 1 30
# the worker's own view of the same tasks
wait_value 'kiln_worker_tasks_total{job="kiln-worker",type="noop",outcome="succeeded"}' 6 30
wait_value 'kiln_worker_tasks_total{job="kiln-worker",type="noop",outcome="error"}' 1 30
wait_value 'kiln_worker_task_duration_seconds_count{job="kiln-worker",type="noop"}' 7 30
wait_value 'kiln_worker_tasks_running{job="kiln-worker"}' 0 30
wait_value 'kiln_worker_cores{job="kiln-worker",state="free"}' 2 30
wait_value 'process_resident_memory_bytes{job="kilnd"} > bool 0' 1 30
# and the scrapes themselves were clean (no parse error on either target)
curl -sf "$P/api/v1/targets" | "$PY" -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
assert len(t) == 2 and all(x["health"] == "up" and not x["lastError"] for x in t), t' \
    || die "targets not clean: $(curl -s "$P/api/v1/targets")"
log "ok: Prometheus read kiln_jobs_total and friends back"
