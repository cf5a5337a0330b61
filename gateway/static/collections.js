// The collection cards: several scanners on one repository, one stream.
//
// A card shows one bar per scanner and one for the whole collection, the findings as they arrive
// (each event of the collection's stream carries only the findings new in it; the card folds
// them by fingerprint), then the merged table from the results and a SARIF download.
//
// window.xployt.collections[<collection_id>] records what each card saw.

import {
  API,
  $,
  SCANNER_LABELS,
  TERMINAL,
  allPages,
  api,
  bySeverity,
  cell,
  download,
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

const COLLECTIONS = `${API}/scan-collections`;
const SARIF = "application/sarif+json";
const live = new Map(); // collection id -> {node, rows, source, timer, fingerprints}

async function startCollection(event) {
  event.preventDefault();
  if (!state.token) {
    showError("Get a development token or paste one first.");
    return;
  }
  const scanners = [...document.querySelectorAll("#collection-scanners input:checked")].map((box) => box.value);
  if (!scanners.length) {
    showError("Pick at least one scanner for the collection.");
    return;
  }
  let configurations;
  try {
    configurations = JSON.parse($("#collection-configurations").value.trim() || "{}");
  } catch (error) {
    showError(`Configurations must be valid JSON: ${error.message}`);
    return;
  }
  const useSse = $("#collection-mode-sse").checked;
  const body = { repository_name: $("#collection-repository").value.trim(), scanners, configurations };
  const button = $("#start-collection");
  button.disabled = true;
  try {
    const data = await api("POST", `${COLLECTIONS}/?use_sse=${useSse}`, body);
    if (!data) return;
    addCollection(data, body, useSse);
    watch(data.collection_id);
  } finally {
    button.disabled = false;
  }
}

function addCollection(created, body, useSse) {
  const id = created.collection_id;
  const collection = {
    collection_id: id,
    repository_name: body.repository_name,
    sse_enabled: useSse,
    status: created.status,
    progress_percent: 0,
    scanners: {}, // name -> {scan_id, status, progress_percent, progress_text, error}
    ...streamRecord(),
    live_findings: [], // {fingerprint, severity, title, reported_by}, in the order they came
    summary: null,
    results: null,
    total: null,
    sarif_downloads: 0,
  };
  state.collections[id] = collection;
  const node = $("#collection-template").content.firstElementChild.cloneNode(true);
  node.dataset.collectionId = id;
  $(".repo", node).textContent = body.repository_name;
  const shortId = $(".short-id", node);
  shortId.textContent = id.slice(0, 8);
  shortId.title = id;
  $(".mode", node).textContent = useSse ? "SSE scanners" : "mock";
  $(".overall .bar", node).setAttribute("aria-label", `Progress of the collection on ${body.repository_name}`);
  $(".cancel", node).addEventListener("click", () => cancel(id));
  $(".sarif", node).addEventListener("click", () => downloadSarif(id));
  const rows = new Map();
  body.scanners.forEach((name, index) => {
    collection.scanners[name] = {
      scan_id: created.scan_ids[index], status: "pending", progress_percent: 0, progress_text: "", error: null,
    };
    const row = $("#scanner-row-template").content.firstElementChild.cloneNode(true);
    row.dataset.scanner = name;
    $(".name", row).textContent = SCANNER_LABELS[name] ?? name;
    $(".bar", row).setAttribute("aria-label", `Progress of ${name}`);
    $(".scanner-rows", node).append(row);
    rows.set(name, row);
  });
  $("#scans").prepend(node);
  $("#no-scans").hidden = true;
  live.set(id, { node, rows, source: null, timer: null, fingerprints: new Map() });
  render(collection);
}

function render(collection) {
  const { node, rows } = live.get(collection.collection_id);
  node.dataset.status = collection.status;
  showProgress($(".overall", node), collection.status, collection.progress_percent);
  $(".status", node).textContent = collection.status;
  $(".status", node).dataset.status = collection.status;
  for (const [name, scanner] of Object.entries(collection.scanners)) {
    const row = rows.get(name);
    row.dataset.status = scanner.status;
    showProgress(row, scanner.status, scanner.progress_percent);
    const text = $(".text", row);
    text.textContent = scanner.error || scanner.progress_text;
    text.classList.toggle("failed", Boolean(scanner.error));
  }
  $(".cancel", node).hidden = collection.terminal;
  $(".stream-info", node).textContent = streamInfo(collection);
}

function updateScanner(collection, scan) {
  const scanner = collection.scanners[scan.scanner_name];
  if (!scanner) return;
  scanner.status = scan.status;
  scanner.progress_percent = scan.progress_percent;
  scanner.progress_text = scan.progress_text ?? "";
  scanner.error = scan.error ?? null;
}

// An event, a reset snapshot (the collection's view) or a polled status.
function apply(collection, data) {
  if (collection.terminal) return;
  if (data.scan) updateScanner(collection, data.scan);
  for (const scan of data.scans ?? []) updateScanner(collection, scan);
  const whole = data.collection ?? data;
  collection.status = whole.status;
  collection.progress_percent = whole.progress_percent;
  if (Array.isArray(data.findings) && data.findings.length) arrived(collection, data.findings, data.scan);
  if (data.summary) collection.summary = data.summary;
  if (TERMINAL.has(collection.status)) finish(collection);
  render(collection);
}

// Findings new in an event: one live row per fingerprint, naming every scanner that reported it.
function arrived(collection, findings, scan) {
  const entry = live.get(collection.collection_id);
  const box = $(".live-findings", entry.node);
  let tbody = $("tbody", box);
  if (!tbody) {
    box.append(findingsTable(["Severity", "Finding", "Reported by"],
      `Findings so far in ${collection.repository_name}`, [], () => {}));
    tbody = $("tbody", box);
  }
  const by = scan ? scan.scanner_name : "?";
  for (const finding of findings) {
    const mark = finding.fingerprint ?? `${by}:${collection.live_findings.length}`;
    const known = entry.fingerprints.get(mark);
    if (known) {
      if (!known.record.reported_by.includes(by)) known.record.reported_by.push(by);
      known.cell.textContent = known.record.reported_by.join(", ");
      continue;
    }
    const record = { fingerprint: mark, severity: finding.severity, title: finding.title, reported_by: [by] };
    collection.live_findings.push(record);
    const row = document.createElement("tr");
    findingCells(row, finding);
    entry.fingerprints.set(mark, { record, cell: cell(row, by, "reported-by") });
    tbody.append(row);
  }
  $(".live-count", box).textContent = `${collection.live_findings.length} so far`;
  box.hidden = false;
}

function finish(collection) {
  collection.terminal = true;
  stopPolling(live.get(collection.collection_id));
  loadResults(collection); // served however it ended: a failed scan hides no finding
}

function watch(id, resumeFrom) {
  const collection = state.collections[id];
  const entry = live.get(id);
  const poll = (data) => {
    apply(collection, data);
    render(collection);
  };
  follow({
    record: collection,
    entry,
    ticketPath: `${COLLECTIONS}/${id}/stream-ticket`,
    apply: (data) => apply(collection, data),
    fallback: () => startPolling(collection, entry, `${COLLECTIONS}/${id}/status`, poll),
    render: () => render(collection),
  }, resumeFrom);
}

async function cancel(id) {
  const button = $(".cancel", live.get(id).node);
  button.disabled = true;
  await api("DELETE", `${COLLECTIONS}/${id}`); // the stream brings the cancelled events
  button.disabled = false;
}

async function loadResults(collection) {
  const read = await allPages(`${COLLECTIONS}/${collection.collection_id}/results`);
  if (!read) return;
  collection.results = read.items;
  collection.summary = read.first.summary;
  collection.total = read.first.total_findings ?? read.items.length;
  const { node } = live.get(collection.collection_id);
  const box = $(".results", node);
  const notes = [];
  if (read.items.length < collection.total) notes.push(`the first ${read.items.length} shown`);
  const failed = read.first.scans.filter((scan) => scan.status !== "completed").map((scan) => scan.scanner_name);
  if (failed.length) notes.push(`without ${failed.join(", ")}`);
  box.replaceChildren(summaryList(collection.total, collection.summary.by_severity, notes));
  if (read.items.length) {
    box.append(findingsTable(["Severity", "Finding", "Reported by"],
      `Merged findings in ${collection.repository_name}`, [...read.items].sort(bySeverity), (row, vuln) => {
        findingCells(row, vuln);
        cell(row, (vuln.reported_by ?? []).join(", "), "reported-by");
      }));
  }
  $(".live-findings", node).hidden = true; // the merged table replaces the live one
  $(".sarif", node).hidden = false;
  box.hidden = false;
}

// The SARIF report, fetched with the page's token, then saved as a file.
async function downloadSarif(id) {
  const button = $(".sarif", live.get(id).node);
  button.disabled = true;
  try {
    const blob = await download(`${COLLECTIONS}/${id}/results?format=sarif`, SARIF);
    if (!blob) return;
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = `xployt-collection-${id}.sarif`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    state.collections[id].sarif_downloads += 1;
  } finally {
    button.disabled = false;
  }
}

export function initCollections() {
  $("#collection-form").addEventListener("submit", startCollection);
}
