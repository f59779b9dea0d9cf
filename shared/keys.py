"""Every Redis key and stream name of botfleet, built in one place.

The braces in the names are Redis Cluster hash tags: all keys of one symbol or one
bot share a slot, so a Lua script or a transaction may touch them together. Nothing
outside this module spells a key (see ../shared/DESIGN.md, "Redis contract").
"""

from __future__ import annotations

# --- streams with fixed names -------------------------------------------------------
BOT_COMMANDS = "stream:bot-commands"
ORDER_INTENTS = "stream:order-intents"
EXECUTIONS = "stream:executions"
EVENTS = "stream:events"
DEAD_LETTER = "stream:dead-letter"

# --- plain keys with fixed names ------------------------------------------------------
EXCHANGE_SYMBOLS = "exchange:symbols"
MARKET_SUBSCRIPTIONS = "market:subscriptions"
# Channel on which writers of market:subscriptions announce a change (ingestion also
# reconciles periodically, so a lost notification only delays).
MARKET_SUBSCRIPTIONS_CHANNEL = "market:subscriptions:changed"
# Hash: SYMBOL:INTERVAL -> closed candles of warm-up the bots on that series declare (the
# largest; raised by runners as they start bots, read by ingestion, which keeps and
# backfills at least that many candles in the series' list).
MARKET_WARMUP = "market:warmup"
# Hash: SYMBOL:INTERVAL -> open time of the oldest candle the exchange has for the series
# (written by ingestion when a backfill into the past comes back short): a list that
# starts there is as deep as it can ever be.
MARKET_HISTORY_START = "market:history-start"
# symbol -> epoch ms of the last market update seen by ingestion (stale-data gate).
MARKET_LAST_UPDATE = "market:last-update"
# Hash: the latest sample of the exchange's clock (shared.exchange_clock), by ingestion.
MARKET_CLOCK = "market:clock"
BOTS = "bots"
# Hash: a bot's name folded (strip + casefold) -> its id; the API keeps names unique.
BOT_NAMES = "bot-names"
RISK_LIMITS = "risk:limits"
RISK_HALT = "risk:halt"
# Portfolio figures the gateway keeps for risk checks (exposure, realized PnL, peak), in
# integer units of 1e-8 (shared/money.py; fields: services/gateway/risk_state.py).
RISK_STATE = "risk:state"
# Set (to the number of places, 8) once risk:state, balances:paper and the records'
# reservations hold integer units; absent: an older gateway wrote decimal strings, and
# the gateway converts them once at start (services/gateway/lua/units.lua).
MONEY_UNITS = "gateway:money-units"
# Consumer group of the gateway on ORDER_INTENTS.
GATEWAY_GROUP = "gateway"
# Consumer group of the trade ledger on EXECUTIONS (trimming stays above what it acked).
LEDGER_GROUP = "ledger"


def _tag(value: str) -> str:
    if not value or "{" in value or "}" in value:
        raise ValueError(f"invalid hash-tag value: {value!r}")
    return "{" + value + "}"


# --- market data ---------------------------------------------------------------------
def candles(symbol: str, interval: str) -> str:
    """List of closed candles, oldest first."""
    return f"candles:{_tag(symbol)}:{interval}"


def candle_stream(symbol: str, interval: str) -> str:
    return f"stream:candles:{_tag(symbol)}:{interval}"


def price(symbol: str) -> str:
    return f"price:{_tag(symbol)}"


def tick_stream(symbol: str) -> str:
    return f"stream:ticks:{_tag(symbol)}"


def subscription(symbol: str, interval: str) -> str:
    """Member of MARKET_SUBSCRIPTIONS."""
    return f"{symbol}:{interval}"


def parse_subscription(member: str) -> tuple[str, str]:
    symbol, sep, interval = member.partition(":")
    if not sep or not symbol or not interval:
        raise ValueError(f"invalid subscription {member!r}, expected SYMBOL:INTERVAL")
    return symbol, interval


def ingestion_shard_lease(shard: int) -> str:
    """Lease of the ingestion instance that holds one shard of the subscriptions."""
    return f"ingestion:shard:{shard}:lease"


