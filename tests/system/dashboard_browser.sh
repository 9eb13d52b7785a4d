#!/usr/bin/env bash
# dashboard_browser.sh - kilnd's dashboard (/ui/, docs/dashboard.md) in a real
# browser: a `kiln local` on loopback runs a featurize job, a train job that
# depends on it (a model version, promoted to production), a job that sleeps,
# one that waits for it, and one whose name is HTML; headless Chromium
# (Debian's chromium) loads the page, runs its script, and the DOM it dumps
# must show each job by name with its state, why the waiting one waits and
# the progress, the worker with its cores, the model with its version and
# alias, the run with its metrics, and a job's log - with the HTML name shown
# as text, never as markup.  A screenshot goes to $OUT/dashboard.png.  The
# drift report route: 404 pages for what has no report, and, when a drift job
# type exists, a real drift job's report opened through /ui/drift/ID.
# Skips, saying so, only when chromium is not installed and cannot be.
set -euo pipefail
cd "$KILN_ROOT"
source tests/system/lib/cluster.sh
cluster_init

# Chromium's processes: each run in its own process group, all killed on exit.
declare -a CHROME_PGIDS=()
dash_cleanup() {
    local rc=$? p
    set +e   # (exit $rc) below must not end the trap under set -e
    for p in "${CHROME_PGIDS[@]:-}"; do
        [ -n "$p" ] && kill -9 -- "-$p" 2>/dev/null || true
    done
    (exit $rc)
    cluster_cleanup
}
trap dash_cleanup EXIT

CHROME=$(command -v chromium || true)
if [ -z "$CHROME" ] && [ "$(id -u)" = 0 ]; then
    log "chromium missing: apt-get install chromium"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
        chromium >"$T/apt.log" 2>&1 || tail -n 5 "$T/apt.log" >&2
    CHROME=$(command -v chromium || true)
fi
if [ -z "$CHROME" ]; then
    echo "SKIP: chromium not installed and not installable (scripts/deps.sh installs it)"
    exit 0
fi
OUT=${KILN_TEST_OUT:-$KILN_ROOT/build/test-out}/dashboard_browser
mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/*.html

# browse FILE URL [chromium args]: Chromium headless on URL, stdout to FILE
# (--dump-dom: the DOM after the script ran);
# the page's timers and fetches get 5 s of virtual time, the whole run 90 s.
browse() {
    local file=$1 url=$2; shift 2
    setsid timeout -k 5 90 "$CHROME" --headless=new --no-sandbox --disable-gpu --no-first-run \
        --disable-extensions --disable-background-networking --user-data-dir="$T/chrome" \
        --virtual-time-budget=5000 "$@" "$url" >"$file" 2>>"$T/chrome.txt" &
    local pid=$!
    CHROME_PGIDS+=("$pid")
    wait "$pid" || die "chromium on $url: exit $? (tail of its log: $(tail -n 5 "$T/chrome.txt"))"
}

# --- data: kiln gen's four classes over 8 assets, featurized by the cluster
$KILN gen --windows 400 --window-len 512 --assets 8 --seed 3 -o "$T/sensor.h5" >/dev/null
$KILN gen --windows 200 --window-len 512 --assets 4 --seed 11 -o "$T/sensor2.h5" >/dev/null
"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open("bench/featurize_bench.json"))
s["features"].pop("rolling", None)
for name, src in (("feat", "sensor"), ("feat2", "sensor2")):
    s["name"] = "dash-" + name
    s["input"], s["output"] = f"{t}/{src}.h5", f"{t}/{name}.h5"
    json.dump(s, open(f"{t}/{name}.json", "w"))
PY

# --- a real `kiln local`: kilnd and one worker on loopback
D=$T/c
$KILN local --workers 1 --cores 2 --dir "$D" --http 127.0.0.1:0 --lease-ms 2000 >"$T/local.out" 2>&1 &
LOCAL_PID=$!
CLUSTER_PIDS+=("$LOCAL_PID")
wait_for "kiln local's dashboard line" 30 grep -q '^kiln local: dashboard http://127\.0\.0\.1:[0-9]*/ui/$' "$T/local.out"
URL=$(cat "$D/kilnd.url")
UI=$(sed -n 's/^kiln local: dashboard //p' "$T/local.out")
[ "$UI" = "$URL/ui/" ] || die "kiln local printed the dashboard $UI, kilnd.url says $URL"
wait_workers "$D" 1
log "kiln local: $UI"

