// One bot (#/bots/{id}): its status and actions, its settings edited in place (PATCH,
// while stopped), its candles with volume, entries and exits, the stop-loss, take-profit
// and entry lines of an open position and its strategy's indicators (over the price or in
// a pane below), its round trips with their exit reasons, its decisions (exchange time,
// prices to the symbol's tick, holds hidden unless asked for) and its daily equity.
import {
  $, INTERVAL_MS, api, chartsAvailable, createChart, duration, el, exchangeTime, makeSortable, num,
  numCell, priceDigits, qtyDigits, quoteAsset, refreshTable, showFormErrors, signedCell, timeCell,
} from "../core.js";
import { indicatorsFor } from "../indicators.js";
import { actionButtons, botAction, readParams, renderParams } from "./bots.js";

const view = { id: null, bot: null, chart: null, candles: null, volume: null, overlays: [], pane: null,
  paneLines: [], priceLines: [], candleData: [], equity: null, equitySeries: null, log: [], executions: [] };

export function init() {
  makeSortable($("#round-trips"));
  makeSortable($("#decisions"), $("#decisions-filter"));
  $("#show-holds").addEventListener("change", () => renderDecisions());
  $("#bot-actions").addEventListener("click", async (event) => {
    const action = event.target.dataset && event.target.dataset.action;
    if (!action || !view.bot) return;
    if (action === "edit") { openEditor(); return; }
    if (await botAction(view.bot, action)) {
      if (action === "remove") { window.location.hash = "#/bots"; return; }
      await refresh({ id: view.id });
    }
  });
  $("#edit-form").addEventListener("submit", submitEdit);
  $("#edit-cancel").addEventListener("click", () => { $("#edit-form").hidden = true; });
}

export async function enter(params) {
  if (view.id !== params.id) {
    resetCharts();
    view.id = params.id;
    $("#edit-form").hidden = true;
    $("#show-holds").checked = false;
    for (const id of ["#bot-title", "#bot-reason", "#chart-note", "#round-trips-note", "#decisions-note", "#equity-note"]) $(id).textContent = "";
    for (const id of ["#round-trips", "#decisions"]) $(`${id} tbody`).replaceChildren();
  }
  await refresh(params, true);
}

export function leave() {}

export async function refresh(params, first = false) {
  const bot = await api(`/api/v1/bots/${encodeURIComponent(params.id)}`);
  view.bot = bot;
  header(bot);
  const [executions, log] = await Promise.all([
    api(`/api/v1/bots/${bot.id}/executions?limit=500`),
    api(`/api/v1/bots/${bot.id}/log?limit=1000`),
  ]);
  view.executions = executions;
  view.log = log;
  await Promise.all([chart(bot, first), roundTrips(bot), equity(bot)]);
  renderDecisions();
}

export function onFeed(kind, data) {
  const bot = view.bot;
  if (kind !== "candle" || !bot || !view.candles || bot.symbol !== data.symbol || bot.interval !== data.interval) return;
  const time = Math.floor(data.open_time / 1000);
  view.candles.update({ time, open: +data.open, high: +data.high, low: +data.low, close: +data.close });
  view.volume.update({ time, value: +data.volume, color: +data.close >= +data.open ? "#26a69a55" : "#ef535055" });
}

