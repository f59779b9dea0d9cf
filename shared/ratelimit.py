"""One Binance request-weight budget and one order-count budget for the whole fleet.

Binance counts request weight per IP and orders per account, not per process. Every
process that calls the REST API (ingestion's backfill and exchangeInfo, every gateway)
reserves a request's weight here, atomically in Redis, before sending it; corrects the
minute's counter from the ``X-MBX-USED-WEIGHT-1M`` header afterwards; and, when any
of them sees a 429 or 418, every process pauses until its Retry-After has passed
(DESIGN "Ownership and failure", key ``ratelimit:binance:weight:{MINUTE}``).

Windows are fixed and aligned to the exchange clock, as Binance's are (reference §7):
a minute resets at each minute boundary, 10 s at :00, :10, ..., a day at 00:00 UTC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shared import keys
from shared.logging import get_logger

log = get_logger(__name__)

MINUTE_MS = 60_000
# The share of each minute a background caller (backfill) may fill; the rest is kept
# for orders and order queries.
BACKGROUND_SHARE = 0.7

# KEYS[1] weight counter of the minute, KEYS[2] fleet-wide ban
# ARGV: weight, budget, now_ms, window_end_ms
# -> {1, used}    reserved
#    {0, wait_until_ms}   budget spent or banned: wait until then
_RESERVE = """
local ban = tonumber(redis.call('GET', KEYS[2]) or '0')
local now = tonumber(ARGV[3])
if ban > now then return {0, ban} end
local weight = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + weight > budget and used > 0 then return {0, tonumber(ARGV[4])} end
used = redis.call('INCRBY', KEYS[1], weight)
redis.call('PEXPIRE', KEYS[1], 120000)
return {1, used}
"""

# KEYS[1] counter; ARGV[1] value seen by the exchange -> the counter is never below it
_CORRECT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local seen = tonumber(ARGV[1])
if seen > used then
  redis.call('SET', KEYS[1], seen, 'PX', 120000)
  return seen
end
return used
"""

