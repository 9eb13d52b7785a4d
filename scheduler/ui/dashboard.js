/* dashboard.js - kilnd's read-only dashboard (docs/dashboard.md).  Reads the
 * JSON API of the same kilnd every few seconds and renders tables.  Every
 * value from the API (job names, logs, paths) goes into the page as text
 * (textContent, text nodes), never as HTML. */
"use strict";

const REFRESH_MS = 3000;
const TOKEN_KEY = "kiln.token";
let logJob = null;           /* the job whose log is open, or null */

/* ---- the URL fragment: #token=T (the API token, see below) and #log=ID
 * (open that job's log), e.g. /ui/#token=abc&log=12. */
function fragment(key) {
  const m = new RegExp("(?:^#|&)" + key + "=([^&]*)").exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

/* ---- the API token: from the fragment or the field, kept in
 * sessionStorage (this tab only), sent as "Authorization: Bearer". */
function takeTokenFromFragment() {
  const t = fragment("token");
  if (t === null) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  /* out of the address bar and the history; the rest of the fragment stays */
  const rest = location.hash.replace(/(^#|&)token=[^&]*/, "$1").replace(/^#&/, "#");
  history.replaceState(null, "", location.pathname + location.search +
                       (rest === "#" ? "" : rest));
}
function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
function authHeaders() {
  const t = token();
  return t ? { "Authorization": "Bearer " + t } : {};
}

async function api(path, asText) {
  const r = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try {
      const e = await r.json();
      if (e && e.error && e.error.message) msg = r.status + ": " + e.error.message;
    } catch (_) { /* not JSON */ }
    if (r.status === 401 || r.status === 403)
      msg += " (set an API token above)";
    throw new Error(path + ": " + msg);
  }
  return asText ? r.text() : r.json();
}

/* ---- building DOM with text only */
function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else e.setAttribute(k, String(v));
  }
  for (const kid of kids) {
    if (kid === null || kid === undefined) continue;
    e.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}
function cell(...kids) { return el("td", null, ...kids); }
function fill(tableId, rows, empty) {
  const body = document.querySelector("#" + tableId + " tbody");
  const cols = document.querySelectorAll("#" + tableId + " thead th").length;
  body.replaceChildren(...(rows.length ? rows
    : [el("tr", { class: "empty" }, el("td", { colspan: cols }, empty))]));
}
function setText(id, text) { document.getElementById(id).textContent = text; }

/* ---- formatting */
function when(ns) {
  if (!ns) return "";
  const d = new Date(ns / 1e6), p = n => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
         p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
}
function seconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return "";
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  return (s / 3600).toFixed(1) + " h";
}
function ago(ns) {
  if (!ns) return "never";
  return seconds(Math.max(0, (Date.now() - ns / 1e6) / 1000)) + " ago";
}
function num(v) {
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}
function stateBadge(state) {
  return el("span", { class: "state state-" + String(state).replace(/[^a-z_]/g, "") }, state);
}

/* ---- sections */
function renderHealth(h) {
  setText("health", "kilnd " + h.version + ", up " + seconds(h.uptime_s) + " \u00b7 " +
    h.jobs.queued + " queued, " + h.jobs.running + " running \u00b7 " + h.workers +
    " worker" + (h.workers === 1 ? "" : "s"));
}

