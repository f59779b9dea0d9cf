// The fleet (#/bots): a sortable, filterable table of every bot with the actions its
// status allows (confirmed where money moves), and the form that creates a bot from the
// strategies' parameter schemas. The actions are shared with the bot's own page.
import {
  $, INTERVAL_MS, api, button, duration, el, exchangeTime, makeSortable, num, numCell, qtyDigits, priceDigits,
  refreshTable, showError, showFormErrors, signedCell, state,
} from "../core.js";

const ACTIVE = new Set(["running", "starting", "needs_attention"]);

// Which actions a bot's status allows: start a stopped bot, stop an active one, edit or
// remove one that is stopped and wanted stopped.
export function actionsFor(bot) {
  const stopped = (bot.status === "stopped" || bot.status === "error") && bot.desired !== "running";
  const out = [];
  if (stopped) out.push("start");
  if (ACTIVE.has(bot.status) || (bot.desired === "running" && bot.status !== "stopping")) out.push("stop");
  if (stopped) out.push("edit", "remove");
  return out;
}

export function actionButtons(bot, withEdit) {
  const span = el("span", null, "actions");
  for (const action of actionsFor(bot)) {
    if (action === "edit" && !withEdit) continue;
    const label = { start: "Start", stop: "Stop", remove: "Remove", edit: "Edit" }[action];
    span.append(button(label, action, action === "remove" || action === "stop" ? "danger" : ""), " ");
  }
  return span;
}

// Runs a start/stop/remove after the trader confirmed what it does to the money.
export async function botAction(bot, action) {
  const qty = Number(bot.position.qty || 0);
  if (action === "stop") {
    const closes = bot.config.close_on_stop && qty > 0;
    const what = closes ? `It sells its open position (${num(qty, qtyDigits(bot.symbol))} ${bot.symbol}) at market.`
      : "It places no new orders.";
    if (!confirm(`Stop ${bot.name}? ${what}`)) return false;
  } else if (action === "remove" && !confirm(`Remove ${bot.name}? Its config is deleted (the ledger keeps its trades).`)) {
    return false;
  }
  try {
    if (action === "remove") await api(`/api/v1/bots/${bot.id}`, { method: "DELETE" });
    else await api(`/api/v1/bots/${bot.id}/${action}`, { method: "POST" });
    showError("");
    return true;
  } catch (err) {
    if (err.status !== 401) showError(`${action} ${bot.name} failed: ${err.message}`);
    return false;
  }
}

const view = { bots: [], total: 0 };

export function init() {
  makeSortable($("#bots"), $("#bots-filter"));
  $("#bots-status").addEventListener("change", () => refresh({}, false).catch(() => {}));
  $("#bots tbody").addEventListener("click", async (event) => {
    const row = event.target.closest("tr");
    if (!row) return;
    const bot = view.bots.find((b) => b.id === row.dataset.id);
    const action = event.target.dataset && event.target.dataset.action;
    if (!bot) return;
    if (action) {
      if (await botAction(bot, action)) await refresh({}, false);
      return;
    }
    if (event.target.closest("a")) return;
    window.location.hash = `#/bots/${encodeURIComponent(bot.id)}`;
  });
  $("#create-form").addEventListener("submit", submitCreate);
  $("#create-form [name=strategy]").addEventListener("change", () => renderParams($("#params"), $("#create-form [name=strategy]").value, {}));
}

export async function enter() {
  await Promise.all([refresh({}, false), loadForm()]);
}

// The first screen comes from one small page; a large fleet's other bots follow in
// pages of 1000 (at most 10,000 in the table), and the 5 s refresh of such a fleet
// reloads it only every 30 s.
const FIRST = 200;
let generation = 0;
let ticks = 0;
export async function refresh(params, periodic = true) {
  ticks += 1;
  if (periodic && view.total > 1000 && ticks % 6 !== 0) return;
  const gen = ++generation;
  const status = $("#bots-status").value;
  const filter = status ? `&status=${encodeURIComponent(status)}` : "";
  const first = await api(`/api/v1/bots?limit=${FIRST}&offset=0${filter}`);
  if (gen !== generation) return;
  view.total = first.total;
  render(first.items, first.total);
  if (first.items.length < FIRST) return;
  const items = [...first.items];
  for (let offset = FIRST; offset < Math.min(first.total, 10000); offset += 1000) {
    const page = await api(`/api/v1/bots?limit=1000&offset=${offset}${filter}`);
    if (gen !== generation) return;
    items.push(...page.items);
    if (page.items.length < 1000) break;
  }
  render(items, first.total);
}

function render(items, total) {
  view.bots = items;
  $("#bots tbody").replaceChildren(...items.map((bot) => row(bot)));
  refreshTable($("#bots"));
  $("#bots-note").textContent = items.length
    ? `${items.length}${total > items.length ? ` of ${total}` : ""} bots` : "No bots yet: create one below.";
  if (!items.length) $("#create-box").open = true;
}

