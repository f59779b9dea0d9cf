// botfleet dashboard: plain JavaScript over the control API (/api/v1) and its live
// feed (Server-Sent Events read with fetch so the bearer token travels in a header).
// Every value from the API is written with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "botfleet.token";
const INTERVAL_MS = { "1s": 1e3, "1m": 6e4, "3m": 18e4, "5m": 3e5, "15m": 9e5, "30m": 18e5, "1h": 36e5,
  "2h": 72e5, "4h": 144e5, "6h": 216e5, "8h": 288e5, "12h": 432e5, "1d": 864e5, "3d": 2592e5, "1w": 6048e5, "1M": 2592e6 };

const state = { token: null, bots: [], selected: null, strategies: [], chart: null, series: null,
  candles: [], feedAbort: null, refreshTimer: null, equityChart: null, equitySeries: null };

const $ = (sel) => document.querySelector(sel);
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

// --- token ---------------------------------------------------------------------------
function takeToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function showLogin() {
  $("#login").hidden = false;
  $("#app").hidden = true;
  if (state.feedAbort) state.feedAbort.abort();
}

// --- API -----------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
  }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined });
  if (response.status === 401) { showLogin(); throw new ApiError(401, { detail: "token refused" }); }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function showError(message) {
  const banner = $("#error-banner");
  banner.textContent = message || "";
  banner.hidden = !message;
}

