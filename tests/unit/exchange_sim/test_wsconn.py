"""Control messages and WS-API calls, answered without a socket."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.exchange_sim.app import SimOptions, build_exchange
from services.exchange_sim.wsconn import Conn, WsProtocol, _payload_of, text_frame
from shared.binance.signing import HmacSigner, ed25519_signature, ws_api_signature_payload

SECRET = "s3cret"
ED = Ed25519PrivateKey.generate()
ED_PEM = (
    ED.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.fixture
def proto() -> WsProtocol:
    ex = build_exchange(
        SimOptions(
            symbols=["BTCUSDT"],
            api_key="hk",
            api_secret=SECRET,
            ed25519_public_key=ED_PEM,
            ed25519_api_key="ek",
            history_days=2,
        )
    )
    subscribed: list[str] = []

    def sub(conn: Conn, stream: str) -> None:
        conn.streams.add(stream)
        subscribed.append(stream)

    def unsub(conn: Conn, stream: str) -> None:
        conn.streams.discard(stream)

    return WsProtocol(ex, sub, unsub)


def _conn() -> Conn:
    return Conn(None, "ws-api")  # type: ignore[arg-type]  # the socket is not used here


def _call(proto: WsProtocol, conn: Conn, method: str, params: Any = None, id_: Any = 1) -> Any:
    body = {"id": id_, "method": method}
    if params is not None:
        body["params"] = params
    return json.loads(proto.ws_api(conn, json.dumps(body)))


def _hmac_params(key: str = "hk", secret: str = SECRET) -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": key, "timestamp": int(time.time() * 1000)}
    params["signature"] = HmacSigner(secret).sign(ws_api_signature_payload(params))
    return params


def _ed_params() -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": "ek", "timestamp": int(time.time() * 1000)}
    params["signature"] = ed25519_signature(ED, ws_api_signature_payload(params))
    return params


def test_subscribe_signature_gives_one_subscription_per_account(proto: WsProtocol) -> None:
    conn = _conn()
    reply = _call(proto, conn, "userDataStream.subscribe.signature", _hmac_params())
    assert reply["status"] == 200 and reply["result"] == {"subscriptionId": 0}
    again = _call(proto, conn, "userDataStream.subscribe.signature", _hmac_params())
    assert again["error"]["code"] == -2035
    listed = _call(proto, conn, "session.subscriptions")
    assert listed["result"] == [{"subscriptionId": 0}]
    assert _call(proto, conn, "userDataStream.unsubscribe", {"subscriptionId": 0})["result"] == {}
    gone = _call(proto, conn, "userDataStream.unsubscribe", {"subscriptionId": 0})
    assert gone["error"]["code"] == -2036


def test_a_wrong_secret_or_key_is_refused(proto: WsProtocol) -> None:
    bad = _call(proto, _conn(), "userDataStream.subscribe.signature", _hmac_params(secret="x"))
    assert (bad["status"], bad["error"]["code"]) == (400, -1022)
    unknown = _call(proto, _conn(), "userDataStream.subscribe.signature", _hmac_params(key="zz"))
    assert (unknown["status"], unknown["error"]["code"]) == (401, -2015)


def test_session_logon_with_ed25519_then_subscribe(proto: WsProtocol) -> None:
    conn = _conn()
    assert _call(proto, conn, "userDataStream.subscribe")["error"]["code"] == -2015
    logon = _call(proto, conn, "session.logon", _ed_params())
    assert logon["status"] == 200 and logon["result"]["apiKey"] == "ek"
    assert _call(proto, conn, "userDataStream.subscribe")["result"] == {"subscriptionId": 0}
    hmac_logon = _call(proto, _conn(), "session.logon", _hmac_params())
    assert hmac_logon["error"]["code"] == -1022  # session.logon needs an Ed25519 key


def test_ping_time_and_unknown_methods(proto: WsProtocol) -> None:
    conn = _conn()
    assert _call(proto, conn, "ping", id_="abc") == {"id": "abc", "status": 200, "result": {}}
    assert _call(proto, conn, "time")["result"]["serverTime"] > 0
    assert _call(proto, conn, "order.place", {})["status"] == 400


def _control(proto: WsProtocol, conn: Conn, msg: Any) -> Any:
    return json.loads(proto.control(conn, msg if isinstance(msg, str) else json.dumps(msg)))


def test_control_messages_answer_like_binance(proto: WsProtocol) -> None:
    conn = _conn()
    assert _control(
        proto, conn, {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}
    ) == {
        "result": None,
        "id": 1,
    }
    assert _control(proto, conn, {"method": "LIST_SUBSCRIPTIONS", "id": 2})["result"] == [
        "btcusdt@kline_1m"
    ]
    assert (
        _control(proto, conn, {"method": "GET_PROPERTY", "params": ["combined"], "id": 3})["result"]
        is False
    )
    assert _control(
        proto, conn, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 4}
    ) == {"result": None, "id": 4}
    assert conn.combined
    wrong_type = _control(
        proto, conn, {"method": "SET_PROPERTY", "params": ["combined", 1], "id": 5}
    )
    assert wrong_type["error"]["code"] == 1
    assert (
        _control(proto, conn, {"method": "GET_PROPERTY", "params": ["x"], "id": 6})["error"]["code"]
        == 0
    )
    assert _control(proto, conn, "{not json")["error"]["code"] == 3
    assert (
        _control(proto, conn, {"method": "SUBSCRIBE", "params": ["a"], "id": [1]})["error"]["code"]
        == 2
    )
    too_many = [f"btcusdt@kline_{i}" for i in ("3m", "5m")]
    conn.streams.update(f"s{i}" for i in range(1023))
    over = _control(proto, conn, {"method": "SUBSCRIBE", "params": too_many, "id": 7})
    assert over["error"]["code"] == 2


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_text_frames_carry_the_rfc6455_length_and_give_their_payload_back(length: int) -> None:
    payload = b"x" * length
    frame = text_frame(payload)
    assert frame[0] == 0x81  # FIN + text, unmasked (server to client)
    header = {0: 2, 125: 2, 126: 4, 65535: 4, 65536: 10}[length]
    assert len(frame) == header + length and frame.endswith(payload)
    assert _payload_of(frame) == payload
