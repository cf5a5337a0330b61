// What the demo page's cards share: the page's state, error messages, API calls with the
// bearer token, findings tables, and following an event stream the way the README recommends.
//
// A stream is read with a native EventSource opened with a stream ticket. EventSource resumes by
// itself after a dropped connection (sending Last-Event-ID); after the terminal event the server
// ends the stream and answers the reconnect with 204, which stops EventSource for good. An
// expired ticket is replaced; if the stream cannot be opened at all, the card polls instead.
//
// For tests and curious readers, window.xployt holds what each card saw (plain data only).

export const API = "/api/v1";
export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
export const SEVERITIES = ["critical", "high", "medium", "low", "info", "unknown"];
export const MAX_SHOWN = 2000; // findings one card loads into its table at most
export const POLL_MS = 2000;
const MAX_RETICKETS = 3; // fresh tickets after a stream that worked failed for good
export const SCANNER_LABELS = {
  secret_scanner: "Secret scanner",
  sast_scanner: "SAST scanner",
  llm_scanner: "LLM scanner",
  dast_scanner: "DAST scanner",
};

export const state = {
  token: null, subject: null, expiresAt: null, scans: {}, collections: {}, errors: [],
};
window.xployt = state;

export const $ = (selector, root = document) => root.querySelector(selector);

// ---- errors and API calls ---------------------------------------------------------------------

export function showError(message) {
  state.errors.push(message);
  const area = $("#errors");
  const item = document.createElement("div");
  item.className = "error";
  item.setAttribute("role", "alert");
  const text = document.createElement("span");
  text.className = "error-message";
  text.textContent = message;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "dismiss";
  close.setAttribute("aria-label", "Dismiss this error");
  close.textContent = "×";
  close.addEventListener("click", () => {
    item.remove();
    area.hidden = area.children.length === 0;
  });
  item.append(text, close);
  area.append(item);
  while (area.children.length > 5) area.firstElementChild.remove();
  area.hidden = false;
}

function authorization() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

// The fetch, or null after showing why the gateway could not be reached.
async function send(method, path, init) {
  try {
    return await fetch(path, { method, ...init });
  } catch (error) {
    showError(`${method} ${path}: the gateway did not answer (${error.message})`);
    return null;
  }
}

async function envelopeOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// The error envelope's message (and `hint`, if given, for a 401 or 404), shown.
function refused(response, envelope, hint) {
  let message = envelope && envelope.message ? envelope.message : `${response.status} ${response.statusText}`;
  if (hint && (response.status === 401 || response.status === 404)) message += ` (${hint})`;
  showError(message);
}

// One call to the API with the bearer token: the envelope's data, or null after showing the
// error envelope's message.
export async function api(method, path, body, { auth = true, hint = null } = {}) {
  const headers = auth ? authorization() : {};
  const init = { headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await send(method, path, init);
  if (!response) return null;
  const envelope = await envelopeOf(response);
  if (!response.ok || !envelope || envelope.success !== true) {
    refused(response, envelope, hint);
    return null;
  }
  return envelope.data;
}

// A document that is not in the envelope (a SARIF log), fetched with the page's credentials:
// a Blob, or null after showing the error.
export async function download(path, accept) {
  const response = await send("GET", path, { headers: { ...authorization(), Accept: accept } });
  if (!response) return null;
  if (!response.ok) {
    refused(response, await envelopeOf(response), null);
    return null;
  }
  return response.blob();
}

// Every page of a results route (following next_cursor), up to MAX_SHOWN findings.
export async function allPages(path) {
  const first = await api("GET", path);
  if (!first) return null;
  let page = first;
  let items = first.vulnerabilities;
  while (page.next_cursor && page.vulnerabilities.length && items.length < MAX_SHOWN) {
    page = await api("GET", `${path}?cursor=${encodeURIComponent(page.next_cursor)}`);
    if (!page) break;
    items = items.concat(page.vulnerabilities);
  }
  return { first, items };
}

// ---- findings -----------------------------------------------------------------------------------

export function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  row.append(td);
  return td;
}

export function severityOf(vuln) {
  const value = typeof vuln.severity === "string" ? vuln.severity.toLowerCase() : "";
  return SEVERITIES.includes(value) ? value : "unknown";
}

export function chip(severity, text = severity) {
  const node = document.createElement("span");
  node.className = `chip sev-${severity}`;
  node.textContent = text;
  return node;
}

// file:line, then the finding's other lines: five named, the rest counted (as the CLI).
const MAX_ALSO = 5;
export function where(vuln) {
  if (!vuln.file_path) return "—";
  const line = Array.isArray(vuln.line) ? vuln.line[0] : vuln.line;
  if (line == null) return vuln.file_path;
  const others = Array.isArray(vuln.related_lines) ? vuln.related_lines : [];
  let also = others.slice(0, MAX_ALSO).join(", ");
  if (others.length > MAX_ALSO) also += ` and ${others.length - MAX_ALSO} more`;
  return `${vuln.file_path}:${line}` + (also ? ` (also ${also})` : "");
}

// The severity cell and the finding cell (its title, and file:line below it).
export function findingCells(row, vuln) {
  cell(row, "", "severity").append(chip(severityOf(vuln)));
  const finding = cell(row, "", "finding");
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = vuln.title || vuln.type || "Untitled finding";
  if (vuln.description) title.title = vuln.description;
  const place = document.createElement("code");
  place.className = "location";
  place.textContent = where(vuln);
  finding.append(title, place);
}

export function bySeverity(a, b) {
  return SEVERITIES.indexOf(severityOf(a)) - SEVERITIES.indexOf(severityOf(b));
}

