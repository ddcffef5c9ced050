// The rdask dashboard's script: follows the scheduler's live update stream
// (Server-sent events from /api/v1/dashboard/live) and draws the status,
// workers and events pages with plain canvas and HTML. The same drawing
// renders a standalone performance report when the page defines
// window.RDASK_REPORT (Client::performance_report). docs/dashboard.md.
"use strict";
(function () {
  // The task stream shows at most this much recent time, µs, and at least
  // MIN_WINDOW_US (less while the page has seen only a short run).
  const WINDOW_US = 120e6;
  const MIN_WINDOW_US = 10e6;
  // Most task-stream records kept in the page (oldest dropped first).
  const MAX_RECORDS = 20000;
  // Most event-log lines kept in the page.
  const MAX_EVENTS = 1000;
  const LANE_PX = 14;
  // Most workers the status page's per-worker bars show (those with the
  // most); the workers page lists them all.
  const MAX_WORKER_BARS = 50;
  // How often the events page asks for the workers' log lines, ms.
  const LOGS_INTERVAL_MS = 2000;
  // How often the graph page asks for the task graph, ms.
  const GRAPH_INTERVAL_MS = 2000;
  // The graph's colours by task state (the progress bars' colours).
  const STATE_COLOURS = {
    released: "#fff", waiting: "#ccc", "no-worker": "#e83", queued: "#aaa",
    processing: "#8c8", memory: "#4a4", erred: "#d33",
  };
  // Kinds of bars that are not a function's run, with their colours.
  const SPECIAL = { transfer: "#d22", spill: "#e80", unspill: "#93c" };

  const records = [];
  let events = [];
  let latest = null;
  let sortKey = "name";
  let sortUp = true;
  const token = new URLSearchParams(location.search).get("token");

  function withToken(url) {
    if (!token) return url;
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function pageName() {
    const p = location.pathname.replace(/\/+$/, "").split("/").pop();
    return ["status", "workers", "graph", "events"].indexOf(p) >= 0 ? p : "status";
  }

  // A stable colour per function name; transfers red, spills orange,
  // reads of spilled data purple.
  function colour(name) {
    if (SPECIAL[name]) return SPECIAL[name];
    // FNV-1a, then hues spread by the golden angle.
    let h = 2166136261;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
    return "hsl(" + Math.round((h % 64) * 137.508) % 360 + ", 60%, " + (40 + (h >>> 8) % 3 * 8) + "%)";
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  // Lanes: one per worker thread, ordered by worker name then thread.
  function lanesOf(recs, workers) {
    const set = new Map();
    for (const w of workers || []) {
      for (let t = 0; t < w.nthreads; t++) set.set(w.name + "\u0000" + t, [w.name, t]);
    }
    for (const r of recs) set.set(r.worker + "\u0000" + r.thread, [r.worker, r.thread]);
    const lanes = Array.from(set.values());
    lanes.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
    const index = new Map();
    lanes.forEach((l, i) => index.set(l[0] + "\u0000" + l[1], i));
    return { lanes, index };
  }

  // Draws the task stream between t0 and t1 (µs); returns the bars drawn.
  // The axis counts seconds back from t1 ("now"), or with fromStart
  // seconds on from t0 (a report).
  function drawStream(canvas, recs, workers, t0, t1, fromStart) {
    const { lanes, index } = lanesOf(recs, workers);
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 1200;
    const cssH = Math.max(60, lanes.length * LANE_PX + 24);
    canvas.style.height = cssH + "px";
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const labelW = 110;
    const plotW = cssW - labelW - 4;
    const span = Math.max(1, t1 - t0);
    ctx.font = "10px sans-serif";
    ctx.fillStyle = "#666";
    lanes.forEach((l, i) => ctx.fillText(l[0].slice(0, 14) + " #" + l[1], 2, i * LANE_PX + 11));
    let n = 0;
    const kinds = { compute: 0, transfer: 0, spill: 0, unspill: 0 };
    for (const r of recs) {
      if (r.stop_us < t0 || r.start_us > t1) continue;
      const lane = index.get(r.worker + "\u0000" + r.thread);
      const x0 = labelW + ((Math.max(r.start_us, t0) - t0) / span) * plotW;
      const x1 = labelW + ((Math.min(r.stop_us, t1) - t0) / span) * plotW;
      ctx.fillStyle = colour(barName(r));
      // Transfers are thin bars at the top of the lane, spills and reads
      // of spilled data thin bars at its bottom, runs the whole lane.
      const h = r.kind === "compute" ? LANE_PX - 3 : 4;
      const top = r.kind === "spill" || r.kind === "unspill" ? LANE_PX - 6 : 1;
      ctx.fillRect(x0, lane * LANE_PX + top, Math.max(1, x1 - x0), h);
      kinds[r.kind] = (kinds[r.kind] || 0) + 1;
      n++;
    }
    // The time axis: seconds before t1.
    ctx.fillStyle = "#888";
    const y = lanes.length * LANE_PX + 16;
    const digits = span < 1e6 ? 3 : span <= 20e6 ? 1 : 0;
    for (let k = 0; k <= 4; k++) {
      const x = labelW + (k / 4) * plotW;
      const s = (span * (fromStart ? k / 4 : 1 - k / 4)) / 1e6;
      const text = fromStart ? "+" + s.toFixed(digits) + " s" : k === 4 ? "now" : "-" + s.toFixed(digits) + " s";
      ctx.fillText(text, Math.min(x, cssW - 36), y);
    }
    canvas.dataset.bars = String(n);
    for (const k in kinds) canvas.dataset[k + "Bars"] = String(kinds[k]);
    canvas.dataset.lanes = String(lanes.length);
    return n;
  }

  // What a bar is named by in the legend: its function, or its kind.
  function barName(r) {
    return r.kind === "compute" ? r.function : r.kind;
  }

  function drawLegend(div, recs) {
    const names = Array.from(new Set(recs.map(barName))).sort();
    div.replaceChildren(...names.map((n) => {
      const s = el("span");
      const i = el("i");
      i.style.background = colour(n);
      s.append(i, document.createTextNode(n));
      return s;
    }));
  }

  function segment(cls, part, total) {
    const s = el("span", { class: cls });
    s.style.width = (total > 0 ? (100 * part) / total : 0) + "%";
    return s;
  }

  function renderProgress(div, progress) {
    div.replaceChildren(...progress.map((p) => {
      const waiting = p.released + p.waiting + p.no_worker + p.queued;
      const total = waiting + p.processing + p.memory + p.erred;
      const row = el("div", {
        class: "row progress-row", "data-function": p.function,
        "data-memory": p.memory, "data-erred": p.erred, "data-total": total,
      });
      const bar = el("div", { class: "bar" });
      bar.append(segment("s-memory", p.memory, total), segment("s-processing", p.processing, total),
        segment("s-waiting", waiting, total), segment("s-erred", p.erred, total));
      const fig = p.memory + " / " + total + (p.erred ? " (" + p.erred + " erred)" : "");
      row.append(el("span", { class: "label" }, p.function), bar, el("span", { class: "figure" }, fig));
      return row;
    }));
    if (progress.length === 0) div.replaceChildren(el("p", {}, "no tasks"));
  }

  // The MAX_WORKER_BARS workers with the largest value, and a line for
  // the others.
  function topWorkers(div, workers, value) {
    const shown = workers.length <= MAX_WORKER_BARS ? workers
      : workers.slice().sort((a, b) => value(b) - value(a)).slice(0, MAX_WORKER_BARS);
    const more = workers.length - shown.length;
    return [shown, more > 0 ? [el("p", { class: "more" }, more + " more workers: see the workers page")] : []];
  }

  // Memory per worker: results managed in memory, the rest of its process
  // memory (unmanaged), and results spilled to disk, against its limit.
  // A heartbeat's nbytes counts every result held, spilled ones too.
  function memoryOf(w) {
    const managed = Math.max(0, w.nbytes - w.spilled_bytes);
    const unmanaged = Math.max(0, w.rss_bytes - managed);
    return { managed, unmanaged, spilled: w.spilled_bytes, total: managed + unmanaged + w.spilled_bytes };
  }

  function renderMemory(div, workers) {
    const widest = Math.max(1, ...workers.map((w) => Math.max(w.memory_limit, memoryOf(w).total)));
    const [shown, more] = topWorkers(div, workers, (w) => memoryOf(w).total);
    div.replaceChildren(...shown.map((w) => {
      const m = memoryOf(w);
      const scale = w.memory_limit ? Math.max(w.memory_limit, m.total) : widest;
      const row = el("div", {
        class: "row memory-row", "data-worker": w.name, "data-managed": m.managed,
        "data-unmanaged": m.unmanaged, "data-spilled": m.spilled,
      });
      const bar = el("div", { class: "bar" });
      const over = w.memory_limit > 0 && m.managed + m.unmanaged > w.memory_limit;
      bar.append(segment(over ? "s-over" : "s-used", m.managed, scale), segment("s-unmanaged", m.unmanaged, scale),
        segment("s-spilled", m.spilled, scale));
      if (w.memory_limit) {
        const mark = el("i", { class: "limit" });
        mark.style.left = (100 * w.memory_limit / scale) + "%";
        bar.append(mark);
      }
      bar.title = "managed " + bytes(m.managed) + ", unmanaged " + bytes(m.unmanaged) + ", spilled " + bytes(m.spilled) +
        (w.memory_limit ? ", limit " + bytes(w.memory_limit) : ", no limit");
      const fig = el("span", { class: "figure" }, bytes(m.managed + m.unmanaged) +
        (w.memory_limit ? " / " + bytes(w.memory_limit) : ""));
      if (m.spilled) fig.append(el("small", {}, "+ " + bytes(m.spilled) + " on disk"));
      row.append(el("span", { class: "label" }, w.name), bar, fig);
      return row;
    }), ...more);
  }

  function renderPerWorker(div, workers, value, limit, figure, cls) {
    const [shown, more] = topWorkers(div, workers, value);
    div.replaceChildren(...shown.map((w) => {
      const row = el("div", { class: "row", "data-worker": w.name, "data-value": value(w) });
      const bar = el("div", { class: "bar" });
      const max = limit(w);
      bar.append(segment(max > 0 && value(w) > max ? "s-over" : cls, Math.min(value(w), max), max));
      row.append(el("span", { class: "label" }, w.name), bar, el("span", { class: "figure" }, figure(w)));
      return row;
    }), ...more);
  }

  function renderScheduler(table, s) {
    const rows = [
      ["workers", s.workers.length],
      ["threads", s.workers.reduce((a, w) => a + w.nthreads, 0)],
      ["clients", s.nclients],
      ["tasks finished", s.tasks_finished],
      ["tasks by state", Object.entries(s.tasks_by_state).filter((e) => e[1] > 0).map((e) => e[0] + " " + e[1]).join(", ") || "none"],
      ["CPU", s.cpu_percent == null ? "…" : s.cpu_percent.toFixed(0) + " % of a core"],
      ["event-loop latency", s.mailbox_latency_seconds == null ? "no answer" : (s.mailbox_latency_seconds * 1e3).toFixed(2) + " ms"],
      ["resident memory", bytes(s.rss_bytes)],
    ];
    table.replaceChildren(...rows.map((r) => {
      const tr = el("tr");
      tr.append(el("td", {}, r[0]), el("td", {}, String(r[1])));
      return tr;
    }));
  }

  function renderWorkers(tbody, workers) {
    const t = performance.now();
    const sorted = workers.slice().sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      const c = x < y ? -1 : x > y ? 1 : 0;
      return sortUp ? c : -c;
    });
    tbody.replaceChildren(...sorted.map((w) => {
      const tr = el("tr", { "data-worker": w.name });
      const cells = [
        [w.name], [w.address], [w.nthreads, 1], [w.cpu_percent.toFixed(0) + " %", 1], [bytes(w.rss_bytes), 1],
        [bytes(w.nbytes), 1], [w.memory_limit ? bytes(w.memory_limit) : "none", 1], [bytes(w.spilled_bytes), 1],
        [w.nkeys, 1], [w.processing, 1], [bytes(w.bandwidth) + "/s", 1],
        [w.status], [(w.last_seen_ms / 1000).toFixed(1) + " s ago", 1],
      ];
      for (const c of cells) tr.append(el("td", c[1] ? { class: "num" } : {}, String(c[0])));
      return tr;
    }));
    for (const th of document.querySelectorAll("#workers-table th")) {
      th.classList.toggle("sorted", th.dataset.key === sortKey);
      th.classList.toggle("up", th.dataset.key === sortKey && !sortUp);
    }
    // How long the table took to build, for the test at 1,000 workers.
    tbody.dataset.renderMs = (performance.now() - t).toFixed(1);
  }

  function renderEvents(tbody) {
    tbody.replaceChildren(...events.slice().reverse().map((e) => {
      const tr = el("tr", { "data-kind": e.kind });
      tr.append(el("td", {}, new Date(e.time_us / 1000).toLocaleTimeString()), el("td", {}, e.kind),
        el("td", {}, e.text));
      return tr;
    }));
  }

  // The workers' last log lines, one block per worker.
  function renderLogs(div, answer) {
    const logs = answer.workers;
    const more = answer.more_workers > 0
      ? [el("p", { class: "more" }, answer.more_workers + " more workers; /api/v1/dashboard/logs?worker=NAME has one's lines")]
      : [];
    div.replaceChildren(...logs.map((l) => {
      const d = el("details", { "data-worker": l.worker, "data-lines": l.lines.length, open: "" });
      d.append(el("summary", {}, l.worker + " (" + l.lines.length + " lines)"), el("pre", {}, l.lines.join("\n")));
      return d;
    }), ...more);
    if (logs.length === 0) div.replaceChildren(el("p", {}, "no workers"), ...more);
  }

  function pollLogs() {
    fetch(withToken("/api/v1/dashboard/logs"))
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status + " " + r.statusText))))
      .then((logs) => renderLogs($("worker-logs"), logs))
      .catch((e) => { $("worker-logs").textContent = "cannot read the workers' logs: " + e.message; })
      .finally(() => setTimeout(pollLogs, LOGS_INTERVAL_MS));
  }

  // Layers of the graph: a task's layer is the longest chain of
  // dependencies below it (0 for a task with none).
  function graphLayers(g) {
    const n = g.nodes.length;
    const out = Array.from({ length: n }, () => []);
    const indeg = new Array(n).fill(0);
    for (const [a, b] of g.edges) { out[a].push(b); indeg[b]++; }
    const depth = new Array(n).fill(0);
    const queue = [];
    for (let i = 0; i < n; i++) if (indeg[i] === 0) queue.push(i);
    for (let q = 0; q < queue.length; q++) {
      const i = queue[q];
      for (const j of out[i]) {
        depth[j] = Math.max(depth[j], depth[i] + 1);
        if (--indeg[j] === 0) queue.push(j);
      }
    }
    return depth;
  }

  // Draws the graph in layers, left to right, a column per layer, tasks
  // of one function together in a column.
  function drawGraph(canvas, g) {
    const depth = graphLayers(g);
    const nLayers = g.nodes.length ? Math.max(...depth) + 1 : 0;
    const columns = Array.from({ length: nLayers }, () => []);
    g.nodes.forEach((node, i) => columns[depth[i]].push(i));
    const cmp = (a, b) => {
      const x = g.nodes[a], y = g.nodes[b];
      return x.function < y.function ? -1 : x.function > y.function ? 1 : x.key < y.key ? -1 : x.key > y.key ? 1 : 0;
    };
    for (const c of columns) c.sort(cmp);
    const tallest = Math.max(1, ...columns.map((c) => c.length));
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 1200;
    const cssH = Math.min(800, Math.max(120, tallest * 10 + 20));
    canvas.style.height = cssH + "px";
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const dx = (cssW - 20) / Math.max(1, nLayers);
    const dy = (cssH - 20) / tallest;
    const r = Math.max(1.5, Math.min(6, Math.min(dx, dy) / 3));
    const pos = new Array(g.nodes.length);
    columns.forEach((c, layer) => c.forEach((i, row) => {
      pos[i] = [10 + dx * (layer + 0.5), 10 + dy * (row + 0.5)];
    }));
    ctx.strokeStyle = "rgba(120, 120, 120, 0.35)";
    ctx.lineWidth = 0.7;
    ctx.beginPath();
    for (const [a, b] of g.edges) {
      ctx.moveTo(pos[a][0], pos[a][1]);
      ctx.lineTo(pos[b][0], pos[b][1]);
    }
    ctx.stroke();
    const states = {};
    ctx.strokeStyle = "#888";
    g.nodes.forEach((node, i) => {
      states[node.state] = (states[node.state] || 0) + 1;
      ctx.fillStyle = STATE_COLOURS[node.state] || "#000";
      ctx.beginPath();
      ctx.arc(pos[i][0], pos[i][1], r, 0, 2 * Math.PI);
      ctx.fill();
      if (node.state === "released") ctx.stroke();
    });
    canvas.dataset.nodes = String(g.nodes.length);
    canvas.dataset.edges = String(g.edges.length);
    canvas.dataset.layers = String(nLayers);
    canvas.dataset.states = JSON.stringify(states);
    return nLayers;
  }

  let graph = null;

  function renderGraph(g) {
    graph = g;
    $("graph-max").textContent = String(g.max_tasks);
    const canvas = $("task-graph");
    canvas.hidden = g.too_large;
    canvas.dataset.tooLarge = String(g.too_large);
    if (g.too_large) {
      $("graph-summary").textContent = g.ntasks + " tasks, more than " + g.max_tasks +
        ": the graph is not drawn; the tasks per function and state instead:";
      if (latest) renderProgress($("graph-functions"), latest.progress);
    } else {
      const layers = drawGraph(canvas, g);
      $("graph-summary").textContent = g.nodes.length + " tasks, " + g.edges.length + " dependencies, " +
        layers + " layers";
      $("graph-functions").replaceChildren();
    }
  }

  function pollGraph() {
    fetch(withToken("/api/v1/dashboard/graph"))
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status + " " + r.statusText))))
      .then(renderGraph)
      .catch((e) => { $("graph-summary").textContent = "cannot read the task graph: " + e.message; })
      .finally(() => setTimeout(pollGraph, GRAPH_INTERVAL_MS));
  }

  function render() {
    const s = latest;
    if (!s) return;
    const threads = s.workers.reduce((a, w) => a + w.nthreads, 0);
    const total = Object.values(s.tasks_by_state).reduce((a, b) => a + b, 0);
    const summary = $("summary");
    summary.textContent = s.workers.length + " workers, " + threads + " threads, " + total + " tasks";
    summary.dataset.workers = String(s.workers.length);
    const page = pageName();
    if (page === "status") {
      const oldest = records.length ? records[0].start_us : s.now_us;
      const span = Math.min(WINDOW_US, Math.max(MIN_WINDOW_US, (s.now_us - oldest) * 1.05));
      $("window-s").textContent = (span / 1e6).toFixed(0);
      drawStream($("task-stream"), records, s.workers, s.now_us - span, s.now_us);
      drawLegend($("stream-legend"), records);
      renderProgress($("progress"), s.progress);
      renderMemory($("memory"), s.workers);
      renderPerWorker($("processing"), s.workers, (w) => w.processing,
        () => Math.max(1, ...s.workers.map((x) => x.processing)), (w) => String(w.processing), "s-processing");
      renderScheduler($("scheduler"), s);
    } else if (page === "graph") {
      if (graph && graph.too_large) renderProgress($("graph-functions"), s.progress);
    } else if (page === "workers") {
      renderWorkers(document.querySelector("#workers-table tbody"), s.workers);
    } else {
      renderEvents(document.querySelector("#events-table tbody"));
    }
  }

  function apply(s) {
    for (const r of s.stream) records.push(r);
    const cutoff = s.now_us - WINDOW_US;
    let drop = 0;
    while (drop < records.length && (records[drop].stop_us < cutoff || records.length - drop > MAX_RECORDS)) drop++;
    if (drop) records.splice(0, drop);
    events = events.concat(s.events);
    if (events.length > MAX_EVENTS) events = events.slice(events.length - MAX_EVENTS);
    latest = s;
    render();
  }

  function setConnection(ok, text) {
    const c = $("connection");
    c.className = ok ? "ok" : "trouble";
    c.textContent = text;
  }

  let source = null;

  function connect() {
    source = new EventSource(withToken("/api/v1/dashboard/live"));
    source.onopen = () => setConnection(true, "live");
    source.onmessage = (m) => {
      setConnection(true, "live");
      apply(JSON.parse(m.data));
    };
    source.addEventListener("trouble", (m) => setConnection(false, m.data));
    // EventSource reconnects by itself; say so meanwhile.
    source.onerror = () => setConnection(false, "reconnecting…");
  }

  function startDashboard() {
    const page = pageName();
    $(page + "-page").hidden = false;
    for (const a of document.querySelectorAll("nav a")) {
      a.classList.toggle("active", a.dataset.page === page);
      a.href = withToken(a.getAttribute("href"));
    }
    for (const th of document.querySelectorAll("#workers-table th")) {
      th.addEventListener("click", () => {
        if (sortKey === th.dataset.key) sortUp = !sortUp;
        else { sortKey = th.dataset.key; sortUp = !th.dataset.num; }
        render();
      });
    }
    window.addEventListener("resize", render);
    if (page === "events") pollLogs();
    if (page === "graph") {
      const legend = $("graph-legend");
      legend.replaceChildren(...Object.keys(STATE_COLOURS).map((name) => {
        const s = el("span");
        const i = el("i");
        i.style.background = STATE_COLOURS[name];
        i.style.border = "1px solid #888";
        s.append(i, document.createTextNode(name));
        return s;
      }));
      window.addEventListener("resize", () => { if (graph && !graph.too_large) drawGraph($("task-graph"), graph); });
      pollGraph();
    }
    // For tests and for looking at a saved update (/api/v1/dashboard):
    // stop following the scheduler and show this one.
    window.rdaskShow = (s) => {
      if (source) source.close();
      setConnection(false, "showing a saved update");
      apply(s);
    };
    connect();
  }

  // The performance report: the whole run's task stream and a table of
  // the functions' statistics, from the data embedded in the file.
  function startReport(rep) {
    const recs = rep.records;
    const t0 = recs.reduce((a, r) => Math.min(a, r.start_us), Infinity);
    const t1 = recs.reduce((a, r) => Math.max(a, r.stop_us), -Infinity);
    const draw = () => {
      if (recs.length) drawStream($("task-stream"), recs, [], t0, t1, true);
    };
    draw();
    drawLegend($("stream-legend"), recs);
    const stats = new Map();
    for (const r of recs) {
      const name = barName(r);
      const s = stats.get(name) || { n: 0, total: 0, max: 0 };
      const d = r.stop_us - r.start_us;
      s.n++; s.total += d; s.max = Math.max(s.max, d);
      stats.set(name, s);
    }
    const tbody = document.querySelector("#function-stats tbody");
    tbody.replaceChildren(...Array.from(stats.entries()).sort().map(([name, s]) => {
      const tr = el("tr", { "data-function": name, "data-count": s.n });
      const cells = [name, s.n, (s.total / 1e6).toFixed(3) + " s", (s.total / s.n / 1e3).toFixed(3) + " ms",
        (s.max / 1e3).toFixed(3) + " ms"];
      cells.forEach((c, i) => tr.append(el("td", i ? { class: "num" } : {}, String(c))));
      return tr;
    }));
    const span = recs.length ? ((t1 - t0) / 1e6).toFixed(3) : "0";
    $("summary").textContent = recs.length + " tasks and transfers over " + span + " s, " +
      new Set(recs.map((r) => r.worker)).size + " workers";
    if (rep.generated_unix_s) {
      $("generated").textContent = "generated " + new Date(rep.generated_unix_s * 1000).toLocaleString();
    }
    window.addEventListener("resize", draw);
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (window.RDASK_REPORT) startReport(window.RDASK_REPORT);
    else startDashboard();
  });
})();