# --- bots ----------------------------------------------------------------------------
def bot(bot_id: str) -> str:
    return f"bot:{_tag(bot_id)}"


def bot_lease(bot_id: str) -> str:
    return f"bot:{_tag(bot_id)}:lease"


def bot_position(bot_id: str) -> str:
    return f"bot:{_tag(bot_id)}:position"


def bot_stats(bot_id: str) -> str:
    return f"bot:{_tag(bot_id)}:stats"


def bot_trades(bot_id: str) -> str:
    return f"bot:{_tag(bot_id)}:trades"


def bot_log(bot_id: str) -> str:
    return f"bot:{_tag(bot_id)}:log"


def bot_pending(bot_id: str) -> str:
    """Hash: the bot's one in-flight order intent, if any."""
    return f"bot:{_tag(bot_id)}:pending"


def bot_rate(bot_id: str, window: int) -> str:
    """Counter of a bot's orders in one rate window (gateway guard rail)."""
    return f"bot:{_tag(bot_id)}:orders:{window}"


# --- orders and balances -------------------------------------------------------------
def order(client_order_id: str) -> str:
    return f"order:{_tag(client_order_id)}"


def balances(mode: str) -> str:
    """``{ASSET}:free`` / ``:locked``: live as the venue sends them (decimal strings),
    paper in integer units of 1e-8 (shared/money.py: the gateway's scripts add them)."""
    if mode not in ("paper", "live"):
        raise ValueError(f"invalid trading mode {mode!r}")
    return f"balances:{mode}"


def open_orders(mode: str) -> str:
    """Set of client order ids resting on the book (LIMIT orders followed by the gateway)."""
    return f"orders:open:{mode}"


def active_orders(mode: str) -> str:
    """Set of client order ids the gateway admitted and has not ended yet (start-up
    reconciliation walks it)."""
    if mode not in ("paper", "live"):
        raise ValueError(f"invalid trading mode {mode!r}")
    return f"orders:active:{mode}"


def fleet_rate(window: int) -> str:
    """Counter of the fleet's orders in one rate window (gateway guard rail)."""
    return f"gateway:orders:{window}"


# --- health and rate limits ------------------------------------------------------------
def health(service: str, instance: str) -> str:
    return f"health:{service}:{instance}"


# Sorted set of every instance that beat lately: member ``{service}:{instance}``, score
# the time of its last beat (ms). Finding the live instances reads this instead of
# SCANning the whole keyspace (tens of thousands of bot keys) for health keys.
HEALTH_INDEX = "health:index"


def health_member(service: str, instance: str) -> str:
    """The :data:`HEALTH_INDEX` member of an instance (its health key minus the prefix)."""
    return f"{service}:{instance}"


def ratelimit_weight(minute: int) -> str:
    """Request weight reserved by all processes in one exchange minute (epoch minutes)."""
    return f"ratelimit:binance:weight:{minute}"


def ratelimit_orders(interval: str, window: int) -> str:
    """Orders placed by all gateways in one window of an ORDERS limit (e.g. '10s', '1d')."""
    return f"ratelimit:binance:orders:{interval}:{window}"


RATELIMIT_BAN = "ratelimit:binance:ban"  # string, PX: epoch ms until every REST caller pauses


# --- backtest jobs (queued by the API, run by ``botfleet backtest-worker``) -----------
BACKTEST_JOBS = "stream:backtest-jobs"
# Consumer group of the backtest workers on BACKTEST_JOBS.
BACKTEST_GROUP = "backtest-workers"
# Sorted set: job id -> creation epoch ms (the API's list of recent jobs).
BACKTEST_INDEX = "backtests"


def backtest_job(job_id: str) -> str:
    """Hash: a job's status, progress 0..1, error, times and request (expires with it)."""
    return f"backtest:{_tag(job_id)}"


def backtest_result(job_id: str) -> str:
    """String: the finished job's result JSON (``botfleet backtest --json``'s), with a TTL."""
    return f"backtest:{_tag(job_id)}:result"


def backtest_candles(job_id: str) -> str:
    """String: the job's candles for its chart (JSON ``[[t, o, h, l, c], ...]``, at most a
    few thousand bars, merged evenly), with the result's TTL."""
    return f"backtest:{_tag(job_id)}:candles"
