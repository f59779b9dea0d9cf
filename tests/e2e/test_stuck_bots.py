"""Issue 15, end to end: whatever dies while a thousand bots' intents are in flight, no
bot is stuck and no decision is placed twice. Real processes (``stuck_fleet.py``): the
session's redis-server, the exchange simulator, a live gateway against it, three
runners; the test plays ingestion and writes bots as the API does.

1. The gateway is paused with an entry intent of every bot in flight; one runner is
   killed (-9) and another paused past its leases; the third adopts everything; then
   the gateway and the paused runner resume.
2. The same, with the pending intents' reports published and then trimmed from
   ``stream:executions`` (``XTRIM MINID``) before anyone adopts the bots: the adopters
   find no report and re-send, and the gateway republishes the stored outcome.
3. A bot with an open position whose exit intent is stuck behind a paused gateway goes
   to ``needs_attention`` after the bounded wait, and its stop-loss still fires and
   closes the position, selling no more than the bot bought.

"Stuck" is defined in :func:`tests.e2e.stuck_fleet.stuck`; "two orders for one
decision" is counted on the simulator's own order records, per client order id (one
per intent id) and per bot.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import msgspec
import pytest

from shared import keys
from shared.bots import BotStatus, client_order_id, intent_id
from shared.messages import OrderIntent, Side
from tests.e2e.stuck_fleet import (
    GATEWAY,
    LEASE_MS,
    MINUTE,
    PENDING_TIMEOUT_S,
    RUNNERS,
    SETTLE_S,
    StuckFleet,
    bot_config,
    orders_per_decision,
    start_stuck_fleet,
    stuck,
)

pytestmark = pytest.mark.e2e

# The fleet: a thousand bots on three runners (all three tests take ~40 s on
# the 2-core machine; BOTFLEET_TEST_STUCK_BOTS scales it down for a quick look).
BOTS = int(os.environ.get("BOTFLEET_TEST_STUCK_BOTS", "1000"))
SYMBOLS_1 = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
SYMBOLS_2 = ("XRPUSDT", "ADAUSDT", "SOLUSDT")
SYMBOL_3 = "DOGEUSDT"
# one lease, the heartbeat's 2.5 s freshness and a reconcile pass, with room for load
ADOPT_S = LEASE_MS / 1000 + 30


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[StuckFleet]:
    stuck_fleet = start_stuck_fleet(
        tmp_path_factory.mktemp("stuck-bots"), redis_url, [*SYMBOLS_1, *SYMBOLS_2, SYMBOL_3]
    )
    try:
        yield stuck_fleet
    finally:
        stuck_fleet.close()


@pytest.fixture(autouse=True)
def _whole_fleet(fleet: StuckFleet, request: pytest.FixtureRequest) -> Iterator[None]:
    """Every process runs at the start of each test (a previous one may have left one
    killed or paused); logs are printed when a test fails."""
    fleet.resume_all()
    for name in list(fleet.dead):
        fleet.restart(name)
    fleet.wait_for(lambda: fleet.live_runners() == set(RUNNERS), 60, "three live runners")
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fleet.logs(6000))


# --- steps shared by the tests ---------------------------------------------------------


def start_bots(
    fleet: StuckFleet, prefix: str, symbols: tuple[str, ...], n: int, **config: bool
) -> tuple[list[str], dict[str, tuple[int, Decimal]]]:
    """``n`` bots over ``symbols``, all running, held by every runner; returns their ids
    and each series' next open time and buying close."""
    series = {s: fleet.seed_series(s) for s in symbols}
    ids = [f"{prefix}-{i:04d}" for i in range(n)]
    fleet.create_bots(
        {b: bot_config(symbols[i % len(symbols)], **config) for i, b in enumerate(ids)}
    )

    def running_everywhere() -> bool:
        statuses = fleet.bot_fields(ids, "status")
        if any(f["status"] != BotStatus.RUNNING.value for f in statuses.values()):
            return False
        return len(ids) < len(RUNNERS) or set(fleet.owners(ids)) == set(RUNNERS)

    fleet.wait_for(running_everywhere, 120, f"{n} bots running on every runner", poll=0.5)
    return ids, series


def trigger_entries(
    fleet: StuckFleet, ids: list[str], series: dict[str, tuple[int, Decimal]]
) -> dict[str, str]:
    """One candle per series on which every bot buys; returns each bot's pending intent
    id once all are recorded."""
    for symbol, (open_time, up) in series.items():
        fleet.push_candle(symbol, open_time, up)

    def all_pending() -> dict[str, str] | None:
        # pending, or moved aside as unresolved after the bounded wait (u_ fields)
        found = {
            b: p.get("intent_id") or p.get("u_intent_id", "")
            for b, p in fleet.pendings(ids).items()
        }
        return found if all(found.values()) else None

    try:
        pending: dict[str, str] = fleet.wait_for(
            all_pending, 60, "an entry intent pending for every bot", poll=0.5
        )
    except AssertionError:
        missing = [
            b
            for b, p in fleet.pendings(ids).items()
            if not (p.get("intent_id") or p.get("u_intent_id"))
        ]
        raise AssertionError(
            f"{len(missing)} bots decided no entry: {fleet.explain(missing[:3])}"
        ) from None
    return pending


