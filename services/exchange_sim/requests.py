"""Request parsing and validation, as Binance does it, with its codes and messages.

Owns: reading a request's parameters (query string wins over the body, §3
"General"), the number / id formats (``-1100``), mandatory and unwanted parameters
(``-1102``, ``-1106``), enums (``-1115``/``-1116``/``-1117``), API-key, signature and
timestamp checks (``-2014``/``-2015``/``-1022``/``-1021``, §4), and turning a
``POST /api/v3/order`` into a :class:`~services.exchange_sim.book.NewOrder` checked
against the stateless filters (``-1013``, via ``shared.binance.rules``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.exchange_sim.apierror import (
    BAD_API_KEY_FMT,
    BAD_SIGNATURE,
    INVALID_SYMBOL,
    REJECTED_KEY,
    ApiError,
    illegal_chars,
    mandatory,
)
from services.exchange_sim.book import NewOrder
from shared.binance.intervals import is_interval
from shared.binance.rules import FilterFailure, OrderCheckError, SymbolRules, validate_order
from shared.binance.signing import signature_payload, verify_ed25519, verify_hmac

DECIMAL_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
DECIMAL_LEGAL = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INT_RE = re.compile(r"^-?[0-9]{1,20}$")
CLIENT_ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
CLIENT_ID_LEGAL = "^[a-zA-Z0-9-_]{1,36}$"
MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000
ORDER_TYPES = ("LIMIT", "MARKET", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
RESP_TYPES = ("ACK", "RESULT", "FULL")


@dataclass(frozen=True)
class ApiKey:
    """A registered key: HMAC ``secret`` or an Ed25519 ``public_key``, and its account."""

    key: str
    account: str
    secret: str | None = None
    public_key: Ed25519PublicKey | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"ApiKey(key={self.key[:6]}..., account={self.account})"


@dataclass(frozen=True)
class Request:
    """A REST request's parameters and the raw strings its signature covers."""

    params: Mapping[str, str]
    query: str = ""
    body: str = ""

    @classmethod
    def from_raw(cls, query: str, body: str) -> Request:
        merged: dict[str, str] = {}
        for k, v in parse_qsl(body, keep_blank_values=True):
            merged[k] = v
        for k, v in parse_qsl(query, keep_blank_values=True):
            merged[k] = v  # §3: the query string wins
        return cls(merged, query, body)

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        return None if value is None or value == "" else value

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise mandatory(name)
        return value

    def decimal(self, name: str, required: bool = False) -> Decimal | None:
        raw = self.require(name) if required else self.get(name)
        if raw is None:
            return None
        if not DECIMAL_RE.match(raw):
            raise illegal_chars(name, DECIMAL_LEGAL)
        return Decimal(raw)

    def integer(self, name: str, required: bool = False) -> int | None:
        raw = self.require(name) if required else self.get(name)
        if raw is None:
            return None
        if not INT_RE.match(raw):
            raise illegal_chars(name, "^[0-9]{1,20}$")
        return int(raw)

    def boolean(self, name: str) -> bool | None:
        raw = self.get(name)
        if raw is None:
            return None
        if raw.lower() not in ("true", "false"):
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        return raw.lower() == "true"


