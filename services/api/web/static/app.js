// botfleet dashboard: plain JavaScript over the control API (/api/v1) and its live feed
// (Server-Sent Events read with fetch so the bearer token travels in a header). This
// module owns the token (prompt, wrong token, logout), the pages' routing (#/, #/bots,
// #/bots/{id}, #/trades, #/events), the halt controls and the feed; each page is a module
// of its own under pages/.
import { $, TOKEN_KEY, api, loadClock, loadReference, num, priceDigits, showError, state } from "./core.js";
import * as overview from "./pages/overview.js";
import * as bots from "./pages/bots.js";
import * as bot from "./pages/bot.js";
import * as trades from "./pages/trades.js";
import * as events from "./pages/events.js";

const PAGES = { overview, bots, bot, trades, events };
const app = { page: null, params: {}, feedAbort: null, timer: null, booted: false };

// --- token ------------------------------------------------------------------------------
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

function stop() {
  if (app.feedAbort) app.feedAbort.abort();
  app.feedAbort = null;
  if (app.timer) clearInterval(app.timer);
  app.timer = null;
  app.booted = false;
}

function showLogin(message) {
  stop();
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  $("#login-message").textContent = message || "";
  $("#login").hidden = false;
  $("#app").hidden = true;
  for (const id of ["#nav", "#logout-btn", "#halt-btn", "#resume-btn", "#halt-banner"]) $(id).hidden = true;
  showError("");
  $("#token-input").value = "";
  $("#token-input").focus();
}
state.onUnauthorized = (message) => { if (state.token) showLogin(message); };

// --- routing -----------------------------------------------------------------------------
function route() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean);
  if (parts[0] === "bots" && parts[1]) return ["bot", { id: decodeURIComponent(parts[1]) }];
  if (parts[0] === "bots") return ["bots", {}];
  if (parts[0] === "trades") return ["trades", {}];
  if (parts[0] === "events") return ["events", {}];
  return ["overview", {}];
}

async function show() {
  if (!app.booted) return;
  const [name, params] = route();
  if (app.page && app.page !== name && PAGES[app.page].leave) PAGES[app.page].leave();
  app.page = name;
  app.params = params;
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${name}`;
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    link.classList.toggle("active", link.dataset.page === (name === "bot" ? "bots" : name));
  }
  showError("");
  await PAGES[name].enter(params).catch(report);
}

async function refresh() {
  if (!app.booted) return;
  await Promise.all([refreshRisk(), PAGES[app.page].refresh ? PAGES[app.page].refresh(app.params) : null]).catch(report);
}

function report(err) {
  if (err && err.status === 401) return;
  showError(`API: ${err && err.message}`);
}

// --- halt ----------------------------------------------------------------------------------
async function refreshRisk() {
  const risk = await api("/api/v1/risk");
  const banner = $("#halt-banner");
  banner.hidden = !risk.halted;
  banner.textContent = risk.halted ? `TRADING HALTED: ${risk.halt_reason} (exits still allowed)` : "";
  $("#halt-btn").hidden = risk.halted;
  $("#resume-btn").hidden = !risk.halted;
}

// --- live feed -----------------------------------------------------------------------------
let refreshQueued = false;
function queueRefresh() {
  if (refreshQueued) return;
  refreshQueued = true;
  setTimeout(async () => { refreshQueued = false; await refresh(); }, 300);
}

function onFeed(kind, data) {
  const page = PAGES[app.page];
  if (page && page.onFeed) page.onFeed(kind, data);
  if (kind === "execution" || kind === "event") queueRefresh();
  else if (kind === "price") $("#feed-state").textContent = `feed: live · ${data.symbol} ${num(data.price, priceDigits(data.symbol))}`;
}

async function runFeed(controller) {
  let delay = 500;
  while (!controller.signal.aborted) {
    try {
      const response = await fetch("/api/v1/feed", { headers: { Authorization: `Bearer ${state.token}` }, signal: controller.signal });
      if (response.status === 401) { showLogin("The API refused this token (401). Enter the right one."); return; }
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
          if (data.length) {
            let parsed = null;
            try { parsed = JSON.parse(data.join("\n")); } catch (e) { parsed = null; }
            if (parsed !== null) onFeed(kind, parsed);
          }
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

// --- start ------------------------------------------------------------------------------------
async function boot() {
  stop();
  state.token = takeToken();
  if (!state.token) { showLogin(""); return; }
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#nav").hidden = false;
  $("#logout-btn").hidden = false;
  try {
    await Promise.all([loadReference(), loadClock(), refreshRisk()]);
  } catch (err) {
    if (err.status === 401) return;
    showError(`API: ${err.message}`);
  }
  app.booted = true;
  await show();
  app.timer = setInterval(() => { loadClock().catch(() => {}); refresh(); }, 5000);
  app.feedAbort = new AbortController();
  runFeed(app.feedAbort);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const page of Object.values(PAGES)) if (page.init) page.init();
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
    boot();
  });
  $("#logout-btn").addEventListener("click", () => showLogin("Logged out. The token was forgotten by this tab."));
  $("#halt-btn").addEventListener("click", async () => {
    const reason = prompt("Halt trading fleet-wide? New entries stop; exits continue. Why?", "halted by an operator");
    if (!reason) return;
    await api("/api/v1/risk/halt", { method: "POST", body: { reason } }).catch(report);
    refresh();
  });
  $("#resume-btn").addEventListener("click", async () => {
    if (!confirm("Resume trading? Bots may open new positions again.")) return;
    await api("/api/v1/risk/resume", { method: "POST" }).catch(report);
    refresh();
  });
  window.addEventListener("hashchange", () => { show(); });
  boot();
});
