// The stream explorer page: no build step, one vendored chart library (uPlot).
// State lives in the URL (?stream=&at=&window=&incident=&feature=, or from=&to= from Grafana's
// data link) so alert and dashboard links land here.
// #chart's data-* attributes say what was drawn (tests and people read them).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const WINDOWS = { "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };
  const BAND_FILL = "rgba(46, 125, 50, 0.25)";
  const ANOMALY = "#d50000";
  const INCIDENT_FILL = "rgba(255, 145, 0, 0.18)";
  const params = new URLSearchParams(location.search);
  const state = {
    stream: params.get("stream") || "",
    at: params.get("at"),
    window: WINDOWS[params.get("window")] ? params.get("window") : "6h",
    from: params.get("from"), to: params.get("to"),
    incident: params.get("incident"),
    feature: params.get("feature"),
    series: null, incidents: [], plots: [], drawn: 0,
  };

  function iso(ts) { return ts == null ? "-" : new Date(ts * 1000).toISOString().replace(".000Z", "Z"); }
  function surprise(s) { return s == null ? null : Math.min(12, -Math.log10(Math.max(1e-12, 1 - s))); }
  function setChart(attrs) { for (const [k, v] of Object.entries(attrs)) $("chart").dataset[k] = String(v); }
  function note(text) { $("note").textContent = text || ""; }

  async function getJSON(url, init) {
    const resp = await fetch(url, init);
    let body = null;
    try { body = await resp.json(); } catch (e) { body = { message: "not JSON (HTTP " + resp.status + ")" }; }
    if (!resp.ok) { const err = new Error(body.message || ("HTTP " + resp.status)); err.status = resp.status; throw err; }
    return body;
  }

  function syncUrl() {
    const p = new URLSearchParams();
    if (state.stream) p.set("stream", state.stream);
    if (state.at) p.set("at", state.at);
    if (state.from && state.to) { p.set("from", state.from); p.set("to", state.to); } else p.set("window", state.window);
    if (state.incident) p.set("incident", state.incident);
    if (state.feature) p.set("feature", state.feature);
    history.replaceState(null, "", "?" + p.toString());
    for (const b of document.querySelectorAll("#windows button")) {
      b.setAttribute("aria-pressed", String(!state.from && b.dataset.window === state.window));
    }
  }

  function rangeParams() {
    const p = new URLSearchParams({ stream: state.stream });
    if (state.from && state.to) { p.set("from", state.from); p.set("to", state.to); return p; }
    p.set("window", state.window);
    if (state.at) p.set("at", state.at);
    return p;
  }

  async function load() {
    syncUrl();
    if (!state.stream) { setChart({ state: "idle" }); return; }
    $("stream-input").value = state.stream;
    $("stream-name").textContent = state.stream;
    setChart({ state: "loading", window: state.from ? "range" : state.window });
    note("");
    const t0 = performance.now();
    try {
      const p = rangeParams();
      const [series, inc] = await Promise.all([
        getJSON("/explore/api/series?" + p), getJSON("/explore/api/incidents?" + p)]);
      state.fetched = performance.now();
      setChart({ fetchMs: Math.round(state.fetched - t0) });
      state.series = series;
      state.incidents = inc.incidents;
      render();
      renderIncidents();
      if (state.incident) openIncident(state.incident);
    } catch (e) {
      setChart({ state: "error" });
      note("Could not load: " + e.message);
    }
  }

  function featureNames(s) { return Object.keys(s.features).sort(); }

  function render() {
    const s = state.series;
    for (const p of state.plots) p.destroy();
    state.plots = [];
    const names = featureNames(s);
    const sel = $("feature");
    sel.replaceChildren(...names.map((n) => new Option(n, n)));
    $("feature-label").hidden = names.length < 2;
    if (!names.includes(state.feature)) state.feature = names.length > 1 ? names[0] : null;
    if (state.feature) sel.value = state.feature;
    const cols = s.features[state.feature || names[0]] || { value: [], low: [], high: [] };
    const n = s.ts.length;
    const anomalies = new Array(n);
    let anomalyCount = 0, bandPoints = 0;
    for (let i = 0; i < n; i++) {
      anomalies[i] = s.anomaly[i] ? cols.value[i] : null;
      if (s.anomaly[i]) anomalyCount++;
      if (cols.low[i] != null && cols.high[i] != null) bandPoints++;
    }
    $("range").textContent = iso(s.from) + " .. " + iso(s.to);
    const det = s.detector;
    $("detector").textContent = det ? det.detector + (det.version != null ? " v" + det.version : "") +
      (s.detectors.length > 1 ? " (" + s.detectors.length + " detectors in this window)" : "") : "-";
    const last = s.threshold.length ? s.threshold[s.threshold.length - 1] : null;
    $("threshold").textContent = last == null ? "-" : String(last);
    $("counts").textContent = s.matched + " points, " + anomalyCount + " anomalous" +
      (s.capped ? " (thinned: every " + s.stride + "th point shown)" : "");
    note(s.note);
    const width = Math.max(600, document.body.clientWidth - 40);
    const x = s.ts;
    const incidentHook = (u) => {
      const ctx = u.ctx;
      ctx.save();
      ctx.fillStyle = INCIDENT_FILL;
      for (const inc of state.incidents) {
        const a = u.valToPos(Math.max(inc.opened_at, s.from), "x", true);
        const b = u.valToPos(Math.min(inc.resolved_at == null ? s.to : inc.resolved_at, s.to), "x", true);
        ctx.fillRect(a, u.bbox.top, Math.max(2, b - a), u.bbox.height);
      }
      ctx.restore();
    };
    // "ready" once the canvas is drawn (uPlot draws after the constructor returns)
    const drawnHook = () => {
      state.drawn++;
      setChart({ drawn: state.drawn, state: s.empty ? "empty" : "ready",
                 renderMs: Math.round(performance.now() - state.fetched) });
    };
    const scale = { x: { time: true, range: [s.from, s.to] } };
    const values = new uPlot({
      width, height: 300, scales: scale, cursor: { sync: { key: "explore" } },
      series: [
        {},
        { label: state.feature || "value", stroke: "#1565c0", width: 1, points: { show: false } },
        { label: "expected low", stroke: "rgba(46,125,50,0.6)", width: 1, points: { show: false } },
        { label: "expected high", stroke: "rgba(46,125,50,0.6)", width: 1, points: { show: false } },
        { label: "anomaly", stroke: ANOMALY, fill: ANOMALY, width: 0, paths: () => null,
          points: { show: true, size: 9, width: 0, fill: ANOMALY, stroke: ANOMALY } },
      ],
      bands: [{ series: [3, 2], fill: BAND_FILL }],
      hooks: { drawClear: [incidentHook], draw: [drawnHook] },
    }, [x, cols.value, cols.low, cols.high, anomalies], $("values-chart"));
    const scores = new uPlot({
      width, height: 160, scales: scale, cursor: { sync: { key: "explore" } },
      series: [
        {},
        { label: "score", stroke: "#6a1b9a", width: 1, points: { show: false } },
        { label: "threshold", stroke: "#c62828", width: 1, dash: [6, 4], points: { show: false } },
      ],
    }, [x, s.score.map(surprise), s.threshold.map(surprise)], $("scores-chart"));
    state.plots = [values, scores];
    setChart({ points: n, anomalies: anomalyCount, bandPoints,
               incidents: state.incidents.length, capped: s.capped, detector: det ? det.detector : "" });
  }

  function renderIncidents() {
    const list = $("incident-list");
    list.replaceChildren();
    if (!state.incidents.length) { list.append(Object.assign(document.createElement("li"), { textContent: "none in this window" })); }
    for (const inc of state.incidents) {
      const li = document.createElement("li");
      li.dataset.incidentId = inc.incident_id;
      li.dataset.feedback = String(inc.feedback.length);
      const open = Object.assign(document.createElement("button"), { type: "button", textContent: "open" });
      open.addEventListener("click", () => { state.incident = inc.incident_id; syncUrl(); openIncident(inc.incident_id); });
      const fb = inc.feedback.map((f) => f.feedback).join(", ");
      li.append(open, document.createTextNode(
        `${inc.incident_id} · ${inc.severity || "?"} · opened ${iso(inc.opened_at)} · ` +
        (inc.resolved_at == null ? "open" : "resolved " + iso(inc.resolved_at)) +
        (inc.suppressed ? " · suppressed (" + inc.suppressed + ")" : "") + (fb ? " · feedback: " + fb : "")));
      list.append(li);
    }
  }

  function openIncident(id) {
    const inc = state.incidents.find((i) => i.incident_id === id);
    const detail = $("incident-detail");
    if (!inc) { note("incident " + id + " is not in this window: choose a wider one"); detail.hidden = true; return; }
    detail.hidden = false;
    detail.dataset.incidentId = id;
    detail.dataset.feedback = String(inc.feedback.length);
    $("detail-id").textContent = id;
    $("detail-summary").textContent = `${inc.detector} · severity ${inc.severity} · peak score ${inc.peak_score}` +
      ` · threshold ${inc.threshold}` + (inc.acknowledged ? " · acknowledged" : "");
    const body = $("detail-transitions").tBodies[0];
    body.replaceChildren(...inc.transitions.map((t) => {
      const tr = document.createElement("tr");
      const extra = Object.entries(t).filter(([k]) => k !== "ts" && k !== "action")
        .map(([k, v]) => k + "=" + JSON.stringify(v)).join(" ");
      for (const text of [iso(t.ts), t.action, extra]) tr.append(Object.assign(document.createElement("td"), { textContent: text }));
      return tr;
    }));
    $("detail-feedback").replaceChildren(...(inc.feedback.length ? inc.feedback : [null]).map((f) =>
      Object.assign(document.createElement("li"), { textContent: f ? `${f.feedback} by ${f.by || "?"} at ${iso(f.ts)}` +
        (f.comment ? ": " + f.comment : "") : "none yet" })));
  }

  async function sendFeedback(ev) {
    ev.preventDefault();
    const id = $("incident-detail").dataset.incidentId;
    const before = (state.incidents.find((i) => i.incident_id === id) || { feedback: [] }).feedback.length;
    const headers = { "Content-Type": "application/json" };
    const token = $("feedback-token").value;
    if (token) headers.Authorization = "Bearer " + token;
    const status = $("feedback-status");
    status.dataset.state = "sending";
    try {
      await getJSON("/explore/api/feedback", { method: "POST", headers, body: JSON.stringify({
        incident_id: id, stream: state.stream, kind: $("feedback-kind").value,
        by: $("feedback-by").value, comment: $("feedback-comment").value }) });
    } catch (e) {
      if (e.status === 401) $("feedback-token").hidden = false;
      status.dataset.state = "error";
      status.textContent = "Not sent: " + e.message;
      return;
    }
    status.textContent = "Sent; waiting for the worker to record it…";
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {  // the audit record appears once the owning worker applied it
      await new Promise((r) => setTimeout(r, 1000));
      try { state.incidents = (await getJSON("/explore/api/incidents?" + rangeParams())).incidents; } catch (e) { continue; }
      const inc = state.incidents.find((i) => i.incident_id === id);
      if (inc && inc.feedback.length > before) {
        renderIncidents();
        openIncident(id);
        status.dataset.state = "recorded";
        status.textContent = "Recorded by the worker.";
        return;
      }
    }
    status.dataset.state = "timeout";
    status.textContent = "Sent, but no worker recorded it within 60 s: is a worker running?";
  }

  async function search(ev) {
    ev.preventDefault();
    const text = $("stream-input").value.trim();
    if (!text) return;
    const list = $("matches");
    list.replaceChildren();
    let found = [];
    try { found = (await getJSON("/explore/api/streams?" + new URLSearchParams({ prefix: text }))).streams; } catch (e) { note(e.message); }
    if (found.some((s) => s.stream === text) || !found.length) { pick(text); return; }
    for (const s of found) {
      const li = Object.assign(document.createElement("li"), { textContent: `${s.stream} (last ${iso(s.last_ts)})` });
      li.addEventListener("click", () => { list.replaceChildren(); pick(s.stream); });
      list.append(li);
    }
  }

  function pick(stream) {
    Object.assign(state, { stream, at: null, from: null, to: null, incident: null, feature: null });
    load();
  }

  $("search").addEventListener("submit", search);
  $("feedback-form").addEventListener("submit", sendFeedback);
  $("feature").addEventListener("change", () => { state.feature = $("feature").value; syncUrl(); render(); });
  for (const b of document.querySelectorAll("#windows button")) {
    b.addEventListener("click", () => {
      if (state.from && state.to) {  // from a from..to link: keep its centre
        state.at = String(Math.round((Number(state.from) + Number(state.to)) / 2));
        state.from = state.to = null;
      }
      state.window = b.dataset.window;
      load();
    });
  }
  window.pynomalyExplore = { state, load };
  load();
})();