def _strip_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` without its ``signature`` parameter, and the (percent-decoded) signature."""
    kept, signature = [], None
    for part in raw.split("&") if raw else []:
        name = part.partition("=")[0]
        if name == "signature":
            signature = dict(parse_qsl(part)).get("signature", "")
        else:
            kept.append(part)
    return "&".join(kept), signature


def check_timestamp(timestamp: int, recv_window: int, now_ms: int, wall_ms: int | None) -> None:
    """§4 timing rule: ``timestamp < now + 1000`` and ``now - timestamp <= recvWindow``.

    ``wall_ms``: when the exchange clock is not wall time (``--speed`` other than 1 or
    a ``--start-time`` in the past), a timestamp that passes against the wall clock
    is accepted too, so clients that stamp requests with their own clock (as every
    published client does) keep working; a stale timestamp fails against both.
    """
    if timestamp > 10**14:  # microseconds (§4)
        timestamp //= 1000
    for now in (now_ms, wall_ms):
        if now is not None and timestamp < now + 1000 and now - timestamp <= recv_window:
            return
    if timestamp >= now_ms + 1000:
        raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def authenticate(
    req: Request,
    api_key: str | None,
    keys: Mapping[str, ApiKey],
    now_ms: int,
    wall_ms: int | None = None,
) -> ApiKey:
    """Check a SIGNED request (§4); return the key it was signed with.

    The signature covers the query string then the body exactly as sent (with the
    ``signature`` parameter removed), which is what a client that percent-encodes
    before signing produces.
    """
    if not api_key:
        raise BAD_API_KEY_FMT
    key = keys.get(api_key)
    if key is None:
        raise REJECTED_KEY
    timestamp = req.integer("timestamp", required=True)
    assert timestamp is not None
    recv_raw = req.get("recvWindow")
    recv_window = DEFAULT_RECV_WINDOW
    if recv_raw is not None:
        if not DECIMAL_RE.match(recv_raw):
            raise illegal_chars("recvWindow", DECIMAL_LEGAL)
        recv = Decimal(recv_raw)
        if recv > MAX_RECV_WINDOW:
            raise ApiError(-1131, "recvWindow must be less than 60000")
        recv_window = int(recv)
    query, sig_q = _strip_signature(req.query)
    body, sig_b = _strip_signature(req.body)
    signature = sig_q if sig_q is not None else sig_b
    if not signature:
        raise mandatory("signature")
    payload = signature_payload(query, body)
    if key.public_key is not None:
        valid = verify_ed25519(key.public_key, payload, signature)
    else:
        assert key.secret is not None
        valid = verify_hmac(key.secret, payload, signature)
    if not valid:
        raise BAD_SIGNATURE
    check_timestamp(timestamp, recv_window, now_ms, wall_ms)
    return key


def symbol_of(req: Request, rules: Mapping[str, SymbolRules], required: bool = True) -> str | None:
    raw = req.require("symbol") if required else req.get("symbol")
    if raw is None:
        return None
    symbol = raw.upper()
    if symbol not in rules:
        raise INVALID_SYMBOL
    return symbol


def interval_of(req: Request) -> str:
    interval = req.require("interval")
    if not is_interval(interval):
        raise ApiError(-1120, "Invalid interval.")
    return interval


def _not_wanted(req: Request, *names: str) -> None:
    for name in names:
        if req.get(name) is not None:
            raise ApiError(-1106, f"Parameter '{name}' sent when not required.")


def parse_new_order(req: Request, rules: Mapping[str, SymbolRules]) -> tuple[NewOrder, str]:
    """A ``POST /api/v3/order`` (§3.6) and its ``newOrderRespType``; parameter errors
    only (filters need the price: :func:`check_filters`)."""
    symbol = symbol_of(req, rules)
    assert symbol is not None
    side = req.require("side")
    if side not in ("BUY", "SELL"):
        raise ApiError(-1117, "Invalid side.")
    order_type = req.require("type")
    if order_type not in ORDER_TYPES or order_type not in rules[symbol].order_types:
        raise ApiError(-1116, "Invalid orderType.")
    tif = req.get("timeInForce") or ""
    quantity = req.decimal("quantity")
    quote_qty = req.decimal("quoteOrderQty")
    price = req.decimal("price")
    stop_price = req.decimal("stopPrice")
    if order_type == "MARKET":
        _not_wanted(req, "price", "timeInForce", "stopPrice")
        if quantity is None and quote_qty is None:
            raise ApiError(
                -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
            )
        if quantity is not None and quote_qty is not None:
            raise ApiError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
    else:
        _not_wanted(req, "quoteOrderQty")
        if quantity is None:
            raise mandatory("quantity")
        if price is None:
            raise mandatory("price")
        if order_type == "LIMIT_MAKER":
            _not_wanted(req, "timeInForce", "stopPrice")
        else:
            if not tif:
                raise mandatory("timeInForce")
            if order_type != "LIMIT" and stop_price is None:
                raise mandatory("stopPrice")
            if order_type == "LIMIT":
                _not_wanted(req, "stopPrice")
    if tif and tif not in ("GTC", "IOC", "FOK"):
        raise ApiError(-1115, "Invalid timeInForce.")
    client_id = req.get("newClientOrderId") or ""
    if client_id and not CLIENT_ID_RE.match(client_id):
        raise illegal_chars("newClientOrderId", CLIENT_ID_LEGAL)
    resp_type = req.get("newOrderRespType") or (
        "FULL" if order_type in ("MARKET", "LIMIT") else "ACK"
    )
    if resp_type not in RESP_TYPES:
        raise ApiError(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
    return (
        NewOrder(
            symbol=symbol,
            side=side,
            type=order_type,
            time_in_force=tif,
            quantity=quantity,
            quote_order_qty=quote_qty,
            price=price,
            stop_price=stop_price,
            client_order_id=client_id,
        ),
        resp_type,
    )


def check_filters(order: NewOrder, rules: SymbolRules, reference_price: Decimal) -> None:
    """The stateless filters (-1013 "Filter failure: X", reference §5)."""
    kind = "MARKET" if order.type == "MARKET" else "LIMIT"
    try:
        validate_order(
            rules,
            order.side,
            kind,
            order.quantity,
            order.price,
            reference_price,
            quote_quantity=order.quote_order_qty,
        )
        if order.stop_price is not None:
            validate_order(rules, order.side, "LIMIT", order.quantity, order.stop_price)
    except FilterFailure as exc:
        raise ApiError(-1013, exc.msg) from None
    except OrderCheckError as exc:
        raise ApiError(-1013, exc.msg) from None