// --- header, cards, actions -------------------------------------------------------------------
function header(bot) {
  $("#bot-title").textContent = `${bot.name} · ${bot.symbol} ${bot.interval} · ${bot.strategy}`;
  const status = $("#bot-status");
  status.textContent = bot.status + (bot.stale.length ? " (stale data)" : "");
  status.className = `pill status-${bot.status}`;
  $("#bot-reason").textContent = [bot.status_reason, bot.error && `error: ${bot.error}`,
    bot.stale.length && `stale: ${bot.stale.join(",")}`, `runner: ${bot.owner || "–"}`].filter(Boolean).join(" · ");
  $("#bot-actions").replaceChildren(actionButtons(bot, true));
  const q = quoteAsset(bot.symbol), pd = priceDigits(bot.symbol), p = bot.position, s = bot.stats;
  const qty = Number(p.qty || 0);
  const items = [["Allocation", `${num(bot.config.quote_allocation)} ${q}`], ["Equity", `${num(s.equity)} ${q}`],
    ["PnL", num(s.total_pnl ?? s.realized_pnl)], ["Realized", num(s.realized_pnl)], ["Fees", num(s.fees)],
    ["Trades", s.trades || 0], ["Win rate", Number(s.wins || 0) + Number(s.losses || 0)
      ? `${num((100 * Number(s.wins || 0)) / (Number(s.wins || 0) + Number(s.losses || 0)), 1)}%` : "–"],
    ["Max drawdown", s.max_drawdown_pct ? `${num(s.max_drawdown_pct)}%` : "–"]];
  if (qty > 0) {
    items.unshift(["Position", `${num(qty, qtyDigits(bot.symbol))} ${bot.symbol.replace(q, "")}`],
      ["Entry", num(p.entry_price, pd)], ["Stop-loss", p.stop_price ? num(p.stop_price, pd) : "–"],
      ["Take-profit", p.take_profit_price ? num(p.take_profit_price, pd) : "–"], ["Unrealized", num(s.unrealized_pnl)],
      ["In position", p.opened_at ? duration(exchangeTime(Date.now()) - exchangeTime(p.opened_at)) : "–"]);
  } else {
    items.unshift(["Position", "flat"]);
  }
  $("#bot-cards").replaceChildren(...items.map(([k, v]) => {
    const card = el("div", null, "card");
    card.append(el("div", k, "k"), el("div", v, "v"));
    return card;
  }));
}

// --- settings (PATCH) ---------------------------------------------------------------------------
const EDITABLE = [["name", "Name", "text"], ["interval", "Interval", "interval"], ["quote_allocation", "Quote allocation", "number"],
  ["stop_loss_pct", "Stop-loss %", "number"], ["take_profit_pct", "Take-profit %", "number"],
  ["trailing_stop_pct", "Trailing stop %", "number"], ["cooldown_candles", "Cooldown (candles)", "integer"],
  ["close_on_stop", "Close position on stop", "boolean"]];

function openEditor() {
  const bot = view.bot;
  const box = $("#edit-fields");
  box.replaceChildren();
  for (const [key, title, kind] of EDITABLE) {
    const label = el("label", title);
    let input;
    if (kind === "boolean" || kind === "interval") {
      input = el("select");
      const values = kind === "boolean" ? ["true", "false"] : Object.keys(INTERVAL_MS);
      for (const v of values) { const o = el("option", v); o.value = v; input.append(o); }
    } else {
      input = el("input");
      input.type = kind === "text" ? "text" : "number";
      if (kind === "number") input.step = "any";
    }
    const value = bot.config[key];
    input.value = value === null || value === undefined ? "" : String(value);
    input.name = key;
    input.dataset.kind = kind;
    label.append(input);
    box.append(label);
  }
  renderParams($("#edit-params"), bot.strategy, bot.config.params || {});
  showFormErrors($("#edit-form"), $("#edit-error"), null);
  $("#edit-form").hidden = false;
}

async function submitEdit(event) {
  event.preventDefault();
  const form = event.target, bot = view.bot, body = {};
  for (const input of $("#edit-fields").querySelectorAll("[name]")) {
    const before = bot.config[input.name];
    const kind = input.dataset.kind;
    let value = input.value;
    if (kind === "boolean") value = value === "true";
    else if (kind === "integer") value = value === "" ? null : parseInt(value, 10);
    else if (value === "") value = null;
    const same = kind === "number" ? (before === null || before === undefined ? value === null : value !== null && Number(before) === Number(value))
      : before === value || ((before === null || before === undefined) && value === null);
    if (!same) body[input.name] = value;
  }
  const params = readParams(form);
  if (JSON.stringify(params) !== JSON.stringify({ ...bot.config.params, ...params })
    || Object.keys(params).some((k) => bot.config.params[k] !== params[k])) body.params = { ...bot.config.params, ...params };
  showFormErrors(form, $("#edit-error"), null);
  if (!Object.keys(body).length) { $("#edit-error").textContent = "Nothing changed."; return; }
  try {
    await api(`/api/v1/bots/${bot.id}`, { method: "PATCH", body });
    form.hidden = true;
    await refresh({ id: bot.id });
  } catch (err) {
    if (err.status !== 401) showFormErrors(form, $("#edit-error"), err);
  }
}

