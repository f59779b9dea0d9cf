"""Adoption (issue 15): what a bot claimed from a previous owner must settle before it
trades on. Its pending (and unresolved) intent: the final report that ends it, if one is
still in ``stream:executions`` (fenced copies skipped, :func:`.core.ends`), else a
re-send under this owner's epoch. And the candles that closed while it had no owner,
decided in order from its last decided one (:meth:`.core.BotState.catch_up`).
"""

from __future__ import annotations

from services.runner.core import BotState, Change, Pending, ends, interval_length_ms
from services.runner.holdings import Holdings, text
from services.runner.market import Group, Series, decode_candles, replay
from shared import keys
from shared.logging import get_logger
from shared.messages import Candle, ExecutionReport
from shared.strategies.base import Signal
from shared.streams import decode_entry

log = get_logger(__name__)

SCAN_COUNT = 1000

Missed = list[tuple[Candle, Signal]]


def stream_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id as comparable numbers (``ms-seq``)."""
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


async def final_reports(held: Holdings, states: list[BotState]) -> dict[str, ExecutionReport]:
    """The report that ends each pending or unresolved intent of ``states``, where one is
    still in ``stream:executions`` (one scan from the oldest ``exec_from``); fenced
    copies are skipped and the scan goes on."""
    slots: dict[str, Pending] = {}
    for state in states:
        for slot in (state.pending, state.unresolved):
            if slot is not None:
                slots[slot.intent_id] = slot
    if not slots:
        return {}
    start = min((s.exec_from for s in slots.values()), key=stream_id)
    found: dict[str, ExecutionReport] = {}
    while len(found) < len(slots):
        entries = await held.redis.xrange(keys.EXECUTIONS, min=f"({start}", count=SCAN_COUNT)
        if not entries:
            break
        for entry_id, fields in entries:
            start = text(entry_id)
            report = await decode_entry(
                held.redis, keys.EXECUTIONS, entry_id, fields, ExecutionReport, service="runner"
            )
            if report is None or report.intent_id in found:
                continue
            slot = slots.get(report.intent_id)
            if slot is not None and ends(report, slot):
                found[report.intent_id] = report
    return found


def recover(state: BotState, found: dict[str, ExecutionReport], exec_from: str, now: int) -> Change:
    """An adopted bot's pending (and unresolved) intent: apply the final report that
    ends it if it already came, else send it again under this owner's epoch (same id:
    the gateway places it once, or republishes the report it stored)."""
    change = Change()
    for slot in (state.pending, state.unresolved):
        if slot is not None and slot.intent_id in found:
            change.merge(state.on_report(found[slot.intent_id], now))
    if state.pending is not None:
        # Reports are read from here on (the scan above went to the stream's end); the
        # bound still runs from the decision.
        state.pending = Pending(state.pending.intent, exec_from, now)
    if state.pending is not None or state.unresolved is not None:
        change.merge(state.resend(now, now))
    return change


async def missed_candles(
    held: Holdings, bots: list[tuple[BotState, Series, Group]]
) -> dict[str, Missed]:
    """For each bot behind its series' newest closed candle, that series' candles after
    the bot's last decided one with its strategy's signals on them (from
    ``candles:{S}:I``: one read per series, one replay per group and starting point)."""
    late = [
        (st, se, g)
        for st, se, g in bots
        if st.last_open_time
        and se.last_candle is not None
        and se.last_candle.open_time > st.last_open_time
    ]
    if not late:
        return {}
    settings = held.settings
    # Per series: the largest group warm-up before the oldest missed candle, and them.
    # And the informative series their strategies read, as deep from the same start.
    depth: dict[tuple[str, str], int] = {}
    for state, series, group in late:
        assert series.last_candle is not None
        span = series.last_candle.open_time - state.last_open_time
        behind = span // series.interval_ms
        strategy = group.evaluator.strategy
        n = max(settings.runner_warmup_candles, strategy.warmup_candles)
        pair = (series.symbol, series.interval)
        depth[pair] = max(depth.get(pair, 0), n + behind + 1)
        for interval, warmup in strategy.informative.items():
            pair = (series.symbol, interval)
            n = warmup + span // interval_length_ms(interval) + 2
            depth[pair] = max(depth.get(pair, 0), n)
    wanted = sorted(depth)
    async with held.redis.pipeline(transaction=False) as pipe:
        for symbol, interval in wanted:
            pipe.lrange(keys.candles(symbol, interval), -depth[(symbol, interval)], -1)
        raws = await pipe.execute()
    lists = {key: decode_candles(raw) for key, raw in zip(wanted, raws, strict=True)}
    replays: dict[tuple[str, str, str, int], Missed] = {}
    out: dict[str, Missed] = {}
    for state, series, group in late:
        key = (series.symbol, series.interval, group.key[2], state.last_open_time)
        done = replays.get(key)
        if done is None:
            candles = lists[(series.symbol, series.interval)]
            strategy = group.evaluator.strategy
            informative = {i: lists[(series.symbol, i)] for i in strategy.informative}
            done = replays[key] = replay(
                strategy.evaluator(), candles, state.last_open_time, informative
            )
        out[state.bot_id] = done
    return out


def catch_up(
    state: BotState,
    series: Series,
    missed: Missed | None,
    *,
    market_now: int,
    grace_ms: int,
    limit: int,
    exec_from: str,
    now: int,
) -> Change:
    """An adopted bot decides the candles that closed while it had no owner, oldest
    first, unless the newest of them is stale (older than one interval plus the grace
    on the exchange's clock): then they are logged as skipped."""
    if not missed:
        return Change()
    age = market_now - missed[-1][0].close_time
    stale = ""
    if age > series.interval_ms + grace_ms:
        stale = f"stale (the newest closed {age // 1000}s ago)"
    change = state.catch_up(missed, limit, stale, now, exec_from)
    if not change.empty:
        log.info("bot.catch_up", bot=state.bot_id, candles=len(missed), stale=stale or None)
    return change
