// The live page: the workspace's runs (GET /api/operations, read again every LIST_EVERY_MS to find new
// ones), each run in flight followed over server-sent events (GET /api/operations/{id}/events, read with
// fetch so the token stays in the Authorization header), and the chosen run's breakdown and coverage.
"use strict";

const TOKEN_KEY = "scanledger.token";
const LIST_EVERY_MS = 3000;
const MAX_STREAMS = 4;  // a browser opens about six connections to one host: leave some for the reads
const IN_FLIGHT = new Set(["queued", "running"]);

const state = {token: sessionStorage.getItem(TOKEN_KEY), runs: new Map(), order: [], streams: new Map(),
               selected: null, listing: null, families: null};
const $ = (selector) => document.querySelector(selector);

class Unauthorized extends Error {}

async function api(path) {
  const r = await fetch(path, {headers: {Authorization: `Bearer ${state.token}`}});
  if (r.status === 401) throw new Unauthorized();
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function progressCell(row, done, total) {
  const td = row.insertCell();
  const bar = document.createElement("progress");
  bar.max = total || 1;
  bar.value = total ? done : 0;
  td.append(bar, ` ${done}/${total}`);
}

// Rows are kept and refilled, so a click on one is not lost to a redraw while events arrive.
function renderRuns() {
  const body = $("#runs tbody");
  const rows = new Map([...body.rows].map((tr) => [Number(tr.dataset.run), tr]));
  for (const [id, tr] of rows) {
    if (!state.order.includes(id)) tr.remove();
  }
  for (const id of state.order) {
    let tr = rows.get(id);
    if (tr === undefined) {
      tr = document.createElement("tr");
      tr.dataset.run = id;
      tr.addEventListener("click", () => select(id));
    }
    fillRun(tr, state.runs.get(id));
    tr.classList.toggle("selected", id === state.selected);
    body.append(tr);  // in the list's order: an existing row moves, it is not replaced
  }
  $("#no-runs").hidden = state.order.length > 0;
}

function fillRun(row, run) {
  row.replaceChildren();
  cell(row, `#${run.id}`);
  cell(row, run.type);
  cell(row, run.result, `status status-${run.result}`);
  progressCell(row, run.status.containers_analyzed, run.status.total_containers);
  cell(row, run.status.records_processed, "records");
  cell(row, run.status.anomalies_identified, "anomalies");
  cell(row, run.start_time ? new Date(run.start_time).toLocaleString() : "");
}

async function refreshList() {
  const page = await api("/api/operations?size=50&sort_created=desc");
  state.order = page.items.map((run) => run.id);
  for (const run of page.items) {
    if (!state.streams.has(run.id)) state.runs.set(run.id, run);  // a stream's view is the fresher one
  }
  renderRuns();
  for (const run of page.items) {
    if (IN_FLIGHT.has(run.result) && !state.streams.has(run.id) && state.streams.size < MAX_STREAMS) {
      follow(run.id);
    }
  }
  if (state.selected === null && state.order.length) select(state.order[0]);
}

// Server-sent events as the API writes them: `event: <name>` and `data: <json>` lines, a blank line after each.
function* parseEvents(text) {
  for (const block of text.split("\n\n")) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length) yield {name, data: JSON.parse(data.join("\n"))};
  }
}

async function follow(id) {
  const controller = new AbortController();
  state.streams.set(id, controller);
  try {
    const r = await fetch(`/api/operations/${id}/events`, {
      headers: {Authorization: `Bearer ${state.token}`, Accept: "text/event-stream"}, signal: controller.signal});
    if (r.status === 401) throw new Unauthorized();
    if (!r.ok) return;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      const end = buffer.lastIndexOf("\n\n");
      if (end < 0) continue;
      for (const event of parseEvents(buffer.slice(0, end))) onEvent(id, event);
      buffer = buffer.slice(end + 2);
    }
  } catch (error) {
    if (error instanceof Unauthorized) logout("The token is no longer valid.");
    else if (error.name !== "AbortError") console.warn("stream", id, error);
  } finally {
    state.streams.delete(id);
  }
  if (id === state.selected) showDetail(id);  // its final state: the breakdown as it ended
}

function onEvent(id, event) {
  if (event.name === "run") {
    state.runs.set(id, event.data);
    renderRuns();
    if (id === state.selected) showStatus(event.data);
  } else if (event.name === "deleted") {
    state.order = state.order.filter((other) => other !== id);
    state.runs.delete(id);
    renderRuns();
  }
}

function select(id) {
  state.selected = id;
  renderRuns();
  showDetail(id);
}