jf=$(submit_json "$D" "$(cat "$T/feat.json")")
spec_train=$(printf '{"type":"train","name":"dash-model","input":"%s/feat.h5","output":"%s/model.kmodel","model":{"kind":"logreg","C":1.0,"max_iter":100},"target":"label","validation":{"split":"time","fraction":0.25},"seed":7,"depends_on":[%s]}' "$T" "$T" "$jf")
jt=$(submit_json "$D" "$spec_train")
jx=$(submit_json "$D" '{"type":"noop","name":"<img src=x onerror=\"document.title=1\">dash-html","tasks":2}')
wait_job_state "$D" "$jf" succeeded 120
wait_job_state "$D" "$jt" succeeded 120
wait_job_state "$D" "$jx" succeeded 30
$KILN model promote dash-model 1 --dir "$D" >/dev/null || die "promote dash-model 1"
# a job that runs for the test's length, and one that waits for it
js=$(submit_json "$D" '{"type":"noop","name":"dash-sleep","tasks":1,"sleep_ms":600000}')
jw=$(submit_json "$D" "{\"type\":\"noop\",\"name\":\"dash-waits\",\"depends_on\":[$js]}")
wait_job_state "$D" "$js" running 30
[ "$(job_field "$D" "$jw" reason.code)" = dependency ] || die "job $jw: reason $(job_field "$D" "$jw" reason)"

# --- the drift job type, if there is one by now
DRIFT=
jd=
printf '{"type":"drift","name":"probe"}' >"$T/probe.json"
set +e
$KILN submit "$T/probe.json" --dir "$D" >"$T/probe.out" 2>&1
set -e
if grep -qiE 'unknown (job )?type|not a job type|no job type' "$T/probe.out"; then
    echo "SKIP (part): no drift job type in this kiln yet ($(head -n 1 "$T/probe.out")): the" \
         "dashboard's drift table and /ui/drift/ID with a real report are not checked"
else
    DRIFT=1
    jf2=$(submit_json "$D" "$(cat "$T/feat2.json")")
    wait_job_state "$D" "$jf2" succeeded 120
    jd=$(submit_json "$D" "$(printf '{"type":"drift","name":"dash-drift","reference":"%s/feat.h5","current":"%s/feat2.h5","output":"%s/drift.json"}' "$T" "$T" "$T")")
    wait_job_state "$D" "$jd" succeeded 120
    [ -s "$T/drift.html" ] || die "drift job $jd succeeded without $T/drift.html"
    # the verdict the page should show, where kilnd serves it (GET /v1/drift/ID)
    curl -sf --max-time 10 "$URL/v1/drift/$jd" >"$T/verdict.json" || : >"$T/verdict.json"
fi

# --- the dashboard, as Chromium renders it
browse "$OUT/dashboard.html" "$UI#log=$jf" --dump-dom
browse /dev/null "$UI" --screenshot="$OUT/dashboard.png" --window-size=1280,900
"$PY" - "$OUT/dashboard.html" "$jf" "$jt" "$jx" "$js" "$jw" "${jd:-0}" "$T/verdict.json" <<'PY' || die "the rendered dashboard (saved as $OUT/dashboard.html) lacks the above"
import sys
from html.parser import HTMLParser

import json, os
path, (jf, jt, jx, js, jw, jd), verdict_path = sys.argv[1], map(int, sys.argv[2:8]), sys.argv[8]

class Dom(HTMLParser):
    """Tables as rows of cell texts (with each row's data-* and links), plus
    the text of elements with an id, and every tag seen."""
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.ids, self.tags = {}, {}, []
        self.table = None; self.row = None; self.cell = None; self.open_ids = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "table" and "id" in a:
            self.table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self.table is not None:
            self.row = {"cells": [], "attrs": a, "links": []}
        elif tag == "td" and self.row is not None:
            self.cell = []
        elif tag == "a" and self.row is not None:
            self.row["links"].append(a.get("href"))
        if "id" in a and tag not in ("table",):
            self.open_ids.append([a["id"], tag, []])
    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row["cells"].append("".join(self.cell).strip()); self.cell = None
        elif tag == "tr" and self.row is not None:
            if self.row["cells"]:
                self.table.append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None
        if self.open_ids and self.open_ids[-1][1] == tag:
            i, _, text = self.open_ids.pop()
            self.ids[i] = "".join(text)
    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        for o in self.open_ids:
            o[2].append(data)

