// botfleet backtest page: start a backtest job (POST /api/v1/backtests: a bot config as the
// dashboard creates one, a range, costs), follow its progress, and show its result: the
// figures, the candles with the round trips as markers, the equity curve and the trades.
// Jobs run on `botfleet backtest-worker` processes; this page only asks the API. Values
// from the API are written with textContent, never parsed as HTML.
import { $, TOKEN_KEY, api, chartsAvailable, createChart, el, fmtTime, num, showError, showFormErrors, state } from "./core.js";

const FALLBACK_SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"];
const view = { timer: null, jobId: null, chart: null, candles: null, equity: null, line: null };

// --- token (as the dashboard: ?token= once, then this tab's sessionStorage) -------------
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

function showLogin(message) {
  if (view.timer) clearTimeout(view.timer);
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  $("#login-message").textContent = message || "";
  $("#app").hidden = true;
  $("#login").hidden = false;
}
state.onUnauthorized = (message) => showLogin(message);

// --- the form ----------------------------------------------------------------------------
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

function fillSelect(select, values, chosen) {
  select.replaceChildren(...values.map((v) => { const o = el("option", v); o.value = v; return o; }));
  if (values.includes(chosen)) select.value = chosen;
}

function defaultParams(strategy) {
  const found = state.strategies.find((s) => s.name === strategy);
  const props = (found && found.params_schema && found.params_schema.properties) || {};
  const out = {};
  for (const [name, schema] of Object.entries(props)) if (schema && "default" in schema) out[name] = schema.default;
  return JSON.stringify(out);
}

function requestBody(form) {
  const f = new FormData(form);
  const text = (name) => String(f.get(name) || "").trim();
  let params;
  try { params = JSON.parse(text("params") || "{}"); } catch (exc) {
    throw { items: [{ field: "params", message: `not JSON: ${exc.message}` }], message: "params: not JSON" };
  }
  const bot = { name: text("name"), symbol: text("symbol"), interval: text("interval"), strategy: text("strategy"),
    params, quote_allocation: text("quote_allocation") };
  for (const name of ["stop_loss_pct", "take_profit_pct", "trailing_stop_pct"]) if (text(name)) bot[name] = text(name);
  const body = { bot, from: text("from"), fee: text("fee") || "0", slippage: text("slippage") || "0",
    fee_asset: text("fee_asset") };
  if (text("to")) body.to = text("to");
  return body;
}

// The API names bot fields "bot.x"; the form's inputs are named "x".
function formError(err) {
  const items = (err.items || []).map((i) => ({ ...i, field: String(i.field || "").replace(/^bot\./, "") }));
  return { items, field: String(err.field || "").replace(/^bot\./, ""), message: err.message };
}

async function submit(event) {
  event.preventDefault();
  const form = $("#bt-form");
  showFormErrors(form, $("#bt-form-errors"), null);
  try {
    const job = await api("/api/v1/backtests", { method: "POST", body: requestBody(form) });
    follow(job.id);
    loadJobs();
  } catch (err) {
    if (err.status === 401) return;
    showFormErrors(form, $("#bt-form-errors"), formError(err));
  }
}

// --- one job -------------------------------------------------------------------------------
function follow(jobId) {
  if (view.timer) clearTimeout(view.timer);
  view.jobId = jobId;
  const url = new URL(window.location.href);
  url.searchParams.set("job", jobId);
  history.replaceState(null, "", url.pathname + url.search);
  $("#bt-job").hidden = false;
  $("#bt-figures").replaceChildren();
  $("#bt-trades").tBodies[0].replaceChildren();
  $("#bt-warnings").textContent = "";
  $("#bt-chart").dataset.markers = "";
  poll();
}

async function poll() {
  const jobId = view.jobId;
  let job;
  try { job = await api(`/api/v1/backtests/${jobId}`); } catch (err) {
    if (err.status === 401) return;
    showError(`backtest ${jobId}: ${err.message}`);
    return;
  }
  if (jobId !== view.jobId) return;
  $("#bt-title").textContent = `${job.name} · ${job.symbol} ${job.interval} ${job.strategy} · ${fmtTime(job.start)} → ${fmtTime(job.end)}`;
  $("#bt-progress").value = job.progress;
  $("#bt-status").textContent = job.status === "running" ? `${job.phase || "running"} ${Math.round(job.progress * 100)}%` : job.status;
  $("#bt-status").className = `pill status-${job.status}`;
  $("#bt-state").textContent = `job ${job.status}`;
  $("#bt-error").textContent = job.error || "";
  if (job.status === "done") { await showResult(job); loadJobs(); return; }
  if (job.status === "failed") { loadJobs(); return; }
  view.timer = setTimeout(poll, 500);
}

const FIGURES = [
  ["net_pnl", "Net PnL", 2], ["net_pnl_pct", "Net PnL %", 2], ["buy_and_hold_pct", "Buy and hold %", 2],
  ["round_trips", "Round trips", 0], ["win_rate_pct", "Win rate %", 1], ["profit_factor", "Profit factor", 2],
  ["expectancy", "Expectancy", 4], ["max_drawdown_pct", "Max drawdown %", 2], ["sharpe", "Sharpe", 2],
  ["sortino", "Sortino", 2], ["exposure_pct", "Exposure %", 1], ["fees", "Fees", 2], ["candles", "Candles", 0],
];