// --- chart ----------------------------------------------------------------------------------------
function resetCharts() {
  if (view.chart) view.chart.remove();
  if (view.pane) view.pane.remove();
  Object.assign(view, { chart: null, candles: null, volume: null, overlays: [], pane: null, paneLines: [], priceLines: [] });
  $("#pane").hidden = true;
  $("#legend").replaceChildren();
  $("#pane-title").textContent = "";
}

function ensureChart(bot, ind) {
  if (view.chart) return;
  view.chart = createChart($("#chart"), { timeScale: { timeVisible: true, secondsVisible: bot.interval === "1s" } });
  view.candles = view.chart.addCandlestickSeries({ priceFormat: { type: "price", precision: priceDigits(bot.symbol),
    minMove: 1 / 10 ** priceDigits(bot.symbol) } });
  view.volume = view.chart.addHistogramSeries({ priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false });
  view.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
  view.overlays = ind.overlays.map((o) => view.chart.addLineSeries({ color: o.color, lineWidth: 1, title: "",
    lastValueVisible: false, priceLineVisible: false, crosshairMarkerVisible: false }));
  const legend = [el("span", "volume (bottom)", "muted"), ...ind.overlays.map((o) => { const s = el("span", o.name); s.style.color = o.color; return s; })];
  if (ind.pane) {
    $("#pane").hidden = false;
    $("#pane-title").textContent = `${ind.pane.name} (computed from the candles shown)`;
    view.pane = createChart($("#pane"), { timeScale: { timeVisible: true, visible: true } });
    view.paneLines = ind.pane.lines.map((l) => view.pane.addLineSeries({ color: l.color, lineWidth: 1, lastValueVisible: true, priceLineVisible: false }));
    for (const level of ind.pane.levels) {
      view.paneLines[0].createPriceLine({ price: Number(level), color: "#8a96a3", lineStyle: 2, lineWidth: 1, axisLabelVisible: true, title: "" });
    }
    // The pane follows the price chart's scrolling and zoom, and the other way round.
    let syncing = false;
    const follow = (from, to) => (range) => {
      if (syncing || !range) return;
      syncing = true;
      to.timeScale().setVisibleLogicalRange(range);
      syncing = false;
    };
    view.chart.timeScale().subscribeVisibleLogicalRangeChange(follow(view.chart, view.pane));
    view.pane.timeScale().subscribeVisibleLogicalRangeChange(follow(view.pane, view.chart));
  }
  $("#legend").replaceChildren(...legend.flatMap((s) => [s, " "]));
}

async function chart(bot, first) {
  if (!chartsAvailable()) { $("#chart-note").textContent = "Chart library missing: run deploy/build-dashboard.sh"; return; }
  const raw = await api(`/api/v1/market/${bot.symbol}/candles?interval=${encodeURIComponent(bot.interval)}&limit=500`);
  const candles = raw.map((c) => ({ time: Math.floor(c.open_time / 1000), open: +c.open, high: +c.high, low: +c.low, close: +c.close }));
  view.candleData = candles;
  const ind = indicatorsFor(bot.strategy, bot.config.params, candles);
  ensureChart(bot, ind);
  view.candles.setData(candles);
  view.volume.setData(raw.map((c) => ({ time: Math.floor(c.open_time / 1000), value: +c.volume,
    color: +c.close >= +c.open ? "#26a69a55" : "#ef535055" })));
  ind.overlays.forEach((o, i) => view.overlays[i] && view.overlays[i].setData(o.points));
  if (ind.pane) ind.pane.lines.forEach((l, i) => view.paneLines[i] && view.paneLines[i].setData(l.points));
  const count = markers(bot, candles);
  positionLines(bot);
  if (first && candles.length) {
    const range = { from: Math.max(0, candles.length - 120), to: candles.length + 3 };
    view.chart.timeScale().setVisibleLogicalRange(range);
  }
  $("#chart").dataset.indicators = String(ind.overlays.length + (ind.pane ? ind.pane.lines.length : 0));
  $("#chart-note").textContent = `${candles.length} candles (exchange time, UTC) · ${count} fills marked`
    + (Number(bot.position.qty || 0) > 0 ? " · lines: entry (blue), stop-loss (red), take-profit (green)" : "");
}