def sent_under_current_epoch(fleet: StuckFleet, ids: list[str]) -> bool:
    """Every bot's pending intent carries the bot's epoch: adopters re-sent theirs."""
    epochs = fleet.bot_fields(ids, "epoch")
    for bot_id, pending in fleet.pendings(ids).items():
        for slot in ("intent", "u_intent"):  # pending, or unresolved after the bound
            raw = pending.get(slot)
            if raw is None:
                continue  # already ended
            intent = msgspec.json.decode(raw, type=OrderIntent)
            if str(intent.epoch) != epochs[bot_id]["epoch"]:
                return False
    return True


def settle(fleet: StuckFleet, ids: list[str]) -> dict[str, str]:
    """Wait (bounded) until every bot has settled and the gateway has answered every
    intent: ``running`` with nothing in flight, or ``needs_attention`` with a reason,
    held by a live runner. Returns what is stuck (:func:`stuck`) when the bound passes
    first: by then every intent still in flight is older than the bounded wait."""

    def settled() -> bool:
        if not fleet.gateway_caught_up():
            return False
        if stuck(fleet, ids, int(time.time() * 1000)):
            return False
        running = [
            b for b, f in fleet.bot_fields(ids, "status").items() if f["status"] == "running"
        ]
        return not any(fleet.pendings(running).values())

    try:
        fleet.wait_for(settled, SETTLE_S, "every bot settled", poll=1.0)
    except AssertionError:
        return stuck(fleet, ids, int(time.time() * 1000))
    return {}


def describe(stuck_bots: dict[str, str]) -> str:
    kinds = Counter(" ".join(why.split()[:2]) for why in stuck_bots.values())
    sample = dict(list(stuck_bots.items())[:3])
    return f"{len(stuck_bots)} stuck: {dict(kinds)}; e.g. {sample}"


def check_one_order_per_decision(
    fleet: StuckFleet, ids: list[str], pending: dict[str, str]
) -> None:
    """Each bot's entry decision is on the simulator exactly once (never twice, never
    lost), and the bot's book agrees: it holds the position that order bought."""
    counts, per_bot = orders_per_decision(fleet, pending)
    doubled = {i: c for i, c in counts.items() if c > 1}
    assert not doubled, (
        f"{len(doubled)} decisions placed more than once: {list(doubled.items())[:5]}"
    )
    assert all(c[Side.BUY.value] <= 1 for c in per_bot.values())
    missing = [i for i, c in counts.items() if c == 0]
    assert not missing, (
        f"{len(missing)} entry decisions never placed: {missing[:5]}; their reports: "
        f"{[r for _, r in fleet.reports() if r.intent_id in missing[:3]]}; "
        f"{fleet.explain([i.split(':')[0] for i in missing[:2]])}"
    )

    # With the gateway answering again every outcome is known: the last reports may
    # still be on their way to the runners (a needs_attention bot runs again by itself).
    def books() -> tuple[list[str], Counter[str]]:
        positions = fleet.positions(ids)
        flat = [b for b in ids if not positions[b].get("qty")]
        return flat, Counter(f["status"] for f in fleet.bot_fields(ids, "status").values())

    try:
        fleet.wait_for(lambda: books() == ([], Counter({"running": len(ids)})), 20, "books")
    except AssertionError:
        pass
    flat, statuses = books()
    assert not flat, f"{len(flat)} bots bought on the exchange but hold no position: {flat[:5]}"
    assert statuses == {BotStatus.RUNNING.value: len(ids)}, statuses


# --- the tests -----------------------------------------------------------------------------


def test_gateway_paused_runner_killed_and_runner_paused_past_leases_leave_no_bot_stuck(
    fleet: StuckFleet,
) -> None:
    ids, series = start_bots(fleet, "t1", SYMBOLS_1, BOTS)
    try:
        fleet.pause(GATEWAY)
        pending = trigger_entries(fleet, ids, series)
        victims = {b for b, o in fleet.bot_fields(ids, "owner").items() if o["owner"] != "sc"}
        fleet.kill("sa")
        fleet.pause("sb")
        fleet.wait_for(
            lambda: fleet.owners(ids) == Counter({"sc": len(ids)}), ADOPT_S, "sc holds every bot"
        )
        fleet.wait_for(
            lambda: sent_under_current_epoch(fleet, ids), 30, "adopted intents re-sent", poll=0.5
        )
        assert victims
        fleet.resume(GATEWAY)
        fleet.resume("sb")

        left = settle(fleet, ids)
        assert not left, describe(left)
        check_one_order_per_decision(fleet, ids, pending)
    finally:
        fleet.retire(ids)