function showStatus(run) {
  const status = $("#detail-status");
  status.textContent = run.result;
  status.className = `status status-${run.result}`;
}

function definitions(entries) {
  const list = $("#coverage");
  list.replaceChildren();
  for (const [term, value] of entries) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    list.append(dt, dd);
  }
}

function breakdown(title, headings, rows) {
  $("#breakdown-title").textContent = title;
  const table = $("#breakdown");
  table.tHead.replaceChildren();
  const head = table.tHead.insertRow();
  for (const heading of headings) head.append(Object.assign(document.createElement("th"), {textContent: heading}));
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const {key, cells} of rows) {
    const row = body.insertRow();
    row.dataset.key = key;
    cells.forEach((text, i) => cell(row, text, i === cells.length - 1 ? "count" : ""));
  }
}

async function complianceDetail(run) {
  const s = run.summary;
  definitions([["rules processed", `${s.rules_processed} / ${s.rules_total}`],
               ["records processed", `${s.records_processed} / ${s.record_total}`],
               ["violations", s.violation_count], ["compliance score", s.compliance_score]]);
  const rules = (run.configuration.policy && run.configuration.policy.rules) || [];
  const rows = await Promise.all(rules.map(async (rule) => {
    const found = await api(`/api/scan/${run.scan_id}/violations?size=1&rule_id=${encodeURIComponent(rule.id)}`);
    return {key: rule.id, cells: [rule.id, rule.name || "", rule.severity || "", found.total]};
  }));
  breakdown("Violations by rule", ["Rule", "Name", "Severity", "Violations"], rows);
}

async function sensitiveDetail(run) {
  const scan = (await api(`/api/v1/scans/${run.scan_id}`)).data;
  definitions(Object.entries({...scan.progress, ...scan.coverage}));
  if (state.families === null) {
    const detectors = (await api("/api/v1/detectors")).data;
    state.families = new Map(detectors.map((d) => [d.name, d.family]));
  }
  const byFamily = new Map();
  for (const [detector, count] of Object.entries(scan.findings_by_detector || {})) {
    const family = state.families.get(detector) || "custom";
    byFamily.set(family, (byFamily.get(family) || 0) + count);
  }
  breakdown("Findings by detector family", ["Family", "Findings"],
            [...byFamily].sort().map(([family, count]) => ({key: family, cells: [family, count]})));
}

async function containerDetail(run) {
  const s = run.status;
  definitions([["containers analyzed", `${s.containers_analyzed} / ${s.total_containers}`],
               ["records processed", s.records_processed], ["anomalies", s.anomalies_identified]]);
  const containers = await api(`/api/operations/${run.id}/containers`);
  breakdown("Anomalies by container", ["Container", "Type", "Result", "Anomalies"], containers.items.map((c) => ({
    key: c.container.name, cells: [c.container.name, c.container.container_type, c.result, c.anomaly_count],
  })));
}

const DETAILS = {compliance: complianceDetail, sensitive: sensitiveDetail};

async function showDetail(id) {
  const section = $("#detail");
  try {
    const run = await api(`/api/operations/${id}`);
    if (id !== state.selected) return;
    $("#detail-id").textContent = `#${id}`;
    $("#detail-kind").textContent = run.kind || run.type;
    showStatus(run);
    await (DETAILS[run.kind] || containerDetail)(run);
    if (id !== state.selected) return;
    section.hidden = false;
    section.dataset.run = id;
    section.dataset.shown = run.result;  // what the breakdown was read at: tests wait for a final one
  } catch (error) {
    if (error instanceof Unauthorized) logout("The token is no longer valid.");
    else console.warn("detail", id, error);
  }
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  clearInterval(state.listing);
  for (const controller of state.streams.values()) controller.abort();
  state.streams.clear();
  state.runs.clear();
  state.order = [];
  state.selected = null;
  $("#runs tbody").replaceChildren();
  $("#runs-section").hidden = $("#detail").hidden = $("#forget").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#connection").textContent = "";
}

async function open() {
  $("#login").hidden = true;
  $("#runs-section").hidden = $("#forget").hidden = false;
  const list = () => refreshList().then(() => { $("#connection").textContent = "live"; }, (error) => {
    if (error instanceof Unauthorized) logout("That token was not accepted.");
    else $("#connection").textContent = "the API does not answer; trying again";
  });
  await list();
  state.listing = setInterval(list, LIST_EVERY_MS);
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("#token").value.trim();
  $("#token").value = "";
  sessionStorage.setItem(TOKEN_KEY, state.token);
  open();
});
$("#forget").addEventListener("click", () => logout());

if (state.token) open();
else logout();
