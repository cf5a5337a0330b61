// The Xployt gateway demo page: plain JavaScript, no build step, no dependencies.
//
// Each scan is watched with a native EventSource opened with a stream ticket. EventSource
// resumes by itself after a dropped connection (sending Last-Event-ID); after the terminal event
// the server ends the stream and answers the reconnect with 204, which stops EventSource for
// good. If the stream fails for good before the end, the page polls the scan instead.
//
// For tests and curious readers, window.xployt.scans[<scan_id>] records what each card saw.
"use strict";

(() => {
  const API = "/api/v1";
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const SEVERITIES = ["critical", "high", "medium", "low", "info", "unknown"];
  const MAX_SHOWN = 2000; // findings one card loads into its table at most
  const POLL_MS = 2000;
  const MAX_RETICKETS = 3; // fresh tickets after a stream that worked failed for good
  const SCANNER_LABELS = {
    secret_scanner: "Secret scanner",
    sast_scanner: "SAST scanner",
    llm_scanner: "LLM scanner",
    dast_scanner: "DAST scanner",
  };

  const state = { token: null, subject: null, expiresAt: null, scans: {}, errors: [] };
  window.xployt = state;
  // Live objects (EventSource, timers, DOM nodes) stay out of window.xployt, which stays plain data.
  const live = new Map();

  const $ = (selector, root = document) => root.querySelector(selector);

  // ---- errors -------------------------------------------------------------------------------

  function showError(message) {
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

  // One call to the API with the bearer token: the envelope's data, or null after showing the
  // error envelope's message (and `hint`, if given, for a 401 or 404).
  async function api(method, path, body, { auth = true, hint = null } = {}) {
    const headers = {};
    if (auth && state.token) headers.Authorization = `Bearer ${state.token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      showError(`${method} ${path}: the gateway did not answer (${error.message})`);
      return null;
    }
    let envelope = null;
    try {
      envelope = await response.json();
    } catch {
      envelope = null;
    }
    if (!response.ok || !envelope || envelope.success !== true) {
      let message = envelope && envelope.message ? envelope.message : `${response.status} ${response.statusText}`;
      if (hint && (response.status === 401 || response.status === 404)) message += ` (${hint})`;
      showError(message);
      return null;
    }
    return envelope.data;
  }

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
    const badge = $(".status", node);
    badge.textContent = scan.status;
    badge.dataset.status = scan.status;
    const bar = $(".bar", node);
    bar.value = scan.progress_percent;
    bar.dataset.status = scan.status;
    $(".percent", node).textContent = `${scan.progress_percent}%`;
    $(".progress-text", node).textContent = scan.progress_text;
    const error = $(".error-text", node);
    error.hidden = !scan.error;
    error.textContent = scan.error ?? "";
    $(".cancel", node).hidden = scan.terminal;
    const parts = [`${scan.ids.length} event${scan.ids.length === 1 ? "" : "s"}`];
    if (scan.last_event_id) parts.push(`last id ${scan.last_event_id}`);
    if (scan.connections > 1) parts.push(`${scan.connections - 1} reconnect${scan.connections === 2 ? "" : "s"}`);
    if (scan.polling) parts.push("polling");
    else if (scan.closed) parts.push("stream closed");
    else if (scan.connections) parts.push("live");
    $(".stream-info", node).textContent = parts.join(" · ");
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
    stopPolling(scan);
    if (scan.status === "completed") loadResults(scan);
    if (scan.status === "cancelled" && !scan.error) scan.error = "Scan cancelled.";
  }

  // ---- the stream ---------------------------------------------------------------------------

  async function watch(scanId, resumeFrom) {
    const scan = state.scans[scanId];
    const entry = live.get(scanId);
    const ticket = await api("POST", `${API}/scans/${scanId}/stream-ticket`);
    if (!ticket) {
      startPolling(scan);
      return;
    }
    let url = ticket.stream_url;
    if (resumeFrom) url += `&last_event_id=${encodeURIComponent(resumeFrom)}`;
    const source = new EventSource(url);
    entry.source = source;
    scan.streams_opened += 1;
    scan.closed = false;

    source.onopen = () => {
      scan.connections += 1;
      render(scan);
    };
    source.onmessage = (event) => {
      const id = Number(event.lastEventId);
      scan.ids.push(id);
      if (id <= scan.last_event_id) return; // never apply an event twice
      scan.last_event_id = id;
      apply(scan, JSON.parse(event.data));
    };
    source.addEventListener("reset", (event) => {
      // The gateway could not resume from our id: take its snapshot and continue from there.
      const snapshot = JSON.parse(event.data);
      const id = Number(event.lastEventId || snapshot.last_event_id);
      scan.resets.push(id);
      scan.last_event_id = id;
      apply(scan, snapshot);
    });
    source.addEventListener("auth_expired", (event) => {
      // The ticket ran out: a fresh one, resuming after the last id we hold.
      source.close();
      if (entry.source !== source) return;
      entry.source = null;
      scan.auth_expired += 1;
      const data = JSON.parse(event.data);
      watch(scanId, scan.last_event_id || data.last_event_id);
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
        if (!scan.terminal && opened && scan.retickets < MAX_RETICKETS) {
          // It worked before, so its ticket may have expired during a reconnect: a fresh one.
          scan.retickets += 1;
          watch(scanId, scan.last_event_id);
        } else {
          scan.closed = true;
          if (!scan.terminal) startPolling(scan);
        }
      }
      // Otherwise (CONNECTING) EventSource reconnects by itself with Last-Event-ID.
      render(scan);
    };
  }

  function startPolling(scan) {
    const entry = live.get(scan.scan_id);
    if (scan.terminal || entry.timer !== null) return;
    scan.polling = true;
    const poll = async () => {
      const data = await api("GET", `${API}/scans/${scan.scan_id}`);
      if (data) {
        apply(scan, data);
        scan.last_event_id = Math.max(scan.last_event_id, data.last_event_id ?? 0);
        render(scan);
      }
    };
    entry.timer = setInterval(poll, POLL_MS);
    poll();
  }

  function stopPolling(scan) {
    const entry = live.get(scan.scan_id);
    if (entry.timer !== null) clearInterval(entry.timer);
    entry.timer = null;
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
    const path = `${API}/scans/${scan.scan_id}/results`;
    const first = await api("GET", path);
    if (!first) return;
    // The findings come a page at a time: follow next_cursor, up to MAX_SHOWN of them.
    let page = first;
    let results = first.vulnerabilities;
    while (page.next_cursor && page.vulnerabilities.length && results.length < MAX_SHOWN) {
      page = await api("GET", `${path}?cursor=${encodeURIComponent(page.next_cursor)}`);
      if (!page) break;
      results = results.concat(page.vulnerabilities);
    }
    scan.results = results;
    scan.summary = first.summary;
    scan.total = first.total_findings ?? results.length;
    scan.dropped = first.findings_dropped ?? 0;
    renderResults(scan);
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    row.append(td);
    return td;
  }

  function where(vuln) {
    if (!vuln.file_path) return "—";
    return vuln.line != null ? `${vuln.file_path}:${vuln.line}` : vuln.file_path;
  }

  function renderResults(scan) {
    const box = $(".results", live.get(scan.scan_id).node);
    box.replaceChildren();
    const summary = document.createElement("ul");
    summary.className = "summary";
    summary.setAttribute("aria-label", "Findings by severity");
    const total = scan.total;
    const head = document.createElement("li");
    head.className = "total";
    head.textContent = `${total} finding${total === 1 ? "" : "s"}`;
    summary.append(head);
    // Said, not hidden: findings the table leaves out, and those the gateway dropped.
    const notes = [];
    if (scan.results.length < total) notes.push(`the first ${scan.results.length} shown`);
    if (scan.dropped) notes.push(`${scan.dropped} more dropped by the gateway's limits`);
    if (notes.length) {
      const note = document.createElement("li");
      note.className = "note";
      note.textContent = `(${notes.join("; ")})`;
      summary.append(note);
    }
    for (const severity of SEVERITIES) {
      const count = scan.summary[severity] ?? 0;
      if (!count && (severity === "unknown" || severity === "info")) continue;
      const item = document.createElement("li");
      item.className = `chip sev-${severity}${count ? "" : " zero"}`;
      item.dataset.severity = severity;
      item.textContent = `${count} ${severity}`;
      summary.append(item);
    }
    box.append(summary);
    if (scan.results.length) {
      const wrap = document.createElement("div");
      wrap.className = "table-wrap";
      const table = document.createElement("table");
      table.className = "vulns";
      const caption = document.createElement("caption");
      caption.className = "visually-hidden";
      caption.textContent = `Vulnerabilities found in ${scan.repository_name}`;
      const thead = document.createElement("thead");
      thead.innerHTML = "<tr><th scope=col>Severity</th><th scope=col>Finding</th><th scope=col>CWE</th></tr>";
      const tbody = document.createElement("tbody");
      const order = (v) => SEVERITIES.indexOf(v.severity) === -1 ? SEVERITIES.length : SEVERITIES.indexOf(v.severity);
      for (const vuln of [...scan.results].sort((a, b) => order(a) - order(b))) {
        const row = document.createElement("tr");
        const severity = SEVERITIES.includes(vuln.severity) ? vuln.severity : "unknown";
        const chip = document.createElement("span");
        chip.className = `chip sev-${severity}`;
        chip.textContent = severity;
        cell(row, "", "severity").append(chip);
        // The title, and where it is (file:line) on a line of its own below.
        const finding = cell(row, "", "finding");
        const title = document.createElement("span");
        title.className = "title";
        title.textContent = vuln.title || vuln.type || "Untitled finding";
        if (vuln.description) title.title = vuln.description;
        const place = document.createElement("code");
        place.className = "location";
        place.textContent = where(vuln);
        finding.append(title, place);
        cell(row, vuln.cwe ?? "—", "cwe");
        tbody.append(row);
      }
      table.append(caption, thead, tbody);
      wrap.append(table);
      box.append(wrap);
    }
    box.hidden = false;
  }

  // ---- wiring -------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("#dev-token-form").addEventListener("submit", getDevToken);
    $("#paste-token-form").addEventListener("submit", useToken);
    $("#scan-form").addEventListener("submit", startScan);
    document.body.dataset.ready = "true";
  });
})();
