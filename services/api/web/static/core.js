// What every page of the dashboard shares: the token, API calls and their errors, DOM
// helpers, number and time formatting (to the asset's precision, in exchange time),
// sortable filterable tables and the chart defaults. Every value from the API is
// written with textContent, never parsed as HTML.

export const TOKEN_KEY = "botfleet.token";
export const INTERVAL_MS = { "1s": 1e3, "1m": 6e4, "3m": 18e4, "5m": 3e5, "15m": 9e5, "30m": 18e5, "1h": 36e5,
  "2h": 72e5, "4h": 144e5, "6h": 216e5, "8h": 288e5, "12h": 432e5, "1d": 864e5, "3d": 2592e5, "1w": 6048e5, "1M": 2592e6 };

// Shared state: the token, the symbols' rules (precision), the strategies, the clock.
export const state = { token: null, symbols: {}, strategies: [], clock: null, onUnauthorized: null };

export const $ = (sel, root = document) => root.querySelector(sel);
export function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
export function button(text, action, cls) {
  const b = el("button", text, cls);
  b.type = "button";
  if (action) b.dataset.action = action;
  return b;
}

// --- API ---------------------------------------------------------------------------
export class ApiError extends Error {
  constructor(status, body) {
    const items = (body && Array.isArray(body.errors)) ? body.errors : [];
    const reasons = items.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; ");
    super(reasons || (body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
    this.items = items;
  }
}

function headers(extra) {
  const h = { ...(extra || {}) };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}

export async function api(path, options = {}) {
  const h = headers(options.headers);
  if (options.body !== undefined) h["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers: h,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined });
  if (response.status === 401) {
    if (state.onUnauthorized) state.onUnauthorized("The API refused this token (401). Enter the right one.");
    throw new ApiError(401, { detail: "token refused" });
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// A CSV answer saved as a file (the bearer header cannot ride on a plain link).
export async function download(path, filename) {
  const response = await fetch(path, { headers: headers() });
  if (response.status === 401) {
    if (state.onUnauthorized) state.onUnauthorized("The API refused this token (401). Enter the right one.");
    throw new ApiError(401, { detail: "token refused" });
  }
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const url = URL.createObjectURL(await response.blob());
  const a = el("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function showError(message) {
  const banner = $("#error-banner");
  banner.textContent = message || "";
  banner.hidden = !message;
}

// Marks the form's inputs named in the API's {field, message} items; the rest goes in `box`.
export function showFormErrors(form, box, err) {
  for (const node of form.querySelectorAll(".field-error")) node.remove();
  for (const node of form.querySelectorAll(".invalid")) node.classList.remove("invalid");
  box.textContent = "";
  if (!err) return;
  const left = [];
  for (const item of err.items.length ? err.items : [{ field: err.field, message: err.message }]) {
    const name = String(item.field || "").replace(/^params\./, "param:").replace(/^sizing\..*/, "sizing_value");
    const input = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
    if (input) {
      input.classList.add("invalid");
      input.closest("label").append(el("span", item.message, "field-error"));
    }
    left.push(item.field ? `${item.field}: ${item.message}` : item.message);
  }
  box.textContent = left.join("; ") || err.message;
}

// --- formatting ------------------------------------------------------------------------
export function decimalsOf(step) {
  const text = String(step || "");
  if (!text.includes(".")) return 0;
  const frac = text.split(".")[1].replace(/0+$/, "");
  return frac.length;
}
export function rulesOf(symbol) { return state.symbols[symbol] || null; }
// Digits of a price (the tick) and of a quantity (the step); a symbol without that
// filter shows what its asset's precision allows.
export function priceDigits(symbol) {
  const r = rulesOf(symbol);
  if (!r) return 2;
  return Number(r.tick_size) > 0 ? decimalsOf(r.tick_size) : (r.quote_precision ?? 8);
}
export function qtyDigits(symbol) {
  const r = rulesOf(symbol);
  if (!r) return 8;
  return Number(r.step_size) > 0 ? decimalsOf(r.step_size) : (r.base_precision ?? 8);
}
export function quoteAsset(symbol) { const r = rulesOf(symbol); return r ? r.quote_asset : ""; }

export function num(value, digits = 2) {
  const n = Number(value);
  if (value === undefined || value === null || value === "" || Number.isNaN(n)) return "–";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
export function signedCell(value, digits = 2) {
  const td = el("td", num(value, digits), "num");
  const n = Number(value);
  if (n > 0) td.classList.add("pos"); else if (n < 0) td.classList.add("neg");
  td.dataset.sort = String(Number.isNaN(n) ? "" : n);
  return td;
}
export function numCell(value, digits = 2) {
  const td = el("td", num(value, digits), "num");
  td.dataset.sort = String(Number(value));
  return td;
}
const pad = (n) => String(n).padStart(2, "0");
// Times are shown in UTC, the exchange's time zone.
export function fmtTime(ms, withDate = true) {
  if (!ms) return "–";
  const d = new Date(Number(ms));
  const t = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return withDate ? `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${t}` : t;
}
export function timeCell(ms) {
  const td = el("td", fmtTime(ms), "time");
  td.dataset.sort = String(Number(ms) || 0);
  return td;
}
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

// Exchange time of a moment stamped with this machine's clock (the simulator's clock
// runs faster than ours; against Binance this is the clock offset).
export async function loadClock() {
  state.clock = await api("/api/v1/market/clock");
  return state.clock;
}
export function exchangeTime(localMs) {
  const c = state.clock;
  if (!c) return Number(localMs);
  return c.exchange_ms + Math.round((Number(localMs) - c.local_ms) * c.rate);
}

// --- tables ------------------------------------------------------------------------------
// A table whose headers sort (click again to reverse) and whose rows a text box filters.
// Cells may carry data-sort (a number); otherwise their text is compared.
export function makeSortable(table, filterInput) {
  const head = table.tHead;
  head.addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th || th.dataset.nosort !== undefined) return;
    const index = [...th.parentNode.children].indexOf(th);
    const dir = th.dataset.dir === "asc" ? "desc" : "asc";
    for (const other of head.querySelectorAll("th")) delete other.dataset.dir;
    th.dataset.dir = dir;
    table.dataset.sortCol = String(index);
    table.dataset.sortDir = dir;
    sortRows(table);
  });
  if (filterInput) filterInput.addEventListener("input", () => filterRows(table, filterInput.value));
  table._filter = filterInput;
}
export function sortRows(table) {
  if (table.dataset.sortCol === undefined) return;
  const index = Number(table.dataset.sortCol), sign = table.dataset.sortDir === "desc" ? -1 : 1;
  const body = table.tBodies[0];
  const key = (tr) => {
    const td = tr.children[index];
    if (!td) return "";
    return td.dataset.sort !== undefined && td.dataset.sort !== "" && !Number.isNaN(Number(td.dataset.sort))
      ? Number(td.dataset.sort) : td.textContent.toLowerCase();
  };
  const rows = [...body.rows];
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * sign; });
  body.append(...rows);
}
export function filterRows(table, text) {
  const needle = String(text || "").trim().toLowerCase();
  let shown = 0;
  for (const tr of table.tBodies[0].rows) {
    const hide = needle && !tr.textContent.toLowerCase().includes(needle);
    tr.hidden = Boolean(hide);
    if (!hide) shown += 1;
  }
  table.dataset.shown = String(shown);
}
// After the rows were rebuilt: keep the user's sort and filter.
export function refreshTable(table) {
  sortRows(table);
  filterRows(table, table._filter ? table._filter.value : "");
  table.dataset.rows = String(table.tBodies[0].rows.length);
}

// --- charts ----------------------------------------------------------------------------------
export const CHART_OPTIONS = {
  layout: { background: { color: "#171d24" }, textColor: "#d8dee6" },
  grid: { vertLines: { color: "#25303b" }, horzLines: { color: "#25303b" } },
  rightPriceScale: { minimumWidth: 80 },
  autoSize: true,
};
export function chartsAvailable() { return Boolean(window.LightweightCharts); }
export function createChart(container, extra = {}) {
  return window.LightweightCharts.createChart(container, { ...CHART_OPTIONS, ...extra });
}

export async function loadReference() {
  const [symbols, strategies] = await Promise.all([api("/api/v1/market/symbols"), api("/api/v1/strategies")]);
  state.symbols = Object.fromEntries(symbols.map((s) => [s.symbol, { ...s.rules, status: s.status }]));
  state.strategies = strategies;
}