function renderJobs(jobs) {
  const rows = jobs.map(j => {
    const t = j.tasks || { total: 0, succeeded: 0 };
    const reason = j.reason ? (j.reason.code + ": " + j.reason.text) : "";
    const end = j.ended_ns || (j.state === "running" ? Date.now() * 1e6 : 0);
    const runTime = j.started_ns && end ? (end - j.started_ns) / 1e9 : null;
    const logs = el("a", { href: "/v1/jobs/" + encodeURIComponent(j.id) + "/logs",
                           class: "log-link", data: { job: j.id },
                           on: { click: ev => { ev.preventDefault(); openLog(j.id, j.name); } } },
                    "logs");
    return el("tr", { data: { jobId: j.id, state: j.state } },
      cell(j.id), cell(el("span", { class: "job-name" }, j.name)), cell(j.type), cell(j.project),
      cell(stateBadge(j.state)), cell(el("span", { class: "reason" }, reason)),
      cell(el("progress", { max: t.total || 1, value: t.succeeded }), " ",
           el("span", { class: "progress" }, t.succeeded + "/" + t.total)),
      cell(j.attempts), cell(when(j.submitted_ns)), cell(seconds(runTime)), cell(logs));
  });
  setText("jobs-count", "(" + jobs.length + ")");
  fill("jobs-table", rows, "no jobs yet");
}

function renderWorkers(workers) {
  const rows = workers.map(w => el("tr", { data: { workerId: w.id, state: w.state } },
    cell(el("span", { class: "worker-id" }, w.id)), cell(w.host), cell(stateBadge(w.state)),
    cell(w.cores + " (" + w.free_cores + ")"),
    cell(w.memory_mb + " (" + w.free_memory_mb + ")"),
    cell(w.gpus + " (" + w.free_gpus + ")" + (w.gpu_names ? " " + w.gpu_names : "")),
    cell(w.running), cell(ago(w.last_heartbeat_ns))));
  setText("workers-count", "(" + workers.length + ")");
  fill("workers-table", rows, "no worker has registered");
}

function renderModels(models) {
  const rows = models.map(m => {
    const aliases = Object.entries(m.aliases || {}).map(([a, v]) => a + "=" + v).join(" ");
    return el("tr", { data: { model: m.name } },
      cell(el("span", { class: "model-name" }, m.name)),
      cell(el("span", { class: "model-latest" }, "v" + m.latest)),
      cell(m.versions), cell(el("span", { class: "aliases" }, aliases)));
  });
  setText("models-count", "(" + models.length + ")");
  fill("models-table", rows, "no model versions yet");
}

const METRIC_ORDER = ["accuracy", "macro_f1", "roc_auc", "rmse", "mae", "n_train", "n_valid"];
function renderRuns(runs) {
  const rows = runs.map(r => {
    const m = r.metrics || {};
    const shown = METRIC_ORDER.filter(k => k in m).map(k => k + " " + num(m[k])).join(", ");
    return el("tr", { data: { runId: r.id, model: r.model } },
      cell(r.id), cell(r.model), cell(r.kind), cell(r.job_id),
      cell(r.accepted ? "yes" : "no (gate)"), cell(el("span", { class: "metrics" }, shown)),
      cell(r.seed), cell(el("code", { title: r.dataset_sha256 },
                            String(r.dataset_sha256 || "").slice(0, 12))),
      cell(seconds(r.duration_s)), cell(when(r.created_ns)));
  });
  setText("runs-count", "(" + runs.length + ")");
  fill("runs-table", rows, "no training runs yet");
}

/* results: GET /v1/drift's rows by job id, or null where kilnd has no such route */
function renderDrift(jobs, results) {
  const drift = jobs.filter(j => j.type === "drift");
  const byJob = new Map((results || []).map(r => [r.job_id, r]));
  const rows = drift.map(j => {
    const href = "/ui/drift/" + encodeURIComponent(j.id);
    const link = el("a", { href: href, target: "_blank", rel: "noopener", class: "report-link",
                           on: { click: ev => {
                             /* With a token the report needs the header: fetch it and show
                              * it in the sandboxed frame (no scripts, no origin). */
                             if (!token()) return;
                             ev.preventDefault();
                             openReport(j.id, href);
                           } } }, "report");
    const r = byJob.get(j.id);
    const verdict = !r ? "" : el("span", { class: r.drifted ? "drifted" : "no-drift" },
                                 r.drifted ? "drifted" : "no drift");
    const share = !r ? "" : r.n_drifted + " of " + r.n_columns + " (" +
                            Math.round(100 * r.share) + "%)";
    const model = r && r.model ? r.model + "@" + r.model_version : "";
    return el("tr", { data: { jobId: j.id, state: j.state } },
      cell(j.id), cell(j.name), cell(j.project), cell(stateBadge(j.state)), cell(verdict),
      cell(share), cell(model), cell(when(j.ended_ns)), cell(link));
  });
  setText("drift-count", "(" + drift.length + ")");
  fill("drift-table", rows, "no drift jobs yet");
}

