// The console's views. Each is `async (main, ctx, params) => cleanup`: it draws into `main`,
// listens to the live stream through `ctx.stream`, and returns what undoes its timers and
// listeners. Text from the server only ever goes in through textContent (h() below).

import * as api from "/assets/api.js";
import { CHARTS, draw } from "/assets/chart.js";

/// An element: h("td", { class: "x", onclick: fn }, "text", child…).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const STATES = ["charging", "aligning", "idle", "faulted", "offline"];
const SEVERITIES = ["critical", "major", "warning", "info"];

function fixed(value, digits = 1) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function clock(us) {
  if (!us) return "–";
  const d = new Date(us / 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function stateTag(state) {
  return h("span", { class: `state state-${state}` }, state);
}

function vehicleLink(vin) {
  return h("a", { href: `/vehicles/${encodeURIComponent(vin)}` }, vin);
}

function padLink(station, pad) {
  if (!station) return "–";
  return h("a", { href: `/pads/${encodeURIComponent(station)}/${pad}` }, `${station} / ${pad}`);
}

function problem(main, error) {
  const text = error instanceof api.ApiError && error.status === 401
    ? "This console needs the query role's token: open the address the demo or your operator gave you (it ends in #token=…)."
    : `Could not load: ${error.message}`;
  main.replaceChildren(h("p", { class: "problem", role: "alert" }, text));
}

// The server's clock minus ours, so ages tick right even when the two disagree.
let skewUs = 0;
export function nowUs() {
  return Date.now() * 1000 + skewUs;
}
function syncClock(serverNowUs) {
  if (serverNowUs) skewUs = serverNowUs - Date.now() * 1000;
}

// Marks a view's first data as on screen (after the next frame), for `chargewatch bench
// console`, which reads it as `performance.getEntriesByName("chargewatch:<name>")`.
function painted(name) {
  requestAnimationFrame(() => setTimeout(() => performance.mark(`chargewatch:${name}`), 0));
}

// ---------------------------------------------------------------- overview

function card(title, counts, key) {
  const total = Object.values(counts || {}).reduce((a, b) => a + b, 0);
  return h("section", { class: "card", dataset: { card: key } },
    h("h2", {}, title, " ", h("span", { class: "total", dataset: { total: key } }, total)),
    h("ul", { class: "counts" },
      STATES.map((s) => h("li", { class: `state-${s}` }, h("span", { class: "n", dataset: { count: `${key}-${s}` } }, counts?.[s] ?? 0), " ", s))));
}

function renderOverview(box, doc) {
  syncClock(doc.now_us);
  const severities = h("ul", { class: "counts" },
    SEVERITIES.map((s) => h("li", { class: `sev-${s}` }, h("span", { class: "n", dataset: { count: `alerts-${s}` } }, doc.open_alerts?.[s] ?? 0), " ", s)));
  const feed = doc.feed || {};
  box.replaceChildren(
    h("div", { class: "cards" },
      card("Stations", doc.stations, "stations"),
      card("Pads", doc.pads, "pads"),
      card("Vehicles", doc.vehicles, "vehicles"),
      h("section", { class: "card" }, h("h2", {}, "Open alerts ", h("a", { href: "/alerts" }, "→")), severities,
        h("p", { class: "muted" }, `${doc.unacknowledged ?? 0} not acknowledged`)),
      h("section", { class: "card" }, h("h2", {}, "Now"),
        h("dl", {},
          h("dt", {}, "reports/s"), h("dd", { dataset: { figure: "rate" } }, fixed(doc.reports_per_s, 1)),
          h("dt", {}, "charging sessions"), h("dd", {}, doc.sessions ?? 0),
          h("dt", {}, "power delivered"), h("dd", {}, `${fixed(doc.power_kw, 1)} kW`),
          h("dt", {}, "last report"), h("dd", {}, doc.last_seen_us ? `${age((doc.now_us - doc.last_seen_us) / 1e6)} ago` : "none yet"),
          h("dt", {}, "reports read"), h("dd", {}, doc.reports_total ?? 0)))),
    h("p", { class: feed.connected ? "muted" : "problem" },
      feed.connected ? `Live from ${feed.telemetry_topic} and ${feed.alerts_topic}.` : `Live feed not connected${feed.error ? `: ${feed.error}` : ""}; retrying.`));
}

export async function overview(main, ctx) {
  main.replaceChildren(h("h1", {}, "Overview"), h("div", { id: "overview" }, "Loading…"));
  const box = main.querySelector("#overview");
  try {
    renderOverview(box, await api.get("/v1/console/overview"));
    painted("overview");
  } catch (error) {
    problem(main, error);
    return () => {};
  }
  return ctx.stream.on("overview", (doc) => renderOverview(box, doc));
}

// ---------------------------------------------------------------- stations and pads

const PAD_COLUMNS = [
  ["station", "Station / pad", (p) => `${p.station_id} ${String(p.pad_no).padStart(3, "0")}`],
  ["state", "State", (p) => STATES.indexOf(p.state)],
  ["vin", "Vehicle", (p) => p.vin],
  ["seen", "Last seen", (p) => -p.seen_us],
  ["power", "Power kW", (p) => p.power_kw ?? -1],
  ["eff", "Efficiency %", (p) => p.efficiency_pct ?? -1],
  ["offset", "Offset x / y mm", (p) => Math.hypot(p.offset_x_mm ?? 0, p.offset_y_mm ?? 0)],
  ["tx", "TX coil °C", (p) => p.tx_coil_temp_c ?? -999],
  ["rx", "RX coil °C", (p) => p.rx_coil_temp_c ?? -999],
  ["surface", "Pad surface °C", (p) => p.pad_surface_temp_c ?? -999],
];
const SHOWN = 500;

export async function stations(main, ctx) {
  const pads = new Map();
  let sort = { key: "station", down: false };
  const filter = h("input", { type: "search", placeholder: "station or VIN", "aria-label": "filter" });
  const stateSelect = h("select", { "aria-label": "state" }, h("option", { value: "" }, "any state"), STATES.map((s) => h("option", { value: s }, s)));
  const summary = h("p", { class: "muted" });
  const table = h("table", { class: "grid", id: "pads" });
  main.replaceChildren(h("h1", {}, "Stations & pads"), h("div", { class: "filters" }, filter, stateSelect), summary, table);

  let queued = false;
  const render = () => {
    queued = false;
    const now = nowUs();
    const text = filter.value.trim().toLowerCase();
    const state = stateSelect.value;
    const column = PAD_COLUMNS.find(([key]) => key === sort.key);
    let rows = [...pads.values()].map((p) => ({ ...p, state: now - p.seen_us > ctx.offlineUs ? "offline" : p.state }));
    rows = rows.filter((p) => (!state || p.state === state) && (!text || p.vin.toLowerCase().includes(text) || (p.station_id || "").toLowerCase().includes(text)));
    rows.sort((a, b) => {
      const x = column[2](a), y = column[2](b);
      return (x < y ? -1 : x > y ? 1 : 0) * (sort.down ? -1 : 1);
    });
    const stationsSeen = new Set(rows.map((p) => p.station_id)).size;
    summary.textContent = `${rows.length} pads at ${stationsSeen} stations${rows.length > SHOWN ? `, showing the first ${SHOWN}` : ""}`;
    const head = h("tr", {}, PAD_COLUMNS.map(([key, label]) => h("th", {
      class: sort.key === key ? (sort.down ? "sorted down" : "sorted") : "",
      onclick: () => { sort = { key, down: sort.key === key ? !sort.down : false }; render(); },
    }, label)));
    const body = rows.slice(0, SHOWN).map((p) => h("tr", { dataset: { pad: `${p.station_id}/${p.pad_no}` } },
      h("td", {}, padLink(p.station_id, p.pad_no)),
      h("td", {}, stateTag(p.state)),
      h("td", {}, vehicleLink(p.vin)),
      h("td", {}, `${age((now - p.seen_us) / 1e6)} ago`),
      h("td", { class: "num" }, fixed(p.power_kw, 2)),
      h("td", { class: "num" }, fixed(p.efficiency_pct, 1)),
      h("td", { class: "num" }, `${fixed(p.offset_x_mm, 0)} / ${fixed(p.offset_y_mm, 0)}`),
      h("td", { class: "num" }, fixed(p.tx_coil_temp_c, 0)),
      h("td", { class: "num" }, fixed(p.rx_coil_temp_c, 0)),
      h("td", { class: "num" }, fixed(p.pad_surface_temp_c, 0))));
    table.replaceChildren(h("thead", {}, head), h("tbody", {}, body));
  };
  const later = () => {
    if (!queued) {
      queued = true;
      requestAnimationFrame(render);
    }
  };
  try {
    const doc = await api.get("/v1/console/pads");
    syncClock(doc.now_us);
    for (const p of doc.pads) pads.set(`${p.station_id}/${p.pad_no}`, p);
  } catch (error) {
    problem(main, error);
    return () => {};
  }
  render();
  painted("stations");
  filter.addEventListener("input", later);
  stateSelect.addEventListener("change", later);
  ctx.stream.wantPads(true);
  const off = ctx.stream.on("pads", (changed) => {
    for (const p of changed) pads.set(`${p.station_id}/${p.pad_no}`, p);
    later();
  });
  const timer = setInterval(later, 1000);
  return () => {
    off();
    clearInterval(timer);
    ctx.stream.wantPads(false);
  };
}

// ---------------------------------------------------------------- sessions

export async function sessions(main) {
  const table = h("table", { class: "grid", id: "sessions" });
  const summary = h("p", { class: "muted" });
  main.replaceChildren(h("h1", {}, "Live charging sessions"), summary, table);
  const load = async () => {
    const doc = await api.get("/v1/console/sessions");
    syncClock(doc.now_us);
    summary.textContent = `${doc.sessions.length} sessions charging now (refreshed every 2 s)`;
    table.replaceChildren(
      h("thead", {}, h("tr", {}, ["Vehicle", "Station / pad", "Session", "Duration", "Power kW", "Energy kWh", "SOC %", "Efficiency %", "Last report"].map((t) => h("th", {}, t)))),
      h("tbody", {}, doc.sessions.map((s) => h("tr", {},
        h("td", {}, vehicleLink(s.vin)),
        h("td", {}, padLink(s.station_id, s.pad_no)),
        h("td", { class: "num" }, s.session_id ?? "–"),
        h("td", {}, age(s.duration_s)),
        h("td", { class: "num" }, fixed(s.power_kw, 2)),
        h("td", { class: "num" }, fixed(s.energy_kwh, 3)),
        h("td", { class: "num" }, `${fixed(s.soc, 0)}${s.soc_start !== null ? ` (from ${fixed(s.soc_start, 0)})` : ""}`),
        h("td", { class: "num" }, fixed(s.efficiency_pct, 1)),
        h("td", {}, `${age(s.age_s)} ago`)))));
  };
  try {
    await load();
  } catch (error) {
    problem(main, error);
    return () => {};
  }
  const timer = setInterval(() => load().catch(() => {}), 2000);
  return () => clearInterval(timer);
}

// ---------------------------------------------------------------- alerts

function evidenceText(evidence) {
  return Object.entries(evidence || {}).map(([k, v]) => `${k} ${typeof v === "number" ? Number(v.toFixed(2)) : v}`).join(", ");
}

function noteForm(alert, kind, done) {
  const by = h("input", { name: "by", required: true, maxlength: 64, placeholder: "your name", value: localStorage.getItem("chargewatch-operator") || "" });
  const comment = h("input", { name: "comment", maxlength: 2000, placeholder: kind === "comment" ? "comment" : "comment (optional)", required: kind === "comment" });
  const message = h("span", { class: "muted" });
  const form = h("form", {
    class: "note-form",
    onsubmit: async (event) => {
      event.preventDefault();
      localStorage.setItem("chargewatch-operator", by.value.trim());
      message.textContent = "sending…";
      try {
        await api.post(`/v1/console/alerts/${alert.id}/${kind === "comment" ? "comment" : "acknowledge"}`, { by: by.value, comment: comment.value });
        message.textContent = "published; waiting for it on the alerts topic…";
        done();
      } catch (error) {
        message.textContent = error.message;
        message.className = "problem";
      }
    },
  }, by, comment, h("button", { type: "submit" }, kind === "comment" ? "Add comment" : "Acknowledge"), message);
  return form;
}

export async function alerts(main, ctx) {
  const byId = new Map();
  const openOnly = h("select", { "aria-label": "status" }, h("option", { value: "open" }, "open"), h("option", { value: "all" }, "open and recent"));
  const severity = h("select", { "aria-label": "severity" }, h("option", { value: "" }, "any severity"), SEVERITIES.map((s) => h("option", { value: s }, s)));
  const rule = h("select", { "aria-label": "rule" }, h("option", { value: "" }, "any rule"));
  const text = h("input", { type: "search", placeholder: "VIN, station or rule", "aria-label": "filter" });
  const counts = h("div", { class: "alert-counts" });
  const table = h("table", { class: "grid", id: "alerts" });
  const forms = new Map();
  main.replaceChildren(h("h1", {}, "Alerts"), h("div", { class: "filters" }, openOnly, severity, rule, text), counts, table);

  let queued = false;
  const render = () => {
    queued = false;
    const all = [...byId.values()];
    const open = all.filter((a) => a.open);
    const ruleCounts = {};
    const sevCounts = {};
    for (const a of open) {
      ruleCounts[a.rule] = (ruleCounts[a.rule] || 0) + 1;
      sevCounts[a.severity] = (sevCounts[a.severity] || 0) + 1;
    }
    const rules = [...new Set(all.map((a) => a.rule))].sort();
    if (rules.length + 1 !== rule.options.length) {
      const chosen = rule.value;
      rule.replaceChildren(h("option", { value: "" }, "any rule"), ...rules.map((r) => h("option", { value: r }, r)));
      rule.value = chosen;
    }
    counts.replaceChildren(...[
      h("span", {}, `${open.length} open`),
      SEVERITIES.map((s) => h("span", { class: `chip sev-${s}` }, `${s} ${sevCounts[s] || 0}`)),
      Object.entries(ruleCounts).sort((a, b) => b[1] - a[1]).map(([r, n]) => h("span", { class: "chip", dataset: { ruleCount: r } }, `${r} ${n}`)),
    ].flat());
    const needle = text.value.trim().toLowerCase();
    const shown = all
      .filter((a) => (openOnly.value === "all" || a.open) && (!severity.value || a.severity === severity.value) && (!rule.value || a.rule === rule.value))
      .filter((a) => !needle || a.vin.toLowerCase().includes(needle) || a.rule.includes(needle) || (a.station_id || "").toLowerCase().includes(needle))
      .sort((a, b) => (b.open - a.open) || (b.raised_seen_us - a.raised_seen_us));
    const now = nowUs();
    const rows = [];
    for (const a of shown) {
      const acked = a.acknowledged;
      rows.push(h("tr", { class: a.open ? "open" : "closed", dataset: { alert: a.id, rule: a.rule } },
        h("td", {}, h("span", { class: `sev sev-${a.severity}` }, a.severity)),
        h("td", { title: a.description }, a.rule),
        h("td", {}, vehicleLink(a.vin)),
        h("td", {}, padLink(a.station_id, a.pad_no)),
        h("td", { class: "evidence" }, evidenceText(a.evidence)),
        h("td", {}, clock(a.raised_seen_us)),
        h("td", { class: "age", dataset: { since: a.raised_seen_us, until: a.cleared_seen_us || "" } }, age(((a.cleared_seen_us || now) - a.raised_seen_us) / 1e6)),
        h("td", {}, a.open ? "open" : "cleared"),
        h("td", { class: "ack" },
          acked ? h("span", { class: "acked" }, `acknowledged by ${acked.by}`) : "",
          a.comments.map((c) => h("div", { class: "comment" }, `${c.by}: ${c.comment}`))),
        h("td", { class: "actions" },
          acked ? "" : h("button", { type: "button", onclick: () => { forms.set(a.id, "acknowledge"); render(); } }, "Acknowledge"),
          h("button", { type: "button", onclick: () => { forms.set(a.id, "comment"); render(); } }, "Comment"))));
      if (forms.has(a.id)) {
        rows.push(h("tr", { class: "form-row" }, h("td", { colspan: 10 }, noteForm(a, forms.get(a.id), () => {}))));
      }
    }
    table.replaceChildren(
      h("thead", {}, h("tr", {}, ["Severity", "Rule", "Vehicle", "Station / pad", "Evidence", "Raised", "Age", "Status", "Operators", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No alerts match."))));
  };
  const later = () => {
    if (!queued) {
      queued = true;
      requestAnimationFrame(render);
    }
  };
  const load = async () => {
    const doc = await api.get("/v1/console/alerts");
    syncClock(doc.now_us);
    byId.clear();
    for (const a of doc.alerts) byId.set(a.id, a);
    render();
    ctx.stream.start(doc.last_id);
  };
  try {
    await load();
  } catch (error) {
    problem(main, error);
    return () => {};
  }
  for (const el of [openOnly, severity, rule]) el.addEventListener("change", later);
  text.addEventListener("input", later);
  const offAlert = ctx.stream.on("alert", (a) => {
    const had = byId.get(a.id);
    byId.set(a.id, a);
    // A form stays open until its note comes back from the topic.
    if (had && forms.has(a.id) && (a.comments.length > had.comments.length || (a.acknowledged && !had.acknowledged))) forms.delete(a.id);
    later();
  });
  const offReset = ctx.stream.on("reset", () => load().catch(() => {}));
  // Ages tick while open, without redrawing the table.
  const timer = setInterval(() => {
    const now = nowUs();
    for (const cell of table.querySelectorAll("td.age")) {
      if (!cell.dataset.until) cell.textContent = age((now - Number(cell.dataset.since)) / 1e6);
    }
  }, 1000);
  return () => {
    offAlert();
    offReset();
    clearInterval(timer);
  };
}

// ---------------------------------------------------------------- vehicle and pad detail

const RANGES = [["15 min", 900], ["1 h", 3600], ["6 h", 21600], ["24 h", 86400]];

async function detail(main, title, latestOf, seriesQuery) {
  const range = h("select", { "aria-label": "range" }, RANGES.map(([label, s]) => h("option", { value: s }, label)));
  const facts = h("dl", { class: "facts" });
  const alertsBox = h("div");
  const charts = CHARTS.map((spec) => ({ spec, box: h("div", { class: "chart", dataset: { chart: spec.series[0][0] } }), plot: null }));
  const note = h("p", { class: "muted" });
  main.replaceChildren(h("h1", {}, title), facts, alertsBox, h("div", { class: "filters" }, "Range ", range), note, h("div", { class: "charts" }, charts.map((c) => c.box)));
  const load = async () => {
    const latest = await latestOf();
    const reading = latest?.reading;
    if (reading) {
      facts.replaceChildren(
        h("dt", {}, "state"), h("dd", {}, stateTag(latest.state)),
        h("dt", {}, "vehicle"), h("dd", {}, vehicleLink(reading.vin)),
        h("dt", {}, "station / pad"), h("dd", {}, padLink(reading.station_id, reading.pad_no)),
        h("dt", {}, "power"), h("dd", {}, `${fixed(reading.power_kw, 2)} kW`),
        h("dt", {}, "efficiency"), h("dd", {}, `${fixed(reading.efficiency_pct, 1)} %`),
        h("dt", {}, "SOC"), h("dd", {}, `${fixed(reading.soc, 0)} %`),
        h("dt", {}, "last seen"), h("dd", {}, `${age(latest.age_s)} ago`));
      if (latest.alerts) {
        alertsBox.replaceChildren(h("h2", {}, `Alerts (${latest.alerts.filter((a) => a.open).length} open)`),
          h("ul", {}, latest.alerts.slice(0, 20).map((a) => h("li", {}, h("span", { class: `sev sev-${a.severity}` }, a.severity), ` ${a.rule} `, a.open ? "open" : "cleared"))));
      }
    } else {
      facts.replaceChildren(h("dt", {}, "state"), h("dd", {}, "not in the live view (no report in the lookback)"));
    }
    // The range ends at the newest report: a terminal's clock is not ours.
    const to = reading ? reading.event_time_us + 1_000_000 : nowUs();
    const points = Math.max(50, Math.min(2000, Math.floor(charts[0].box.clientWidth || 800)));
    const answer = await api.get(`/v1/console/series?${seriesQuery}&seconds=${range.value}&points=${points}&to_us=${to}`);
    note.textContent = `${answer.t_us.length} points of ${age(answer.bucket_us / 1e6)} each, from the lake (as far as the sink has written)`;
    for (const chart of charts) chart.plot = draw(chart.box, chart.plot, chart.spec, answer);
  };
  try {
    await load();
  } catch (error) {
    problem(main, error);
    return () => {};
  }
  range.addEventListener("change", () => load().catch((e) => { note.textContent = e.message; }));
  const timer = setInterval(() => load().catch(() => {}), 10000);
  return () => {
    clearInterval(timer);
    for (const chart of charts) chart.plot?.destroy();
  };
}

export function vehicle(main, ctx, [vin]) {
  return detail(main, `Vehicle ${vin}`,
    () => api.get(`/v1/console/vehicles/${encodeURIComponent(vin)}`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    `vin=${encodeURIComponent(vin)}`);
}

export function pad(main, ctx, [station, padNo]) {
  return detail(main, `Pad ${station} / ${padNo}`, async () => {
    const doc = await api.get(`/v1/console/pads?q=${encodeURIComponent(station)}`);
    const row = doc.pads.find((p) => p.station_id === station && String(p.pad_no) === String(padNo));
    return row ? { state: row.state, age_s: row.age_s, reading: row } : null;
  }, `station=${encodeURIComponent(station)}&pad=${encodeURIComponent(padNo)}`);
}

// ---------------------------------------------------------------- SQL

const HISTORY_KEY = "chargewatch-sql-history";
const EXAMPLE = "SELECT vin, count(*) AS reports, round(avg(efficiency_pct), 1) AS efficiency_pct\nFROM telemetry\nGROUP BY vin\nORDER BY reports DESC\nLIMIT 20";

export async function sql(main) {
  const history = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
  const editor = h("textarea", { id: "sql-text", rows: 8, spellcheck: "false", "aria-label": "SQL" });
  editor.value = history[0] || EXAMPLE;
  const limit = h("select", { id: "sql-limit", "aria-label": "row limit" }, [100, 1000, 10000].map((n) => h("option", { value: n, selected: n === 1000 }, `${n} rows`)));
  const status = h("p", { class: "muted", id: "sql-status" });
  const result = h("div", { class: "result" });
  const list = h("ol", { class: "history" });
  const drawHistory = () => list.replaceChildren(...history.map((q) => h("li", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); editor.value = q; } }, q.replace(/\s+/g, " ").slice(0, 140)))));
  const remember = (q) => {
    const at = history.indexOf(q);
    if (at >= 0) history.splice(at, 1);
    history.unshift(q);
    history.length = Math.min(history.length, 20);
    localStorage.setItem(HISTORY_KEY, JSON.stringify(history));
    drawHistory();
  };
  const run = async () => {
    const q = editor.value.trim();
    if (!q) return;
    status.textContent = "running…";
    status.className = "muted";
    try {
      const doc = await api.post("/v1/console/sql", { sql: q, limit: Number(limit.value) });
      remember(q);
      status.textContent = `${doc.total_rows} rows in ${doc.elapsed_ms} ms${doc.truncated ? `, showing the first ${doc.rows.length}` : ""}`;
      result.replaceChildren(h("table", { class: "grid", id: "sql-result" },
        h("thead", {}, h("tr", {}, doc.columns.map((c) => h("th", { title: c.type }, c.name)))),
        h("tbody", {}, doc.rows.map((row) => h("tr", {}, doc.columns.map((c) => {
          const v = row[c.name];
          return h("td", {}, v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : v);
        }))))));
    } catch (error) {
      status.textContent = error.message;
      status.className = "problem";
    }
  };
  const download = async () => {
    const q = editor.value.trim();
    try {
      const text = await api.csv(q);
      remember(q);
      const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
      const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
      const link = h("a", { href: url, download: `chargewatch-${stamp}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      status.textContent = "CSV downloaded (the whole answer)";
    } catch (error) {
      status.textContent = error.message;
      status.className = "problem";
    }
  };
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run();
    }
  });
  main.replaceChildren(h("h1", {}, "SQL over the lake"),
    h("p", { class: "muted" }, "Read-only: telemetry, alerts, deadletter, events. Ctrl+Enter runs."),
    editor,
    h("div", { class: "filters" }, h("button", { type: "button", id: "sql-run", onclick: run }, "Run"), limit, h("button", { type: "button", id: "sql-csv", onclick: download }, "Download CSV")),
    status, result, h("h2", {}, "History"), list);
  drawHistory();
  return () => {};
}
