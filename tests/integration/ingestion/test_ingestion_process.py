"""``botfleet ingestion`` as a real process against ``botfleet exchange-sim`` (a real
process too, 120x speed: a 1m candle every half second), two symbols subscribed.

After each of: forced disconnects, dropped kline messages and ``serverShutdown``
(the simulator's faults); a kill -9 and restart; the death of the active one of two
instances; connections replaced at their age limit; a ``serverShutdown`` that closes
only the notified connection; malformed frames in the live feed — every candle list and candle stream holds each open time
exactly once, in order, with no gap, and equals the simulator's own klines.

The simulator and the main ingestion are shared by the module's tests (each test
leaves a live, caught-up feed behind); :class:`~.market.OtherClient` keeps the
simulator's streams running as a real exchange's do. The age-limit test runs its own
ingestion; the last two share one whose market streams pass through
:class:`~.ws_relay.WsRelay` (see there for why). Each uses its own Redis database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis as sync_redis

from shared import keys
from shared.binance.intervals import open_time_of
from shared.binance.parsing import parse_exchange_info
from shared.binance.rules import rules_from_json
from shared.exchange_clock import ExchangeClock
from shared.messages import DeadLetter, decode
from tests.integration.ingestion.market import INTERVAL, M, Market, OtherClient
from tests.integration.ingestion.ws_relay import WsRelay
from tests.support.sim import SimClient, start_sim

SYMBOLS = ("BTCUSDT", "ETHUSDT")
SPEED = 120.0


def _db(redis_url: str, db: int) -> str:
    base, _, _ = redis_url.rpartition("/")
    return f"{base}/{db}"


def _flushed(url: str) -> str:
    client = sync_redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(tmp_path_factory.mktemp("sim"), speed=SPEED)
    yield client
    client.stop()


@pytest.fixture(scope="module")
def other_client(sim: SimClient) -> Iterator[OtherClient]:
    client = OtherClient(sim.ws_url, [f"{s.lower()}@kline_{INTERVAL}" for s in SYMBOLS]).start()
    yield client
    client.stop()


@pytest.fixture(scope="module")
def market(
    sim: SimClient,
    other_client: OtherClient,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Market]:
    m = Market(sim, _flushed(_db(redis_url, 0)), tmp_path_factory.mktemp("ingestion"), SYMBOLS)
    m.subscribe(*SYMBOLS)
    m.active, m.active_name = m.start("ing-a", BOTFLEET_INGESTION_CLOCK_INTERVAL_S="0.5"), "ing-a"
    try:
        m.wait_caught_up(m.active, "history and live candles")
        yield m
    finally:
        m.stop_all()


@pytest.fixture(scope="module")
def relay(sim: SimClient) -> Iterator[WsRelay]:
    r = WsRelay(sim.ws_url).start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def relayed(
    sim: SimClient, relay: WsRelay, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Market]:
    m = Market(sim, _flushed(_db(redis_url, 1)), tmp_path_factory.mktemp("relayed"), ("BTCUSDT",))
    m.subscribe("BTCUSDT")
    m.active, m.active_name = m.start("ing-r", BOTFLEET_BINANCE_WS_URL=relay.ws_url), "ing-r"
    try:
        m.wait_caught_up(m.active, "history and live candles through the relay")
        yield m
    finally:
        m.stop_all()


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for value in request.node.funcargs.values():
            if isinstance(value, Market):
                print(value.logs())
        sim = request.node.funcargs.get("sim") or getattr(
            request.node.funcargs.get("market"), "sim", None
        )
        if isinstance(sim, SimClient):
            print(f"\n===== simulator =====\n{sim.process.log_text()[-3000:]}")


def test_history_and_live_candles_equal_the_simulators_klines(market: Market) -> None:
    market.wait_caught_up(market.active, "two live closes", ahead=2)
    market.assert_exactly_once_in_order_no_gap_equal_to_the_sim()
    health = market.fresh_health(market.active_name)
    assert (health["subscribed_streams"], health["connected_streams"]) == ("2", "2")
    for symbol in SYMBOLS:
        assert market.r.get(keys.price(symbol)) is not None
        assert market.r.xlen(keys.tick_stream(symbol)) > 0
        assert int(market.r.hget(keys.MARKET_LAST_UPDATE, symbol) or 0) > 0


def test_market_clock_follows_the_simulators_sped_up_clock(market: Market) -> None:
    """Data ages are measured on the exchange's clock, which runs SPEED times faster."""
    deadline = time.monotonic() + 10
    clock = None
    while time.monotonic() < deadline:
        clock = ExchangeClock.from_fields(market.r.hgetall(keys.MARKET_CLOCK))
        if clock is not None and clock.rate != 1.0:
            break
        time.sleep(0.2)
    assert clock is not None
    assert SPEED * 0.8 < clock.rate < SPEED * 1.2
    server = httpx.get(f"{market.sim.rest_url}/api/v3/time", timeout=5).json()["serverTime"]
    assert abs(clock.now(int(time.time() * 1000)) - server) < SPEED * 250