d = Dom()
d.feed(open(path, encoding="utf-8").read())
bad = []
def check(ok, what):
    if not ok:
        bad.append(what)

check(d.ids.get("status", "").startswith("updated"), f"status line: {d.ids.get('status')!r}")
jobs = {int(r["attrs"]["data-job-id"]): r for r in d.tables.get("jobs-table", []) if "data-job-id" in r["attrs"]}
# columns: id, name, type, project, state, reason, progress, attempts, submitted, run time, logs
want = {jf: ("dash-feat", "featurize", "succeeded"), jt: ("dash-model", "train", "succeeded"),
        jx: ('<img src=x onerror="document.title=1">dash-html', "noop", "succeeded"),
        js: ("dash-sleep", "noop", "running"), jw: ("dash-waits", "noop", "queued")}
for jid, (name, typ, state) in want.items():
    r = jobs.get(jid)
    if not r:
        bad.append(f"job {jid} ({name}) not in the jobs table (rows: {sorted(jobs)})"); continue
    c = r["cells"]
    check(c[1] == name and c[2] == typ and c[4] == state,
          f"job {jid}: shows name {c[1]!r} type {c[2]!r} state {c[4]!r}, want {name!r} {typ!r} {state!r}")
    check(f"/v1/jobs/{jid}/logs" in r["links"], f"job {jid}: no link to its log ({r['links']})")
for jid in (jf, jt, jx):
    done, total = jobs[jid]["cells"][6].split("/") if jid in jobs else ("?", "0")
    check(done == total and int(total) >= 1, f"job {jid}: progress {done}/{total}")
check(jobs.get(jx, {"cells": [""] * 7})["cells"][6] == "2/2", "the 2-task job's progress is not 2/2")
check(jobs.get(js, {"cells": [""] * 7})["cells"][6] == "0/1", "the sleeping job's progress is not 0/1")
check(f"waiting for job {js}" in jobs.get(jw, {"cells": [""] * 6})["cells"][5],
      f"the waiting job's reason: {jobs.get(jw, {'cells': [''] * 6})['cells'][5]!r}")
# the HTML name is text: no <img> anywhere, the title is the page's
check("img" not in d.tags, "an <img> element: a job name was inserted as HTML")
check(d.ids.get("log-text", "").count("submitted: featurize job") == 1,
      f"job {jf}'s log (#log={jf}) not shown: {d.ids.get('log-text', '')[:200]!r}")

workers = d.tables.get("workers-table", [])
# id, host, state, cores (free), memory, GPUs, running, heartbeat
w = [r["cells"] for r in workers if r["cells"][0] == "local-1"]
check(len(w) == 1 and w[0][2] == "alive" and w[0][3].startswith("2 (") and w[0][6] == "1"
      and w[0][7].endswith("ago"), f"worker local-1 row: {w}")

models = [r["cells"] for r in d.tables.get("models-table", [])]
check(["dash-model", "v1", "1", "production=1"] in models, f"models table: {models}")

runs = [r["cells"] for r in d.tables.get("runs-table", [])]
check(any(r[1] == "dash-model" and r[2] == "logreg" and r[3] == str(jt) and r[4] == "yes"
          and "accuracy 0." in r[5] and "n_valid" in r[5] for r in runs), f"runs table: {runs}")

drift = d.tables.get("drift-table", [])
if jd:
    rows = [r for r in drift if r["attrs"].get("data-job-id") == str(jd)]
    # job, name, project, state, verdict, drifted columns, model, ended, report
    check(len(rows) == 1 and rows[0]["cells"][1] == "dash-drift" and rows[0]["cells"][3] == "succeeded"
          and f"/ui/drift/{jd}" in rows[0]["links"],
          f"drift table: {[(r['cells'], r['links']) for r in drift]}")
    if rows and os.path.getsize(verdict_path):
        v = json.load(open(verdict_path))
        want = ("drifted" if v["drifted"] else "no drift", f"{v['n_drifted']} of {v['n_columns']} (")
        check(rows[0]["cells"][4] == want[0] and rows[0]["cells"][5].startswith(want[1]),
              f"drift verdict shown {rows[0]['cells'][4:6]}, /v1/drift/{jd} says {want}")
else:
    check(len(drift) == 1 and drift[0]["cells"][0] == "no drift jobs yet", f"drift table: {drift}")