function row(bot) {
  const tr = el("tr");
  tr.dataset.id = bot.id;
  tr.classList.add("clickable");
  const name = el("td");
  const link = el("a", bot.name);
  link.href = `#/bots/${encodeURIComponent(bot.id)}`;
  name.append(link);
  const status = el("td", bot.status + (bot.stale.length ? " (stale)" : ""), `status-${bot.status}`);
  if (bot.status_reason || bot.error) status.title = bot.error || bot.status_reason;
  const qty = Number(bot.position.qty || 0);
  const opened = Number(bot.position.opened_at || 0);
  // Wall-clock stamps turned into exchange time: how long in the market's time.
  const heldMs = qty > 0 && opened ? Math.max(0, exchangeTime(Date.now()) - exchangeTime(opened)) : -1;
  const held = el("td", heldMs >= 0 ? duration(heldMs) : "–");
  held.dataset.sort = String(heldMs);
  const actions = el("td");
  actions.append(actionButtons(bot, false));
  tr.append(name, el("td", bot.symbol), el("td", `${bot.strategy} ${bot.interval}`), status,
    numCell(bot.config.quote_allocation), qty ? numCell(qty, qtyDigits(bot.symbol)) : el("td", "flat", "muted"),
    qty ? numCell(bot.position.entry_price, priceDigits(bot.symbol)) : el("td", "–", "muted"),
    signedCell(qty ? bot.stats.unrealized_pnl : 0), signedCell(bot.stats.total_pnl ?? bot.stats.realized_pnl),
    numCell(bot.stats.trades || 0, 0), winRate(bot.stats), held, actions);
  return tr;
}

function winRate(stats) {
  const wins = Number(stats.wins || 0), losses = Number(stats.losses || 0);
  const td = el("td", wins + losses ? `${num((100 * wins) / (wins + losses), 1)}%` : "–", "num");
  td.dataset.sort = String(wins + losses ? wins / (wins + losses) : -1);
  return td;
}

// --- create form -----------------------------------------------------------------------------
let formLoaded = false;
async function loadForm() {
  if (formLoaded) return;
  const configSchema = await api("/api/v1/strategies/bot-config-schema");
  const strategySelect = $("#create-form [name=strategy]");
  strategySelect.replaceChildren(...state.strategies.map((s) => { const o = el("option", `${s.name} — ${s.title}`); o.value = s.name; return o; }));
  const symbolSelect = $("#create-form [name=symbol]");
  symbolSelect.replaceChildren(...Object.entries(state.symbols).filter(([, r]) => r.status === "TRADING").map(([s]) => { const o = el("option", s); o.value = s; return o; }));
  const intervals = (configSchema.properties.interval && configSchema.properties.interval.enum) || Object.keys(INTERVAL_MS);
  const intervalSelect = $("#create-form [name=interval]");
  intervalSelect.replaceChildren(...intervals.map((i) => { const o = el("option", i); o.value = i; return o; }));
  intervalSelect.value = intervals.includes("1m") ? "1m" : intervals[0];
  renderParams($("#params"), strategySelect.value, {});
  formLoaded = true;
}

// The strategy's parameters as inputs (bounds and defaults from its JSON schema).
export function renderParams(box, strategyName, values) {
  const strategy = state.strategies.find((s) => s.name === strategyName);
  box.replaceChildren(el("legend", "Strategy parameters"));
  if (!strategy) return;
  for (const [key, prop] of Object.entries(strategy.params_schema.properties || {})) {
    const label = el("label", prop.title || key);
    let input;
    const value = values[key] ?? prop.default;
    if (prop.type === "boolean" || prop.enum) {
      input = el("select");
      for (const v of prop.enum || ["true", "false"]) { const o = el("option", v); o.value = String(v); input.append(o); }
      input.value = String(value ?? (prop.enum ? prop.enum[0] : true));
    } else {
      input = el("input");
      input.type = prop.type === "integer" || prop.type === "number" ? "number" : "text";
      if (prop.type === "number") input.step = "any";
      for (const [bound, attr] of [["minimum", "min"], ["maximum", "max"]]) if (prop[bound] !== undefined) input[attr] = prop[bound];
      if (value !== undefined && value !== null) input.value = value;
    }
    input.name = `param:${key}`;
    input.dataset.kind = prop.type;
    if (prop.description) label.title = prop.description;
    label.append(input);
    box.append(label);
  }
}

export function readParams(form) {
  const params = {};
  for (const input of form.querySelectorAll("[name^='param:']")) {
    const key = input.name.slice(6);
    if (input.value === "") continue;
    const kind = input.dataset.kind;
    params[key] = kind === "boolean" ? input.value === "true" : kind === "integer" ? parseInt(input.value, 10)
      : kind === "number" ? Number(input.value) : input.value;
  }
  return params;
}

function formBody(form) {
  const data = new FormData(form);
  const body = { name: data.get("name"), symbol: data.get("symbol"), interval: data.get("interval"),
    strategy: data.get("strategy"), quote_allocation: data.get("quote_allocation"), params: readParams(form) };
  for (const key of ["stop_loss_pct", "take_profit_pct", "trailing_stop_pct"]) if (data.get(key)) body[key] = data.get(key);
  const mode = data.get("sizing_mode"), value = data.get("sizing_value");
  body.sizing = { mode, ...(mode === "fixed_quote" ? { quote_amount: value } : mode === "risk" ? { risk_pct: value } : { percent: value }) };
  return body;
}

async function submitCreate(event) {
  event.preventDefault();
  const form = event.target;
  showFormErrors(form, $("#create-error"), null);
  try {
    const bot = await api("/api/v1/bots", { method: "POST", body: formBody(form) });
    form.querySelector("[name=name]").value = "";
    window.location.hash = `#/bots/${encodeURIComponent(bot.id)}`;
  } catch (err) {
    if (err.status !== 401) showFormErrors(form, $("#create-error"), err);
  }
}