def test_exchange_symbols_hold_the_rules_of_the_simulators_exchange_info(market: Market) -> None:
    body = httpx.get(f"{market.sim.rest_url}/api/v3/exchangeInfo", timeout=10).content
    expected = parse_exchange_info(body)
    assert set(expected) == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
    stored = {k.decode(): rules_from_json(v) for k, v in market.r.hgetall(keys.EXCHANGE_SYMBOLS).items()}  # fmt: skip
    assert stored == expected


def test_disconnects_dropped_klines_and_server_shutdown_leave_no_gap_and_no_duplicate(
    market: Market,
) -> None:
    name, sim = market.active_name, market.sim
    sim.clear_faults()
    before = market.fresh_health(name)
    sim.set_faults(drop_kline_rate=0.5)  # closes lost: holes only REST can fill
    time.sleep(1.0)
    sim.disconnect_ws()
    time.sleep(1.0)
    sim.disconnect_ws()
    time.sleep(0.5)
    sim.set_faults(server_shutdown=True)
    time.sleep(1.0)
    sim.clear_faults()
    market.wait_caught_up(market.active, "catching up after the faults", ahead=2)
    market.assert_exactly_once_in_order_no_gap_equal_to_the_sim()
    after = market.fresh_health(name)
    assert int(after["reconnects"]) >= int(before["reconnects"]) + 2
    assert int(after["rollovers"]) >= int(before["rollovers"]) + 1  # serverShutdown
    assert int(after["backfilled_candles"]) > int(before["backfilled_candles"])
    assert after["gaps_accepted"] == "0"


def test_kill_9_and_restart_backfill_the_candles_closed_meanwhile(market: Market) -> None:
    proc, name = market.active, market.active_name
    started_before = market.fresh_health(name)["started_at"]
    proc.kill()
    time.sleep(2.0)  # four candles close while nobody listens
    proc.start()
    proc.wait_for(
        lambda: market.health(name).get("started_at", started_before) != started_before,
        20,
        "the restarted process's heartbeat",
    )
    market.wait_caught_up(proc, "catching up after kill -9", ahead=1)
    market.assert_exactly_once_in_order_no_gap_equal_to_the_sim()
    # the candles that closed while it was dead came from REST (the heartbeat lags 1 s)
    proc.wait_for(lambda: market.figure(name, "backfilled_candles") >= 3, 5, "backfill figure")


def test_a_standby_takes_over_when_the_active_instance_dies_and_fills_the_gap(
    market: Market,
) -> None:
    first, first_name = market.active, market.active_name
    standby = market.start("ing-b")
    standby.wait_for(lambda: market.r.exists(keys.health("ingestion", "ing-b")) == 1, 20, "up")
    assert market.r.get(keys.ingestion_shard_lease(0)) == first_name.encode()
    assert market.figure("ing-b", "subscribed_streams") == 0  # a standby holds nothing
    first.kill()
    market.active, market.active_name = standby, "ing-b"
    standby.wait_for(
        lambda: market.r.get(keys.ingestion_shard_lease(0)) == b"ing-b", 20, "lease taken over"
    )
    market.wait_caught_up(standby, "the standby caught up", ahead=1)
    market.assert_exactly_once_in_order_no_gap_equal_to_the_sim()
    # what closed while nobody held the shard came from REST (the heartbeat lags 1 s)
    standby.wait_for(lambda: market.figure("ing-b", "backfilled_candles") >= 1, 5, "backfill")


