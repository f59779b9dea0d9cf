"""Request-weight and order-count windows, on the exchange clock (reference §7).

Owns: weight used per client IP in each exchange minute (``X-MBX-USED-WEIGHT-1M``),
the 429 answer past the limit (``-1003`` with ``Retry-After``), the 418 ban for a
client that keeps sending while limited (``--ban-after`` such answers within a
minute; ban lengths double from 2 minutes, as Binance escalates), and the unfilled
order counts per account per 10 seconds and per day (``X-MBX-ORDER-COUNT-10S`` /
``-1D``, ``-1015``), and the forced 429 / 418 of the ``rate_limit_s`` / ``ban_s``
faults (every IP, until a deadline). Windows are aligned: a minute window resets at each exchange
minute boundary. ``Retry-After`` is in wall seconds (what a client can sleep),
rounded up, at least 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from services.exchange_sim.apierror import ApiError

MINUTE_MS = 60_000
TEN_S_MS = 10_000
DAY_MS = 86_400_000
BAN_BASE_MS = 2 * MINUTE_MS


class RateLimited(ApiError):
    def __init__(self, code: int, msg: str, status: int, retry_after_s: int) -> None:
        super().__init__(code, msg, status)
        self.retry_after_s = retry_after_s


@dataclass
class _IpState:
    window: int = -1
    used: int = 0
    refused: int = 0
    banned_until: int = 0
    bans: int = 0


@dataclass
class _OrderState:
    window_10s: int = -1
    count_10s: int = 0
    window_1d: int = -1
    count_1d: int = 0


@dataclass
class Limits:
    weight_per_minute: int = 6000
    orders_per_10s: int = 100
    orders_per_day: int = 200_000
    ban_after: int = 10
    speed: float = 1.0
    _ips: dict[str, _IpState] = field(default_factory=dict)
    _orders: dict[str, _OrderState] = field(default_factory=dict)
    # What the exchange saw, for tests of the fleet's budget (GET /sim/limits):
    # weight of the requests it served per exchange minute (all IPs), 429s and 418s.
    served_per_minute: dict[int, int] = field(default_factory=dict)
    answered_429: int = 0
    answered_418: int = 0
    # Faults: every request is answered 429 / 418 until these exchange-ms deadlines.
    forced_429_until: int = 0
    forced_418_until: int = 0

    def force(self, status: int, wall_s: float, now_ms: int) -> int:
        """Answer every request ``status`` (429 or 418) for ``wall_s`` wall seconds;
        returns the deadline in exchange ms."""
        until = now_ms + math.ceil(wall_s * 1000 * self.speed)
        if status == 418:
            self.forced_418_until = until
        else:
            self.forced_429_until = until
        return until

    def lift_forced(self) -> None:
        self.forced_429_until = self.forced_418_until = 0

    def _ban_error(self, until: int, now_ms: int) -> RateLimited:
        self.answered_418 += 1
        return RateLimited(
            -1003,
            f"Way too much request weight used; IP banned until {until}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            418,
            self._wall_s(until - now_ms),
        )

    def _wall_s(self, exchange_ms: int) -> int:
        return max(1, math.ceil(exchange_ms / 1000 / self.speed))

    def charge(self, ip: str, weight: int, now_ms: int) -> int:
        """Count ``weight`` for ``ip``; return the minute's total, or raise 429 / 418."""
        st = self._ips.setdefault(ip, _IpState())
        if now_ms < self.forced_418_until:
            raise self._ban_error(self.forced_418_until, now_ms)
        if now_ms < st.banned_until:
            raise self._ban_error(st.banned_until, now_ms)
        if now_ms < self.forced_429_until:
            self.answered_429 += 1
            raise RateLimited(
                -1003,
                f"Too much request weight used; current limit is {self.weight_per_minute} "
                "request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                "to avoid polling the API.",
                429,
                self._wall_s(self.forced_429_until - now_ms),
            )
        window = now_ms // MINUTE_MS
        if window != st.window:
            st.window, st.used, st.refused = window, 0, 0
        st.used += weight
        if st.used > self.weight_per_minute:
            st.refused += 1
            if st.refused > self.ban_after:
                st.bans += 1
                st.banned_until = now_ms + BAN_BASE_MS * 2 ** (st.bans - 1)
                raise self._ban_error(st.banned_until, now_ms)
            self.answered_429 += 1
            raise RateLimited(
                -1003,
                f"Too much request weight used; current limit is {self.weight_per_minute} "
                "request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                "to avoid polling the API.",
                429,
                self._wall_s((window + 1) * MINUTE_MS - now_ms),
            )
        self.served_per_minute[window] = self.served_per_minute.get(window, 0) + weight
        if len(self.served_per_minute) > 1440:
            del self.served_per_minute[min(self.served_per_minute)]
        return st.used

    def refund(self, ip: str, weight: int) -> int:
        """Give back weight a successful order or cancel does not cost (§7, 2026-04-02)."""
        st = self._ips.setdefault(ip, _IpState())
        st.used = max(0, st.used - weight)
        if st.window in self.served_per_minute:
            self.served_per_minute[st.window] = max(0, self.served_per_minute[st.window] - weight)
        return st.used

    def snapshot(self) -> dict[str, object]:
        """``GET /sim/limits``: limits, weight served per exchange minute (epoch ms of the
        minute -> weight), and how many 429 and 418 answers were given."""
        return {
            "weight_limit": self.weight_per_minute,
            "orders_per_10s": self.orders_per_10s,
            "orders_per_day": self.orders_per_day,
            "weight_per_minute": {
                str(m * MINUTE_MS): w for m, w in sorted(self.served_per_minute.items())
            },
            "max_weight_per_minute": max(self.served_per_minute.values(), default=0),
            "answered_429": self.answered_429,
            "answered_418": self.answered_418,
            "forced_429_until": self.forced_429_until,
            "forced_418_until": self.forced_418_until,
        }

    def used(self, ip: str, now_ms: int) -> int:
        st = self._ips.get(ip)
        if st is None or st.window != now_ms // MINUTE_MS:
            return 0
        return st.used

    def count_order(self, account: str, now_ms: int) -> tuple[int, int]:
        """Count a new order; return (10 s count, day count) or raise ``-1015`` (429)."""
        st = self._orders.setdefault(account, _OrderState())
        w10, wd = now_ms // TEN_S_MS, now_ms // DAY_MS
        if w10 != st.window_10s:
            st.window_10s, st.count_10s = w10, 0
        if wd != st.window_1d:
            st.window_1d, st.count_1d = wd, 0
        if st.count_10s >= self.orders_per_10s:
            raise RateLimited(
                -1015,
                f"Too many new orders; current limit is {self.orders_per_10s} orders per 10 SECOND.",
                429,
                self._wall_s((w10 + 1) * TEN_S_MS - now_ms),
            )
        if st.count_1d >= self.orders_per_day:
            raise RateLimited(
                -1015,
                f"Too many new orders; current limit is {self.orders_per_day} orders per DAY.",
                429,
                self._wall_s((wd + 1) * DAY_MS - now_ms),
            )
        st.count_10s += 1
        st.count_1d += 1
        return st.count_10s, st.count_1d

    def rate_limits(self) -> list[dict[str, object]]:
        """exchangeInfo ``rateLimits`` (§7)."""
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_per_minute,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "SECOND",
                "intervalNum": 10,
                "limit": self.orders_per_10s,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "DAY",
                "intervalNum": 1,
                "limit": self.orders_per_day,
            },
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 300000,
            },
        ]
