"""Issue 10's guard rails, end to end: every service a real process against the exchange
simulator (``tests/e2e/guard_rails_fleet.py``), shared by the module.

- one request-weight budget: two ingestion instances backfilling many symbols and two
  gateways placing a stream of orders never make the simulator serve more than its
  limit in an exchange minute, never earn a 429 or a 418, and every intent ends once;
- the stale-data gate: a frozen market pauses its bots' entries, visibly over the API,
  and they trade again after it resumes;
- the gateway's guard rails on a live, Ed25519-signing gateway: the refusal names the
  rail, is counted in the health key, announced in ``stream:events``, and never reaches
  the simulator.

What the gateway's own process tests already prove is not repeated here (see
docs/guard_rails.md): each rail's reason and the simulator never seeing a refused
order, and a wrong Ed25519 key getting -1022.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from shared import keys
from shared.bots import BotField, client_order_id, intent_id
from shared.messages import ExecutionStatus, OrderIntent, Side
from shared.ratelimit import BACKGROUND_SHARE
from tests.e2e.guard_rails_fleet import (
    BOT_ORDERS_PER_MIN,
    BUDGET,
    FILLERS,
    GATEWAYS,
    INGESTIONS,
    MAX_ORDER_NOTIONAL,
    NOT_ALLOWED,
    STALE_GRACE_S,
    WEIGHT_LIMIT,
    GuardFleet,
    guard_fleet,
    rejections,
)

BACKFILL_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h")
# klines requests (weight 2 each) the backfill may be given: 144
ALL_BACKFILL = [keys.subscription(s, i) for i in BACKFILL_INTERVALS for s in FILLERS]
ORDERS = 30  # intents of the test's own "runners" (weight 1 each at the fleet budget)
SPILL = 60  # weight of demand beyond what is left of the first minute
ONE_SECOND_INTERVAL_S = 1.0
# the runner's housekeeping pass and the test's polling on top of interval + grace
GATE_SLACK_S = 3.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardFleet]:
    yield from guard_fleet(tmp_path_factory.mktemp("guard-rails"))


@pytest.fixture(autouse=True)
def _logs_on_failure(fleet: GuardFleet, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fleet.logs(6000))


def _buy(bot: str, trigger: str, *, symbol: str = "BTCUSDT", qty: str = "0.001") -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id(bot, trigger, "buy"),
        bot_id=bot,
        epoch=1,
        symbol=symbol,
        side=Side.BUY,
        quantity=Decimal(qty),
    )


def test_two_ingestions_and_two_gateways_never_pass_the_exchange_weight_limit(
    fleet: GuardFleet,
) -> None:
    r = fleet.r
    # The simulator's clock is the wall clock (--speed 1): its exchange minutes are the
    # budget's. Start early in a minute and size the load to what the fleet has left of
    # this minute's budget plus SPILL: the budget must hold the rest back until the next
    # minute (and everything then fits in that one, so the test crosses one boundary).
    second = time.time() % 60
    if second > 40:
        time.sleep(60.3 - second)
    minute = int(time.time() * 1000) // 60_000
    used = int(r.get(keys.ratelimit_weight(minute)) or 0)
    remaining = BUDGET - used
    # Backfill may fill only its background share of a minute (orders keep the rest):
    # size it to spill SPILL beyond what that share has left.
    backfill_left = int(BUDGET * BACKGROUND_SHARE) - used
    n_streams = max(10, min(len(ALL_BACKFILL), (backfill_left + SPILL) // 2))
    members = ALL_BACKFILL[:n_streams]
    tag = time.time_ns()
    intents = []
    for b in range(ORDERS // 5):
        bot = f"load-{b}-{tag}"
        r.hset(keys.bot(bot), BotField.EPOCH.value, "1")
        intents += [_buy(bot, f"t{n}") for n in range(5)]
    r.sadd(keys.MARKET_SUBSCRIPTIONS, *members)
    r.publish(keys.MARKET_SUBSCRIPTIONS_CHANNEL, "changed")
    fleet.send(*intents)
    wanted = {i.intent_id for i in intents}

    def done() -> bool:
        if set(fleet.final_reports(wanted)) != wanted:
            return False
        pipe = r.pipeline(transaction=False)
        for member in members:
            symbol, interval = keys.parse_subscription(member)
            pipe.llen(keys.candles(symbol, interval))
        return all(n >= 90 for n in pipe.execute())

    def state() -> str:
        pipe = r.pipeline(transaction=False)
        for member in members:
            symbol, interval = keys.parse_subscription(member)
            pipe.llen(keys.candles(symbol, interval))
        short = [m for m, n in zip(members, pipe.execute(), strict=True) if n < 90]
        return (
            f"started at second {second:.1f} with {remaining} left, {n_streams} streams;"
            f" final reports {len(fleet.final_reports(wanted))}/{len(wanted)};"
            f" short candle lists {short}; simulator {fleet.sim.limits()}"
        )

    try:
        fleet.wait_for(done, 150, "every backfill and a final report for every intent")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {state()}") from None
    time.sleep(0.5)  # a second report, if one were coming, would show now

    finals = fleet.final_reports(wanted)
    assert all(len(v) == 1 for v in finals.values()), "an intent got two terminal reports"
    assert {v[0].status for v in finals.values()} == {ExecutionStatus.FILLED}
    placed = fleet.sim_order_counts()
    assert all(placed.get(client_order_id(i)) == 1 for i in wanted)

    limits = fleet.sim.limits()
    per_minute = {int(k): int(v) for k, v in limits["weight_per_minute"].items()}
    assert limits["answered_418"] == 0
    assert limits["answered_429"] == 0, limits
    assert limits["max_weight_per_minute"] <= WEIGHT_LIMIT, per_minute
    # the budget was binding: some process waited for the next minute rather than send
    waited = [
        name
        for name in (*INGESTIONS, *GATEWAYS)
        if "ratelimit.waiting" in fleet.procs[name].log_text()
        or "order.delayed" in fleet.procs[name].log_text()
    ]
    assert waited, f"nobody waited for the budget: {per_minute}"
    # both ingestion instances backfilled (one shard each), both gateways placed orders
    for name in INGESTIONS:
        assert int(fleet.health("ingestion", name).get("backfilled_candles", "0")) > 0
    for name in GATEWAYS:
        health = fleet.health("gateway", name)
        assert health.get("signer") == "ed25519"
        assert int(health.get("requests", "0")) > 0


def _bot_body(name: str, symbol: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "symbol": symbol,
        "interval": "1s",
        "strategy": "rsi",
        "params": {"period": 2, "oversold": 45, "overbought": 55},
        "quote_allocation": "1000",
        "sizing": {"mode": "fixed_quote", "quote_amount": "50"},
        "stop_loss_pct": "0.05",
        "take_profit_pct": "0.05",
        "cooldown_seconds": 8,  # at most ~7 entries a minute: under the bot rate rail
    }
    body.update(extra)
    return body


def _create_and_start(fleet: GuardFleet, body: dict[str, Any]) -> str:
    created = fleet.api.post("/api/v1/bots", json=body)
    assert created.status_code == 201, created.text
    bot_id = str(created.json()["id"])
    started = fleet.api.post(f"/api/v1/bots/{bot_id}/start", params={"wait": 10})
    assert started.status_code == 202, started.text
    return bot_id


def _stale_of(bot: dict[str, Any]) -> str:
    stale = bot.get("stale") or ""
    return ",".join(stale) if isinstance(stale, list) else str(stale)


def _entries(fleet: GuardFleet, bot_id: str, after_ms: int = 0) -> list[OrderIntent]:
    return [
        i
        for at, i in fleet.intents()
        if i.bot_id == bot_id and i.side is Side.BUY and not i.is_exit and at > after_ms
    ]


def _filled_entries(fleet: GuardFleet, bot_id: str, after_ms: int = 0) -> list[str]:
    ids = {i.intent_id for i in _entries(fleet, bot_id, after_ms)}
    return [
        iid
        for iid, reps in fleet.final_reports(ids).items()
        if reps[0].status is ExecutionStatus.FILLED
    ]


# The timeouts below are generous on purpose: the weight test before them spends whole
# exchange minutes of the budget, so a new subscription's backfill and the first orders
# may wait for the next minute before the strategies have data and orders can go out.
def test_frozen_market_pauses_its_bots_entries_visibly_and_they_trade_again_after_it_resumes(
    fleet: GuardFleet,
) -> None:
    btc = _create_and_start(fleet, _bot_body("gate-btc", "BTCUSDT"))
    eth = _create_and_start(fleet, _bot_body("gate-eth", "ETHUSDT"))
    # both trade through the Ed25519 gateways first (a bot's order on the simulator)
    fleet.wait_for(
        lambda: _filled_entries(fleet, btc) and _filled_entries(fleet, eth), 120, "first fills"
    )
    placed = fleet.sim_order_counts()
    assert all(placed.get(client_order_id(i)) == 1 for i in _filled_entries(fleet, btc))

    frozen_at = time.time()
    fleet.sim.freeze("BTCUSDT")
    bound = ONE_SECOND_INTERVAL_S + STALE_GRACE_S + GATE_SLACK_S
    seen: dict[str, Any] = {}

    def btc_stale() -> bool:
        seen.update(fleet.api.get(f"/api/v1/bots/{btc}").json())
        return _stale_of(seen) == "BTCUSDT"

    fleet.wait_for(btc_stale, bound, "the BTCUSDT bot marked stale over the API")
    stale_ms = int(time.time() * 1000)
    assert time.time() - frozen_at <= bound
    assert "stale" in seen["status_reason"] and "BTCUSDT" in seen["status_reason"]
    assert seen["status"] == "running"  # paused entries, not a stopped bot
    eth_now = fleet.api.get(f"/api/v1/bots/{eth}").json()
    assert _stale_of(eth_now) == "", "a bot on a live symbol was paused too"
    health = fleet.api.get("/api/v1/bots/health").json()
    assert "BTCUSDT" in str(health.get("stale_symbols", health))
    assert btc in str(health.get("stale_bots", health))
    log = fleet.api.get(f"/api/v1/bots/{btc}/log").json()
    assert any("stale" in str(entry) for entry in log)
    assert any(e.kind == "bot_stale" and e.bot_id == btc for e in fleet.events()), (
        "no bot_stale event"
    )

    time.sleep(3.0)  # frozen a while: nothing new may be entered
    thawed_ms = int(time.time() * 1000)
    assert _entries(fleet, btc, stale_ms) == []
    fleet.sim.thaw()

    def btc_fresh_and_trading() -> bool:
        bot = fleet.api.get(f"/api/v1/bots/{btc}").json()
        return _stale_of(bot) == "" and bool(_filled_entries(fleet, btc, thawed_ms))

    fleet.wait_for(btc_fresh_and_trading, 90, "the BTCUSDT bot fresh and entering again")
    assert any(e.kind == "bot_fresh" and e.bot_id == btc for e in fleet.events())
    eth_after = fleet.api.get(f"/api/v1/bots/{eth}").json()
    assert eth_after["status"] == "running"


def test_each_rail_refuses_on_a_live_gateway_counts_it_announces_it_and_sends_nothing(
    fleet: GuardFleet,
) -> None:
    r = fleet.r
    second = time.time() % 60
    if second > 50:  # the rate windows are fixed minutes: keep the burst inside one
        time.sleep(60.2 - second)
    tag = time.time_ns()
    before = rejections(fleet)
    # a bot made through the API on a listed symbol outside the allowed list: its
    # runner's entries are refused by the gateway, whatever the API accepted
    outside = _create_and_start(fleet, _bot_body("rail-symbol", NOT_ALLOWED))
    # a leaked runner or key: an order far above the notional rail, and a burst of
    # orders from one bot past the per-bot rate
    leaked = f"leaked-{tag}"
    r.hset(keys.bot(leaked), BotField.EPOCH.value, "1")
    big = _buy(leaked, "big", qty="1")  # ~1 BTC, far above the notional rail
    burst = [_buy(f"burst-{tag}", f"b{n}") for n in range(BOT_ORDERS_PER_MIN + 2)]
    r.hset(keys.bot(f"burst-{tag}"), BotField.EPOCH.value, "1")
    fleet.send(big)
    for intent in burst:  # in order, so the last ones are the ones past the rate
        fleet.send(intent)
        time.sleep(0.02)
    wanted = {big.intent_id, *(i.intent_id for i in burst)}
    fleet.wait_for(lambda: set(fleet.final_reports(wanted)) == wanted, 90, "reports")
    fleet.wait_for(
        lambda: any(
            reps[0].status is ExecutionStatus.REJECTED
            for reps in fleet.final_reports(
                {i.intent_id for i in _entries(fleet, outside)}
            ).values()
        ),
        # the new symbol's backfill may wait for the next minute's weight (the test
        # before spends it on purpose), then the strategy needs its candles
        120,
        "an entry of the bot outside the allowed symbols refused",
    )
    finals = fleet.final_reports(wanted)
    refused_outside = [
        reps[0]
        for reps in fleet.final_reports({i.intent_id for i in _entries(fleet, outside)}).values()
    ]

    assert finals[big.intent_id][0].reason.startswith("max_order_notional:")
    assert str(MAX_ORDER_NOTIONAL) in finals[big.intent_id][0].reason
    statuses = [finals[i.intent_id][0].status for i in burst]
    assert (
        statuses == [ExecutionStatus.FILLED] * BOT_ORDERS_PER_MIN + [ExecutionStatus.REJECTED] * 2
    )
    over_rate = [finals[i.intent_id][0] for i in burst[BOT_ORDERS_PER_MIN:]]
    assert all(x.reason.startswith("max_bot_order_rate:") for x in over_rate)
    assert all(x.reason.startswith("allowed_symbols:") for x in refused_outside)

    # counted in the gateways' health, announced in stream:events with the rail named
    def counted() -> bool:
        now = rejections(fleet)
        return all(
            sum(v for k, v in now.items() if rail in k)
            > sum(v for k, v in before.items() if rail in k)
            for rail in ("allowed_symbols", "max_order_notional", "max_bot_order_rate")
        )

    fleet.wait_for(counted, 10, "rejections counted in the health keys")
    rails_seen = {
        (e.details.get("rail"), e.bot_id) for e in fleet.events() if e.kind == "guard_rail"
    }
    assert ("max_order_notional", leaked) in rails_seen
    assert ("allowed_symbols", outside) in rails_seen
    assert ("max_bot_order_rate", f"burst-{tag}") in rails_seen
    # and none of the refused orders reached the exchange
    placed = fleet.sim_order_counts()
    refused = [
        big.intent_id,
        *(x.intent_id for x in over_rate),
        *(x.intent_id for x in refused_outside),
    ]
    assert all(client_order_id(i) not in placed for i in refused)
    assert not any(o["symbol"] == NOT_ALLOWED for o in fleet.sim.orders())
    fleet.api.post(f"/api/v1/bots/{outside}/stop")