def test_a_connection_near_its_age_limit_is_replaced_before_it_is_closed_with_no_gap(
    sim: SimClient,
    other_client: OtherClient,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The venue cuts a connection at 24 h; ingestion replaces it earlier (here: every
    1.5 s) by opening and subscribing the new one before closing the old."""
    m = Market(sim, _flushed(_db(redis_url, 3)), tmp_path_factory.mktemp("aged"), ("ETHUSDT",))
    m.subscribe("ETHUSDT")
    m.active = m.start("ing-age", BOTFLEET_INGESTION_CONNECTION_MAX_AGE_S="1.5")
    try:
        m.wait_caught_up(m.active, "history and live candles")
        before = m.fresh_health("ing-age")
        m.active.wait_for(
            lambda: m.figure("ing-age", "rollovers") >= int(before["rollovers"]) + 2,
            10,
            "rollovers",
        )
        m.wait_caught_up(m.active, "closes after the rollovers", ahead=1)
        m.assert_exactly_once_in_order_no_gap_equal_to_the_sim()
        after = m.fresh_health("ing-age")
        for figure in ("reconnects", "kline_requests", "backfilled_candles"):
            assert after[figure] == before[figure], figure
    except BaseException:
        print(m.logs())
        raise
    finally:
        m.stop_all()


def test_server_shutdown_opens_the_replacement_before_the_old_connection_closes(
    relayed: Market, relay: WsRelay
) -> None:
    name = relayed.active_name
    relayed.sim.clear_faults()
    before = relayed.fresh_health(name)
    opened = relay.opened
    relay.server_shutdown(close_after_s=1.0)
    relayed.active.wait_for(
        lambda: (
            relay.opened == opened + 1
            and relay.connections() == 1
            and relayed.figure(name, "rollovers") == int(before["rollovers"]) + 1
        ),
        10,
        "the rollover",
    )
    relayed.wait_caught_up(relayed.active, "two closes on the new connection", ahead=2)
    relayed.assert_exactly_once_in_order_no_gap_equal_to_the_sim()
    after = relayed.fresh_health(name)
    # No gap to fill: no reconnect, no REST call, nothing backfilled.
    for figure in ("reconnects", "kline_requests", "backfilled_candles"):
        assert after[figure] == before[figure], figure


def test_malformed_and_unexpected_frames_are_dead_lettered_and_the_feed_goes_on(
    relayed: Market, relay: WsRelay
) -> None:
    name, r = relayed.active_name, relayed.r
    before = relayed.fresh_health(name)
    letters_before = r.xlen(keys.DEAD_LETTER) if r.exists(keys.DEAD_LETTER) else 0
    t = open_time_of(INTERVAL, relayed.sim.server_time())
    kline = (
        '{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":%d,"s":"BTCUSDT","k":{"t":%d,'
        '"T":%d,"s":"BTCUSDT","i":"1m","f":1,"L":2,"o":"%s","c":"1","h":"1","l":"1","v":"1",'
        '"n":2,"x":true,"q":"1","V":"1","Q":"1","B":"0"}}}'
    )
    frames = [
        "{not json",
        '{"e":"brandNewEvent","E":1}',
        kline % (t + M, t, t + M - 1, "abc"),  # a value that is no number
        kline % (t + M, t + 7, t + M + 6, "1"),  # an open time off the 1m grid
    ]
    for frame in frames:
        relay.inject(frame)
    relayed.active.wait_for(
        lambda: (
            r.xlen(keys.DEAD_LETTER) >= letters_before + len(frames)
            and relayed.figure(name, "dead_letters") >= int(before["dead_letters"]) + len(frames)
        ),
        10,
        "the dead letters",
    )
    letters = [decode(f) for _, f in r.xrange(keys.DEAD_LETTER)][letters_before:]
    assert all(isinstance(d, DeadLetter) and d.service == "ingestion" for d in letters)
    reasons = " | ".join(d.reason for d in letters if isinstance(d, DeadLetter))
    for expected in ("invalid JSON", "unknown event type", "invalid decimal", "grid"):
        assert expected in reasons
    relayed.wait_caught_up(relayed.active, "closes after the bad frames", ahead=2)
    relayed.assert_exactly_once_in_order_no_gap_equal_to_the_sim()
    assert relayed.active.alive()
    assert relayed.fresh_health(name)["reconnects"] == before["reconnects"]  # the session read on
