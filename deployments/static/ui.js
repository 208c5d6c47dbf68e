// The registry's status page: reads the JSON endpoints every few seconds and
// redraws the tables. Read-only. Everything from the registry reaches the DOM
// as text (textContent, never parsed as HTML), so a provider name or an error
// message cannot inject markup.
//
// What one refresh costs the router: GET /v1/stats and GET /v1/events; plus
// GET /v1/providers only when the route table's revision changed (fallbacks,
// target replicas), and each vector store's stats every STORES_EVERY refreshes
// (they call the store, so they also count as its usage).
"use strict";

const params = new URLSearchParams(location.search);
// ?refresh=N (seconds, 1 to 60) overrides the period; the browser test uses 1.
const REFRESH_S = Math.min(60, Math.max(1, Number(params.get("refresh")) || 5));
const STORES_EVERY = Math.max(1, Math.round(15 / REFRESH_S));
const HISTORY = 30; // samples per sparkline
const EVENTS_SHOWN = 50;

const state = {
  revision: null, providers: null, history: new Map(), tick: 0, stores: [], versions: new Map(),
};

const EVENT_LABELS = {
  registered: "Registered", deleted: "Deleted", swapped: "Swapped", reloaded: "Reloaded",
  swap_failed: "Swap failed", reload_failed: "Reload failed", rolled_back: "Rolled back",
  rollback_failed: "Rollback failed", breaker_opened: "Breaker opened", breaker_closed: "Breaker closed",
  health_changed: "Health changed", fallback_set: "Fallbacks set", monitoring: "Monitoring",
};

// -- DOM helpers ------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

function badge(text, kind) {
  return el("span", { class: `state ${kind}` }, text);
}

const DASH = "\u2013";
const fmtMs = (v) => (v == null ? DASH : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));
const fmtInt = (v) => (v == null ? DASH : Number(v).toLocaleString("en"));
const fmtTime = (unix) => new Date(unix * 1000).toLocaleTimeString("en-GB", { hour12: false });

function healthKind(status) {
  return { healthy: "ok", unhealthy: "bad", unknown: "unknown" }[status] || "warn";
}

function breakerKind(stateName) {
  return { closed: "ok", half_open: "warn", open: "bad" }[stateName] || "unknown";
}

// -- fetching -----------------------------------------------------------------------------
async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new Error(`${path}: ${response.status} ${message}`);
  }
  return body;
}

async function refreshStores() {
  const names = Object.keys((state.providers && state.providers.vector_stores) || {}).sort();
  state.stores = await Promise.all(names.map(async (name) => {
    try {
      return await getJSON(`v1/vector_stores/${encodeURIComponent(name)}/stats`);
    } catch (err) {
      return { name, error: err.message };
    }
  }));
}

async function refresh() {
  const problems = [];
  try {
    const [stats, events] = await Promise.all([getJSON("v1/stats"), getJSON(`v1/events?limit=${EVENTS_SHOWN}`)]);
    const tableChanged = stats.table_revision !== state.revision || state.providers === null;
    if (tableChanged) {
      state.providers = await getJSON("v1/providers");
      state.revision = stats.table_revision;
    }
    if (tableChanged || state.tick % STORES_EVERY === 0) await refreshStores();
    state.tick += 1;
    remember(stats);
    renderSummary(stats);
    renderProviders(stats);
    renderEvents(events.events || []);
    renderStores();
    renderCache(stats.embedding_cache || {});
    document.body.dataset.refreshes = String(state.tick);
  } catch (err) {
    problems.push(err.message);
  }
  const box = document.getElementById("problem");
  box.hidden = problems.length === 0;
  box.textContent = problems.length ? `Could not refresh: ${problems.join("; ")}` : "";
  setTimeout(refresh, REFRESH_S * 1000);
}

