// The Xployt gateway demo page: plain JavaScript modules, no build step, no dependencies.
//
// This module holds the token and the scan cards; collections.js the collection cards; page.js
// what they share (API calls, findings tables, following a stream with tickets).
//
// For tests and curious readers, window.xployt.scans[<scan_id>] records what each card saw.

import {
  API,
  $,
  SCANNER_LABELS,
  TERMINAL,
  allPages,
  api,
  bySeverity,
  cell,
  findingCells,
  findingsTable,
  follow,
  showError,
  showProgress,
  startPolling,
  state,
  stopPolling,
  streamInfo,
  streamRecord,
  summaryList,
} from "./page.js";
import { initCollections } from "./collections.js";

// Live objects (EventSource, timers, DOM nodes) stay out of window.xployt, which stays plain data.
const live = new Map();

// ---- token --------------------------------------------------------------------------------

// The token's claims, for display only (the gateway checks the signature).
function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

function setToken(token, subject, expiresAt) {
  state.token = token;
  state.subject = subject;
  state.expiresAt = expiresAt;
  const status = $("#token-status");
  status.dataset.state = "ready";
  const until = expiresAt ? `, expires ${new Date(expiresAt * 1000).toLocaleTimeString()}` : "";
  status.textContent = `Token ready for subject “${subject ?? "unknown"}”${until}.`;
}

async function getDevToken(event) {
  event.preventDefault();
  const subject = $("#subject").value.trim() || "demo";
  const data = await api("POST", `${API}/dev/token`, { subject }, {
    auth: false,
    hint: "development tokens need dev_mode on the gateway; paste a token instead",
  });
  if (data) setToken(data.token, data.subject, Date.now() / 1000 + data.expires_in);
}

function useToken(event) {
  event.preventDefault();
  const token = $("#token-input").value.trim().replace(/^Bearer\s+/i, "");
  if (!token) {
    showError("Paste a token first.");
    return;
  }
  const info = claims(token);
  if (!info) {
    showError("That does not look like a JWT (three base64url parts separated by dots).");
    return;
  }
  setToken(token, info.sub, info.exp);
  $("#token-input").value = "";
}

// ---- scans --------------------------------------------------------------------------------

async function startScan(event) {
  event.preventDefault();
  if (!state.token) {
    showError("Get a development token or paste one first.");
    return;
  }
  let configurations;
  try {
    configurations = JSON.parse($("#configurations").value.trim() || "{}");
  } catch (error) {
    showError(`Configurations must be valid JSON: ${error.message}`);
    return;
  }
  const useSse = $("#mode-sse").checked;
  const body = {
    repository_name: $("#repository").value.trim(),
    scanner_name: $("#scanner").value,
    configurations,
  };
  const button = $("#start");
  button.disabled = true;
  try {
    const data = await api("POST", `${API}/scans/?use_sse=${useSse}`, body);
    if (!data) return;
    const scan = addScan(data.scan_id, body.scanner_name, body.repository_name, useSse, data.status);
    watch(scan.scan_id);
  } finally {
    button.disabled = false;
  }
}

function addScan(scanId, scanner, repository, useSse, status) {
  const scan = {
    scan_id: scanId,
    scanner_name: scanner,
    repository_name: repository,
    sse_enabled: useSse,
    status,
    progress_percent: 0,
    progress_text: "",
    error: null,
    ...streamRecord(),
    summary: null,
    results: null,
  };
  state.scans[scanId] = scan;
  const node = $("#scan-template").content.firstElementChild.cloneNode(true);
  node.dataset.scanId = scanId;
  $(".scanner", node).textContent = SCANNER_LABELS[scanner] ?? scanner;
  $(".repo", node).textContent = repository;
  const shortId = $(".short-id", node);
  shortId.textContent = scanId.slice(0, 8);
  shortId.title = scanId;
  $(".mode", node).textContent = useSse ? "SSE scanner" : "mock";
  $(".bar", node).setAttribute("aria-label", `Progress of ${scanner} on ${repository}`);
  $(".cancel", node).addEventListener("click", () => cancel(scanId));
  $("#scans").prepend(node);
  $("#no-scans").hidden = true;
  live.set(scanId, { node, source: null, timer: null });
  render(scan);
  return scan;
}