// A findings table: a header of `columns`, a row per finding filled by `fill(row, finding)`.
export function findingsTable(columns, caption, findings, fill) {
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  table.className = "vulns";
  const title = document.createElement("caption");
  title.className = "visually-hidden";
  title.textContent = caption;
  const head = document.createElement("tr");
  for (const name of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.append(th);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  for (const finding of findings) {
    const row = document.createElement("tr");
    fill(row, finding);
    tbody.append(row);
  }
  table.append(title, thead, tbody);
  wrap.append(table);
  return wrap;
}

// ---- streams ------------------------------------------------------------------------------------

// What a card records of its stream (shown in window.xployt).
export function streamRecord() {
  return {
    ids: [], // every event id received, in order (duplicates would show here)
    resets: [], // ids of `reset` events
    last_event_id: 0,
    streams_opened: 0, // EventSource objects created (new tickets)
    connections: 0, // successful (re)connections
    auth_expired: 0,
    retickets: 0,
    closed: false, // the EventSource reached CLOSED for good
    polling: false,
    terminal: false,
  };
}

// Follow a stream: `target` has the `record` (a streamRecord), its live `entry` ({source, timer}),
// the `ticketPath`, `apply(data, kind)` for an event or a reset snapshot, `fallback()` when the
// stream fails for good, and `render()`.
export async function follow(target, resumeFrom) {
  const { record, entry } = target;
  const ticket = await api("POST", target.ticketPath);
  if (!ticket) {
    target.fallback();
    return;
  }
  let url = ticket.stream_url;
  if (resumeFrom) url += `&last_event_id=${encodeURIComponent(resumeFrom)}`;
  const source = new EventSource(url);
  entry.source = source;
  record.streams_opened += 1;
  record.closed = false;

  source.onopen = () => {
    record.connections += 1;
    target.render();
  };
  source.onmessage = (event) => {
    const id = Number(event.lastEventId);
    record.ids.push(id);
    if (id <= record.last_event_id) return; // never apply an event twice
    record.last_event_id = id;
    target.apply(JSON.parse(event.data), "message");
  };
  source.addEventListener("reset", (event) => {
    // The gateway could not resume from our id: take its snapshot and continue from there.
    const snapshot = JSON.parse(event.data);
    const id = Number(event.lastEventId || snapshot.last_event_id);
    record.resets.push(id);
    record.last_event_id = id;
    target.apply(snapshot, "reset");
  });
  source.addEventListener("auth_expired", (event) => {
    // The ticket ran out: a fresh one, resuming after the last id we hold.
    source.close();
    if (entry.source !== source) return;
    entry.source = null;
    record.auth_expired += 1;
    const data = JSON.parse(event.data);
    follow(target, record.last_event_id || data.last_event_id);
  });
  let opened = false;
  source.addEventListener("open", () => {
    opened = true;
  });
  source.onerror = () => {
    if (entry.source !== source) return; // an EventSource we already replaced
    if (source.readyState === EventSource.CLOSED) {
      // Stopped for good: the 204 after the end, or an error answer to a (re)connect.
      entry.source = null;
      if (!record.terminal && opened && record.retickets < MAX_RETICKETS) {
        // It worked before, so its ticket may have expired during a reconnect: a fresh one.
        record.retickets += 1;
        follow(target, record.last_event_id);
      } else {
        record.closed = true;
        if (!record.terminal) target.fallback();
      }
    }
    // Otherwise (CONNECTING) EventSource reconnects by itself with Last-Event-ID.
    target.render();
  };
}

// Poll `path` every POLL_MS until the record is terminal, handing each answer to `take`.
export function startPolling(record, entry, path, take) {
  if (record.terminal || entry.timer !== null) return;
  record.polling = true;
  const poll = async () => {
    const data = await api("GET", path);
    if (data) take(data);
  };
  entry.timer = setInterval(poll, POLL_MS);
  poll();
}

export function stopPolling(entry) {
  if (entry.timer !== null) clearInterval(entry.timer);
  entry.timer = null;
}

// "3 events · last id 3 · 1 reconnect · live"
export function streamInfo(record) {
  const parts = [`${record.ids.length} event${record.ids.length === 1 ? "" : "s"}`];
  if (record.last_event_id) parts.push(`last id ${record.last_event_id}`);
  if (record.connections > 1) parts.push(`${record.connections - 1} reconnect${record.connections === 2 ? "" : "s"}`);
  if (record.polling) parts.push("polling");
  else if (record.closed) parts.push("stream closed");
  else if (record.connections) parts.push("live");
  return parts.join(" · ");
}

// The progress bar, its percent and (if it has one) the status badge of a card or a row.
export function showProgress(node, status, percent) {
  const badge = $(".status", node);
  if (badge) {
    badge.textContent = status;
    badge.dataset.status = status;
  }
  const bar = $(".bar", node);
  bar.value = percent;
  bar.dataset.status = status;
  $(".percent", node).textContent = `${percent}%`;
}

// The summary chips: the total, notes, and one chip per severity.
export function summaryList(total, counts, notes) {
  const summary = document.createElement("ul");
  summary.className = "summary";
  summary.setAttribute("aria-label", "Findings by severity");
  const head = document.createElement("li");
  head.className = "total";
  head.textContent = `${total} finding${total === 1 ? "" : "s"}`;
  summary.append(head);
  if (notes.length) {
    const note = document.createElement("li");
    note.className = "note";
    note.textContent = `(${notes.join("; ")})`;
    summary.append(note);
  }
  for (const severity of SEVERITIES) {
    const count = counts[severity] ?? 0;
    if (!count && (severity === "unknown" || severity === "info")) continue;
    const item = document.createElement("li");
    item.className = `chip sev-${severity}${count ? "" : " zero"}`;
    item.dataset.severity = severity;
    item.textContent = `${count} ${severity}`;
    summary.append(item);
  }
  return summary;
}