// -- history (sparklines) -------------------------------------------------------------------
// Kept in the page: calls per second between two refreshes, and p50 as reported then.
function remember(stats) {
  const now = Date.now() / 1000;
  for (const [key, usage] of Object.entries(stats.usage_stats || {})) {
    const samples = state.history.get(key) || [];
    const last = samples[samples.length - 1];
    const calls = usage.calls || 0;
    const rate = last && now > last.t ? Math.max(0, calls - last.calls) / (now - last.t) : null;
    samples.push({ t: now, calls, rate, p50: usage.latency_ms ? usage.latency_ms.p50 : null });
    if (samples.length > HISTORY) samples.shift();
    state.history.set(key, samples);
  }
  for (const key of [...state.history.keys()]) {
    if (!(key in (stats.usage_stats || {}))) state.history.delete(key);
  }
}

const SVG = "http://www.w3.org/2000/svg";

function polyline(values, cls, width, height) {
  const finite = values.map((v, i) => [i, v]).filter(([, v]) => v != null && Number.isFinite(v));
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("class", cls);
  if (finite.length === 0) return line;
  const max = Math.max(...finite.map(([, v]) => v)) || 1;
  const step = width / Math.max(1, values.length - 1); // the samples so far span the whole width
  const points = finite.map(([i, v]) => [i * step, height - 1 - (v / max) * (height - 2)]);
  if (points.length === 1) points.unshift([0, points[0][1]]); // one sample: a level line, not nothing
  line.setAttribute("points", points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
  return line;
}

function sparkline(key) {
  const samples = state.history.get(key) || [];
  const rates = samples.map((s) => s.rate);
  const p50s = samples.map((s) => s.p50);
  const lastRate = rates.filter((r) => r != null).pop();
  const lastP50 = p50s.filter((r) => r != null).pop();
  const label = `calls per second, last ${lastRate == null ? "unknown" : lastRate.toFixed(2)}; ` +
                `p50 ${lastP50 == null ? "unknown" : fmtMs(lastP50) + " ms"}`;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 96 18");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  const frame = document.createElementNS(SVG, "rect");
  frame.setAttribute("class", "frame");
  frame.setAttribute("width", "96");
  frame.setAttribute("height", "18");
  svg.append(title, frame, polyline(rates, "calls", 96, 18), polyline(p50s, "latency", 96, 18));
  return svg;
}

// -- rendering ----------------------------------------------------------------------------
function renderSummary(stats) {
  const h = stats.health_summary || {};
  const total = Object.keys(stats.usage_stats || {}).length;
  const scope = stats.scope || {};
  const replicas = (scope.router_replicas || []).length;
  document.getElementById("summary").textContent =
    `${total} providers: ${h.healthy || 0} healthy, ${h.unhealthy || 0} unhealthy, ${h.unknown || 0} not probed` +
    ` \u00b7 monitoring ${stats.monitoring ? "on" : "off"} \u00b7 route table revision ${stats.table_revision}` +
    ` \u00b7 ${replicas} router replica${replicas === 1 ? "" : "s"}` +
    ` \u00b7 updated ${fmtTime(Date.now() / 1000)}, every ${REFRESH_S} s`;
}

function target(info) {
  const d = (info && info.deployment) || {};
  if (d.autoscaling_config) {
    const a = d.autoscaling_config;
    return `${a.min_replicas ?? 1}\u2013${a.max_replicas ?? "?"}`;
  }
  return String(d.num_replicas ?? 1);
}

function renderProviders(stats) {
  const tbody = document.querySelector("#providers tbody");
  const rows = [];
  for (const [key, usage] of Object.entries(stats.usage_stats || {})) {
    const slash = key.indexOf("/");
    const type = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const info = ((state.providers || {})[type] || {})[name];
    const breaker = (usage.circuit_breaker || {}).state || "closed";
    const running = usage.replicas == null ? "?" : usage.replicas;
    const calls = usage.calls || 0;
    const rate = calls ? `${((100 * (usage.failures || 0)) / calls).toFixed(1)}%` : DASH;
    const fallbacks = info && info.fallback && info.fallback.length ? info.fallback.join(", ") : DASH;
    const openReason = Object.values((usage.circuit_breaker || {}).per_router_replica || {})
      .map((b) => b.open_reason).filter(Boolean)[0];
    const row = el("tr", { "data-key": key },
      el("td", { "data-col": "type" }, type),
      el("th", { scope: "row", "data-col": "name" }, name),
      el("td", { "data-col": "version", class: "num" }, `v${usage.version}`),
      el("td", { "data-col": "replicas" }, `${running} / ${target(info)}`),
      el("td", { "data-col": "health" }, badge(usage.health_status || "unknown", healthKind(usage.health_status))),
      el("td", { "data-col": "breaker", title: openReason || null }, badge(breaker.replace("_", "-"), breakerKind(breaker))),
      el("td", { "data-col": "fallbacks" }, fallbacks),
      el("td", { "data-col": "calls", class: "num" }, fmtInt(calls)),
      el("td", { "data-col": "error_rate", class: "num" }, rate),
      el("td", { "data-col": "p50", class: "num" }, fmtMs(usage.latency_ms && usage.latency_ms.p50)),
      el("td", { "data-col": "p99", class: "num" }, fmtMs(usage.latency_ms && usage.latency_ms.p99)),
      el("td", { "data-col": "history" }, sparkline(key)));
    const seen = state.versions.get(key);
    if (seen !== undefined && seen !== usage.version) row.classList.add("changed");
    state.versions.set(key, usage.version);
    rows.push(row);
  }
  tbody.replaceChildren(...rows);
}

function eventDetail(event) {
  const parts = [];
  if (event.kind === "rolled_back" || event.kind === "rollback_failed") {
    parts.push(event.automatic ? "automatic" : "manual");
  }
  if (event.kind === "health_changed") parts.push(`${event.previous_status} \u2192 ${event.status}`);
  if (event.detail) parts.push(event.detail);
  return parts.join(": ");
}

function renderEvents(events) {
  const tbody = document.querySelector("#events tbody");
  if (events.length === 0) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 6 }, "No events yet.")));
    return;
  }
  tbody.replaceChildren(...events.map((event) => el("tr", { "data-kind": event.kind, "data-provider": event.provider },
    el("td", {}, el("time", { datetime: new Date(event.at * 1000).toISOString() }, fmtTime(event.at))),
    el("td", { "data-col": "kind" }, EVENT_LABELS[event.kind] || event.kind),
    el("td", { "data-col": "provider" }, event.provider || DASH),
    el("td", { "data-col": "version", class: "num" }, event.version == null ? DASH : `v${event.version}`),
    el("td", { "data-col": "detail", class: "detail" }, eventDetail(event) || DASH),
    el("td", { "data-col": "replica" }, String(event.replica || "").slice(0, 8)))));
}

