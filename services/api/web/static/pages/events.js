// The events feed (#/events): the recent history of stream:events (/api/v1/events),
// newest first, with new events added live from the feed; filter by level or text.
import { $, api, el, makeSortable, refreshTable, timeCell } from "../core.js";

const view = { names: {}, seen: new Set(), active: false };

export function init() {
  makeSortable($("#events"), $("#events-filter"));
  $("#events-level").addEventListener("change", () => load().catch(() => {}));
}

export async function enter() {
  view.active = true;
  const bots = await api("/api/v1/bots?limit=1000");
  view.names = Object.fromEntries(bots.items.map((b) => [b.id, b.name]));
  await load();
}

export function leave() { view.active = false; }

async function load() {
  const level = $("#events-level").value;
  const events = await api(`/api/v1/events?limit=300${level ? `&level=${encodeURIComponent(level)}` : ""}`);
  view.seen = new Set(events.map((e) => e.id));
  $("#events tbody").replaceChildren(...events.map(row));
  refreshTable($("#events"));
  $("#events-note").textContent = events.length ? `${events.length} events` : "No event yet.";
}

function row(e) {
  const tr = el("tr", null, `level-${e.level}`);
  const bot = el("td");
  if (e.bot_id) {
    const link = el("a", view.names[e.bot_id] || e.bot_id);
    link.href = `#/bots/${encodeURIComponent(e.bot_id)}`;
    bot.append(link);
  }
  tr.append(timeCell(e.ts), el("td", e.level, `level ${e.level}`), el("td", e.kind), bot, el("td", e.message, "wrap"), el("td", e.service));
  return tr;
}

export function onFeed(kind, data) {
  if (!view.active || kind !== "event") return;
  const level = $("#events-level").value;
  if (level && data.level !== level) return;
  const body = $("#events tbody");
  body.prepend(row({ ...data, id: `live-${data.ts}` }));
  refreshTable($("#events"));
}

export async function refresh() {}
