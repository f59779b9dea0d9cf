"""Issue 15 against a real runner process and redis-server (the test plays the gateway):
no bot is ever stuck on an intent in flight. The bounded wait puts it in
``needs_attention`` (reason, event) with exits still working, a late report brings it
back, a stop completes, and an adopter takes only the outcome that ends the intent
(fenced copies are skipped) and decides the candles missed while nobody owned the bot."""

from __future__ import annotations

import time
from pathlib import Path

import redis as sync_redis

from shared import keys
from shared.messages import (
    CommandAction,
    Event,
    ExecutionReport,
    ExecutionStatus,
    OrderIntent,
    Side,
    decode_as,
    encode,
)
from tests.integration.runner import support as s
from tests.support.processes import BotfleetProcess

LEASE_MS = 2000
BOUND_S = 3


def runner(tmp_path: Path, url: str, name: str, **env: str) -> BotfleetProcess:
    args = ["runner", "--instance", name, "--lease-ms", str(LEASE_MS)]
    args += ["--reconcile-interval", "0.3", "--block-ms", "100"]
    full = {
        "BOTFLEET_REDIS_URL": url,
        "BOTFLEET_RUNNER_PENDING_TIMEOUT_S": str(BOUND_S),
        "BOTFLEET_RUNNER_PENDING_RESEND_S": "1",
        **env,
    }
    return BotfleetProcess(args, tmp_path / f"{name}.log", env=full).start()


def status(r: sync_redis.Redis, bot_id: str) -> str:
    return (r.hget(keys.bot(bot_id), "status") or b"").decode()


def reason(r: sync_redis.Redis, bot_id: str) -> str:
    return (r.hget(keys.bot(bot_id), "status_reason") or b"").decode()


def events(r: sync_redis.Redis, kind: str) -> list[Event]:
    found = [decode_as(f, Event) for _, f in r.xrange(keys.EVENTS)]
    return [e for e in found if e.kind == kind]


def log_entries(r: sync_redis.Redis, bot_id: str) -> list[dict[str, str]]:
    return [s.text(f) for _, f in r.xrange(keys.bot_log(bot_id))]


def fenced_copy(r: sync_redis.Redis, intent: OrderIntent, epoch: int, *, final: bool) -> None:
    """Gateway role: the refusal of a stale epoch's copy (a notice, or old-style final)."""
    report = ExecutionReport(
        intent_id=intent.intent_id,
        client_order_id="bf-test",
        bot_id=intent.bot_id,
        symbol=intent.symbol,
        side=intent.side,
        status=ExecutionStatus.REJECTED,
        final=final,
        reason=f"stale epoch {epoch} < bot epoch {epoch + 1}",
        epoch=epoch,
        ts=int(time.time() * 1000),
    )
    r.xadd(keys.EXECUTIONS, encode(report))


def one_bot(r: sync_redis.Redis) -> tuple[int, float]:
    """Bot b1 on fresh falling history; the open time of the next candle and the close
    that makes it buy."""
    closes, up = s.falling_then_up()
    hist = s.history("BTCUSDT", closes)
    s.seed_candles(r, hist)
    s.create_bot(r, "b1", s.config())
    return hist[-1].open_time + s.MINUTE, up


def entry(r: sync_redis.Redis, proc: BotfleetProcess, next_open: int, up: float) -> OrderIntent:
    proc.wait_for(lambda: status(r, "b1") == "running", 15, "bot running")
    s.push_candle(r, s.candle("BTCUSDT", s.MINUTE, next_open, up))
    [buy] = s.wait(lambda: s.intents(r), 5, "entry intent")
    assert buy.side is Side.BUY
    return buy


