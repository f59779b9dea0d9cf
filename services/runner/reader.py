"""The read loop, the hot path: one blocking XREAD over every candle and tick stream
of the held bots plus ``stream:executions`` (:func:`.wire.read_streams`); then, under
the lock, execution reports (books), closed candles in waves (the n-th candle of each
series in wave n: entries and strategy exits, one shared computation per group) and
ticks (exits). Urgent changes (intents, fills) leave in chunks while deciding goes on
(:mod:`.batch`); skip logs and each group's HOLD are written after them.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec

from services.runner.core import BotState, Change, hold_entry
from services.runner.holdings import Holdings, text
from services.runner.market import Series
from services.runner.stale import StaleGate
from services.runner.store import Decided
from services.runner.wire import read_streams
from shared import keys
from shared.logging import get_logger
from shared.messages import Candle, ExecutionReport, Tick
from shared.redis import REDIS_ERRORS, now_ms
from shared.strategies.base import SignalAction
from shared.streams import dead_letter

log = get_logger(__name__)

XREAD_COUNT = 200
_decoders: dict[bytes, msgspec.json.Decoder[Any]] = {
    b"candle": msgspec.json.Decoder(Candle),
    b"tick": msgspec.json.Decoder(Tick),
    b"execution_report": msgspec.json.Decoder(ExecutionReport),
}


class Reader:
    def __init__(self, held: Holdings, gate: StaleGate) -> None:
        self.held = held
        self.gate = gate

    async def read_once(self) -> int:
        """One XREAD round; returns how many entries it handled."""
        held = self.held
        streams = dict(held.market.last_ids)
        reply = await read_streams(
            held.store.lanes, streams, XREAD_COUNT, held.settings.runner_block_ms
        )
        held.last_loop_ms = now_ms()
        if not reply:
            return 0
        reports: list[ExecutionReport] = []
        waves: list[list[tuple[Series, Candle]]] = []
        ticks: list[Tick] = []
        handled = 0
        for stream, entries in reply:
            if not entries:
                continue
            if stream in held.market.last_ids:
                held.market.last_ids[stream] = text(entries[-1][0])
            series = held.market.by_stream.get(stream)
            nth = 0
            for entry_id, fields in entries:
                handled += 1
                message = await self._decode(stream, entry_id, fields)
                if message is None:
                    continue
                if isinstance(message, ExecutionReport):
                    if message.bot_id in held.bots:
                        reports.append(message)
                elif isinstance(message, Candle):
                    if series is not None and message.closed:
                        # The n-th candle of each series goes to wave n, so a bot
                        # decides at most once per wave and its writes stay in order.
                        if nth == len(waves):
                            waves.append([])
                        waves[nth].append((series, message))
                        nth += 1
                elif isinstance(message, Tick):
                    ticks.append(message)
        held.reads_idle.clear()
        try:
            async with held.lock:
                if not waves:
                    await self._process(reports, [], ticks)
                for i, wave in enumerate(waves):
                    last = i == len(waves) - 1
                    await self._process(reports if i == 0 else [], wave, ticks if last else [])
        finally:
            held.reads_idle.set()
        return handled

    async def _decode(self, stream: str, entry_id: Any, fields: dict[Any, Any]) -> Any:
        held = self.held
        decoder = _decoders.get(fields.get(b"type", b""))
        data = fields.get(b"data")
        if decoder is not None and data is not None:
            try:
                return decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await dead_letter(held.redis, stream, entry_id, fields, str(exc), service="runner")
                return None
        await dead_letter(
            held.redis, stream, entry_id, fields, "unexpected entry", service="runner"
        )
        return None

    async def _process(
        self,
        reports: list[ExecutionReport],
        candles: list[tuple[Series, Candle]],
        ticks: list[Tick],
    ) -> None:
        """Decide on one wave (reports, at most one candle per series, ticks). Urgent
        changes (intents, fills) leave in chunks while deciding goes on; then the lazy
        ones: skip logs, and each group's HOLD written once for all its bots."""
        held = self.held
        now = now_ms()
        exec_from = held.market.last_ids[keys.EXECUTIONS]
        urgent = held.batch()
        lazy: dict[str, tuple[BotState, Change]] = {}
        holds: list[Decided] = []
        log_holds = held.settings.runner_log_holds
        try:
            for report in reports:
                state = held.bots.get(report.bot_id)
                if state is None:
                    continue
                change = state.on_report(report, now)
                if change.book:
                    held.reports_applied += 1
                if state.stopping and state.pending is None:
                    change.merge(state.on_stop(now, exec_from))
                await urgent.add(state, change)
            for series, candle in candles:
                if series.last_close_time is None or candle.close_time > series.last_close_time:
                    series.last_close_time = candle.close_time
                    series.last_candle = candle
                for reader in series.informs:  # groups of other series that read this one
                    reader.evaluator.on_informative(series.interval, candle)
                for group in list(series.groups.values()):
                    signal = group.on_candle(candle)
                    if signal is None:
                        continue
                    hold = signal.action is SignalAction.HOLD
                    decided: list[BotState] = []
                    for bot_id in list(group.bots):
                        state = held.bots.get(bot_id)
                        if state is None:
                            continue
                        if state.stale:
                            fresh = state.set_stale(self.gate.stale_for(state, now), now)
                            await urgent.add(state, fresh)
                        if hold:
                            if state.on_hold(candle):
                                decided.append(state)
                            continue
                        change = state.on_signal(
                            candle, signal, now, exec_from, log_holds=log_holds
                        )
                        if change.intent is not None:
                            await urgent.add(state, change)
                        elif not change.empty:
                            lazy[bot_id] = (state, change)
                    if decided:
                        entry = (
                            hold_entry(now, signal, candle.close, candle.open_time)
                            if log_holds
                            else None
                        )
                        holds.append((candle.open_time, entry, decided))
            for tick in ticks:
                held.market.last_price_at[tick.symbol] = max(
                    tick.event_time, held.market.last_price_at.get(tick.symbol, 0)
                )
                for bot_id in list(held.market.symbol_bots.get(tick.symbol, ())):
                    state = held.bots.get(bot_id)
                    if state is None:
                        continue
                    change = state.on_price(tick.price, tick.event_time, now, exec_from)
                    if change.intent is not None:
                        await urgent.add(state, change)
                    elif change.book:
                        held.dirty.add(bot_id)
        finally:
            await urgent.drain()
        await held.after_commit()
        if lazy:
            await held.commit(
                [(st, c) for st, c in lazy.values() if held.bots.get(st.bot_id) is st]
            )
        if holds:
            await held.decided(holds)

    async def loop(self) -> None:
        delay = 0.05
        while True:
            try:
                await self.read_once()
                delay = 0.05
            except REDIS_ERRORS as exc:
                log.warning("read.redis_error", error=str(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)
