// The strategies' indicators, computed in the page from the candles it shows (float64,
// like shared/indicators): which lines a strategy draws over the price and which go in a
// pane of their own below it. Values before an indicator's warm-up are left out.

function ema(values, period) {
  const out = new Array(values.length).fill(null);
  if (values.length < period) return out;
  let sum = 0;
  for (let i = 0; i < period; i += 1) sum += values[i];
  let prev = sum / period;
  out[period - 1] = prev;
  const k = 2 / (period + 1);
  for (let i = period; i < values.length; i += 1) { prev = values[i] * k + prev * (1 - k); out[i] = prev; }
  return out;
}

function sma(values, period) {
  const out = new Array(values.length).fill(null);
  let sum = 0;
  for (let i = 0; i < values.length; i += 1) {
    sum += values[i];
    if (i >= period) sum -= values[i - period];
    if (i >= period - 1) out[i] = sum / period;
  }
  return out;
}

function bollinger(values, period, numStd) {
  const mid = sma(values, period), upper = [], lower = [];
  for (let i = 0; i < values.length; i += 1) {
    if (mid[i] === null) { upper.push(null); lower.push(null); continue; }
    let v = 0;
    for (let j = i - period + 1; j <= i; j += 1) v += (values[j] - mid[i]) ** 2;
    const sd = Math.sqrt(v / period);
    upper.push(mid[i] + numStd * sd);
    lower.push(mid[i] - numStd * sd);
  }
  return { mid, upper, lower };
}

// Wilder's RSI.
function rsi(values, period) {
  const out = new Array(values.length).fill(null);
  if (values.length <= period) return out;
  let gain = 0, loss = 0;
  for (let i = 1; i <= period; i += 1) {
    const d = values[i] - values[i - 1];
    if (d > 0) gain += d; else loss -= d;
  }
  gain /= period; loss /= period;
  const value = () => (loss === 0 ? (gain === 0 ? 50 : 100) : 100 - 100 / (1 + gain / loss));
  out[period] = value();
  for (let i = period + 1; i < values.length; i += 1) {
    const d = values[i] - values[i - 1];
    gain = (gain * (period - 1) + Math.max(d, 0)) / period;
    loss = (loss * (period - 1) + Math.max(-d, 0)) / period;
    out[i] = value();
  }
  return out;
}

function macd(values, fast, slow, signal) {
  const f = ema(values, fast), s = ema(values, slow);
  const line = values.map((_, i) => (f[i] === null || s[i] === null ? null : f[i] - s[i]));
  const start = line.findIndex((v) => v !== null);
  const sig = new Array(values.length).fill(null);
  if (start >= 0) {
    const tail = ema(line.slice(start), signal);
    tail.forEach((v, i) => { sig[start + i] = v; });
  }
  const hist = line.map((v, i) => (v === null || sig[i] === null ? null : v - sig[i]));
  return { line, sig, hist };
}

function donchian(highs, lows, period) {
  const upper = [], lower = [];
  for (let i = 0; i < highs.length; i += 1) {
    if (i < period) { upper.push(null); lower.push(null); continue; }
    // The channel of the `period` candles before this one (a breakout crosses it).
    upper.push(Math.max(...highs.slice(i - period, i)));
    lower.push(Math.min(...lows.slice(i - period, i)));
  }
  return { upper, lower };
}

function stochRsi(values, rsiPeriod, stochPeriod, kSmooth, dSmooth) {
  const r = rsi(values, rsiPeriod);
  const raw = r.map((v, i) => {
    if (v === null || i < rsiPeriod + stochPeriod - 1) return null;
    const win = r.slice(i - stochPeriod + 1, i + 1);
    const lo = Math.min(...win), hi = Math.max(...win);
    return hi === lo ? 0 : (100 * (v - lo)) / (hi - lo);
  });
  const smooth = (arr, n) => {
    const start = arr.findIndex((v) => v !== null);
    const out = new Array(arr.length).fill(null);
    if (start < 0) return out;
    sma(arr.slice(start), n).forEach((v, i) => { out[start + i] = v; });
    return out;
  };
  const k = smooth(raw, kSmooth);
  return { k, d: smooth(k, dSmooth) };
}

const COLORS = ["#f0b429", "#5c9ded", "#c678dd", "#8a96a3"];

// {overlays: [{name, color, points}], pane: {name, lines: [...], levels: [numbers]} | null}
// `candles`: [{time, open, high, low, close}] as the chart holds them.
export function indicatorsFor(strategy, params, candles) {
  const p = params || {};
  const close = candles.map((c) => c.close);
  const pts = (arr) => arr.map((v, i) => (v === null || !Number.isFinite(v) ? null : { time: candles[i].time, value: v }))
    .filter(Boolean);
  const line = (name, arr, i) => ({ name, color: COLORS[i % COLORS.length], points: pts(arr) });
  switch (strategy) {
    case "rsi": {
      const period = p.period ?? 14;
      return { overlays: [], pane: { name: `RSI(${period})`, lines: [line(`RSI(${period})`, rsi(close, period), 0)],
        levels: [p.oversold ?? 30, p.overbought ?? 70] } };
    }
    case "ema_cross": {
      const fast = p.fast_period ?? 9, slow = p.slow_period ?? 21;
      return { overlays: [line(`EMA(${fast})`, ema(close, fast), 0), line(`EMA(${slow})`, ema(close, slow), 1)], pane: null };
    }
    case "bollinger": {
      const period = p.period ?? 20, k = p.num_std ?? 2;
      const b = bollinger(close, period, k);
      return { overlays: [line(`BB upper(${period},${k})`, b.upper, 1), line(`BB mid(${period})`, b.mid, 0),
        line(`BB lower(${period},${k})`, b.lower, 1)], pane: null };
    }
    case "donchian_breakout": {
      const entry = p.entry_period ?? 20, exit = p.exit_period ?? 10;
      const highs = candles.map((c) => c.high), lows = candles.map((c) => c.low);
      return { overlays: [line(`Donchian high(${entry})`, donchian(highs, lows, entry).upper, 0),
        line(`Donchian low(${exit})`, donchian(highs, lows, exit).lower, 1)], pane: null };
    }
    case "macd_cross": {
      const fast = p.fast_period ?? 12, slow = p.slow_period ?? 26, signal = p.signal_period ?? 9;
      const m = macd(close, fast, slow, signal);
      return { overlays: [], pane: { name: `MACD(${fast},${slow},${signal})`,
        lines: [line("MACD", m.line, 1), line("signal", m.sig, 0)], levels: [0] } };
    }
    case "ema_stochrsi": {
      const f = p.ema_fast ?? 8, m = p.ema_mid ?? 14, s = p.ema_slow ?? 50;
      const st = stochRsi(close, p.rsi_period ?? 14, p.stoch_period ?? 14, p.k_smooth ?? 3, p.d_smooth ?? 3);
      return { overlays: [line(`EMA(${f})`, ema(close, f), 0), line(`EMA(${m})`, ema(close, m), 1), line(`EMA(${s})`, ema(close, s), 2)],
        pane: { name: "StochRSI %K/%D", lines: [line("%K", st.k, 1), line("%D", st.d, 0)], levels: [p.oversold ?? 20, 80] } };
    }
    default:
      return { overlays: [], pane: null };
  }
}
