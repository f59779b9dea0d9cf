"""Live mode against the exchange simulator as a real process: every accepted intent is
exactly one simulator order (the simulator's own records) and one terminal report,
through duplicate delivery, a lost answer (503), kill -9 mid-order, a 429 storm,
fencing, rails and bad keys; and no secret ever reaches Redis or the logs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis as sync_redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import keys
from shared.binance.signing import HmacSigner, signed_query
from shared.bots import BotField, client_order_id
from shared.messages import ExecutionStatus, OrderIntent, OrderType, Side
from tests.integration.gateway.live_support import (
    all_redis_text,
    gateway_env,
    reports,
    seed_from_sim,
    send,
    sim_orders,
    start_gateway,
    wait_final,
)
from tests.support.processes import BotfleetProcess
from tests.support.sim import SIM_API_KEY, SIM_API_SECRET, SimClient, start_sim

SPEED = 60.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(tmp_path_factory.mktemp("sim-gw"), speed=SPEED)
    yield client
    client.stop()


@pytest.fixture
def r(clean_redis_url: str, sim: SimClient) -> Iterator[sync_redis.Redis]:
    sim.clear_faults()
    client = sync_redis.Redis.from_url(clean_redis_url)
    seed_from_sim(client, sim)
    yield client
    client.close()


def buy(n: str, qty: str = "0.001", **kw: object) -> OrderIntent:
    return OrderIntent(
        intent_id=f"live-bot:{n}:buy",
        bot_id="live-bot",
        epoch=int(kw.pop("epoch", 1)),  # type: ignore[call-overload]
        symbol=str(kw.pop("symbol", "BTCUSDT")),
        side=Side.BUY,
        quantity=Decimal(qty),
        **kw,  # type: ignore[arg-type]
    )


def test_live_intents_and_a_duplicate_delivery_make_one_order_each(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url))
    processes.append(gw)
    intents = [buy(f"ok{n}-{time.time_ns()}") for n in range(4)]
    send(r, *intents, intents[0], intents[1])  # two sent twice (on two entries each)
    finals = wait_final(r, intents, gw)
    # a copy handled after the first ended gets the stored report again: never a new one
    assert all(all(x == v[0] for x in v) for v in finals.values())
    assert all(
        len(v) == 1
        for k, v in finals.items()
        if k not in (intents[0].intent_id, intents[1].intent_id)
    )
    assert all(v[0].status is ExecutionStatus.FILLED for v in finals.values())
    assert set(sim_orders(sim, intents).values()) == {1}
    before = [x for x in reports(r) if x.intent_id == intents[2].intent_id]
    send(r, intents[2])  # sent again after it ended: the stored report, no order
    gw.wait_for(
        lambda: len([x for x in reports(r) if x.intent_id == intents[2].intent_id]) == 2,
        20,
        "the stored report republished",
    )
    again = [x for x in reports(r) if x.intent_id == intents[2].intent_id]
    assert again == [before[0], before[0]]
    assert set(sim_orders(sim, intents).values()) == {1}


def test_order_executed_but_answered_503_is_found_by_its_client_order_id(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url))
    processes.append(gw)
    sim.set_faults(order_unknown_rate=1.0, unknown_mode="503")
    intents = [buy(f"503-{n}-{time.time_ns()}") for n in range(3)]
    send(r, *intents)
    gw.wait_for(lambda: len(sim_orders_nonzero(sim, intents)) == 3, 15, "orders on the simulator")
    finals = wait_final(r, intents, gw)
    assert all(len(v) == 1 and v[0].status is ExecutionStatus.FILLED for v in finals.values())
    assert set(sim_orders(sim, intents).values()) == {1}
    assert "order.outcome_unknown" in gw.log_text()


def sim_orders_nonzero(sim: SimClient, intents: list[OrderIntent]) -> list[str]:
    return [k for k, v in sim_orders(sim, intents).items() if v]


def test_kill_9_between_sending_and_acknowledging_then_restart_places_once(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    env = gateway_env(sim, clean_redis_url, BOTFLEET_GATEWAY_HTTP_TIMEOUT_S="10")
    gw = start_gateway(tmp_path, env)
    processes.append(gw)
    sim.set_faults(order_unknown_rate=1.0, unknown_mode="timeout", timeout_s=30)
    intent = buy(f"kill-{time.time_ns()}")
    send(r, intent)
    # the order is on the exchange, the gateway still waits for its answer
    gw.wait_for(
        lambda: sim_orders(sim, [intent])[intent.intent_id] == 1, 15, "order on the simulator"
    )
    status = r.hget(keys.order(client_order_id(intent.intent_id)), "status")
    assert status == b"SENDING"
    gw.kill()
    assert r.xlen(keys.EXECUTIONS) == 0
    sim.clear_faults()
    gw.start()
    finals = wait_final(r, [intent], gw)
    assert [x.status for x in finals[intent.intent_id]] == [ExecutionStatus.FILLED]
    assert sim_orders(sim, [intent])[intent.intent_id] == 1
    assert "reconcile.difference" in gw.log_text()


def test_an_order_whose_record_redis_lost_is_found_on_the_exchange_not_placed_again(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    """AOF everysec can lose the last writes: the record, the report, the delivery.
    The intent is back in the stream as if never read; the exchange would accept its
    client order id again (the first order filled). The restart must find it there."""
    env = gateway_env(sim, clean_redis_url)
    gw = start_gateway(tmp_path, env)
    processes.append(gw)
    intent = buy(f"lost-{time.time_ns()}")
    send(r, intent)
    wait_final(r, [intent], gw)
    gw.stop()
    # what a lost second of writes looks like: no record, no report, no delivery
    r.delete(keys.order(client_order_id(intent.intent_id)), keys.EXECUTIONS, keys.ORDER_INTENTS)
    send(r, intent)
    gw.start()
    finals = wait_final(r, [intent], gw)
    assert [x.status for x in finals[intent.intent_id]] == [ExecutionStatus.FILLED]
    assert sim_orders(sim, [intent])[intent.intent_id] == 1
    assert "record restored" in gw.log_text()


def test_repeated_failures_open_the_breaker_which_says_so_and_recovers_to_place_once(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    env = gateway_env(
        sim,
        clean_redis_url,
        BOTFLEET_GATEWAY_BREAKER_FAILURES="3",
        BOTFLEET_GATEWAY_BREAKER_COOLDOWN_S="1",
        BOTFLEET_GATEWAY_RECV_WINDOW_MS="1000",
    )
    gw = start_gateway(tmp_path, env)
    processes.append(gw)
    sim.set_faults(error_rate=1.0)  # every REST answer is a 500 (nothing executed)
    intent = buy(f"brk-{time.time_ns()}")
    send(r, intent)
    health = keys.health("gateway", "gw-test")
    gw.wait_for(lambda: r.hget(health, "breaker") == b"open", 20, "breaker open in health")
    gw.wait_for(
        lambda: any(b"exchange.circuit_breaker" in f[b"data"] for _i, f in r.xrange(keys.EVENTS)),
        10,
        "breaker event",
    )
    sim.clear_faults()
    finals = wait_final(r, [intent], gw, timeout=30)
    assert [x.status for x in finals[intent.intent_id]] == [ExecutionStatus.FILLED]
    assert sim_orders(sim, [intent])[intent.intent_id] == 1
    gw.wait_for(lambda: r.hget(health, "breaker") == b"closed", 10, "breaker closed again")


def test_a_429_storm_pauses_the_gateway_and_every_intent_still_trades_once(
    r: sync_redis.Redis, tmp_path: Path, clean_redis_url: str, processes: list[BotfleetProcess]
) -> None:
    # A real-time exchange clock (speed 1) that the gateway's weight windows follow, set
    # to start 8 s before a minute boundary, so the spent minute ends within the test.
    start = (int(time.time() * 1000) // 60_000) * 60_000 + 52_000
    sim = start_sim(
        tmp_path / "sim429",
        speed=1.0,
        extra_args=["--weight-limit", "600", "--ban-after", "1000", "--start-time", str(start),
                    "--history-days", "2"],
    )  # fmt: skip
    try:
        seed_from_sim(r, sim)
        env = gateway_env(sim, clean_redis_url, BOTFLEET_GATEWAY_USE_SERVER_TIME="true")
        gw = start_gateway(tmp_path, env)
        processes.append(gw)
        stop = threading.Event()
        limited = [0]

        def storm() -> None:  # another user of the IP that ignores the fleet budget
            with httpx.Client(base_url=sim.rest_url, timeout=5) as http:
                while not stop.is_set() and limited[0] < 20:  # a storm, not a ban
                    if http.get("/api/v3/exchangeInfo").status_code == 429:
                        limited[0] += 1

        thread = threading.Thread(target=storm, daemon=True)
        thread.start()
        try:
            time.sleep(0.3)
            intents = [buy(f"storm-{n}-{time.time_ns()}") for n in range(6)]
            send(r, *intents)
            time.sleep(1.0)
        finally:
            stop.set()
            thread.join(10)
        finals = wait_final(r, intents, gw, timeout=30)
        assert limited[0] > 0
        assert all(len(v) == 1 and v[0].status is ExecutionStatus.FILLED for v in finals.values())
        assert set(sim_orders(sim, intents).values()) == {1}
        log = gw.log_text()
        assert "ratelimit.paused" in log or "order.delayed" in log
        assert '"status": 418' not in log  # the gateway's own requests never earned a ban
    finally:
        sim.stop()


def test_stale_epoch_and_every_rail_are_refused_without_reaching_the_simulator(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    env = gateway_env(
        sim,
        clean_redis_url,
        BOTFLEET_GATEWAY_ALLOWED_SYMBOLS="BTCUSDT",
        BOTFLEET_GATEWAY_MAX_ORDER_NOTIONAL="500000",
        BOTFLEET_GATEWAY_BOT_ORDERS_PER_MIN="1",
        BOTFLEET_GATEWAY_FLEET_ORDERS_PER_MIN="2",
    )
    r.hset(keys.bot("live-bot"), BotField.EPOCH.value, "5")
    gw = start_gateway(tmp_path, env)
    processes.append(gw)
    tag = time.time_ns()
    stale = buy(f"stale-{tag}", epoch=4)
    symbol = buy(f"sym-{tag}", epoch=5, symbol="ETHUSDT", qty="0.01")
    big = buy(f"big-{tag}", epoch=5, qty="20")
    first = buy(f"first-{tag}", epoch=5)
    second = buy(f"second-{tag}", epoch=5)
    other = OrderIntent(
        intent_id=f"b2:{tag}:buy",
        bot_id="b2",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.001"),
    )
    third = OrderIntent(
        intent_id=f"b3:{tag}:buy",
        bot_id="b3",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.001"),
    )
    intents = [stale, symbol, big, first, second, other, third]
    for item in intents:
        send(r, item)
        time.sleep(0.05)
    finals = wait_final(r, [i for i in intents if i is not stale], gw)
    reason = {k: v[0].reason for k, v in finals.items()}
    # a stale-epoch copy is a non-final notice: its id stays free for the new epoch
    [notice] = [x for x in reports(r) if x.intent_id == stale.intent_id]
    assert not notice.final and "stale epoch" in notice.reason
    assert r.exists(keys.order(client_order_id(stale.intent_id))) == 0
    assert reason[symbol.intent_id].startswith("allowed_symbols:")
    assert reason[big.intent_id].startswith("max_order_notional:")
    assert finals[first.intent_id][0].status is ExecutionStatus.FILLED
    assert reason[second.intent_id].startswith("max_bot_order_rate:")
    assert finals[other.intent_id][0].status is ExecutionStatus.FILLED
    assert reason[third.intent_id].startswith("max_fleet_order_rate:")
    placed = sim_orders(sim, intents)
    assert placed == {i.intent_id: int(i in (first, other)) for i in intents}


def test_halted_portfolio_refuses_an_entry_and_lets_an_exit_through_to_the_exchange(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url))
    processes.append(gw)
    tag = time.time_ns()
    entry = buy(f"h-in-{tag}")
    send(r, entry)
    wait_final(r, [entry], gw)
    r.set(keys.RISK_HALT, "operator: halt")
    blocked = buy(f"h-again-{tag}")
    exit_ = OrderIntent(
        intent_id=f"live-bot:h-out-{tag}:sell",
        bot_id="live-bot",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.SELL,
        quantity=Decimal("0.001"),
        is_exit=True,
    )
    send(r, blocked, exit_)
    finals = wait_final(r, [blocked, exit_], gw)
    assert "halted" in finals[blocked.intent_id][0].reason
    assert finals[exit_.intent_id][0].status is ExecutionStatus.FILLED
    assert sim_orders(sim, [entry, blocked, exit_]) == {
        entry.intent_id: 1,
        blocked.intent_id: 0,
        exit_.intent_id: 1,
    }


@pytest.mark.parametrize(
    "follow",
    [
        # the user data stream alone (the REST safety net polls only every 60 s)
        {"BOTFLEET_GATEWAY_STREAM_POLL_INTERVAL_S": "60"},
        # REST polling alone (no user data stream)
        {"BOTFLEET_GATEWAY_USER_STREAM": "false"},
    ],
    ids=["user-stream", "rest-polling"],
)
def test_resting_limit_order_is_followed_until_it_ends_on_the_exchange(
    follow: dict[str, str],
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url, **follow))
    if "BOTFLEET_GATEWAY_STREAM_POLL_INTERVAL_S" in follow:
        health = keys.health("gateway", "gw-test")
        gw.wait_for(lambda: r.hget(health, "user_stream") == b"subscribed", 15, "user stream")
    processes.append(gw)
    price = Decimal(
        httpx.get(sim.rest_url + "/api/v3/ticker/price", params={"symbol": "BTCUSDT"}).json()[
            "price"
        ]
    )
    far = (price * Decimal("0.5")).quantize(Decimal("0.01"))  # never reached in this test
    limit = buy(f"lim-{time.time_ns()}", order_type=OrderType.LIMIT, price=far)
    cid = client_order_id(limit.intent_id)
    send(r, limit)
    gw.wait_for(lambda: r.sismember(keys.open_orders("live"), cid), 15, "order resting")
    [first] = [x for x in reports(r) if x.intent_id == limit.intent_id]
    assert first.status is ExecutionStatus.NEW and not first.final
    # someone cancels it on the exchange (an operator, the venue): the follower sees it end
    query = signed_query(
        [("symbol", "BTCUSDT"), ("origClientOrderId", cid)],
        HmacSigner(SIM_API_SECRET),
        timestamp=int(time.time() * 1000),
    )
    answer = httpx.delete(
        f"{sim.rest_url}/api/v3/order?{query}", headers={"X-MBX-APIKEY": SIM_API_KEY}
    )
    assert answer.status_code == 200, answer.text
    finals = wait_final(r, [limit], gw)
    assert [x.status for x in finals[limit.intent_id]] == [ExecutionStatus.CANCELED]
    assert not r.sismember(keys.open_orders("live"), cid)
    assert sim_orders(sim, [limit])[limit.intent_id] == 1


def _ed25519_pair(tmp_path: Path, name: str) -> tuple[Path, bytes]:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_ed25519_key_trades_and_a_wrong_key_gets_1022(
    r: sync_redis.Redis, tmp_path: Path, clean_redis_url: str, processes: list[BotfleetProcess]
) -> None:
    private, public = _ed25519_pair(tmp_path, "good")
    wrong, _ = _ed25519_pair(tmp_path, "wrong")
    public_path = tmp_path / "good.pub.pem"
    public_path.write_bytes(public)
    ed_key = "edkey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
    sim = start_sim(
        tmp_path / "simed",
        speed=SPEED,
        extra_args=["--ed25519-public-key", str(public_path), "--ed25519-api-key", ed_key],
    )
    try:
        seed_from_sim(r, sim)
        env = gateway_env(
            sim,
            clean_redis_url,
            BOTFLEET_BINANCE_API_KEY=ed_key,
            BOTFLEET_BINANCE_PRIVATE_KEY_FILE=str(private),
        )
        env.pop("BOTFLEET_BINANCE_API_SECRET")
        gw = start_gateway(tmp_path, env, "gw-ed")
        processes.append(gw)
        good = buy(f"ed-{time.time_ns()}")
        send(r, good)
        assert wait_final(r, [good], gw)[good.intent_id][0].status is ExecutionStatus.FILLED
        gw.stop()
        env["BOTFLEET_BINANCE_PRIVATE_KEY_FILE"] = str(wrong)
        bad = buy(f"ed-wrong-{time.time_ns()}")
        send(r, bad)
        # the wrong key is found at start-up: the gateway refuses to run, names the
        # code, and nothing reaches the simulator
        bad_gw = BotfleetProcess(["gateway"], tmp_path / "gw-ed-wrong.log", env).start()
        processes.append(bad_gw)
        deadline = time.monotonic() + 30
        while bad_gw.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not bad_gw.alive()
        assert "-1022" in bad_gw.log_text()
        assert sim_orders(sim, [good, bad]) == {good.intent_id: 1, bad.intent_id: 0}
    finally:
        sim.stop()


def test_no_secret_reaches_redis_logs_events_or_health(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url, BOTFLEET_LOG_LEVEL="debug"))
    processes.append(gw)
    sim.set_faults(order_unknown_rate=1.0, unknown_mode="503")  # error paths log too
    intents = [buy(f"sec-{n}-{time.time_ns()}") for n in range(2)]
    send(r, *intents)
    wait_final(r, intents, gw)
    sim.clear_faults()
    health = keys.health("gateway", "gw-test")
    gw.wait_for(lambda: r.hget(health, "user_stream") == b"subscribed", 15, "user stream")
    running = all_redis_text(r)  # with the health key, while the gateway runs
    gw.stop()
    text = running + all_redis_text(r) + gw.log_text()
    # we did look at real output: reports, the health key, error paths in the log
    assert intents[0].intent_id in text and health in text and "order.outcome_unknown" in text
    assert SIM_API_SECRET not in text
    assert SIM_API_KEY not in text