// --- formatting ----------------------------------------------------------------------
function num(value, digits = 2) {
  const n = Number(value);
  if (value === undefined || value === null || value === "" || Number.isNaN(n)) return "–";
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
function signed(cell, value) {
  cell.textContent = num(value);
  const n = Number(value);
  if (n > 0) cell.className = "pos"; else if (n < 0) cell.className = "neg";
}
function winRate(stats) {
  if (stats.win_rate !== undefined && stats.win_rate !== "") {
    const n = Number(stats.win_rate);
    return Number.isNaN(n) ? stats.win_rate : `${num(n <= 1 ? n * 100 : n, 1)}%`;
  }
  const wins = Number(stats.wins || 0), losses = Number(stats.losses || 0);
  return wins + losses ? `${num((100 * wins) / (wins + losses), 1)}%` : "–";
}

// --- halt, summary, health -----------------------------------------------------------
async function refreshRisk() {
  const risk = await api("/api/v1/risk");
  const banner = $("#halt-banner");
  banner.hidden = !risk.halted;
  banner.textContent = risk.halted ? `TRADING HALTED: ${risk.halt_reason} (exits still allowed)` : "";
  $("#halt-btn").hidden = risk.halted;
  $("#resume-btn").hidden = !risk.halted;
}

async function refreshSummary() {
  const s = await api("/api/v1/bots/summary");
  const box = $("#summary");
  box.replaceChildren();
  const items = [["Bots", s.bots], ["Running", s.by_status.running || 0], ["Open positions", s.open_positions],
    ["Exposure", num(s.exposure)], ["Equity", num(s.equity)], ["Total PnL", num(s.total_pnl)],
    ["Realized", num(s.realized_pnl)], ["Unrealized", num(s.unrealized_pnl)], ["Fees", num(s.fees, 4)], ["Trades", s.trades]];
  for (const [k, v] of items) {
    const card = el("div", null, "card");
    card.append(el("div", k, "k"), el("div", v, "v"));
    box.append(card);
  }
}

async function refreshHealth() {
  const h = await api("/api/v1/bots/health");
  const body = $("#health tbody");
  body.replaceChildren();
  for (const [service, instances] of Object.entries(h.services)) {
    for (const i of instances) {
      const tr = el("tr");
      const figures = Object.entries(i.figures).map(([k, v]) => `${k}=${v}`).join("  ");
      tr.append(el("td", service), el("td", i.instance), el("td", i.alive ? "alive" : "dead", i.alive ? "alive" : "dead"),
        el("td", `${Math.round(i.age_ms / 100) / 10}s`), el("td", figures, "muted"));
      body.append(tr);
    }
  }
  const redis = el("tr");
  redis.append(el("td", "redis"), el("td", ""), el("td", "alive", "alive"), el("td", `${h.redis.ping_ms} ms`), el("td", ""));
  body.prepend(redis);
  for (const missing of h.missing) {
    const tr = el("tr");
    tr.append(el("td", missing), el("td", "–"), el("td", "no live instance", "dead"), el("td", ""), el("td", ""));
    body.append(tr);
  }
  const stale = Object.keys(h.stale_symbols);
  const staleBots = h.stale_bots.map((b) => `${b.id}: ${b.symbols.join(",")} ${b.reason}`);
  $("#stale").textContent = stale.length || staleBots.length
    ? `Stale market data: ${stale.join(", ") || "–"}. ${staleBots.join("; ")}` : "Market data fresh.";
}

// --- bots table ----------------------------------------------------------------------
async function refreshBots() {
  const page = await api("/api/v1/bots?limit=1000");
  state.bots = page.items;
  const body = $("#bots tbody");
  body.replaceChildren();
  for (const bot of state.bots) {
    const tr = el("tr");
    tr.dataset.id = bot.id;
    if (state.selected === bot.id) tr.classList.add("selected");
    const pnl = el("td");
    signed(pnl, bot.stats.total_pnl ?? bot.stats.realized_pnl);
    const status = el("td", bot.status + (bot.stale.length ? " (stale)" : ""), `status-${bot.status}`);
    if (bot.status_reason || bot.error) status.title = bot.error || bot.status_reason;
    const qty = Number(bot.position.qty || 0);
    const actions = el("td");
    const start = el("button", "Start"); start.dataset.action = "start";
    const stop = el("button", "Stop"); stop.dataset.action = "stop";
    const remove = el("button", "Remove"); remove.dataset.action = "remove";
    actions.append(start, " ", stop, " ", remove);
    tr.append(el("td", bot.name), el("td", bot.symbol), el("td", `${bot.strategy} ${bot.interval}`), status,
      el("td", qty ? num(qty, 8) : "flat"), pnl, el("td", winRate(bot.stats)), actions);
    body.append(tr);
  }
  if (state.selected) await refreshDetail();
}

async function botAction(id, action) {
  try {
    if (action === "remove") {
      if (!confirm("Remove this bot?")) return;
      await api(`/api/v1/bots/${id}`, { method: "DELETE" });
      if (state.selected === id) { state.selected = null; $("#detail").hidden = true; }
    } else {
      await api(`/api/v1/bots/${id}/${action}`, { method: "POST" });
    }
    showError("");
  } catch (err) {
    showError(`${action} failed: ${err.message}`);
  }
  await refreshBots().catch(() => {});
}

// --- detail: chart and decision log ----------------------------------------------------
function ensureChart() {
  if (state.chart || !window.LightweightCharts) return;
  state.chart = LightweightCharts.createChart($("#chart"), {
    layout: { background: { color: "#171d24" }, textColor: "#d8dee6" },
    grid: { vertLines: { color: "#25303b" }, horzLines: { color: "#25303b" } },
    timeScale: { timeVisible: true, secondsVisible: true },
    autoSize: true,
  });
  state.series = state.chart.addCandlestickSeries();
}

async function refreshDetail() {
  const bot = state.bots.find((b) => b.id === state.selected);
  if (!bot) return;
  $("#detail").hidden = false;
  $("#detail-title").textContent = `${bot.name} · ${bot.symbol} ${bot.interval} · ${bot.strategy}`;
  $("#detail-status").textContent = `status ${bot.status}${bot.status_reason ? ` (${bot.status_reason})` : ""}` +
    `${bot.error ? ` · error: ${bot.error}` : ""}${bot.stale.length ? ` · stale: ${bot.stale.join(",")}` : ""}` +
    ` · owner ${bot.owner || "–"}`;
  if (!window.LightweightCharts) {
    $("#chart-note").textContent = "Chart library missing: run deploy/build-dashboard.sh";
  } else {
    ensureChart();
    const [candles, executions] = await Promise.all([
      api(`/api/v1/market/${bot.symbol}/candles?interval=${encodeURIComponent(bot.interval)}&limit=500`),
      api(`/api/v1/bots/${bot.id}/executions?limit=200`),
    ]);
    state.candles = candles.map((c) => ({ time: Math.floor(c.open_time / 1000), open: +c.open, high: +c.high, low: +c.low, close: +c.close }));
    state.series.setData(state.candles);
    setMarkers(bot, executions);
  }
  await refreshHistory(bot).catch((e) => { $("#ledger-note").textContent = `ledger: ${e.message}`; });
  const log = await api(`/api/v1/bots/${bot.id}/log?limit=25`);
  const body = $("#decisions tbody");
  body.replaceChildren();
  for (const entry of log) {
    const ms = Number(entry.id.split("-")[0]);
    const text = Object.entries(entry.fields).filter(([k]) => k !== "type" && k !== "v")
      .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
    const tr = el("tr");
    tr.append(el("td", new Date(ms).toLocaleTimeString()), el("td", text));
    body.append(tr);
  }
}

// --- detail: the ledger's history (trade list and equity curve) ------------------------
async function refreshHistory(bot) {
  const [trades, equity] = await Promise.all([
    api(`/api/v1/trades?bot_id=${encodeURIComponent(bot.id)}&limit=50`),
    api(`/api/v1/equity?bot_id=${encodeURIComponent(bot.id)}`),
  ]);
  const body = $("#ledger-trades tbody");
  body.replaceChildren();
  for (const t of trades.items) {
    const tr = el("tr");
    tr.append(el("td", new Date(t.ts).toLocaleString()), el("td", t.side, t.side === "BUY" ? "pos" : "neg"),
      el("td", t.qty), el("td", t.price), el("td", `${t.commission} ${t.commission_asset}`), el("td", t.trade_id || "–"));
    body.append(tr);
  }
  $("#ledger-note").textContent = trades.items.length
    ? `${trades.items.length} most recent fills${trades.next_cursor ? " (more: botfleet trades --csv)" : ""}`
    : "No fills recorded yet.";
  $("#ledger-trades").dataset.rows = String(trades.items.length);
  if (!window.LightweightCharts) return;
  if (!state.equityChart) {
    state.equityChart = LightweightCharts.createChart($("#equity-chart"), {
      layout: { background: { color: "#171d24" }, textColor: "#d8dee6" },
      grid: { vertLines: { color: "#25303b" }, horzLines: { color: "#25303b" } },
      autoSize: true,
    });
    state.equitySeries = state.equityChart.addLineSeries({ color: "#26a69a" });
  }
  state.equitySeries.setData(equity.map((p) => ({ time: p.day, value: Number(p.equity) })));
  $("#equity-note").textContent = equity.length ? `${equity.length} days` : "No equity snapshot yet.";
}

function setMarkers(bot, executions) {
  const step = (INTERVAL_MS[bot.interval] || 6e4) / 1000;
  const first = state.candles.length ? state.candles[0].time : 0;
  const last = state.candles.length ? state.candles[state.candles.length - 1].time : 0;
  const markers = [];
  for (const { report } of executions) {
    if (Number(report.executed_qty) <= 0) continue;
    // The intent id is bot:trigger:action; a numeric trigger is the candle's open time
    // (exchange time), which places the marker on the right bar even when the
    // exchange's clock is not ours (the simulator runs faster than real time).
    const trigger = Number(String(report.intent_id || "").split(":")[1]);
    const ts = Math.floor((Number.isFinite(trigger) && trigger > 1e12 ? trigger : report.ts || 0) / 1000);
    const time = Math.min(Math.max(ts - (ts % step), first), last);
    const buy = report.side === "BUY";
    markers.push({ time, position: buy ? "belowBar" : "aboveBar", color: buy ? "#26a69a" : "#ef5350",
      shape: buy ? "arrowUp" : "arrowDown", text: `${buy ? "entry" : "exit"} ${num(report.avg_price, 6)}` });
  }
  markers.sort((a, b) => a.time - b.time);
  state.series.setMarkers(markers);
  $("#chart-note").textContent = `${markers.length} fills marked · ${state.candles.length} candles`;
  $("#chart").dataset.markers = String(markers.length);
}

// --- create form -----------------------------------------------------------------------
async function loadForm() {
  const [strategies, symbols, configSchema] = await Promise.all([
    api("/api/v1/strategies"), api("/api/v1/market/symbols"), api("/api/v1/strategies/bot-config-schema")]);
  state.strategies = strategies;
  const strategySelect = $("#create-form [name=strategy]");
  strategySelect.replaceChildren(...strategies.map((s) => { const o = el("option", `${s.title} (${s.name})`); o.value = s.name; return o; }));
  const symbolSelect = $("#create-form [name=symbol]");
  symbolSelect.replaceChildren(...symbols.filter((s) => s.status === "TRADING").map((s) => { const o = el("option", s.symbol); o.value = s.symbol; return o; }));
  const intervals = (configSchema.properties.interval && configSchema.properties.interval.enum) || Object.keys(INTERVAL_MS);
  const intervalSelect = $("#create-form [name=interval]");
  intervalSelect.replaceChildren(...intervals.map((i) => { const o = el("option", i); o.value = i; return o; }));
  intervalSelect.value = intervals.includes("1m") ? "1m" : intervals[0];
  renderParams();
}

function renderParams() {
  const name = $("#create-form [name=strategy]").value;
  const strategy = state.strategies.find((s) => s.name === name);
  const box = $("#params");
  box.replaceChildren(el("legend", "Strategy parameters"));
  if (!strategy) return;
  for (const [key, prop] of Object.entries(strategy.params_schema.properties || {})) {
    const label = el("label", prop.title || key);
    let input;
    if (prop.type === "boolean") {
      input = el("select");
      for (const v of ["true", "false"]) { const o = el("option", v); o.value = v; input.append(o); }
      input.value = String(prop.default ?? true);
    } else {
      input = el("input");
      input.type = prop.type === "integer" || prop.type === "number" ? "number" : "text";
      if (prop.type === "number") input.step = "any";
      for (const [bound, attr] of [["minimum", "min"], ["maximum", "max"]]) if (prop[bound] !== undefined) input[attr] = prop[bound];
      if (prop.default !== undefined) input.value = prop.default;
    }
    input.name = `param:${key}`;
    input.dataset.kind = prop.type;
    if (prop.description) label.title = prop.description;
    label.append(input);
    box.append(label);
  }
}

function formBody(form) {
  const data = new FormData(form);
  const body = { name: data.get("name"), symbol: data.get("symbol"), interval: data.get("interval"),
    strategy: data.get("strategy"), quote_allocation: data.get("quote_allocation"), params: {} };
  for (const key of ["stop_loss_pct", "take_profit_pct", "trailing_stop_pct"]) if (data.get(key)) body[key] = data.get(key);
  const mode = data.get("sizing_mode"), value = data.get("sizing_value");
  body.sizing = { mode, ...(mode === "fixed_quote" ? { quote_amount: value } : mode === "risk" ? { risk_pct: value } : { percent: value }) };
  for (const input of form.querySelectorAll("[name^='param:']")) {
    const key = input.name.slice(6);
    if (input.value === "") continue;
    const kind = input.dataset.kind;
    body.params[key] = kind === "boolean" ? input.value === "true" : kind === "integer" ? parseInt(input.value, 10)
      : kind === "number" ? Number(input.value) : input.value;
  }
  return body;
}

async function submitCreate(event) {
  event.preventDefault();
  const form = event.target;
  $("#create-error").textContent = "";
  try {
    const bot = await api("/api/v1/bots", { method: "POST", body: formBody(form) });
    state.selected = bot.id;
    form.querySelector("[name=name]").value = "";
    await refreshBots();
  } catch (err) {
    $("#create-error").textContent = err.field ? `${err.field}: ${err.message}` : err.message;
  }
}

// --- live feed -------------------------------------------------------------------------
let refreshQueued = false;
function queueRefresh() {
  if (refreshQueued) return;
  refreshQueued = true;
  setTimeout(async () => { refreshQueued = false; await refreshAll().catch(() => {}); }, 250);
}

function onFeed(kind, data) {
  if (kind === "execution" || kind === "event") {
    queueRefresh();
  } else if (kind === "candle" && state.series) {
    const bot = state.bots.find((b) => b.id === state.selected);
    if (bot && bot.symbol === data.symbol && bot.interval === data.interval) {
      state.series.update({ time: Math.floor(data.open_time / 1000), open: +data.open, high: +data.high, low: +data.low, close: +data.close });
    }
  } else if (kind === "price") {
    $("#feed-state").textContent = `feed: live · ${data.symbol} ${data.price}`;
  }
}

async function runFeed() {
  let delay = 500;
  for (;;) {
    const controller = new AbortController();
    state.feedAbort = controller;
    try {
      const response = await fetch("/api/v1/feed", { headers: { Authorization: `Bearer ${state.token}` }, signal: controller.signal });
      if (response.status === 401) { showLogin(); return; }
      if (!response.ok || !response.body) throw new Error(`feed HTTP ${response.status}`);
      $("#feed-state").textContent = "feed: live";
      delay = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let kind = "message"; const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (data.length) { try { onFeed(kind, JSON.parse(data.join("\n"))); } catch (e) { /* a bad message is skipped */ } }
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
    }
    $("#feed-state").textContent = "feed: reconnecting";
    await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random() / 2)));
    delay = Math.min(delay * 2, 10000);
  }
}