/* ---- the log and report panels */
async function openLog(id, name) {
  logJob = { id: id, name: name };
  document.getElementById("log-panel").hidden = false;
  setText("log-title", "log of job " + id + (name ? " (" + name + ")" : ""));
  await refreshLog();
  document.getElementById("log-panel").scrollIntoView({ block: "nearest" });
}
async function refreshLog() {
  if (!logJob) return;
  try {
    setText("log-text", await api("/v1/jobs/" + encodeURIComponent(logJob.id) + "/logs", true)
                        || "(the log is empty so far)");
  } catch (e) {
    setText("log-text", String(e.message));
  }
}
async function openReport(id, href) {
  document.getElementById("report-panel").hidden = false;
  setText("report-title", "drift report of job " + id);
  const frame = document.getElementById("report-frame");
  try {
    const r = await fetch(href, { headers: authHeaders(), cache: "no-store" });
    frame.srcdoc = await r.text();   /* sandboxed: the report runs no script here */
  } catch (e) {
    frame.srcdoc = "";
    setText("report-title", "drift report of job " + id + ": " + e.message);
  }
}

/* ---- the refresh loop: each section on its own, so one failing call
 * (say, a token without the right role) leaves the others showing. */
let refreshing = false;   /* a slow kilnd: the timer skips a turn rather than pile up calls */
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try { await refreshAll(); } finally { refreshing = false; }
}
async function refreshAll() {
  const problems = [];
  const step = async (path, render) => {
    try { await render(await api(path)); } catch (e) { problems.push(e.message); }
  };
  /* the drift verdicts, where this kilnd has them (GET /v1/drift) */
  const driftResults = api("/v1/drift?limit=200").then(d => d.drift, e => {
    if (!/: 404/.test(e.message)) problems.push(e.message);
    return null;
  });
  await Promise.all([
    step("/v1/health", renderHealth),
    step("/v1/jobs?limit=200", async d => {
      renderJobs(d.jobs);
      renderDrift(d.jobs, await driftResults);
    }),
    step("/v1/workers", d => renderWorkers(d.workers)),
    step("/v1/models", d => renderModels(d.models)),
    step("/v1/runs?limit=50", d => renderRuns(d.runs)),
  ]);
  await refreshLog();
  const status = document.getElementById("status");
  status.className = problems.length ? "error" : "ok";
  status.textContent = problems.length ? problems.join("; ")
    : "updated " + new Date().toLocaleTimeString(undefined, { hour12: false }) +
      (token() ? " (with token)" : "");
}

function init() {
  takeTokenFromFragment();
  setText("refresh-s", String(REFRESH_MS / 1000));
  const field = document.getElementById("token");
  field.value = token();
  document.getElementById("token-form").addEventListener("submit", ev => {
    ev.preventDefault();
    if (field.value) sessionStorage.setItem(TOKEN_KEY, field.value);
    else sessionStorage.removeItem(TOKEN_KEY);
    refresh();
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    field.value = "";
    sessionStorage.removeItem(TOKEN_KEY);
    refresh();
  });
  document.getElementById("log-close").addEventListener("click", () => {
    logJob = null;
    document.getElementById("log-panel").hidden = true;
  });
  document.getElementById("report-close").addEventListener("click", () => {
    document.getElementById("report-panel").hidden = true;
    document.getElementById("report-frame").srcdoc = "";
  });
  const logId = fragment("log");
  if (logId !== null && /^[0-9]+$/.test(logId)) openLog(Number(logId), "");
  refresh();
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", init);
