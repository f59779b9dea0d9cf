// Fills across bots (#/trades) from the ledger: filters by bot, symbol, side and UTC
// days (sent to /api/v1/trades), pages with "Load more" (next_cursor), rows sortable
// and filterable in the page, and the same selection exported as CSV (?format=csv).
import {
  $, api, download, el, makeSortable, numCell, priceDigits, qtyDigits, refreshTable, showFormErrors, state, timeCell,
} from "../core.js";

const view = { cursor: null, names: {}, loaded: false };

export function init() {
  makeSortable($("#trades"), $("#trades-filter"));
  $("#trades-form").addEventListener("submit", (event) => { event.preventDefault(); load(false).catch(fail); });
  $("#trades-more").addEventListener("click", () => load(true).catch(fail));
  $("#trades-csv").addEventListener("click", async () => {
    try {
      const query = filters();
      query.set("format", "csv");
      await download(`/api/v1/trades?${query}`, "trades.csv");
      $("#trades-error").textContent = "";
    } catch (err) { fail(err); }
  });
}

function fail(err) {
  if (err.status !== 401) showFormErrors($("#trades-form"), $("#trades-error"), err);
}

export async function enter() {
  const bots = await api("/api/v1/bots?limit=1000");
  view.names = Object.fromEntries(bots.items.map((b) => [b.id, b.name]));
  const botSelect = $("#trades-form [name=bot_id]");
  const keep = botSelect.value;
  botSelect.replaceChildren(option("", "every bot"), ...bots.items.map((b) => option(b.id, b.name)));
  botSelect.value = keep;
  const symbolSelect = $("#trades-form [name=symbol]");
  const keepSymbol = symbolSelect.value;
  symbolSelect.replaceChildren(option("", "every symbol"), ...Object.keys(state.symbols).sort().map((s) => option(s, s)));
  symbolSelect.value = keepSymbol;
  if (!view.loaded) await load(false);
}

function option(value, text) { const o = el("option", text); o.value = value; return o; }

const DAY = 86400000;
function filters() {
  const data = new FormData($("#trades-form"));
  const query = new URLSearchParams();
  for (const key of ["bot_id", "symbol", "side"]) if (data.get(key)) query.set(key, data.get(key));
  if (data.get("from")) query.set("start", String(Date.parse(`${data.get("from")}T00:00:00Z`)));
  if (data.get("to")) query.set("end", String(Date.parse(`${data.get("to")}T00:00:00Z`) + DAY));
  return query;
}

async function load(more) {
  const query = filters();
  query.set("limit", "200");
  if (more && view.cursor) query.set("cursor", view.cursor);
  const page = await api(`/api/v1/trades?${query}`);
  showFormErrors($("#trades-form"), $("#trades-error"), null);
  view.cursor = page.next_cursor;
  view.loaded = true;
  const body = $("#trades tbody");
  const rows = page.items.map((t) => {
    const tr = el("tr");
    const bot = el("td");
    const link = el("a", view.names[t.bot_id] || t.bot_id);
    link.href = `#/bots/${encodeURIComponent(t.bot_id)}`;
    bot.append(link);
    tr.append(timeCell(t.ts), bot, el("td", t.symbol), el("td", t.side, t.side === "BUY" ? "pos" : "neg"),
      numCell(t.qty, qtyDigits(t.symbol)), numCell(t.price, priceDigits(t.symbol)), numCell(t.quote_qty),
      el("td", `${Number(t.commission).toFixed(8).replace(/0+$/, "").replace(/\.$/, "")} ${t.commission_asset}`),
      el("td", t.is_exit ? "exit" : "entry"), el("td", t.trade_id));
    return tr;
  });
  if (more) body.append(...rows); else body.replaceChildren(...rows);
  refreshTable($("#trades"));
  $("#trades-more").hidden = !view.cursor;
  $("#trades-note").textContent = body.rows.length ? `${body.rows.length} fills${view.cursor ? " (more: Load more)" : ""} · times UTC`
    : "No fill matches these filters.";
}

export async function refresh() {}