function render(scan) {
  const { node } = live.get(scan.scan_id);
  node.dataset.status = scan.status;
  showProgress(node, scan.status, scan.progress_percent);
  $(".progress-text", node).textContent = scan.progress_text;
  const error = $(".error-text", node);
  error.hidden = !scan.error;
  error.textContent = scan.error ?? "";
  $(".cancel", node).hidden = scan.terminal;
  $(".stream-info", node).textContent = streamInfo(scan);
}

// Apply a scan's state (an event, a reset snapshot or a polled record) to its card.
function apply(scan, data) {
  if (scan.terminal) return;
  scan.status = data.status;
  scan.progress_percent = data.progress_percent;
  scan.progress_text = data.progress_text;
  scan.error = data.error ?? null;
  if (data.summary) scan.summary = data.summary;
  if (TERMINAL.has(data.status)) finish(scan);
  render(scan);
}

function finish(scan) {
  scan.terminal = true;
  stopPolling(live.get(scan.scan_id));
  if (scan.status === "completed") loadResults(scan);
  if (scan.status === "cancelled" && !scan.error) scan.error = "Scan cancelled.";
}

function watch(scanId, resumeFrom) {
  const scan = state.scans[scanId];
  const poll = (data) => {
    apply(scan, data);
    scan.last_event_id = Math.max(scan.last_event_id, data.last_event_id ?? 0);
    render(scan);
  };
  follow({
    record: scan,
    entry: live.get(scanId),
    ticketPath: `${API}/scans/${scanId}/stream-ticket`,
    apply: (data) => apply(scan, data),
    fallback: () => startPolling(scan, live.get(scanId), `${API}/scans/${scanId}`, poll),
    render: () => render(scan),
  }, resumeFrom);
}

async function cancel(scanId) {
  const scan = state.scans[scanId];
  const button = $(".cancel", live.get(scanId).node);
  button.disabled = true;
  const data = await api("DELETE", `${API}/scans/${scanId}`);
  button.disabled = false;
  if (data) apply(scan, data); // the stream brings the same cancelled event
}

// ---- results ------------------------------------------------------------------------------

async function loadResults(scan) {
  // The findings come a page at a time: follow next_cursor, up to MAX_SHOWN of them.
  const read = await allPages(`${API}/scans/${scan.scan_id}/results`);
  if (!read) return;
  scan.results = read.items;
  scan.summary = read.first.summary;
  scan.total = read.first.total_findings ?? read.items.length;
  scan.dropped = read.first.findings_dropped ?? 0;
  renderResults(scan);
}

function renderResults(scan) {
  const box = $(".results", live.get(scan.scan_id).node);
  // Said, not hidden: findings the table leaves out, and those the gateway dropped.
  const notes = [];
  if (scan.results.length < scan.total) notes.push(`the first ${scan.results.length} shown`);
  if (scan.dropped) notes.push(`${scan.dropped} more dropped by the gateway's limits`);
  box.replaceChildren(summaryList(scan.total, scan.summary, notes));
  if (scan.results.length) {
    const rows = [...scan.results].sort(bySeverity);
    box.append(findingsTable(["Severity", "Finding", "CWE"],
      `Vulnerabilities found in ${scan.repository_name}`, rows, (row, vuln) => {
        findingCells(row, vuln);
        cell(row, vuln.cwe ?? "—", "cwe");
      }));
  }
  box.hidden = false;
}

// ---- wiring -------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#dev-token-form").addEventListener("submit", getDevToken);
  $("#paste-token-form").addEventListener("submit", useToken);
  $("#scan-form").addEventListener("submit", startScan);
  initCollections();
  document.body.dataset.ready = "true";
});