def test_no_final_report_within_the_bound_needs_attention_and_a_late_report_brings_it_back(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    next_open, up = one_bot(r)
    processes.append(proc := runner(tmp_path, clean_redis_url, "r1"))
    buy = entry(r, proc, next_open, up)

    # No report comes: re-sent (same id) every second, then needs_attention at the bound.
    proc.wait_for(lambda: status(r, "b1") == "needs_attention", BOUND_S + 5, "needs_attention")
    assert buy.intent_id in reason(r, "b1") and "unknown" in reason(r, "b1")
    [event] = events(r, "bot_needs_attention")
    assert event.bot_id == "b1" and buy.intent_id in event.message
    resent = [i for i in s.intents(r) if i.intent_id == buy.intent_id]
    assert len(resent) >= 2 and {i.epoch for i in resent} == {1}
    assert r.hget(keys.bot_pending("b1"), "u_intent_id") == buy.intent_id.encode()
    assert r.hget(keys.bot_pending("b1"), "intent_id") is None
    # The API's view: the status and its reason on the bot's record.
    assert any(e["kind"] == "needs_attention" for e in log_entries(r, "b1"))

    s.fill(r, buy, up)  # the late final report
    proc.wait_for(lambda: status(r, "b1") == "running", 5, "running again")
    assert "late" in reason(r, "b1")
    assert r.hget(keys.bot_position("b1"), "qty") is not None
    assert not r.exists(keys.bot_pending("b1"))


def test_exits_keep_firing_while_needs_attention_and_a_stop_completes(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    next_open, up = one_bot(r)
    processes.append(proc := runner(tmp_path, clean_redis_url, "r1"))
    buy = entry(r, proc, next_open, up)
    s.fill(r, buy, up)
    s.wait(lambda: r.hget(keys.bot_position("b1"), "qty"), 5, "position")

    s.push_tick(r, "BTCUSDT", up * 0.9)  # below the 5% stop: an exit nobody answers
    first = s.wait(lambda: s.intents(r)[1:], 5, "stop-loss intent")[0]
    assert first.is_exit
    proc.wait_for(lambda: status(r, "b1") == "needs_attention", BOUND_S + 5, "needs_attention")
    assert first.intent_id in reason(r, "b1")

    # Its protective exit still fires, with an intent id of its own.
    s.push_tick(r, "BTCUSDT", up * 0.89)
    ids = {first.intent_id}
    second = s.wait(
        lambda: [i for i in s.intents(r) if i.is_exit and i.intent_id not in ids], 5, "exit"
    )[0]
    assert second.side is Side.SELL and "STOP_LOSS" in second.reason

    # A stop waits at most the bound: nobody answers either exit, and it stops anyway,
    # saying what is unknown and that the position is left open.
    s.command(r, "b1", CommandAction.STOP)
    proc.wait_for(lambda: status(r, "b1") == "stopped", 2 * BOUND_S + 5, "stopped")
    why = reason(r, "b1")
    assert "open position" in why and first.intent_id in why and second.intent_id in why
    assert not r.exists(keys.bot_lease("b1"))
    assert events(r, "bot_stopped_unresolved")


def test_a_stop_loss_supersedes_a_stuck_exit_so_only_one_of_them_can_sell(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    next_open, up = one_bot(r)
    processes.append(proc := runner(tmp_path, clean_redis_url, "r1"))
    buy = entry(r, proc, next_open, up)
    s.fill(r, buy, up)
    s.wait(lambda: r.hget(keys.bot_position("b1"), "qty"), 5, "position")
    s.push_tick(r, "BTCUSDT", up * 0.9)
    stuck = s.wait(lambda: s.intents(r)[1:], 5, "stop-loss intent")[0]
    proc.wait_for(lambda: status(r, "b1") == "needs_attention", BOUND_S + 5, "needs_attention")

    s.push_tick(r, "BTCUSDT", up * 0.89)
    stop = s.wait(
        lambda: [i for i in s.intents(r) if i.is_exit and i.intent_id != stuck.intent_id],
        5,
        "the superseding exit",
    )[0]
    # It moved the bot to epoch 2: the gateway refuses every copy of the stuck exit.
    assert stop.epoch == 2 and r.hget(keys.bot("b1"), "epoch") == b"2"
    assert r.hget(keys.bot_pending("b1"), "u_superseded") == b"2"
    fenced_copy(r, stuck, 1, final=False)  # the gateway's refusal of one of its copies
    proc.wait_for(lambda: status(r, "b1") == "running", 5, "running again")
    assert r.hget(keys.bot_pending("b1"), "u_intent_id") is None
    s.fill(r, stop, up * 0.89)
    proc.wait_for(lambda: not r.exists(keys.bot_position("b1")), 5, "position closed")
    # Still held, renewed under its new epoch: a heartbeat more than a lease after the
    # move finds the lease still r1's.
    moved_ms = int(time.time() * 1000)

    def beat_ms() -> int:
        return int(r.hget(keys.health("runner", "r1"), "ts") or 0)

    s.wait(lambda: beat_ms() > moved_ms + LEASE_MS + 500, LEASE_MS / 1000 + 5, "a lease later")
    assert r.get(keys.bot_lease("b1")) == b"r1" and status(r, "b1") == "running"
    sells = [i.intent_id for i in s.intents(r) if i.side is Side.SELL]
    assert set(sells) == {stuck.intent_id, stop.intent_id}


def test_an_adopted_stop_waiting_for_an_exit_completes_at_the_bound_and_closes_the_position(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    next_open, up = one_bot(r)
    processes.append(
        proc := runner(tmp_path, clean_redis_url, "r1", BOTFLEET_RUNNER_PENDING_TIMEOUT_S="30")
    )
    buy = entry(r, proc, next_open, up)
    s.fill(r, buy, up)
    s.wait(lambda: r.hget(keys.bot_position("b1"), "qty"), 5, "position")
    s.push_tick(r, "BTCUSDT", up * 0.9)
    stuck = s.wait(lambda: s.intents(r)[1:], 5, "stop-loss intent")[0]
    s.command(r, "b1", CommandAction.STOP)
    proc.wait_for(lambda: "waiting for pending" in reason(r, "b1"), 5, "waiting")
    proc.kill()  # and the adopter, under a shorter bound, completes the stop
    processes.append(proc := runner(tmp_path, clean_redis_url, "r2"))
    close = s.wait(
        lambda: [i for i in s.intents(r) if ":stop" in i.intent_id], BOUND_S + 10, "close"
    )[0]
    # The adopter holds epoch 2; the close supersedes the stuck exit by moving to 3, so
    # that no copy of that exit can be placed after it.
    assert close.intent_id != stuck.intent_id and close.epoch == 3
    assert r.hget(keys.bot("b1"), "epoch") == b"3"
    assert stuck.intent_id in reason(r, "b1") and status(r, "b1") == "stopping"
    s.fill(r, close, up * 0.9)
    proc.wait_for(lambda: status(r, "b1") == "stopped", 5, "stopped")
    assert not r.exists(keys.bot_position("b1")) and not r.exists(keys.bot_lease("b1"))


def test_an_adopter_skips_fenced_copies_and_applies_the_outcome_of_its_own_resend(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    next_open, up = one_bot(r)
    processes.append(
        proc := runner(tmp_path, clean_redis_url, "ra", BOTFLEET_RUNNER_PENDING_TIMEOUT_S="60")
    )
    buy = entry(r, proc, next_open, up)
    proc.kill()
    # The lagging gateway refuses the dead owner's copy after the adoption: a notice and
    # an old-style final refusal, both before the adopter's own copy is answered.
    processes.append(
        rb := runner(tmp_path, clean_redis_url, "rb", BOTFLEET_RUNNER_PENDING_TIMEOUT_S="60")
    )
    again = s.wait(
        lambda: [i for i in s.intents(r) if i.intent_id == buy.intent_id and i.epoch == 2],
        LEASE_MS / 1000 + 10,
        "the adopter's re-send under epoch 2",
    )[0]
    fenced_copy(r, buy, 1, final=False)
    fenced_copy(r, buy, 1, final=True)
    rb.wait_for(
        lambda: sum("ignored fenced" in e.get("reason", "") for e in log_entries(r, "b1")) == 2,
        5,
        "both fenced copies ignored",
    )
    assert r.hget(keys.bot_pending("b1"), "intent_id") == buy.intent_id.encode()
    s.fill(r, again, up)
    rb.wait_for(lambda: r.hget(keys.bot_position("b1"), "qty") is not None, 5, "position")
    assert not r.exists(keys.bot_pending("b1")) and status(r, "b1") == "running"


def test_candles_closed_while_the_bot_had_no_owner_are_decided_in_order_on_adoption(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    closes, up = s.falling_then_up()
    hist = s.history("BTCUSDT", closes)
    s.seed_candles(r, hist)
    s.create_bot(r, "b1", s.config())
    processes.append(ra := runner(tmp_path, clean_redis_url, "ra"))
    ra.wait_for(lambda: status(r, "b1") == "running", 15, "bot running")
    last = int(r.hget(keys.bot_stats("b1"), "last_candle") or hist[-1].open_time)
    assert last == hist[-1].open_time
    ra.kill()
    # Three candles close while nobody owns the bot: down, down (HOLD), then up (BUY).
    t = hist[-1].open_time
    missed = [
        s.candle("BTCUSDT", s.MINUTE, t + s.MINUTE, closes[-1] - 1),
        s.candle("BTCUSDT", s.MINUTE, t + 2 * s.MINUTE, closes[-1] - 2),
        s.candle("BTCUSDT", s.MINUTE, t + 3 * s.MINUTE, closes[-1] - 2 + (up - closes[-1])),
    ]
    for c in missed:
        s.push_candle(r, c)
    processes.append(rb := runner(tmp_path, clean_redis_url, "rb"))
    [buy] = s.wait(lambda: s.intents(r), LEASE_MS / 1000 + 10, "the caught-up entry")
    assert buy.intent_id == f"b1:{missed[-1].open_time}:buy" and buy.epoch == 2
    rb.wait_for(
        lambda: r.hget(keys.bot_stats("b1"), "last_candle") == str(missed[-1].open_time).encode(),
        5,
        "last decided candle",
    )
    kinds = [e["kind"] for e in log_entries(r, "b1")]
    assert kinds[-3:] == ["hold", "hold", "entry"], kinds


def test_a_thousand_start_commands_all_run_without_a_reconcile_pass(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"]
    for symbol in symbols:
        s.seed_candles(r, s.history(symbol, [100.0 - i for i in range(30)]))
    s.create_bot(r, "early", s.config(symbols[0]), start=False)
    r.hset(keys.bot("early"), "desired", "running")  # only a reconcile pass claims it
    # A long lease and reconcile interval: after the first pass (the early bot running),
    # the next comes 50 s later; every start below is claimed by its command.
    args = ["runner", "--instance", "r1", "--lease-ms", "60000", "--reconcile-interval", "50"]
    env = {"BOTFLEET_REDIS_URL": clean_redis_url}
    processes.append(proc := BotfleetProcess(args, tmp_path / "r1.log", env=env).start())
    proc.wait_for(lambda: status(r, "early") == "running", 20, "the first reconcile pass")
    ids = [f"bot{i}" for i in range(1000)]
    for bot_id in ids:
        s.create_bot(r, bot_id, s.config(symbols[int(bot_id[3:]) % 4]), start=False)
    pipe = r.pipeline(transaction=False)
    for bot_id in ids:
        pipe.hset(keys.bot(bot_id), "desired", "running")
    pipe.execute()
    for bot_id in ids:
        s.command(r, bot_id, CommandAction.START)

    def running() -> bool:
        pipe = r.pipeline(transaction=False)
        for bot_id in ids:
            pipe.hget(keys.bot(bot_id), "status")
        return all(v == b"running" for v in pipe.execute())

    proc.wait_for(running, 30, "1,000 bots running")