def test_reports_trimmed_from_the_stream_before_adoption_still_reach_every_bot(
    fleet: StuckFleet,
) -> None:
    ids, series = start_bots(fleet, "t2", SYMBOLS_2, BOTS)
    try:
        fleet.pause(GATEWAY)
        pending = trigger_entries(fleet, ids, series)
        fleet.kill("sa")
        fleet.pause("sb")
        fleet.pause("sc")
        fleet.resume(GATEWAY)
        wanted = set(pending.values())

        def reported() -> bool:
            finals = {rep.intent_id for _, rep in fleet.reports() if rep.final}
            return wanted <= finals

        fleet.wait_for(reported, SETTLE_S, "a final report of every entry", poll=1.0)
        # The reports are there, and no runner has read them: trim them all away.
        last_id = fleet.r.xrevrange(keys.EXECUTIONS, count=1)[0][0]
        ms, seq = (int(x) for x in last_id.split("-"))
        fleet.r.xtrim(keys.EXECUTIONS, minid=f"{ms}-{seq + 1}", approximate=False)
        assert not {rep.intent_id for _, rep in fleet.reports()} & wanted
        fleet.wait_for(
            lambda: not any(fleet.leases(ids).values()), ADOPT_S, "every lease lapsed", poll=0.5
        )
        fleet.resume("sb")
        fleet.resume("sc")
        fleet.restart("sa")

        left = settle(fleet, ids)
        assert not left, describe(left)
        check_one_order_per_decision(fleet, ids, pending)
    finally:
        fleet.retire(ids)


def test_stop_loss_closes_the_position_of_a_bot_whose_exit_intent_is_stuck(
    fleet: StuckFleet,
) -> None:
    bot = "t3-0"
    ((open_time, up),) = [fleet.seed_series(SYMBOL_3)]
    fleet.create_bots({bot: bot_config(SYMBOL_3, sell_on_overbought=True)})
    fleet.wait_for(
        lambda: fleet.bot_fields([bot], "status")[bot]["status"] == BotStatus.RUNNING.value,
        30,
        "bot running",
    )
    fleet.push_candle(SYMBOL_3, open_time, up)
    entry = intent_id(bot, str(open_time), "buy")  # ids come from the decision
    position = fleet.wait_for(lambda: fleet.positions([bot])[bot], 30, "position opened")
    entry_price = Decimal(position["entry_price"])

    fleet.pause(GATEWAY)
    try:
        # Rising candles lift RSI(5) past 70: the strategy sells, and the gateway is away.
        step = (up / 200).quantize(Decimal("0.00000001"))
        for n in range(1, 6):
            fleet.push_candle(SYMBOL_3, open_time + n * MINUTE, up + n * step)

        def exit_pending() -> str:
            p = fleet.pendings([bot])[bot]
            found = p.get("intent_id") or p.get("u_intent_id") or ""  # u_: unresolved
            return found if found.endswith(":sell") else ""

        stuck_exit = fleet.wait_for(exit_pending, 30, "a strategy exit pending")
        fields = fleet.wait_for(
            lambda: (
                (f := fleet.bot_fields([bot], "status", "status_reason")[bot])["status"]
                == BotStatus.NEEDS_ATTENTION.value
                and f
            ),
            PENDING_TIMEOUT_S + 15,
            "needs_attention after the bounded wait",
        )
        assert stuck_exit in fields["status_reason"]
        assert any(e.kind == "bot_needs_attention" and e.bot_id == bot for e in fleet.events())

        # The price falls through the stop while the exit is still stuck.
        fleet.push_tick(SYMBOL_3, (entry_price * Decimal("0.9")).quantize(Decimal("0.00000001")))
        stop = fleet.wait_for(
            lambda: [i for _, i in fleet.intents() if i.bot_id == bot and "STOP_LOSS" in i.reason],
            15,
            "the stop-loss exit",
        )[0]
        assert stop.side is Side.SELL and stop.is_exit and stop.intent_id != stuck_exit
    finally:
        fleet.resume(GATEWAY)

    fleet.wait_for(lambda: not fleet.positions([bot])[bot], SETTLE_S, "position closed")
    left = settle(fleet, [bot])
    assert not left, describe(left)
    # On the exchange: the bot sold what it had bought, not more (fees aside).
    # Its decisions: those known here, and any other still in the stream (the gateway
    # trims what it has acknowledged).
    mine = {entry, stuck_exit, stop.intent_id}
    mine |= {i.intent_id for _, i in fleet.intents() if i.bot_id == bot}
    by_cid = fleet.sim_orders_by_cid()
    sold = bought = Decimal(0)
    for decision in mine:
        orders = by_cid.get(client_order_id(decision), [])
        assert len(orders) <= 1, (decision, orders)
        for order in orders:
            qty = Decimal(order["executedQty"])
            if order["side"] == Side.BUY.value:
                bought += qty
            else:
                sold += qty
    assert bought > 0 and 0 < sold <= bought, (
        f"bought {bought}, sold {sold}: the stuck exit and the stop-loss both sold the position"
        if sold > bought
        else f"bought {bought}, sold {sold}"
    )