// What closed a position, read from the exit's intent id (bot:trigger:action).
export function exitKind(intentId) {
  const [, trigger = "", action = ""] = String(intentId || "").split(":");
  if (action.startsWith("exit-")) return { stop_loss: "stop-loss", take_profit: "take-profit", trailing_stop: "trailing stop" }[action.slice(5)] || action.slice(5);
  if (trigger.startsWith("stop")) return "close on stop";
  if (action === "sell") return "signal";
  return action;
}
const SHORT = { "stop-loss": "SL", "take-profit": "TP", "trailing stop": "TS", "close on stop": "stop", signal: "sell" };

function markers(bot, candles) {
  const step = (INTERVAL_MS[bot.interval] || 6e4) / 1000;
  const first = candles.length ? candles[0].time : 0, last = candles.length ? candles[candles.length - 1].time : 0;
  const out = [];
  for (const { report } of view.executions) {
    if (Number(report.executed_qty) <= 0) continue;
    // The trigger is the decided candle's open time or a tick's event time: exchange time.
    const trigger = String(report.intent_id || "").split(":")[1] || "";
    const at = Number(trigger.replace(/^t/, ""));
    const ms = Number.isFinite(at) && at > 1e12 ? at : exchangeTime(report.ts || 0);
    const ts = Math.floor(ms / 1000);
    if (!candles.length || ts < first - step) continue;
    const time = Math.min(Math.max(ts - (ts % step), first), last);
    const buy = report.side === "BUY";
    out.push({ time, position: buy ? "belowBar" : "aboveBar", color: buy ? "#26a69a" : "#ef5350",
      shape: buy ? "arrowUp" : "arrowDown", text: buy ? "buy" : (SHORT[exitKind(report.intent_id)] || "sell") });
  }
  out.sort((a, b) => a.time - b.time);
  view.candles.setMarkers(out);
  $("#chart").dataset.markers = String(out.length);
  return out.length;
}

function positionLines(bot) {
  for (const line of view.priceLines) view.candles.removePriceLine(line);
  view.priceLines = [];
  const p = bot.position;
  if (!(Number(p.qty || 0) > 0)) { $("#chart").dataset.lines = "0"; return; }
  const add = (price, color, title) => {
    if (price === undefined || price === null || price === "" || !Number.isFinite(Number(price))) return;
    view.priceLines.push(view.candles.createPriceLine({ price: Number(price), color, lineWidth: 1, lineStyle: 2, axisLabelVisible: true, title }));
  };
  add(p.entry_price, "#5c9ded", "entry");
  add(p.stop_price, "#ef5350", "SL");
  add(p.take_profit_price, "#26a69a", "TP");
  $("#chart").dataset.lines = String(view.priceLines.length);
}