function space(s) {
  if (!s) return "nothing recorded";
  return `${s.model ?? "?"} (${s.dimension ?? "?"}-d, ${s.provider ?? "?"})`;
}

function renderStores() {
  const tbody = document.querySelector("#stores tbody");
  if (state.stores.length === 0) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 6 }, "No vector stores.")));
    return;
  }
  tbody.replaceChildren(...state.stores.map((s) => (s.error
    ? el("tr", { "data-store": s.name }, el("th", { scope: "row" }, s.name),
      el("td", { colspan: 5 }, badge(`unavailable: ${s.error}`, "bad")))
    : el("tr", { "data-store": s.name },
      el("th", { scope: "row" }, s.name),
      el("td", { class: "num", "data-col": "count" }, fmtInt(s.count)),
      el("td", {}, s.embedder || DASH),
      el("td", {}, space(s.embedding_space)),
      el("td", {}, s.embedder_space ? space(s.embedder_space) : DASH),
      el("td", { "data-col": "space_mismatch" },
        s.space_mismatch ? badge("yes: re-embed", "bad") : badge("no", "ok"))))));
}

function renderCache(cache) {
  const set = (field, text) => {
    document.querySelector(`#cache [data-field="${field}"]`).textContent = text;
  };
  set("hit_ratio", cache.enabled === false ? "cache off"
    : cache.hit_ratio == null ? "no lookups yet" : `${(100 * cache.hit_ratio).toFixed(1)}%`);
  set("hits", fmtInt(cache.hits));
  set("misses", fmtInt(cache.misses));
  set("errors", fmtInt(cache.errors));
}

refresh();
