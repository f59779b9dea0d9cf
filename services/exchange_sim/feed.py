"""Market-stream events, one exchange second at a time, serialised once.

Owns what the market streams say (reference §2.3-2.4): for every subscribed
``<symbol>@kline_<interval>`` an update of the open candle every ``update_every_s``
exchange seconds (default: every second) and one final ``x: true`` event per
closed candle, sent when the next candle's first second starts (``E`` = the next
open time); for every ``<symbol>@miniTicker`` the rolling 24 h window at most once
per exchange second; ``<symbol>@ticker`` (the full 24 h ticker) and
``<symbol>@bookTicker`` (the book's top, which is the path's price: see
:mod:`.marketdata`) once per exchange second too. Candle values come from :class:`~.candles.SymbolMarket`, so a
closed candle here is exactly the row ``GET /api/v3/klines`` serves.

Streams are live, as Binance's are: a stream that starts (its first subscriber
arrives) begins at the exchange clock's current second, whatever happened before,
and never replays older events; a client fills a gap over REST. A frozen symbol
emits nothing; when it thaws, its candles resume at the current second and the
candles that closed meanwhile are only available over REST (a gap the client must
backfill, as after a real outage).

:meth:`Feed.advance` is pure apart from reading the market: it returns
``(stream, payload, final)`` triples with the raw event bytes (``final``: a closed
candle, which a backlogged connection must still get), ordered by event time; the
shell wraps them for combined streams and fans them out. Kline payloads are built
from a per-stream template (the byte-for-byte form ``msgspec`` gives
:class:`~shared.binance.schemas.KlineEvent`), and each stream's running candle lives
in plain integers, so an exchange second costs a few integer operations per stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter

import msgspec

from services.exchange_sim.book import d8
from services.exchange_sim.candles import SymbolMarket, fmt8
from services.exchange_sim.market import HOUR_S, QUOTE_UNIT, TRADE_ID_STRIDE
from shared.binance.intervals import next_open_time, open_time_of
from shared.binance.schemas import MiniTickerEvent
from shared.binance.streams import parse_stream_name

_encode = msgspec.json.Encoder().encode
DAY_S = 86_400
_E8 = 10**8
# KlineEvent as msgspec encodes it (field order of shared.binance.schemas), with the
# symbol and interval filled in per stream; volumes are integers of 1e-8.
_KLINE_TEMPLATE = (
    '{"e":"kline","E":%d,"s":"<S>","k":{"t":%d,"T":%d,"s":"<S>","i":"<I>","f":%d,"L":%d,'
    '"o":"%s","c":"%s","h":"%s","l":"%s","v":"%d.%08d","n":%d,"x":%s,'
    '"q":"%d.%08d","V":"%d.%08d","Q":"%d.%08d","B":"0"}}'
)
_by_second = itemgetter(0)
_TICKER_KINDS = ("miniTicker", "ticker", "bookTicker")


def _signed8(value: Decimal) -> str:
    return d8(value) if value >= 0 else "-" + d8(-value)


@dataclass(slots=True)
class _KlineState:
    """One kline stream: its open candle as running integers and when it last spoke."""

    symbol: str
    interval: str
    template: str
    open_ms: int = -1
    next_open_s: int = -1
    empty: bool = True  # the open candle has no second yet
    o: int = 0
    h: int = 0
    l: int = 0  # noqa: E741
    c: int = 0
    v: int = 0
    q: int = 0
    tb: int = 0
    tbq: int = 0
    n: int = 0
    first_id: int = -1
    last_id: int = -1
    last_update_s: int = -1
    live_after_s: int = -1  # nothing at or before this second is sent (subscribe time)


class Feed:
    def __init__(
        self,
        markets: dict[str, SymbolMarket],
        update_every_s: int = 1,
        max_updates_per_tick: int = 256,
    ) -> None:
        self.markets = markets
        self.update_every_s = max(1, update_every_s)
        # A tick that covers more seconds than this (very high --speed, or a loaded
        # machine) spaces the open-candle updates out so that a tick's work stays
        # bounded; closed candles are always sent.
        self.max_updates_per_tick = max(1, max_updates_per_tick)
        self._klines: dict[str, _KlineState] = {}
        self._tickers: set[str] = set()
        self._by_symbol: dict[str, list[str]] = {}
        self._last: dict[str, int] = {}  # last second processed per symbol with streams
        self._ticker_sent: dict[str, int] = {}
        # The most one MARKET order may carry per symbol: the book's size at the top.
        self.book_qty: dict[str, Decimal] = {}

    # --- which streams exist --------------------------------------------------------------

    def valid(self, stream: str) -> bool:
        symbol, _, kind = stream.partition("@")
        if kind in _TICKER_KINDS:
            return symbol == symbol.lower() and symbol.upper() in self.markets
        parsed = parse_stream_name(stream)
        return (
            parsed is not None
            and parsed.kind in ("kline", "miniTicker")
            and parsed.symbol in self.markets
            and stream.partition("@")[0] == stream.partition("@")[0].lower()  # §2.1
        )

    def add(self, stream: str, now_s: int) -> None:
        """Start ``stream`` live at exchange second ``now_s``: its first events are
        those of ``now_s + 1``, on the candle open at ``now_s``."""
        symbol_part, _, kind = stream.partition("@")
        if kind in _TICKER_KINDS:
            self._start_symbol(symbol_part.upper(), now_s)
            self._tickers.add(stream)
            streams = self._by_symbol.setdefault(symbol_part.upper(), [])
            if stream not in streams:
                streams.append(stream)
            return
        parsed = parse_stream_name(stream)
        if parsed is None or parsed.symbol not in self.markets:
            return
        symbol = parsed.symbol
        live_s = self._start_symbol(symbol, now_s)
        if parsed.kind == "kline" and stream not in self._klines:
            assert parsed.interval is not None
            state = _KlineState(
                symbol,
                parsed.interval,
                _KLINE_TEMPLATE.replace("<S>", symbol).replace("<I>", parsed.interval),
            )
            # The candle as of the last second processed (the next tick carries it on
            # with the symbol's other streams), silent up to the subscription second.
            self._reset(state, self._last[symbol])
            state.live_after_s = live_s
            self._klines[stream] = state
        elif parsed.kind == "miniTicker":
            self._tickers.add(stream)
        streams = self._by_symbol.setdefault(symbol, [])
        if stream not in streams:
            streams.append(stream)

    def _start_symbol(self, symbol: str, now_s: int) -> int:
        live_s = self.markets[symbol].visible_second(now_s)
        if not self._by_symbol.get(symbol):
            # Nobody was listening to this symbol: it starts now, not where it stopped.
            self._last[symbol] = live_s
            self._ticker_sent.pop(symbol, None)
        return live_s

    def remove(self, stream: str) -> None:
        self._klines.pop(stream, None)
        self._tickers.discard(stream)
        for symbol, streams in self._by_symbol.items():
            if stream in streams:
                streams.remove(stream)
                if not streams:  # a symbol nobody listens to is not followed
                    self._last.pop(symbol, None)
                    self._ticker_sent.pop(symbol, None)

    def _reset(self, state: _KlineState, upto_s: int) -> None:
        """Start ``state`` on the candle containing ``upto_s`` with seconds up to it."""
        market = self.markets[state.symbol]
        state.open_ms = open_time_of(state.interval, upto_s * 1000)
        state.next_open_s = next_open_time(state.interval, state.open_ms) // 1000
        agg = market.aggregate(state.open_ms // 1000, upto_s + 1)
        if agg is None:
            state.empty = True
        else:
            state.empty = False
            state.o, state.h, state.l, state.c = agg.o, agg.h, agg.l, agg.c
            state.v, state.q, state.tb, state.tbq, state.n = agg.v, agg.q, agg.tb, agg.tbq, agg.n
            state.first_id, state.last_id = agg.first_id, agg.last_id
        state.last_update_s = upto_s

    def thaw(self, symbol: str, now_s: int) -> None:
        """A frozen symbol resumes at ``now_s``: skip the frozen seconds."""
        if not self._by_symbol.get(symbol):
            return
        self._last[symbol] = now_s
        for stream in self._by_symbol[symbol]:
            state = self._klines.get(stream)
            if state is not None:
                self._reset(state, now_s)

    # --- events -----------------------------------------------------------------------------

    def advance(
        self,
        now_s: int,
        frozen: set[str] | None = None,
        quiet: set[str] | None = None,
    ) -> list[tuple[str, bytes, bool]]:
        """Process every second up to ``now_s``; return the events, in order.

        ``quiet``: streams whose every subscriber is backlogged; their open-candle
        updates are not even built (they would be skipped), closed candles still are.
        """
        out: list[tuple[str, bytes, bool]] = []
        for symbol, streams in self._by_symbol.items():
            if not streams or (frozen and symbol in frozen):
                continue
            market = self.markets[symbol]
            last = self._last.get(symbol, now_s)
            target = market.visible_second(now_s)
            if target <= last:
                continue
            # The seconds last+1 .. target as plain lists (one slice per hour).
            cols: list[list[int]] = [[], [], [], [], [], []]
            s = last + 1
            while s <= target:
                hour = s // HOUR_S
                end = min(target + 1, (hour + 1) * HOUR_S)
                blk = market.source.block(hour)
                i0, i1 = s - hour * HOUR_S, end - hour * HOUR_S
                for col, arr in zip(
                    cols, (blk.p, blk.v, blk.q, blk.tb, blk.tbq, blk.n), strict=True
                ):
                    col.extend(arr[i0:i1].tolist())
                s = end
            every = max(self.update_every_s, -(-(target - last) // self.max_updates_per_tick))
            spaced = every > self.update_every_s
            events: list[tuple[int, str, bytes, bool]] = []
            for name in streams:
                state = self._klines.get(name)
                if state is not None:
                    self._run(
                        name, state, market, last + 1, target, cols, every, spaced,
                        quiet is not None and name in quiet, events,
                    )  # fmt: skip
            if len(events) > 1:
                events.sort(key=_by_second)  # stable: per stream, close before update
            out.extend([(name, raw, final) for _, name, raw, final in events])
            self._last[symbol] = target
            if self._ticker_sent.get(symbol) != target:
                lower = symbol.lower()
                for kind, build in (
                    ("miniTicker", self.mini_ticker),
                    ("ticker", self.ticker),
                    ("bookTicker", self.book_ticker),
                ):
                    name = f"{lower}@{kind}"
                    if name in self._tickers:
                        self._ticker_sent[symbol] = target
                        out.append((name, build(symbol, target), False))
        return out

    @staticmethod
    def _run(
        name: str,
        st: _KlineState,
        market: SymbolMarket,
        first_s: int,
        target: int,
        cols: list[list[int]],
        every: int,
        spaced: bool,
        quiet: bool,
        events: list[tuple[int, str, bytes, bool]],
    ) -> None:
        """Carry one kline stream through seconds ``first_s .. target`` (the hot loop:
        locals only, one template format per event)."""
        interval, tpl, fp = st.interval, st.template, market.fmt_price
        su = market.step_units
        updates = interval != "1s"  # a 1s candle closes every second: no updates
        live = st.live_after_s
        open_ms, nxt, lu, empty = st.open_ms, st.next_open_s, st.last_update_s, st.empty
        o, h, l, c = st.o, st.h, st.l, st.c  # noqa: E741
        v, q, tb, tbq, n, fid, lid = st.v, st.q, st.tb, st.tbq, st.n, st.first_id, st.last_id
        sec = first_s - 1
        for p, dv, dq, dtb, dtbq, dn in zip(*cols, strict=True):
            sec += 1
            if sec >= nxt:
                if not empty and sec > live:
                    raw = tpl % (
                        sec * 1000, open_ms, nxt * 1000 - 1, fid, lid, fp(o), fp(c), fp(h), fp(l),
                        *divmod(v * su, _E8), n, "true",
                        *divmod(q, _E8), *divmod(tb * su, _E8), *divmod(tbq, _E8),
                    )  # fmt: skip
                    events.append((sec, name, raw.encode(), True))
                open_ms = open_time_of(interval, sec * 1000)
                nxt = next_open_time(interval, open_ms) // 1000
                empty = True
            if empty:
                o = h = l = c = p  # noqa: E741
                v, q, tb, tbq, n = dv, dq, dtb, dtbq, dn
                if dn:
                    fid = sec * TRADE_ID_STRIDE
                    lid = fid + dn - 1
                else:
                    fid = lid = -1
                empty = False
            else:
                if p > h:
                    h = p
                elif p < l:
                    l = p  # noqa: E741
                c = p
                v += dv
                q += dq
                tb += dtb
                tbq += dtbq
                if dn:
                    n += dn
                    lid = sec * TRADE_ID_STRIDE + dn - 1
                    if fid < 0:
                        fid = sec * TRADE_ID_STRIDE
            if updates and (sec - lu >= every or (spaced and sec == target)):
                lu = sec
                if sec > live and not quiet:
                    raw = tpl % (
                        sec * 1000, open_ms, nxt * 1000 - 1, fid, lid, fp(o), fp(c), fp(h), fp(l),
                        *divmod(v * su, _E8), n, "false",
                        *divmod(q, _E8), *divmod(tb * su, _E8), *divmod(tbq, _E8),
                    )  # fmt: skip
                    events.append((sec, name, raw.encode(), False))
        st.open_ms, st.next_open_s, st.last_update_s, st.empty = open_ms, nxt, lu, empty
        st.o, st.h, st.l, st.c = o, h, l, c
        st.v, st.q, st.tb, st.tbq, st.n, st.first_id, st.last_id = v, q, tb, tbq, n, fid, lid

    def ticker(self, symbol: str, now_s: int) -> bytes:
        """``24hrTicker`` (§2.4): the rolling 24 h window, the book's top at the price."""
        market = self.markets[symbol]
        first = max(now_s - DAY_S + 1, market.first_second)
        agg = market.aggregate(first, now_s + 1)
        assert agg is not None
        tick = market.spec.tick
        o, c = Decimal(agg.o) * tick, Decimal(agg.c) * tick
        volume = Decimal(agg.v) * market.spec.base_unit
        quote = Decimal(agg.q) * QUOTE_UNIT
        pct = (c - o) * 100 / o if o else Decimal(0)
        last = market.second_summary(now_s)
        last_qty = (Decimal(last.v) // max(1, last.n)) * market.spec.base_unit
        price = market.fmt_price(agg.c)
        qty = d8(self.book_qty.get(symbol, Decimal(0)))
        return _encode(
            {
                "e": "24hrTicker", "E": now_s * 1000, "s": symbol,
                "p": _signed8(c - o), "P": format(pct.quantize(Decimal("0.001")), "f"),
                "w": d8(quote / volume) if volume else price,
                "x": d8(market.price(first - 1)), "c": price, "Q": d8(last_qty),
                "b": price, "B": qty, "a": price, "A": qty,
                "o": market.fmt_price(agg.o), "h": market.fmt_price(agg.h),
                "l": market.fmt_price(agg.l), "v": market.fmt_qty(agg.v), "q": fmt8(agg.q),
                "O": first * 1000, "C": now_s * 1000 + 999,
                "F": agg.first_id, "L": agg.last_id, "n": agg.n,
            }
        )  # fmt: skip

    def book_ticker(self, symbol: str, now_s: int) -> bytes:
        """``bookTicker`` (§2.4, no ``e``/``E``): bid = ask = the price (see marketdata)."""
        market = self.markets[symbol]
        price = market.fmt_price(market.price_ticks(now_s))
        qty = d8(self.book_qty.get(symbol, Decimal(0)))
        return _encode({"u": now_s, "s": symbol, "b": price, "B": qty, "a": price, "A": qty})

    def mini_ticker(self, symbol: str, now_s: int) -> bytes:
        market = self.markets[symbol]
        agg = market.aggregate(now_s - DAY_S + 1, now_s + 1)
        assert agg is not None
        return _encode(
            MiniTickerEvent(
                E=now_s * 1000,
                s=symbol,
                c=market.fmt_price(agg.c),
                o=market.fmt_price(agg.o),
                h=market.fmt_price(agg.h),
                l=market.fmt_price(agg.l),
                v=market.fmt_qty(agg.v),
                q=fmt8(agg.q),
            )
        )
