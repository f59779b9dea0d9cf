"""Market-stream events, one exchange second at a time, serialised once.

Owns what the market streams say (reference §2.3-2.4): for every subscribed
``<symbol>@kline_<interval>`` an update of the open candle every ``update_every_s``
exchange seconds (default: every second) and one final ``x: true`` event per
closed candle, sent when the next candle's first second starts (``E`` = the next
open time); for every ``<symbol>@miniTicker`` the rolling 24 h window at most once
per exchange second. Candle values come from :class:`~.candles.SymbolMarket`, so a
closed candle here is exactly the row ``GET /api/v3/klines`` serves. A frozen
symbol emits nothing; when it thaws, its candles resume at the current second and
the candles that closed meanwhile are only available over REST (a gap the client
must backfill, as after a real outage).

:meth:`Feed.advance` is pure apart from reading the market: it returns
``(stream, payload, final)`` triples with the raw event bytes (``final``: a closed
candle, which a backlogged connection must still get); the shell wraps them for
combined streams and fans them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from services.exchange_sim.candles import SymbolMarket, fmt8
from services.exchange_sim.market import HOUR_S, TRADE_ID_STRIDE, Summary
from shared.binance.intervals import next_open_time, open_time_of
from shared.binance.schemas import Kline, KlineEvent, MiniTickerEvent
from shared.binance.streams import parse_stream_name

_encode = msgspec.json.Encoder().encode
DAY_S = 86_400


@dataclass
class _KlineState:
    symbol: str
    interval: str
    open_ms: int = -1
    next_open_s: int = -1
    agg: Summary | None = None
    last_update_s: int = -1


def _merge_second(
    agg: Summary | None, s: int, p: int, v: int, q: int, tb: int, tbq: int, n: int
) -> Summary:
    if n:
        fid, lid = s * TRADE_ID_STRIDE, s * TRADE_ID_STRIDE + n - 1
    else:
        fid = lid = -1
    if agg is None:
        return Summary(p, p, p, p, v, q, tb, tbq, n, fid, lid)
    return Summary(
        agg.o,
        p if p > agg.h else agg.h,
        p if p < agg.l else agg.l,
        p,
        agg.v + v,
        agg.q + q,
        agg.tb + tb,
        agg.tbq + tbq,
        agg.n + n,
        agg.first_id if agg.first_id >= 0 else fid,
        lid if lid >= 0 else agg.last_id,
    )


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
        self._last: dict[str, int] = {}  # last second processed per symbol
        self._ticker_sent: dict[str, int] = {}

    # --- which streams exist --------------------------------------------------------------

    def valid(self, stream: str) -> bool:
        parsed = parse_stream_name(stream)
        return (
            parsed is not None
            and parsed.kind in ("kline", "miniTicker")
            and parsed.symbol in self.markets
            and stream.partition("@")[0] == stream.partition("@")[0].lower()  # §2.1
        )

    def add(self, stream: str, now_s: int) -> None:
        parsed = parse_stream_name(stream)
        if parsed is None or parsed.symbol not in self.markets:
            return
        symbol = parsed.symbol
        self._last.setdefault(symbol, self.markets[symbol].visible_second(now_s))
        if parsed.kind == "kline" and stream not in self._klines:
            assert parsed.interval is not None
            state = _KlineState(symbol, parsed.interval)
            self._reset(state, self._last[symbol])
            self._klines[stream] = state
        elif parsed.kind == "miniTicker":
            self._tickers.add(stream)
        self._by_symbol.setdefault(symbol, [])
        if stream not in self._by_symbol[symbol]:
            self._by_symbol[symbol].append(stream)

    def remove(self, stream: str) -> None:
        self._klines.pop(stream, None)
        self._tickers.discard(stream)
        for streams in self._by_symbol.values():
            if stream in streams:
                streams.remove(stream)

    def _reset(self, state: _KlineState, upto_s: int) -> None:
        """Start ``state`` on the candle containing ``upto_s`` with seconds up to it."""
        market = self.markets[state.symbol]
        state.open_ms = open_time_of(state.interval, upto_s * 1000)
        state.next_open_s = next_open_time(state.interval, state.open_ms) // 1000
        state.agg = market.aggregate(state.open_ms // 1000, upto_s + 1)
        state.last_update_s = upto_s

    def thaw(self, symbol: str, now_s: int) -> None:
        """A frozen symbol resumes at ``now_s``: skip the frozen seconds."""
        self._last[symbol] = now_s
        for stream in self._by_symbol.get(symbol, []):
            state = self._klines.get(stream)
            if state is not None:
                self._reset(state, now_s)

    # --- events -----------------------------------------------------------------------------

    def _kline_event(self, state: _KlineState, agg: Summary, closed: bool, event_ms: int) -> bytes:
        m = self.markets[state.symbol]
        k = Kline(
            t=state.open_ms,
            T=state.next_open_s * 1000 - 1,
            s=state.symbol,
            i=state.interval,
            f=agg.first_id,
            L=agg.last_id,
            o=m.fmt_price(agg.o),
            c=m.fmt_price(agg.c),
            h=m.fmt_price(agg.h),
            l=m.fmt_price(agg.l),
            v=m.fmt_qty(agg.v),
            n=agg.n,
            x=closed,
            q=fmt8(agg.q),
            V=m.fmt_qty(agg.tb),
            Q=fmt8(agg.tbq),
        )
        return _encode(KlineEvent(E=event_ms, s=state.symbol, k=k))

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
            klines = [(name, self._klines[name]) for name in streams if name in self._klines]
            every = max(self.update_every_s, -(-(target - last) // self.max_updates_per_tick))
            s = last + 1
            while s <= target:
                hour = s // HOUR_S
                end = min(target + 1, (hour + 1) * HOUR_S)
                blk = market.source.block(hour)
                i0, i1 = s - hour * HOUR_S, end - hour * HOUR_S
                cols = [
                    arr[i0:i1].tolist() for arr in (blk.p, blk.v, blk.q, blk.tb, blk.tbq, blk.n)
                ]
                for j, sec in enumerate(range(s, end)):
                    p, v, q, tb, tbq, n = (col[j] for col in cols)
                    for name, st in klines:
                        if sec >= st.next_open_s:
                            if st.agg is not None:
                                out.append(
                                    (name, self._kline_event(st, st.agg, True, sec * 1000), True)
                                )
                            st.open_ms = open_time_of(st.interval, sec * 1000)
                            st.next_open_s = next_open_time(st.interval, st.open_ms) // 1000
                            st.agg = None
                        st.agg = _merge_second(st.agg, sec, p, v, q, tb, tbq, n)
                        if st.interval != "1s" and (
                            sec - st.last_update_s >= every
                            or (sec == target and every > self.update_every_s)
                        ):
                            st.last_update_s = sec
                            if quiet and name in quiet:
                                continue
                            out.append(
                                (name, self._kline_event(st, st.agg, False, sec * 1000), False)
                            )
                s = end
            self._last[symbol] = target
            ticker = f"{symbol.lower()}@miniTicker"
            if ticker in self._tickers and self._ticker_sent.get(symbol) != target:
                self._ticker_sent[symbol] = target
                out.append((ticker, self.mini_ticker(symbol, target), False))
        return out

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
