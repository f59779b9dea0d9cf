"""Ingestion's public REST calls (klines, exchangeInfo, time), inside the fleet budget.

Owns the HTTP edge of ingestion: every request reserves its weight in the fleet-wide
budget first (:class:`shared.ratelimit.WeightBudget`, DESIGN "Ownership and
failure"), corrects the minute's counter from ``X-MBX-USED-WEIGHT-1M`` afterwards,
and on a 429/418 pauses every process until Retry-After has passed. Transport errors
are mapped once, here, onto :mod:`shared.binance.errors` with ``raise ... from``.
The ``httpx.AsyncClient`` is injected; every call has a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from shared.binance.endpoints import EXCHANGE_INFO, KLINES, TIME, Endpoint, weight_of
from shared.binance.errors import (
    BinanceError,
    RateLimitedError,
    connection_error,
    error_from_response,
    weight_from_headers,
)
from shared.binance.parsing import decode_body, decode_rest_klines
from shared.binance.schemas import ExchangeInfo, RestKline, ServerTime
from shared.ratelimit import WeightBudget


class MarketRest:
    def __init__(self, http: httpx.AsyncClient, budget: WeightBudget | None) -> None:
        self.http = http
        self.budget = budget
        self.requests = 0
        self.kline_requests = 0  # backfill's share of ``requests``
        self.rate_limited = 0

    async def _get(self, endpoint: Endpoint, params: Mapping[str, Any]) -> bytes:
        if self.budget is not None:
            await self.budget.reserve(weight_of(endpoint, params))
        self.requests += 1
        try:
            response = await self.http.get(endpoint.path, params=dict(params))
        except httpx.ConnectError as exc:
            raise connection_error(f"{endpoint.name}: {exc}", request_sent=False) from exc
        except httpx.HTTPError as exc:
            raise connection_error(f"{endpoint.name}: {exc!r}", request_sent=True) from exc
        if self.budget is not None:
            await self.budget.correct_from_header(weight_from_headers(response.headers.items()))
        if response.status_code != 200:
            error = error_from_response(
                response.status_code, response.content, response.headers.items()
            )
            if isinstance(error, RateLimitedError) and response.status_code in (418, 429):
                self.rate_limited += 1
                if self.budget is not None:
                    await self.budget.note_rate_limited(response.status_code, error.retry_after_s)
            raise error
        return response.content

    async def klines(
        self,
        symbol: str,
        interval: str,
        start_time: int | None,
        limit: int,
        *,
        end_time: int | None = None,
    ) -> list[RestKline]:
        """``start_time``: the oldest ``limit`` from it; ``end_time`` alone: the newest
        ``limit`` up to it (a page into the past); neither: the newest."""
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_time is not None:
            params["startTime"] = start_time
        if end_time is not None:
            params["endTime"] = end_time
        self.kline_requests += 1
        body = await self._get(KLINES, params)
        try:
            return decode_rest_klines(body)
        except ValueError as exc:  # msgspec errors are ValueErrors
            raise BinanceError(f"klines: undecodable body: {exc}") from exc

    async def exchange_info(self) -> ExchangeInfo:
        body = await self._get(EXCHANGE_INFO, {})
        try:
            return decode_body(body, ExchangeInfo)
        except ValueError as exc:
            raise BinanceError(f"exchangeInfo: undecodable body: {exc}") from exc

    async def server_time(self) -> int:
        body = await self._get(TIME, {})
        try:
            return decode_body(body, ServerTime).serverTime
        except ValueError as exc:
            raise BinanceError(f"time: undecodable body: {exc}") from exc
