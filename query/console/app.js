// The console's entry: the router (each view has a URL of its own, links stay in the page),
// the live stream shared by every view, and the alert badge in the header.

import * as api from "/assets/api.js";
import * as views from "/assets/views.js";

const ROUTES = [
  [/^\/$/, "overview", views.overview],
  [/^\/stations$/, "stations", views.stations],
  [/^\/sessions$/, "sessions", views.sessions],
  [/^\/alerts$/, "alerts", views.alerts],
  [/^\/sql$/, "sql", views.sql],
  [/^\/vehicles\/([^/]+)$/, "stations", views.vehicle],
  [/^\/pads\/([^/]+)\/(\d+)$/, "stations", views.pad],
];

const ctx = { stream: new api.LiveStream(), offlineUs: 30e6 };
let cleanup = () => {};
let shown = 0;

async function show() {
  cleanup();
  cleanup = () => {};
  const main = document.getElementById("view");
  const path = location.pathname;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) {
    main.replaceChildren(views.h("p", { class: "problem" }, `No page at ${path}. `, views.h("a", { href: "/" }, "Overview")));
    return;
  }
  const [pattern, nav, view] = route;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.nav === nav);
  }
  const params = path.match(pattern).slice(1).map(decodeURIComponent);
  const mine = ++shown;
  const undo = await view(main, ctx, params);
  // A newer navigation came while this view was loading: undo it at once.
  if (mine !== shown) undo?.();
  else cleanup = undo || (() => {});
  document.title = `${main.querySelector("h1")?.textContent || "console"} · chargewatch`;
}

function navigate(href) {
  history.pushState(null, "", href);
  show();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='/']");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || link.hasAttribute("download")) return;
  event.preventDefault();
  if (link.getAttribute("href") !== location.pathname) navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", show);

ctx.stream.on("status", (text) => {
  const el = document.getElementById("live-status");
  el.textContent = text;
  el.className = `live-status ${text === "live" ? "up" : "down"}`;
});
ctx.stream.on("overview", (doc) => {
  const open = Object.values(doc.open_alerts || {}).reduce((a, b) => a + b, 0);
  document.getElementById("alert-badge").textContent = open ? String(open) : "";
});

async function start() {
  api.takeTokenFromAddress();
  try {
    const overview = await api.get("/v1/console/overview");
    ctx.offlineUs = (overview.offline_after_s || 30) * 1e6;
    ctx.stream.start(overview.last_alert_id);
  } catch {
    // The view shows why (a missing token, a server away).
  }
  await show();
}

start();