# KEYS[1] ban key; ARGV[1] until_ms, ARGV[2] ttl_ms -> the later of the two bans stays
_BAN = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return tonumber(ARGV[1])
end
return current
"""

# KEYS: one counter per ORDERS window, KEYS[n+1] ban key
# ARGV: now_ms, then per window: budget, window_end_ms, ttl_ms
_RESERVE_ORDER = """
local now = tonumber(ARGV[1])
local ban = tonumber(redis.call('GET', KEYS[#KEYS]) or '0')
if ban > now then return {0, ban} end
local n = #KEYS - 1
for i = 1, n do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + 1 > tonumber(ARGV[2 + (i - 1) * 3]) then
    return {0, tonumber(ARGV[3 + (i - 1) * 3])}
  end
end
for i = 1, n do
  redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[4 + (i - 1) * 3])
end
return {1, 0}
"""


class BudgetExhausted(Exception):
    """The fleet's budget is spent (or a ban is in force) until ``wait_until_ms``."""

    def __init__(self, what: str, wait_until_ms: int, now_ms: int) -> None:
        self.what = what
        self.wait_until_ms = wait_until_ms
        self.delay_s = max(0.0, (wait_until_ms - now_ms) / 1000)
        super().__init__(f"{what} budget spent; next window in {self.delay_s:.3f}s")


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """One entry of exchangeInfo ``rateLimits``."""

    rate_limit_type: str  # REQUEST_WEIGHT | ORDERS | RAW_REQUESTS
    interval: str  # SECOND | MINUTE | HOUR | DAY
    interval_num: int
    limit: int

    @property
    def window_ms(self) -> int:
        unit = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}[
            self.interval
        ]
        return unit * self.interval_num

    @property
    def label(self) -> str:
        return f"{self.interval_num}{self.interval[0].lower()}"


def rules_from_exchange_info(rate_limits: Iterable[Any]) -> list[RateLimitRule]:
    """exchangeInfo ``rateLimits`` (dicts or objects with Binance's field names)."""
    rules = []
    for item in rate_limits:

        def get(name: str, item: Any = item) -> Any:
            return item[name] if isinstance(item, dict) else getattr(item, name)

        rules.append(
            RateLimitRule(
                rate_limit_type=str(get("rateLimitType")),
                interval=str(get("interval")),
                interval_num=int(get("intervalNum")),
                limit=int(get("limit")),
            )
        )
    return rules


def effective_budget(limit: int, margin: float) -> int:
    """The share of a limit the fleet lets itself use (the margin covers other users
    of the IP and the requests in flight between reservation and the header)."""
    return max(1, int(limit * (1.0 - margin)))


class WeightBudget:
    """The fleet-wide REQUEST_WEIGHT budget of one IP.

    ``clock`` returns the exchange time in epoch ms (local time plus the known offset).
    A ``background`` budget (ingestion's backfill and exchangeInfo) may fill only
    ``background_share`` of each minute, so orders and order queries of the gateways,
    exits above all, always find weight left however long a backfill queue is.
    """

    def __init__(
        self,
        redis: Any,
        *,
        limit_per_minute: int = 6000,
        margin: float = 0.1,
        clock: Callable[[], int] | None = None,
        max_wait_s: float = 90.0,
        background: bool = False,
        background_share: float = BACKGROUND_SHARE,
    ) -> None:
        if not 0 < background_share <= 1:
            raise ValueError("background_share must be in (0, 1]")
        self.redis = redis
        self.margin = margin
        self.background = background
        self.background_share = background_share
        self.budget = effective_budget(limit_per_minute, margin)
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.max_wait_s = max_wait_s
        self._reserve = redis.register_script(_RESERVE)
        self._correct = redis.register_script(_CORRECT)
        self._ban = redis.register_script(_BAN)
        self.waited_s = 0.0
        self.reservations = 0

    def apply_rules(self, rules: Iterable[RateLimitRule]) -> None:
        """Take the limit from exchangeInfo (the 1-minute REQUEST_WEIGHT rule)."""
        for rule in rules:
            if rule.rate_limit_type == "REQUEST_WEIGHT" and rule.window_ms == MINUTE_MS:
                self.budget = effective_budget(rule.limit, self.margin)

    @property
    def allowed(self) -> int:
        """The share of the minute this caller may fill."""
        if self.background:
            return max(1, int(self.budget * self.background_share))
        return self.budget

    async def try_reserve(self, weight: int) -> None:
        """Reserve ``weight`` in this minute or raise :class:`BudgetExhausted`."""
        now = self.clock()
        minute = now // MINUTE_MS
        ok, value = await self._reserve(
            keys=[keys.ratelimit_weight(minute), keys.RATELIMIT_BAN],
            args=[weight, self.allowed, now, (minute + 1) * MINUTE_MS],
        )
        if not int(ok):
            raise BudgetExhausted("request weight", int(value), now)
        self.reservations += 1

    async def reserve(self, weight: int, *, max_wait_s: float | None = None) -> float:
        """Reserve ``weight``, waiting (bounded) for the next window; returns seconds waited.

        Raises :class:`BudgetExhausted` when it would have to wait longer than allowed.
        """
        limit = self.max_wait_s if max_wait_s is None else max_wait_s
        waited = 0.0
        while True:
            try:
                await self.try_reserve(weight)
                self.waited_s += waited
                return waited
            except BudgetExhausted as exc:
                if waited + exc.delay_s > limit:
                    raise
                # A few ms past the boundary so clocks that differ slightly agree.
                delay = exc.delay_s + 0.005
                log.info("ratelimit.waiting", what=exc.what, delay_s=round(delay, 3))
                await asyncio.sleep(delay)
                waited += delay

    async def correct_from_header(self, used_weight: int | None) -> None:
        """The exchange's own count for this minute is at least ``used_weight``."""
        if used_weight is None:
            return
        minute = self.clock() // MINUTE_MS
        await self._correct(keys=[keys.ratelimit_weight(minute)], args=[used_weight])

    async def note_rate_limited(self, status: int, retry_after_s: float | None) -> int:
        """A 429 or 418 was answered: pause every process until Retry-After has passed.

        Returns the epoch ms until which the fleet pauses.
        """
        now = self.clock()
        default = 60.0 if status == 429 else 120.0
        wait_s = retry_after_s if retry_after_s is not None and retry_after_s > 0 else default
        until = now + int(wait_s * 1000)
        result = await self._ban(keys=[keys.RATELIMIT_BAN], args=[until, int(wait_s * 1000) + 1000])
        log.warning("ratelimit.paused", status=status, retry_after_s=wait_s)
        return int(result)

    async def used(self) -> int:
        value = await self.redis.get(keys.ratelimit_weight(self.clock() // MINUTE_MS))
        return int(value or 0)

    async def banned_until(self) -> int:
        value = await self.redis.get(keys.RATELIMIT_BAN)
        return int(value or 0)


class OrderBudget:
    """The account's ORDERS limits (e.g. 50 per 10 s and 160,000 per day), shared by
    every gateway. An order that does not fit is not sent; the caller reports the delay."""

    def __init__(
        self,
        redis: Any,
        rules: Iterable[RateLimitRule] = (),
        *,
        margin: float = 0.1,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.redis = redis
        self.margin = margin
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.rules: list[RateLimitRule] = []
        self.apply_rules(rules)
        self._reserve = redis.register_script(_RESERVE_ORDER)

    def apply_rules(self, rules: Iterable[RateLimitRule]) -> None:
        orders = [r for r in rules if r.rate_limit_type == "ORDERS"]
        if orders:
            self.rules = orders

    async def try_reserve(self) -> None:
        """Count one order in every window or raise :class:`BudgetExhausted`."""
        if not self.rules:
            return
        now = self.clock()
        key_list = []
        args: list[int] = [now]
        for rule in self.rules:
            window = now // rule.window_ms
            key_list.append(keys.ratelimit_orders(rule.label, window))
            args += [
                effective_budget(rule.limit, self.margin),
                (window + 1) * rule.window_ms,
                rule.window_ms * 2,
            ]
        ok, value = await self._reserve(keys=[*key_list, keys.RATELIMIT_BAN], args=args)
        if not int(ok):
            raise BudgetExhausted("order count", int(value), now)
