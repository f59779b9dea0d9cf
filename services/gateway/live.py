"""Live mode's runtime: builds the signed client from the settings (refusing to start
when the exchange refuses the credentials), follows resting orders (the WebSocket API
user data stream, REST polling as the fallback), keeps ``balances:live``, and wires the
parts that live beside it: the executor that sends orders
(:mod:`services.gateway.live_executor`), start-up reconciliation
(:mod:`services.gateway.reconcile`) and the watch on credentials, bans and rate-limit
pauses (:mod:`services.gateway.live_watch`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.gateway.breaker import BreakerState, CircuitBreaker
from services.gateway.exchange import ExchangeClient
from services.gateway.live_executor import LiveExecutor
from services.gateway.live_watch import ExchangeWatch
from services.gateway.orders import RecordStatus
from services.gateway.processor import Processor
from services.gateway.reconcile import Reconciler, job_from_record
from services.gateway.settings import GatewaySettings
from services.gateway.store import GatewayStore
from services.gateway.user_stream import UserStream
from shared.binance.backoff import backoff_delays, bounded
from shared.binance.errors import (
    AuthError,
    BinanceError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryableError,
)
from shared.binance.signing import Signer, signer_from_config
from shared.logging import get_logger
from shared.messages import Event
from shared.ratelimit import OrderBudget, WeightBudget, rules_from_exchange_info

log = get_logger(__name__)


@dataclass
class LiveRuntime:
    client: ExchangeClient
    store: GatewayStore
    http: httpx.AsyncClient
    executor: LiveExecutor
    reconciler: Reconciler
    watch: ExchangeWatch
    user_stream: UserStream | None = None
    poll_interval_s: float = 1.0
    stream_poll_interval_s: float = 30.0
    events: list[Event] = field(default_factory=list)
    balances_refreshed: float = 0.0

    async def close(self) -> None:
        await self.http.aclose()

    def health(self) -> dict[str, Any]:
        stream = self.user_stream.health() if self.user_stream else {"user_stream": "off"}
        return {
            **self.client.health(),
            **self.watch.health(),  # refused credentials, a ban or a pause say so instead
            **stream,
            "delayed_orders": self.executor.delayed,
            "auth_probes": self.watch.probes,
            "orphans": len(self.reconciler.orphans),
        }

    def hold(self) -> str:
        """Why the intent consumer must take nothing now ('' = go on)."""
        return self.watch.hold()

    def interval(self) -> float:
        """REST polling is the fallback: frequent while the user stream is down, and
        while reconciliation still has records to settle (no stream event wakes those)."""
        if self.reconciler.orphans:
            return self.poll_interval_s
        if self.user_stream is not None and self.user_stream.connected:
            return self.stream_poll_interval_s
        return self.poll_interval_s

    async def flush_events(self) -> None:
        await self.executor.flush_events()

    async def refresh_balances(self) -> None:
        """``balances:live`` from ``GET /api/v3/account`` (weight 20; at most every 10 s)."""
        if time.monotonic() - self.balances_refreshed < 10.0:
            return
        self.balances_refreshed = time.monotonic()
        try:
            account = await self.client.account()
        except AuthError as exc:  # the client told the watch: it holds the intake, re-probes
            log.warning("balances.refresh_refused", code=exc.code)
            return
        except BinanceError as exc:
            log.warning("balances.refresh_failed", error=str(exc))
            return
        mapping: dict[str, str] = {}
        for b in account.balances:
            mapping[f"{b.asset}:free"] = b.free
            mapping[f"{b.asset}:locked"] = b.locked
        async with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.store.balances_key)
            if mapping:
                pipe.hset(self.store.balances_key, mapping=mapping)
            await pipe.execute()

    async def reconcile(self, processor: Processor) -> None:
        """Before the first new intent (DESIGN "Traps"): see :mod:`services.gateway.reconcile`."""
        await self.reconciler.run(processor)

    def follow_step(self, processor: Processor) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            await self.flush_events()
            cids = await self.store.open()
            if cids:
                records = await self.store.records(cids)
                for cid, record in zip(cids, records, strict=True):
                    if record.get("status") != RecordStatus.OPEN:
                        continue
                    job = job_from_record(cid, record, processor)
                    outcome = await self.executor.resolve(job)
                    if outcome is not None and outcome.report.final:
                        await self.executor.complete(processor, job, outcome)
            if not self.watch.hold():  # refused credentials: no order goes out meanwhile
                await self.reconciler.retry_orphans(processor)
            await self.refresh_balances()
            await self.flush_events()

        return step


def load_signer(settings: GatewaySettings) -> Signer:
    """Ed25519 when a private key file is configured, HMAC-SHA256 otherwise."""
    pem = (
        Path(settings.binance_private_key_file).read_bytes()
        if settings.binance_private_key_file
        else None
    )
    secret = settings.binance_api_secret.get_secret_value() if settings.binance_api_secret else None
    return signer_from_config(secret=secret, private_key_pem=pem)


async def start_live(settings: GatewaySettings, store: GatewayStore, redis: Any) -> LiveRuntime:
    """Build the signed client from the settings, sync the clock and the rate limits."""
    assert settings.binance_api_key is not None
    signer = await asyncio.to_thread(load_signer, settings)
    timeout = settings.gateway_http_timeout_s
    http = httpx.AsyncClient(
        base_url=settings.rest_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )
    client_holder: list[ExchangeClient] = []

    def on_breaker(state: BreakerState, why: str) -> None:
        if client_holder:
            executor.event(
                "exchange.circuit_breaker",
                f"circuit breaker {state.value}: {why}",
                level="error" if state is BreakerState.OPEN else "info",
                state=state.value,
            )

    weight = WeightBudget(redis, limit_per_minute=settings.gateway_weight_limit)
    orders = OrderBudget(redis)
    client = ExchangeClient(
        http,
        api_key=settings.binance_api_key.get_secret_value(),
        signer=signer,
        weight=weight,
        orders=orders,
        breaker=CircuitBreaker(
            settings.gateway_breaker_failures, settings.gateway_breaker_cooldown_s
        ),
        recv_window_ms=settings.gateway_recv_window_ms,
        use_server_time=settings.gateway_use_server_time,
        on_breaker=on_breaker,
    )
    weight.clock = client.now_ms
    orders.clock = client.now_ms
    executor = LiveExecutor(client, store)
    client_holder.append(client)
    runtime = LiveRuntime(
        client=client,
        store=store,
        http=http,
        executor=executor,
        reconciler=Reconciler(
            client, store, executor, policy=settings.gateway_unknown_order_policy
        ),
        watch=ExchangeWatch(client, executor, probe_max_s=settings.gateway_auth_probe_max_s),
        poll_interval_s=settings.gateway_poll_interval_s,
        stream_poll_interval_s=settings.gateway_stream_poll_interval_s,
    )
    client.on_auth_error = runtime.watch.auth_failed  # every signed call, orders included
    if settings.gateway_user_stream:
        runtime.user_stream = UserStream(settings.ws_api_url, client, redis, store.balances_key)
    try:
        await _with_retries(client.sync_time, "time sync")
        info = await _with_retries(client.exchange_info, "exchangeInfo")
        # one signed call: a wrong key or secret stops the start here, not at the first
        # order of every bot (reference §6: -1022, -2014, -2015, HTTP 401)
        await _with_retries(client.account, "credentials check")
    except AuthError as exc:
        await http.aclose()
        raise StartRefused(
            f"the exchange refused the API credentials ({exc.code}: {exc.message});"
            f" check {credential_names(settings)}"
        ) from None
    except BinanceError as exc:
        await http.aclose()
        raise StartRefused(f"cannot start live on {settings.rest_url}: {exc}") from None
    rules = rules_from_exchange_info(info.rateLimits)
    weight.apply_rules(rules)
    orders.apply_rules(rules)
    log.info("gateway.live_ready", env=settings.binance_env.value, signer=signer.kind)
    return runtime


class StartRefused(Exception):
    """A live gateway must not start; the message names the problem and never a secret."""


def credential_names(settings: GatewaySettings) -> str:
    """The settings a person should look at after a refusal of the credentials."""
    signing = (
        "BOTFLEET_BINANCE_PRIVATE_KEY_FILE"
        if settings.binance_private_key_file
        else "BOTFLEET_BINANCE_API_SECRET"
    )
    return f"BOTFLEET_BINANCE_API_KEY and {signing} (and the key's IP and trading permissions)"


async def _with_retries(call: Callable[[], Awaitable[Any]], what: str, attempts: int = 8) -> Any:
    delays = bounded(backoff_delays(0.2, 5.0, random.Random()), attempts)
    while True:
        try:
            return await call()
        except (RetryableError, OutcomeUnknownError, RateLimitedError) as exc:
            delay = next(delays, None)
            if delay is None:
                raise
            log.warning("exchange.start_retry", what=what, error=str(exc), retry_in=round(delay, 2))
            await asyncio.sleep(delay)
