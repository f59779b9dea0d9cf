"""What stands between a live gateway and the exchange, watched: refused credentials,
an IP ban, a rate-limit pause.

Credentials: an AuthError (-1022, -2014, -2015, HTTP 401) on an order
(``LiveExecutor.auth_failure``) or on any signed call (the client calls
:meth:`auth_failed`: order queries, the balances refresh) puts the gateway on hold: :meth:`hold` gives the reason, the intent consumer takes no
entries while it does (they stay pending for a healthy instance's XAUTOCLAIM), the
health says ``exchange: auth_failed`` with the reason and ``ok: 0``. The credentials are
probed (``GET /api/v3/account``) after a capped, jittered backoff; the first probe that
works lifts the hold, clears the executor's flag and the gateway resumes by itself.

Bans and pauses: every process pauses on the fleet's one pause key
(``ratelimit:binance:ban``, :mod:`shared.ratelimit`) after a 429 or a 418. The health
says ``banned until <ISO>`` (``ok: 0``) or ``rate limited until <ISO>``, and an event
marks the start and the end of each (``exchange.banned`` / ``exchange.ban_lifted``,
``exchange.rate_limited`` / ``exchange.rate_limit_lifted``). The key holds only a
deadline: the pause is a ban when this client was itself answered the 418 that set it,
a rate-limit pause otherwise (a ban another process earned reads as a pause here).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.gateway.exchange import ExchangeClient
from services.gateway.live_executor import LiveExecutor
from shared.binance.backoff import backoff_delays
from shared.binance.errors import AuthError, BinanceError
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS

log = get_logger(__name__)
# a ban deadline within this of the one this client was answered is that ban
BAN_MATCH_MS = 2_000


def iso_ms(epoch_ms: int) -> str:
    """``2026-12-03T18:30:00Z`` (second precision: what a person reads in a health line)."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ExchangeWatch:
    def __init__(
        self,
        client: ExchangeClient,
        executor: LiveExecutor,
        *,
        probe_max_s: float = 60.0,
        interval_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.executor = executor
        self.probe_max_s = probe_max_s
        self.interval_s = interval_s
        self.monotonic = monotonic
        self._auth_reason = ""  # a signed call of the runtime was refused
        self.on_hold = ""  # the reason announced (the hold as last seen by the loop)
        self._delays = self._new_delays()
        self._next_probe = 0.0
        self.probes = 0
        self.pause_until = 0  # exchange ms; 0 = not paused
        self.pause_kind = ""  # "banned" | "rate_limited"

    def _new_delays(self) -> Any:
        return backoff_delays(min(1.0, self.probe_max_s), self.probe_max_s, random.Random())

    # --- credentials -------------------------------------------------------------------
    def auth_failed(self, exc: AuthError) -> None:
        """A signed call was refused for its credentials (the probe clears it)."""
        self._auth_reason = f"exchange refused the credentials: {exc.code} {exc.message}"

    def hold(self) -> str:
        """Why the gateway takes no intents now ('' = it does)."""
        return self.executor.auth_failure or self._auth_reason

    async def _probe(self) -> None:
        """One signed call: do the credentials work again?"""
        self.probes += 1
        try:
            await self.client.account()
        except AuthError as exc:
            self.auth_failed(exc)
            delay = next(self._delays)
            self._next_probe = self.monotonic() + delay
            log.warning("exchange.auth_probe_refused", code=exc.code, retry_in=round(delay, 2))
            return
        except BinanceError as exc:  # the exchange is unreachable: that proves nothing yet
            delay = next(self._delays)
            self._next_probe = self.monotonic() + delay
            log.warning("exchange.auth_probe_failed", error=str(exc), retry_in=round(delay, 2))
            return
        reason = self.hold()
        self._auth_reason = ""
        self.executor.auth_failure = ""
        self.on_hold = ""
        self._delays = self._new_delays()
        log.info("exchange.auth_restored")
        self.executor.event(
            "exchange.auth_restored",
            f"the exchange accepts the credentials again; taking intents (was: {reason})",
            level="info",
        )

    async def _watch_auth(self) -> None:
        reason = self.hold()
        if not reason:
            return
        if reason != self.on_hold:
            first = not self.on_hold
            self.on_hold = reason
            log.error("exchange.auth_hold", reason=reason)
            if first:
                self._next_probe = self.monotonic() + next(self._delays)
                self.executor.event(
                    "exchange.auth_failed",
                    f"gateway on hold, taking no intents: {reason}",
                    level="error",
                    reason=reason,
                )
        if self.monotonic() >= self._next_probe:
            await self._probe()

    # --- bans and rate-limit pauses ------------------------------------------------------
    async def _watch_limits(self) -> None:
        until = await self.client.weight.banned_until()
        now = self.client.now_ms()
        if until > now:
            banned = abs(until - self.client.ban_seen_until) <= BAN_MATCH_MS
            kind = "banned" if banned else "rate_limited"
            if kind != self.pause_kind or until != self.pause_until:
                if kind != self.pause_kind:
                    self._lifted()
                    self._started(kind, until)
                self.pause_kind, self.pause_until = kind, until
            return
        self._lifted()
        self.pause_kind, self.pause_until = "", 0

    def _started(self, kind: str, until: int) -> None:
        what = "IP banned" if kind == "banned" else "rate limited"
        log.warning("exchange.paused", kind=kind, until=iso_ms(until))
        self.executor.event(
            f"exchange.{kind}",
            f"{what} until {iso_ms(until)}: no request is sent before then",
            level="error" if kind == "banned" else "warning",
            until_ms=until,
            until=iso_ms(until),
        )

    def _lifted(self) -> None:
        if not self.pause_kind:
            return
        kind = "ban_lifted" if self.pause_kind == "banned" else "rate_limit_lifted"
        log.info("exchange.pause_over", kind=self.pause_kind)
        self.executor.event(f"exchange.{kind}", f"exchange.{kind}: requests resume", level="info")

    # --- the loop and the health ---------------------------------------------------------
    async def run(self) -> None:
        """Watch until cancelled; a Redis error is logged and the next round tries again."""
        while True:
            try:
                await self._watch_auth()
                await self._watch_limits()
                await self.executor.flush_events()
            except REDIS_ERRORS as exc:
                log.warning("exchange.watch_redis_error", error=str(exc))
            await asyncio.sleep(self.interval_s)

    def health(self) -> dict[str, Any]:
        """``exchange`` (overrides the client's connected/disconnected), its reason, and
        ``ok`` (``0`` fails the fleet's health check: refused credentials or a ban)."""
        reason = self.hold()
        if reason:
            return {"exchange": "auth_failed", "exchange_reason": reason, "ok": 0}
        if self.pause_kind and self.pause_until > self.client.now_ms():
            until = iso_ms(self.pause_until)
            if self.pause_kind == "banned":
                return {"exchange": f"banned until {until}", "exchange_reason": "418", "ok": 0}
            return {"exchange": f"rate limited until {until}", "exchange_reason": "429", "ok": 1}
        return {"exchange_reason": "", "ok": 1}