// --- round trips ----------------------------------------------------------------------------------
async function roundTrips(bot) {
  let rows = [];
  let source = "ledger";
  try {
    rows = (await api(`/api/v1/round-trips?bot_id=${encodeURIComponent(bot.id)}&limit=200`)).items;
  } catch (err) {
    if (err.status === 401) throw err;
    rows = [];
  }
  if (!rows.length) {
    source = "runner";
    rows = (await api(`/api/v1/bots/${bot.id}/trades?limit=200`)).map((t) => ({ ...t.fields,
      opened_at: Number(t.fields.opened_at), closed_at: Number(t.fields.closed_at) }));
  }
  const sells = view.executions.filter((e) => e.report.side === "SELL" && Number(e.report.executed_qty) > 0);
  const pd = priceDigits(bot.symbol), qd = qtyDigits(bot.symbol);
  $("#round-trips tbody").replaceChildren(...rows.map((t) => {
    const tr = el("tr");
    const pctCell = signedCell(t.pnl_pct, 3);  // already in percent
    tr.append(timeCell(exchangeTime(t.opened_at)), timeCell(exchangeTime(t.closed_at)),
      el("td", duration(exchangeTime(t.closed_at) - exchangeTime(t.opened_at))), numCell(t.qty, qd), numCell(t.entry_price, pd),
      numCell(t.exit_price, pd), signedCell(t.pnl), pctCell, el("td", exitReason(t, sells)));
    return tr;
  }));
  refreshTable($("#round-trips"));
  $("#round-trips-note").textContent = rows.length ? `${rows.length} round trips (from the ${source}); times in exchange time`
    : "No closed round trip yet.";
}

function exitReason(trip, sells) {
  if (trip.exit_reason) return trip.exit_reason;
  // The sell that closed it: the execution report of the round trip's closing time.
  const closed = Number(trip.closed_at);
  let best = null;
  for (const e of sells) {
    const gap = Math.abs(Number(e.report.ts) - closed);
    if (gap <= 5000 && (!best || gap < best.gap)) best = { gap, e };
  }
  if (!best) return "–";
  const kind = exitKind(best.e.report.intent_id);
  if (kind !== "signal") return kind;
  const entry = view.log.find((l) => l.fields.kind === "exit" && Number(l.fields.ts) <= closed && closed - Number(l.fields.ts) < 60000);
  return entry ? `signal: ${entry.fields.reason}` : "signal";
}

// --- decisions --------------------------------------------------------------------------------------
const AMOUNTS = new Set(["quote", "realized", "qty", "quantity"]);

function renderDecisions() {
  const bot = view.bot;
  if (!bot) return;
  const holds = $("#show-holds").checked;
  const pd = priceDigits(bot.symbol);
  let hidden = 0;
  const rows = [];
  for (const entry of view.log) {
    const f = entry.fields;
    if (f.kind === "hold" && !holds) { hidden += 1; continue; }
    const tr = el("tr", null, `kind-${f.kind}`);
    const details = [f.reason];
    for (const [k, v] of Object.entries(f)) {
      if (["ts", "kind", "reason", "signal", "price", "type", "v"].includes(k)) continue;
      details.push(`${k}: ${AMOUNTS.has(k) ? num(v, k === "qty" || k === "quantity" ? qtyDigits(bot.symbol) : 2) : v}`);
    }
    tr.append(timeCell(exchangeTime(Number(f.ts || entry.id.split("-")[0]))), el("td", f.kind), el("td", f.signal || ""),
      f.price ? numCell(f.price, pd) : el("td", ""), el("td", details.filter(Boolean).join(" · "), "wrap"));
    rows.push(tr);
  }
  $("#decisions tbody").replaceChildren(...rows);
  refreshTable($("#decisions"));
  $("#decisions-note").textContent = `${rows.length} of the latest ${view.log.length} decisions shown`
    + (holds ? "" : ` · ${hidden} holds hidden (tick "show holds")`) + " · times in exchange time (UTC)";
}

// --- equity -------------------------------------------------------------------------------------------
async function equity(bot) {
  const points = await api(`/api/v1/equity?bot_id=${encodeURIComponent(bot.id)}`);
  $("#equity-note").textContent = points.length ? `${points.length} days` : "No equity snapshot yet.";
  if (!chartsAvailable()) return;
  if (!view.equity) {
    view.equity = createChart($("#equity-chart"));
    view.equitySeries = view.equity.addLineSeries({ color: "#26a69a" });
  }
  view.equitySeries.setData(points.map((p) => ({ time: p.day, value: Number(p.equity) })));
}
