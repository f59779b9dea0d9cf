// The portfolio (#/): totals, the portfolio's daily equity and PnL by day (the ledger's
// /equity summed over bots), exposure by symbol (open positions at the mark price) and
// every service's health.
import { $, api, chartsAvailable, createChart, el, num, numCell, signedCell } from "../core.js";

const view = { equity: null, equitySeries: null, pnl: null, pnlSeries: null, fleetSize: 0, exposureAt: 0 };

export async function enter() { await refresh(); }

export async function refresh() {
  await Promise.all([summary(), portfolio(), exposure(), health()]);
}

async function summary() {
  const s = await api("/api/v1/bots/summary");
  const items = [["Bots", s.bots], ["Running", s.by_status.running || 0], ["Open positions", s.open_positions],
    ["Exposure", num(s.exposure)], ["Equity", num(s.equity)], ["Total PnL", num(s.total_pnl)],
    ["Realized", num(s.realized_pnl)], ["Unrealized", num(s.unrealized_pnl)], ["Fees", num(s.fees)], ["Trades", s.trades]];
  $("#summary").replaceChildren(...items.map(([k, v]) => {
    const card = el("div", null, "card");
    card.append(el("div", k, "k"), el("div", v, "v"));
    return card;
  }));
}

async function portfolio() {
  const points = await api("/api/v1/equity");
  $("#portfolio-equity").dataset.points = String(points.length);
  $("#portfolio-equity-note").textContent = points.length
    ? `${points.length} days · last ${num(points[points.length - 1].equity)} across ${points[points.length - 1].bots} bots`
    : "No equity snapshot yet (the ledger takes one a day and at start).";
  // PnL of a day: the change of the portfolio's total PnL since the day before.
  const days = points.map((p, i) => ({ time: p.day, value: Number(p.total_pnl) - (i ? Number(points[i - 1].total_pnl) : 0) }));
  $("#pnl-by-day").dataset.days = String(days.length);
  $("#pnl-by-day-note").textContent = days.length
    ? days.slice(-3).map((d) => `${d.time}: ${num(d.value)}`).join(" · ") : "No days recorded yet.";
  if (!chartsAvailable()) return;
  if (!view.equity) {
    view.equity = createChart($("#portfolio-equity"));
    view.equitySeries = view.equity.addLineSeries({ color: "#26a69a" });
    view.pnl = createChart($("#pnl-by-day"));
    view.pnlSeries = view.pnl.addHistogramSeries({});
  }
  view.equitySeries.setData(points.map((p) => ({ time: p.day, value: Number(p.equity) })));
  view.pnlSeries.setData(days.map((d) => ({ ...d, color: d.value >= 0 ? "#26a69a" : "#ef5350" })));
  view.equity.timeScale().fitContent();
  view.pnl.timeScale().fitContent();
}

async function exposure() {
  // A large fleet's positions are summed again every 30 s, not every 5 s.
  if (view.fleetSize > 1000 && Date.now() - view.exposureAt < 30000) return;
  view.exposureAt = Date.now();
  const bots = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await api(`/api/v1/bots?limit=1000&offset=${offset}`);
    bots.push(...page.items);
    if (page.items.length < 1000) break;
  }
  view.fleetSize = bots.length;
  const by = new Map();
  for (const b of bots) {
    const row = by.get(b.symbol) || { bots: 0, open: 0, qty: 0, exposure: 0, unrealized: 0 };
    const qty = Number(b.position.qty || 0);
    row.bots += 1;
    if (qty > 0) {
      row.open += 1;
      row.qty += qty;
      row.exposure += qty * Number(b.stats.mark_price || b.position.entry_price || 0);
      row.unrealized += Number(b.stats.unrealized_pnl || 0);
    }
    by.set(b.symbol, row);
  }
  const total = [...by.values()].reduce((a, r) => a + r.exposure, 0);
  const body = $("#exposure tbody");
  body.replaceChildren(...[...by.entries()].sort((a, b) => b[1].exposure - a[1].exposure).map(([symbol, r]) => {
    const tr = el("tr");
    const share = total > 0 ? (100 * r.exposure) / total : 0;
    const bar = el("td");
    const meter = el("div", null, "meter");
    const fill = el("span");
    fill.style.width = `${share.toFixed(1)}%`;
    meter.append(fill);
    bar.append(meter, el("span", `${num(share, 1)}%`, "small"));
    tr.append(el("td", symbol), numCell(r.bots, 0), numCell(r.open, 0), numCell(r.qty, 8), numCell(r.exposure),
      signedCell(r.unrealized), bar);
    return tr;
  }));
  $("#exposure").dataset.rows = String(by.size);
}

async function health() {
  const h = await api("/api/v1/bots/health");
  const body = $("#health tbody");
  const rows = [];
  const redis = el("tr");
  redis.append(el("td", "redis"), el("td", ""), el("td", "alive", "alive"), el("td", `${h.redis.ping_ms} ms`), el("td", ""));
  rows.push(redis);
  for (const [service, instances] of Object.entries(h.services || {})) {
    for (const i of instances) {
      const tr = el("tr");
      const figures = Object.entries(i.figures || {}).map(([k, v]) => `${k}=${v}`).join("  ");
      const alive = i.alive && i.ok !== false && !i.hung;
      const state = !i.alive ? "dead" : i.hung ? "hung" : i.ok === false ? "not ok" : "alive";
      tr.append(el("td", service), el("td", i.instance), el("td", state, alive ? "alive" : "dead"),
        el("td", `${Math.round((i.age_ms || 0) / 100) / 10}s`), el("td", figures, "muted wrap"));
      rows.push(tr);
    }
  }
  for (const missing of h.missing || []) {
    const tr = el("tr");
    tr.append(el("td", missing), el("td", "–"), el("td", "no live instance", "dead"), el("td", ""), el("td", ""));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  const stale = Object.keys(h.stale_symbols || {});
  const staleBots = (h.stale_bots || []).map((b) => `${b.name || b.id}: ${(b.symbols || []).join(",")} ${b.reason || ""}`);
  $("#stale").textContent = stale.length || staleBots.length
    ? `Stale market data: ${stale.join(", ") || "–"}. ${staleBots.join("; ")}` : "Market data fresh.";
}
