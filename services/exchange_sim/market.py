"""The market: one per-second trade-price path per symbol, synthetic or replayed.

Owns the source of every price the simulator shows. Second ``k`` (epoch seconds) has
one price ``p[k]`` (integer ticks), a base volume (integer lot steps), a quote volume
(integer 1e-8 units), taker-buy volumes and a trade count; every candle of every
interval is an aggregate of those seconds (:mod:`.candles`), so candles of all
intervals agree and sums are exact integers.

The path is served in hour blocks (3600 seconds), computed lazily and cached:

- :class:`SyntheticSource`: hour anchors from a regime-switching process
  (volatility regimes, trends, slow mean reversion of the log price toward the
  symbol's base price), generated from ``ORIGIN_S`` (2017-01-01, before which Binance
  rejects timestamps anyway) in seeded chunks; inside an hour a seeded Brownian bridge
  between the anchors. Every random draw is keyed by (seed, symbol, chunk or hour),
  so the same seed gives the same candle at the same open time whenever the
  simulator is started.
- :class:`ReplaySource`: candles from a kline CSV; inside each candle the price holds
  the open for the first half of its seconds (:func:`replay_hold`), then walks
  open -> low -> high -> close (bullish) or open -> high -> low -> close, and volumes
  are spread evenly, so re-aggregating gives back the file's candle.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Protocol

import numpy as np
import numpy.typing as npt

HOUR_S = 3600
ORIGIN_S = 1_483_228_800  # 2017-01-01T00:00:00Z
QUOTE_UNIT = Decimal("0.00000001")  # quote volumes are integers of 1e-8
TRADE_ID_STRIDE = 100  # trade ids of second k are k*100 .. k*100+n-1 (n <= 99)
_CHUNK_H = 1024

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SymbolSpec:
    """What the simulator needs to know to invent (or replay) a symbol."""

    symbol: str
    base: str
    quote: str
    base_price: float
    tick: Decimal
    step: Decimal
    volume_per_s: float  # mean base volume per second
    volume_unit: Decimal | None = None  # base volume granularity (default: the lot step)

    @property
    def base_unit(self) -> Decimal:
        return self.volume_unit if self.volume_unit is not None else self.step

    @property
    def min_notional(self) -> Decimal:
        return Decimal(5) if self.quote in ("USDT", "USDC", "FDUSD", "BUSD") else Decimal("0.0001")


_KNOWN: dict[str, tuple[float, str, str, float]] = {
    # symbol: (price, tick, step, base volume per second)
    "BTCUSDT": (60000.0, "0.01", "0.00001", 0.3),
    "ETHUSDT": (3000.0, "0.01", "0.0001", 4.0),
    "BNBUSDT": (600.0, "0.01", "0.001", 3.0),
    "SOLUSDT": (150.0, "0.01", "0.001", 30.0),
    "XRPUSDT": (0.6, "0.0001", "0.1", 20000.0),
    "ADAUSDT": (0.5, "0.0001", "0.1", 15000.0),
    "DOGEUSDT": (0.15, "0.00001", "1", 60000.0),
    "LTCUSDT": (80.0, "0.01", "0.001", 20.0),
    "ETHBTC": (0.05, "0.00001", "0.0001", 3.0),
    "BNBBTC": (0.01, "0.000001", "0.001", 3.0),
}
_QUOTES = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def _hash64(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def split_symbol(symbol: str) -> tuple[str, str]:
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot tell the quote asset of {symbol!r}; end it with one of {_QUOTES}")


def spec_for(symbol: str) -> SymbolSpec:
    """Real-looking parameters for a symbol (a table, else derived from its name)."""
    symbol = symbol.upper()
    base, quote = split_symbol(symbol)
    if symbol in _KNOWN:
        known_price, known_tick, known_step, vol = _KNOWN[symbol]
        return SymbolSpec(
            symbol, base, quote, known_price, Decimal(known_tick), Decimal(known_step), vol
        )
    h = _hash64("spec", symbol)
    if quote in ("BTC", "ETH", "BNB"):
        price = 10 ** (-4 + (h % 3000) / 1000)  # 0.0001 .. 0.1
    else:
        price = 10 ** (-1 + (h % 4000) / 1000)  # 0.1 .. 1000
    decimals = max(0, 4 - math.floor(math.log10(price)))
    tick = Decimal(1).scaleb(-min(decimals, 8))
    step_exp = min(8, max(0, math.floor(math.log10(price)) + 3))
    step = Decimal(1).scaleb(-step_exp)
    return SymbolSpec(symbol, base, quote, price, tick, step, 2000.0 / price)


@dataclass(frozen=True)
class HourBlock:
    """The 3600 seconds of one hour: price ticks, base volume (steps), quote volume
    (1e-8 units), taker-buy base and quote volume, trade count."""

    p: I64
    v: I64
    q: I64
    tb: I64
    tbq: I64
    n: I64


@dataclass(frozen=True)
class Summary:
    """Aggregate of a run of seconds with at least one second in it."""

    o: int
    h: int
    l: int  # noqa: E741
    c: int
    v: int
    q: int
    tb: int
    tbq: int
    n: int
    first_id: int  # -1 when no trade
    last_id: int


def summarize(block: HourBlock, base_s: int, i0: int, i1: int) -> Summary:
    """Aggregate seconds ``i0 .. i1-1`` of a block whose first second is ``base_s``."""
    p = block.p[i0:i1]
    n = block.n[i0:i1]
    traded = np.flatnonzero(n)
    if traded.size:
        first_id = (base_s + i0 + int(traded[0])) * TRADE_ID_STRIDE
        last = int(traded[-1])
        last_id = (base_s + i0 + last) * TRADE_ID_STRIDE + int(n[last]) - 1
    else:
        first_id = last_id = -1
    return Summary(
        o=int(p[0]),
        h=int(p.max()),
        l=int(p.min()),
        c=int(p[-1]),
        v=int(block.v[i0:i1].sum()),
        q=int(block.q[i0:i1].sum()),
        tb=int(block.tb[i0:i1].sum()),
        tbq=int(block.tbq[i0:i1].sum()),
        n=int(n.sum()),
        first_id=first_id,
        last_id=last_id,
    )


def merge(a: Summary, b: Summary) -> Summary:
    """``a`` followed by ``b``."""
    return Summary(
        o=a.o,
        h=max(a.h, b.h),
        l=min(a.l, b.l),
        c=b.c,
        v=a.v + b.v,
        q=a.q + b.q,
        tb=a.tb + b.tb,
        tbq=a.tbq + b.tbq,
        n=a.n + b.n,
        first_id=a.first_id if a.first_id >= 0 else b.first_id,
        last_id=b.last_id if b.last_id >= 0 else a.last_id,
    )


class PathSource(Protocol):
    spec: SymbolSpec

    @property
    def first_second(self) -> int:
        """The first second with a price (no candle opens before it)."""
        ...

    def block(self, hour: int) -> HourBlock:
        """Hour ``hour`` (epoch seconds // 3600) of the path."""
        ...

    def summary(self, hour: int) -> Summary:
        """Aggregate of the whole hour ``hour`` (equal to summarising its block)."""
        ...


def _quote_factor(spec: SymbolSpec) -> Fraction:
    """Quote units (1e-8) per (lot step x tick)."""
    return Fraction(spec.step * spec.tick / QUOTE_UNIT)


# --- synthetic -------------------------------------------------------------------------------

_VOLS = np.array([0.0025, 0.006, 0.014])  # hourly sigma of the calm / normal / wild regimes
_TREND = 0.0008  # hourly drift of a trending regime
_KAPPA = 0.002  # hourly mean reversion of the log price toward the base price
_BATCH_H = 64  # hours of minute candles generated together


@dataclass
class _Anchors:
    ticks: list[int] = field(default_factory=list)  # price at the first second of each hour
    sigma: list[float] = field(default_factory=list)  # that hour's sigma
    x: float = 0.0
    vol_state: int = 1
    trend: int = 0


@dataclass(frozen=True)
class MinuteCandles:
    """The 60 one-minute candles of an hour (integer units as in :class:`HourBlock`)."""

    o: I64
    h: I64
    l: I64  # noqa: E741
    c: I64
    v: I64
    q: I64
    tb: I64
    tbq: I64
    n: I64


class SyntheticSource:
    """Seeded regime-switching price path (see module docstring).

    Three levels, each keyed by its own seed: hour anchors (regimes), one-minute
    candles inside an hour (a Brownian bridge between the anchors plus wicks), and
    the seconds inside a minute (the minute's open -> extremes -> close walk with
    bounded noise). Hour aggregates come straight from the minute level, so a long
    history costs little; seconds are expanded only for the hours that need them.
    """

    def __init__(self, spec: SymbolSpec, seed: int, cache_hours: int = 48) -> None:
        self.spec = spec
        self.seed = seed
        self._key = _hash64("symbol", spec.symbol) % (2**63)
        self._mean = math.log(spec.base_price)
        self._a = _Anchors(x=self._mean)
        self._tick = float(spec.tick)
        self._blocks: OrderedDict[int, HourBlock] = OrderedDict()
        # minute candles of recent batches (2-D: hour x minute), a bounded cache
        self._batches: OrderedDict[int, MinuteCandles] = OrderedDict()
        self._cache_batches = 16
        self._summaries: dict[int, Summary] = {}
        self._cache_hours = cache_hours
        factor = _quote_factor(spec)
        self._q_num, self._q_den = factor.numerator, factor.denominator
        self._vol_units = spec.volume_per_s * 60 / float(spec.step)  # per minute

    @property
    def first_second(self) -> int:
        return ORIGIN_S

    def _rng(self, kind: int, index: int) -> np.random.Generator:
        return np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed % (2**63), self._key, kind, index]))
        )

    def _extend(self) -> None:
        a = self._a
        chunk = len(a.ticks) // _CHUNK_H
        rng = self._rng(0, chunk)
        eps = rng.standard_normal(_CHUNK_H)
        switch = rng.random((_CHUNK_H, 2))
        pick = rng.integers(0, 3, (_CHUNK_H, 2))
        for i in range(_CHUNK_H):
            if switch[i, 0] < 1 / 36:
                a.vol_state = int(pick[i, 0])
            if switch[i, 1] < 1 / 72:
                a.trend = int(pick[i, 1]) - 1
            sigma = float(_VOLS[a.vol_state])
            a.ticks.append(max(1, round(math.exp(a.x) / self._tick)))
            a.sigma.append(sigma)
            a.x += a.trend * _TREND + _KAPPA * (self._mean - a.x) + sigma * float(eps[i])

    def _anchor(self, h: int) -> tuple[int, float]:
        i = h - ORIGIN_S // HOUR_S
        if i < 0:
            raise ValueError("no prices before 2017-01-01")
        while i + 1 >= len(self._a.ticks):
            self._extend()
        return self._a.ticks[i], self._a.sigma[i]

    def minutes(self, hour: int) -> MinuteCandles:
        first = hour - hour % _BATCH_H
        batch = self._batches.get(first)
        if batch is None:
            self._make_batch(first)
            batch = self._batches[first]
        else:
            self._batches.move_to_end(first)
        i = hour - first
        return MinuteCandles(*(getattr(batch, f)[i] for f in MinuteCandles.__dataclass_fields__))

    def summary(self, hour: int) -> Summary:
        found = self._summaries.get(hour)
        if found is None:
            self._make_batch(hour - hour % _BATCH_H)
            found = self._summaries[hour]
        return found

    def _make_batch(self, first_hour: int) -> None:
        """Minute candles and hour summaries of ``_BATCH_H`` hours, vectorised."""
        nh = _BATCH_H
        anchors = [self._anchor(first_hour + i) for i in range(nh + 1)]
        x0 = np.log(np.array([t for t, _ in anchors[:-1]], dtype=np.float64) * self._tick)
        x1 = np.log(np.array([t for t, _ in anchors[1:]], dtype=np.float64) * self._tick)
        sig_m = np.array([s for _, s in anchors[:-1]]) / math.sqrt(60.0)
        rng = self._rng(1, first_hour // _BATCH_H)
        eps = rng.standard_normal((nh, 60))
        wick = np.abs(rng.standard_normal((nh, 60, 2)))
        noise_v = rng.standard_normal((nh, 60))
        walk = np.cumsum(eps, axis=1) * sig_m[:, None]
        k = np.arange(1, 61, dtype=np.float64) / 60.0
        # minute closes: Brownian bridge from this hour's anchor to the next one's
        xc = x0[:, None] + k * (x1 - x0)[:, None] + walk - k * walk[:, -1:]
        xo = np.concatenate([x0[:, None], xc[:, :-1]], axis=1)
        tick = self._tick
        o = np.maximum(1, np.rint(np.exp(xo) / tick)).astype(np.int64)
        c = np.maximum(1, np.rint(np.exp(xc) / tick)).astype(np.int64)
        o[:, 0] = [t for t, _ in anchors[:-1]]
        c[:, -1] = [t for t, _ in anchors[1:]]
        c[:, -1] = c[:, -1]  # the next hour opens where this one closes
        o[:, 1:] = c[:, :-1]
        up = np.exp(0.35 * wick[:, :, 0] * sig_m[:, None])
        down = np.exp(-0.35 * wick[:, :, 1] * sig_m[:, None])
        h = np.maximum(np.maximum(o, c), np.rint(np.maximum(o, c) * up)).astype(np.int64)
        lo = np.maximum(1, np.minimum(np.minimum(o, c), np.rint(np.minimum(o, c) * down))).astype(
            np.int64
        )
        move = np.abs(xc - xo) / sig_m[:, None]
        v = np.maximum(60, self._vol_units * np.exp(0.6 * noise_v - 0.18) * (0.6 + 0.4 * move))
        v = v.astype(np.int64)
        n = np.clip(60 + v // max(1, int(self._vol_units / 400)), 60, 60 * (TRADE_ID_STRIDE - 1))
        n = n.astype(np.int64)
        frac = np.clip(0.5 + 0.3 * np.tanh((xc - xo) / sig_m[:, None]), 0.0, 1.0)
        tb = np.floor(v * frac).astype(np.int64)
        typical = (o + h + lo + c) // 4
        q = (v * typical * self._q_num) // self._q_den
        tbq = (tb * typical * self._q_num) // self._q_den
        self._batches[first_hour] = MinuteCandles(
            o=o, h=h, l=lo, c=c, v=v, q=q, tb=tb, tbq=tbq, n=n
        )
        while len(self._batches) > self._cache_batches:
            self._batches.popitem(last=False)
        # Hour aggregates, kept for good (they are small): one numpy pass per column.
        cols = zip(
            o[:, 0].tolist(),
            h.max(axis=1).tolist(),
            lo.min(axis=1).tolist(),
            c[:, -1].tolist(),
            v.sum(axis=1).tolist(),
            q.sum(axis=1).tolist(),
            tb.sum(axis=1).tolist(),
            tbq.sum(axis=1).tolist(),
            n.sum(axis=1).tolist(),
            (n[:, -1] // 60).tolist(),
            strict=True,
        )
        for i, (so, sh, sl, sc, sv, sq, stb, stbq, sn, n_last) in enumerate(cols):
            base = (first_hour + i) * HOUR_S
            self._summaries[first_hour + i] = Summary(
                so, sh, sl, sc, sv, sq, stb, stbq, sn,
                first_id=base * TRADE_ID_STRIDE,
                last_id=(base + HOUR_S - 1) * TRADE_ID_STRIDE + n_last - 1,
            )  # fmt: skip

    def minute_summary(self, hour: int, m0: int, m1: int) -> Summary:
        """Aggregate of minutes ``m0 .. m1-1`` of ``hour`` without expanding seconds
        (equal to summarising those seconds of :meth:`block`)."""
        mc = self.minutes(hour)
        n = mc.n[m0:m1]
        base = hour * HOUR_S
        return Summary(
            o=int(mc.o[m0]),
            h=int(mc.h[m0:m1].max()),
            l=int(mc.l[m0:m1].min()),
            c=int(mc.c[m1 - 1]),
            v=int(mc.v[m0:m1].sum()),
            q=int(mc.q[m0:m1].sum()),
            tb=int(mc.tb[m0:m1].sum()),
            tbq=int(mc.tbq[m0:m1].sum()),
            n=int(n.sum()),
            first_id=(base + m0 * 60) * TRADE_ID_STRIDE,
            last_id=(base + m1 * 60 - 1) * TRADE_ID_STRIDE + int(n[-1]) // 60 - 1,
        )

    def block(self, hour: int) -> HourBlock:
        cached = self._blocks.get(hour)
        if cached is not None:
            self._blocks.move_to_end(hour)
            return cached
        mc = self.minutes(hour)
        rng = self._rng(2, hour)
        noise = rng.standard_normal((60, 60))
        parts = [
            expand(
                int(mc.o[m]), int(mc.h[m]), int(mc.l[m]), int(mc.c[m]),
                int(mc.v[m]), int(mc.q[m]), int(mc.tb[m]), int(mc.tbq[m]), int(mc.n[m]),
                60, noise[m],
            )
            for m in range(60)
        ]  # fmt: skip
        blk = HourBlock(*(np.concatenate([part[j] for part in parts]) for j in range(6)))
        self._blocks[hour] = blk
        if len(self._blocks) > self._cache_hours:
            self._blocks.popitem(last=False)
        return blk


def expand(
    o: int,
    h: int,
    l: int,  # noqa: E741
    c: int,
    v: int,
    q: int,
    tb: int,
    tbq: int,
    n: int,
    seconds: int,
    noise: npt.NDArray[np.float64] | None = None,
    hold: int = 0,
) -> tuple[I64, I64, I64, I64, I64, I64]:
    """The seconds of one candle: prices hold the open for ``hold`` seconds, then walk
    open -> first extreme -> second extreme -> close (low first for a rising candle),
    with optional noise (synthetic paths, no hold) that never leaves [low, high] nor
    moves the four waypoints; volumes and trades spread exactly."""
    p = _walk(o, h, l, c, seconds, hold)
    if noise is not None and seconds >= 4 and h > l:
        bump = np.rint(noise[:seconds] * (h - l) * 0.08).astype(np.int64)
        idx = [0, seconds // 3, (2 * seconds) // 3, seconds - 1]
        bump[idx] = 0
        p = np.clip(p + bump, l, h)
    return (
        p,
        _spread(v, seconds),
        _spread(q, seconds),
        _spread(tb, seconds),
        _spread(tbq, seconds),
        _spread(n, seconds),
    )


# --- replay ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayCandle:
    open_s: int
    seconds: int
    o: int
    h: int
    l: int  # noqa: E741
    c: int
    v: int
    q: int
    tb: int
    tbq: int
    n: int


def replay_hold(seconds: int) -> int:
    """Seconds a replayed candle holds its open: the first half. A MARKET order decided
    on the previous candle's close (whose close the open repeats in a file without gaps)
    fills at that open if it reaches the exchange within half a candle, which is the
    price the backtester fills it at (docs/backtest.md, "Fill model")."""
    return seconds // 2


class ReplaySource:
    """A recorded candle series played back as a per-second path (module docstring)."""

    def __init__(self, spec: SymbolSpec, candles: list[ReplayCandle]) -> None:
        if not candles:
            raise ValueError(f"no candles to replay for {spec.symbol}")
        self.spec = spec
        self.candles = sorted(candles, key=lambda c: c.open_s)
        self._starts = [c.open_s for c in self.candles]
        self._blocks: OrderedDict[int, HourBlock] = OrderedDict()

    @property
    def first_second(self) -> int:
        return self.candles[0].open_s

    @property
    def last_second(self) -> int:
        last = self.candles[-1]
        return last.open_s + last.seconds - 1

    def summary(self, hour: int) -> Summary:
        return summarize(self.block(hour), hour * HOUR_S, 0, HOUR_S)

    def block(self, hour: int) -> HourBlock:
        cached = self._blocks.get(hour)
        if cached is not None:
            return cached
        blk = self._make_block(hour)
        self._blocks[hour] = blk
        if len(self._blocks) > 512:
            self._blocks.popitem(last=False)
        return blk

    def _make_block(self, hour: int) -> HourBlock:
        import bisect

        base = hour * HOUR_S
        arrays = {
            name: np.zeros(HOUR_S, dtype=np.int64) for name in ("p", "v", "q", "tb", "tbq", "n")
        }
        # Before the first candle: its open; after the last: its close, no trades.
        i = bisect.bisect_right(self._starts, base) - 1
        prev_close = self.candles[0].o if i < 0 else self.candles[i].c
        arrays["p"][:] = prev_close
        i = max(i, 0)
        while i < len(self.candles) and self.candles[i].open_s < base + HOUR_S:
            cd = self.candles[i]
            lo, hi = max(cd.open_s, base), min(cd.open_s + cd.seconds, base + HOUR_S)
            if hi > lo:
                full = expand(
                    cd.o, cd.h, cd.l, cd.c, cd.v, cd.q, cd.tb, cd.tbq, cd.n, cd.seconds,
                    hold=replay_hold(cd.seconds),
                )  # fmt: skip
                a, b = lo - cd.open_s, hi - cd.open_s
                for name, arr in zip(("p", "v", "q", "tb", "tbq", "n"), full, strict=True):
                    arrays[name][lo - base : hi - base] = arr[a:b]
                prev_close = cd.c
            if cd.open_s + cd.seconds >= base + HOUR_S:
                break
            i += 1
        after = base + HOUR_S
        if self.last_second < after - 1:
            start = max(0, self.last_second + 1 - base)
            arrays["p"][start:] = self.candles[-1].c
        del prev_close
        return HourBlock(**arrays)


def _walk(o: int, h: int, l: int, c: int, n: int, hold: int = 0) -> I64:  # noqa: E741
    """Prices of a candle's seconds: open (held for the first ``hold`` seconds), then
    the extreme against the close's direction, then the other extreme, then close
    (linear legs, in ticks). A candle of fewer than 4 seconds after the hold cannot
    show all four; its close wins (without a hold) or the hold is dropped."""
    first, second = (l, h) if c >= o else (h, l)
    if n < 4:
        return np.full(n, c, dtype=np.int64)
    if n - hold < 4:
        hold = 0
    m = n - hold
    xs = [0, hold + m // 3, hold + (2 * m) // 3, n - 1]
    ys = [o, first, second, c]
    if hold:
        xs.insert(1, hold)
        ys.insert(1, o)
    return np.rint(np.interp(np.arange(n), xs, ys)).astype(np.int64)


def _spread(total: int, n: int) -> I64:
    base, extra = divmod(total, n)
    out = np.full(n, base, dtype=np.int64)
    out[:extra] += 1
    return out