async function showResult(job) {
  const [result, bars] = await Promise.all([
    api(`/api/v1/backtests/${job.id}/result`), api(`/api/v1/backtests/${job.id}/candles`)]);
  const cards = FIGURES.map(([key, label, digits]) => {
    const card = el("div", null, "card");
    const value = result[key];
    const v = el("div", value === null || value === undefined ? "–" : num(value, digits), "v");
    v.dataset.figure = key;
    if (["net_pnl", "net_pnl_pct"].includes(key) && Number(value)) v.classList.add(Number(value) > 0 ? "pos" : "neg");
    card.append(el("div", label, "k"), v);
    return card;
  });
  $("#bt-figures").replaceChildren(...cards);
  const rows = result.trades.map((t) => {
    const tr = el("tr");
    const pnl = el("td", num(t.pnl, 4), `num ${Number(t.pnl) >= 0 ? "pos" : "neg"}`);
    tr.append(el("td", fmtTime(t.opened_at), "time"), el("td", fmtTime(t.closed_at), "time"), el("td", t.qty, "num"),
      el("td", price(t.entry_price), "num"), el("td", price(t.exit_price), "num"), el("td", num(t.fees, 4), "num"), pnl,
      el("td", t.exit_reason, "wrap"));
    return tr;
  });
  $("#bt-trades").tBodies[0].replaceChildren(...rows);
  $("#bt-trades").dataset.rows = String(rows.length);
  $("#bt-warnings").textContent = (result.warnings || []).join(" · ");
  if (chartsAvailable()) drawCharts(job, result, bars);
}

// Fill prices carry the slippage's exact decimals; eight significant digits are read.
const price = (text) => Number(text).toPrecision(8);

function barIndexAt(bars, ms) {
  // The bar holding ms: the last whose open time is at or before it (bars are merged evenly).
  let lo = 0, hi = bars.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (bars[mid][0] <= ms) lo = mid; else hi = mid - 1;
  }
  return lo;
}

function drawCharts(job, result, bars) {
  if (!view.chart) {
    view.chart = createChart($("#bt-chart"), { timeScale: { timeVisible: true } });
    view.candles = view.chart.addCandlestickSeries({ upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
      wickUpColor: "#26a69a", wickDownColor: "#ef5350" });
    view.equity = createChart($("#bt-equity"), { timeScale: { timeVisible: true } });
    view.line = view.equity.addLineSeries({ color: "#4aa3ff", lineWidth: 2 });
  }
  const toSec = (ms) => Math.floor(ms / 1000);
  view.candles.setData(bars.map(([t, o, h, l, c]) => ({ time: toSec(t), open: o, high: h, low: l, close: c })));
  const markers = [];
  if (bars.length) {
    for (const t of result.trades) {
      markers.push({ time: toSec(bars[barIndexAt(bars, t.opened_at)][0]), position: "belowBar", color: "#26a69a",
        shape: "arrowUp", text: "buy" });
      markers.push({ time: toSec(bars[barIndexAt(bars, t.closed_at)][0]), position: "aboveBar",
        color: Number(t.pnl) >= 0 ? "#26a69a" : "#ef5350", shape: "arrowDown", text: "sell" });
    }
  }
  markers.sort((a, b) => a.time - b.time);
  view.candles.setMarkers(markers);
  $("#bt-chart").dataset.markers = String(markers.length);
  const seen = new Set();
  const points = [];
  for (const [t, equity] of result.equity_curve) {
    const time = toSec(t);
    if (seen.has(time)) continue;
    seen.add(time);
    points.push({ time, value: equity });
  }
  view.line.setData(points);
  $("#bt-equity").dataset.points = String(points.length);
  view.chart.timeScale().fitContent();
  view.equity.timeScale().fitContent();
}

// --- recent jobs ------------------------------------------------------------------------
async function loadJobs() {
  let jobs;
  try { jobs = await api("/api/v1/backtests?limit=50"); } catch (err) {
    if (err.status !== 401) showError(`backtests: ${err.message}`);
    return;
  }
  const rows = jobs.map((j) => {
    const tr = el("tr", null, "clickable");
    tr.dataset.job = j.id;
    tr.append(el("td", fmtTime(j.created_at), "time"), el("td", j.name), el("td", j.symbol), el("td", j.interval),
      el("td", j.strategy), el("td", j.status, `status-${j.status}`), el("td", `${Math.round(j.progress * 100)}%`, "num"),
      el("td", j.net_pnl_pct === null ? "–" : num(j.net_pnl_pct, 2), "num"),
      el("td", j.round_trips === null ? "–" : String(j.round_trips), "num"));
    tr.addEventListener("click", () => follow(j.id));
    return tr;
  });
  $("#bt-jobs").tBodies[0].replaceChildren(...rows);
}

// --- start --------------------------------------------------------------------------------
async function boot() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  const form = $("#bt-form");
  const [symbols, strategies] = await Promise.all([
    api("/api/v1/market/symbols").catch(() => []), api("/api/v1/strategies")]);
  state.strategies = strategies;
  const names = symbols.filter((s) => s.status === "TRADING").map((s) => s.symbol);
  fillSelect(form.symbol, names.length ? names : FALLBACK_SYMBOLS, "BTCUSDT");
  fillSelect(form.strategy, strategies.map((s) => s.name), "rsi");
  form.params.value = defaultParams(form.strategy.value);
  form.strategy.addEventListener("change", () => { form.params.value = defaultParams(form.strategy.value); });
  const now = Date.now();
  form.elements.from.value = isoDay(now - 30 * 864e5);
  form.elements.to.value = isoDay(now);
  form.addEventListener("submit", submit);
  await loadJobs();
  const jobId = new URL(window.location.href).searchParams.get("job");
  if (jobId) follow(jobId);
}

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
  state.token = sessionStorage.getItem(TOKEN_KEY);
  boot().catch((err) => showError(err.message));
});

state.token = takeToken();
if (state.token) boot().catch((err) => showError(err.message)); else showLogin("");