for b in bad:
    print("dashboard:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
"$PY" - "$OUT/dashboard.png" <<'PY' || die "no 1280x900 PNG screenshot at $OUT/dashboard.png"
import struct, sys
b = open(sys.argv[1], "rb").read(32)
assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", b[:16]
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (1280, 900), (w, h)
PY
log "dashboard: the DOM shows every job, the worker, the model and the run; screenshot $OUT/dashboard.png"

# --- a token from the fragment: taken into the tab, sent on every fetch
browse "$T/token.html" "$UI#token=dash-test-token" --dump-dom
grep -q '<span id="status" role="status" class="ok">updated [0-9:]* (with token)</span>' "$T/token.html" \
    || die "with #token=: status $(grep -o '<span id="status"[^<]*</span>' "$T/token.html")"
grep -q "dash-sleep" "$T/token.html" || die "with #token=: no jobs shown"

# --- /ui/drift/ID: only a drift job's report, a 404 page otherwise
page() {   # page PATH: "STATUS CONTENT_TYPE" and the body in $T/page.html
    curl -s --max-time 10 -o "$T/page.html" -w '%{http_code} %{content_type}' "$URL$1"
}
for p in "/ui/drift/$jt:not a drift job" "/ui/drift/999999:job 999999 not found" \
         "/ui/drift/abc:is not a job id" "/ui/drift/..%2F..%2Fetc%2Fpasswd:is not a job id" \
         "/ui/nope.js:is not a page of the dashboard"; do
    got=$(page "${p%%:*}")
    [ "$got" = "404 text/html; charset=utf-8" ] || die "GET ${p%%:*}: $got"
    grep -q "${p#*:}" "$T/page.html" || die "GET ${p%%:*}: page lacks '${p#*:}': $(cat "$T/page.html")"
done
[ "$(page /ui/dashboard.js)" = "200 text/javascript; charset=utf-8" ] || die "GET /ui/dashboard.js"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "$URL/ui/")" = 405 ] || die "POST /ui/ is not 405"

if [ -n "$DRIFT" ]; then
    [ "$(page "/ui/drift/$jd")" = "200 text/html; charset=utf-8" ] || die "GET /ui/drift/$jd: $(page "/ui/drift/$jd")"
    cmp -s "$T/page.html" "$T/drift.html" || die "/ui/drift/$jd is not the bytes of $T/drift.html"
    browse "$OUT/drift_report.html" "$URL/ui/drift/$jd" --dump-dom
    browse /dev/null "$URL/ui/drift/$jd" --screenshot="$OUT/drift_report.png" --window-size=1280,900
    "$PY" - "$OUT/drift_report.html" <<'PY' || die "the rendered drift report (saved as $OUT/drift_report.html) lacks the above"
import re, sys
h = open(sys.argv[1], encoding="utf-8").read()
bad = [w for w, ok in (("<h1 id=\"title\">", '<h1 id="title">' in h),
                       ("a features table", '<table id="features">' in h),
                       ("a distribution SVG", '<svg class="dist"' in h),
                       ("a feature of the data (vib_x...)", re.search(r"vib_x\.\w+", h) is not None))
       if not ok]
for b in bad:
    print("drift report: no", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
    mv "$T/drift.html" "$T/drift.html.moved"
    [ "$(page "/ui/drift/$jd")" = "404 text/html; charset=utf-8" ] || die "a moved report is not a 404"
    grep -q "has not written its report $T/drift.html (it was moved or deleted)" "$T/page.html" \
        || die "moved report's page: $(cat "$T/page.html")"
    log "drift report $jd opened through /ui/drift/$jd; screenshot $OUT/drift_report.png"
fi
# --- a clean stop: kiln local stops kilnd and the worker (and its sleeping
# task); nothing in their output from the sanitizers (under make SAN=1)
kill -TERM "$LOCAL_PID"
end=$((SECONDS + 40))
while kill -0 "$LOCAL_PID" 2>/dev/null; do
    [ $SECONDS -lt $end ] || die "kiln local did not stop within 40 s of SIGTERM"
    sleep 0.2
done
set +e; wait "$LOCAL_PID"; rc=$?; set -e
[ $rc = 0 ] && grep -q '^kiln local: stopped$' "$T/local.out" || die "kiln local: exit $rc: $(tail -n 20 "$T/local.out")"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/local.out"; then
    die "sanitizer report from kilnd or the worker: $(grep -m1 -A 20 -E 'Sanitizer|runtime error:' "$T/local.out")"
fi
log "ok: the dashboard in Chromium"