// --- start ----------------------------------------------------------------------------
async function refreshAll() {
  try {
    await Promise.all([refreshRisk(), refreshSummary(), refreshBots(), refreshHealth()]);
    if (!$("#error-banner").textContent.startsWith("start") && !$("#error-banner").textContent.startsWith("stop")) showError("");
  } catch (err) {
    if (err.status !== 401) showError(`API: ${err.message}`);
  }
}

async function boot() {
  state.token = takeToken();
  $("#login").hidden = true;
  $("#app").hidden = false;
  try {
    await loadForm();
  } catch (err) {
    if (err.status === 401) return;
    showError(`API: ${err.message}`);
  }
  await refreshAll();
  if (state.refreshTimer) clearInterval(state.refreshTimer);
  state.refreshTimer = setInterval(() => refreshAll(), 5000);
  runFeed();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
    boot();
  });
  $("#create-form").addEventListener("submit", submitCreate);
  $("#create-form [name=strategy]").addEventListener("change", renderParams);
  $("#bots tbody").addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    if (!row) return;
    const action = event.target.dataset && event.target.dataset.action;
    if (action) { botAction(row.dataset.id, action); return; }
    state.selected = row.dataset.id;
    refreshBots().catch(() => {});
  });
  $("#halt-btn").addEventListener("click", async () => {
    const reason = prompt("Why halt trading? (new entries stop fleet-wide; exits continue)", "halted by an operator");
    if (!reason) return;
    await api("/api/v1/risk/halt", { method: "POST", body: { reason } }).catch((e) => showError(e.message));
    refreshAll();
  });
  $("#resume-btn").addEventListener("click", async () => {
    await api("/api/v1/risk/resume", { method: "POST" }).catch((e) => showError(e.message));
    refreshAll();
  });
  boot();
});
