"""Signing: the documented Binance vectors (reference §4) and RFC 8032 Ed25519 vectors."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.binance.signing import (
    Ed25519Signer,
    HmacSigner,
    ed25519_signature,
    encode_params,
    hmac_sha256_signature,
    load_ed25519_private_key,
    load_ed25519_public_key,
    signature_payload,
    signed_query,
    signer_from_config,
    verify_ed25519,
    verify_hmac,
    ws_api_signature_payload,
)

# Binance docs' example secret and API key (reference §4; WS-API docs).
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"

DOC_PARAMS = [
    ("symbol", "LTCBTC"),
    ("side", "BUY"),
    ("type", "LIMIT"),
    ("timeInForce", "GTC"),
    ("quantity", "1"),
    ("price", "0.1"),
    ("recvWindow", "5000"),
    ("timestamp", "1499827319559"),
]

# The docs' non-ASCII symbol: the fullwidth digits one to six (U+FF11..U+FF16).
FULLWIDTH_123456 = "\uff11\uff12\uff13\uff14\uff15\uff16"

# RFC 8032 §7.1 TEST 1 and TEST 2.
RFC_KEY_1 = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUB_1 = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG_1 = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
RFC_KEY_2 = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC_SIG_2 = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)


def test_hmac_doc_vector_ascii() -> None:
    payload = encode_params(DOC_PARAMS)
    assert payload == (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    assert (
        hmac_sha256_signature(SECRET, payload)
        == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def test_hmac_doc_vector_non_ascii_symbol_is_percent_encoded_before_signing() -> None:
    params = [("symbol", FULLWIDTH_123456), *DOC_PARAMS[1:]]
    payload = encode_params(params)
    assert payload.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&")
    assert (
        hmac_sha256_signature(SECRET, payload)
        == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    )


def test_hmac_doc_vector_query_plus_body_has_no_separator() -> None:
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    payload = signature_payload(query, body)
    assert "timeInForce=GTCquantity=1" in payload
    assert (
        hmac_sha256_signature(SECRET, payload)
        == "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    )


def test_ws_api_payload_is_sorted_and_not_percent_encoded() -> None:
    params = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01000000",
        "price": "52000.00",
        "recvWindow": 100,
        "timestamp": 1645423376532,
        "apiKey": API_KEY,
        "signature": "ignored",
    }
    payload = ws_api_signature_payload(params)
    assert payload.startswith(f"apiKey={API_KEY}&price=52000.00&quantity=0.01000000")
    assert (
        hmac_sha256_signature(SECRET, payload)
        == "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
    )
    unicode_params = {
        **params,
        "symbol": FULLWIDTH_123456,
        "side": "BUY",
        "price": "0.10000000",
        "quantity": "1.00000000",
        "recvWindow": 5000,
    }
    assert (
        hmac_sha256_signature(SECRET, ws_api_signature_payload(unicode_params))
        == "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd"
    )


def test_ed25519_rfc8032_vectors() -> None:
    key1 = Ed25519PrivateKey.from_private_bytes(RFC_KEY_1)
    assert key1.public_key().public_bytes_raw() == RFC_PUB_1
    assert ed25519_signature(key1, b"") == base64.b64encode(RFC_SIG_1).decode()
    key2 = Ed25519PrivateKey.from_private_bytes(RFC_KEY_2)
    assert ed25519_signature(key2, "r") == base64.b64encode(RFC_SIG_2).decode()  # message 0x72


def _pem(key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_ed25519_pem_keys_sign_and_verify() -> None:
    private_pem, public_pem = _pem(Ed25519PrivateKey.from_private_bytes(RFC_KEY_1))
    signer = Ed25519Signer.from_pem(private_pem)
    public = load_ed25519_public_key(public_pem)
    payload = encode_params(DOC_PARAMS)
    signature = signer.sign(payload)
    assert verify_ed25519(public, payload, signature)
    assert not verify_ed25519(public, payload + "0", signature)
    assert not verify_ed25519(public, payload, "not base64!")
    assert load_ed25519_private_key(private_pem).public_key().public_bytes_raw() == RFC_PUB_1


def test_hmac_verification_is_case_insensitive_and_rejects_tampering() -> None:
    payload = encode_params(DOC_PARAMS)
    good = hmac_sha256_signature(SECRET, payload)
    assert verify_hmac(SECRET, payload, good.upper())
    assert not verify_hmac(SECRET, payload.replace("BUY", "SELL"), good)
    assert not verify_hmac("other", payload, good)


def test_signed_query_puts_signature_last_and_verifies_as_sent() -> None:
    signer = HmacSigner(SECRET)
    query = signed_query(DOC_PARAMS[:6], signer, recv_window=5000, timestamp=1499827319559)
    unsigned, _, signature = query.rpartition("&signature=")
    assert unsigned == encode_params(DOC_PARAMS)
    assert signature == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_signed_query_percent_encodes_a_base64_signature() -> None:
    private_pem, public_pem = _pem(Ed25519PrivateKey.from_private_bytes(RFC_KEY_2))
    signer = signer_from_config(secret=SECRET, private_key_pem=private_pem)  # Ed25519 wins
    assert signer.kind == "ed25519"
    query = signed_query({"symbol": "BTCUSDT"}, signer, timestamp=1)
    unsigned, _, encoded_signature = query.rpartition("&signature=")
    assert "+" not in encoded_signature and "/" not in encoded_signature
    signature = dict(parse_qsl(query))["signature"]
    assert verify_ed25519(load_ed25519_public_key(public_pem), unsigned, signature)


def test_signed_query_requires_a_timestamp_and_refuses_a_second_signature() -> None:
    signer = HmacSigner(SECRET)
    with pytest.raises(ValueError, match="timestamp"):
        signed_query({"symbol": "BTCUSDT"}, signer)
    with pytest.raises(ValueError, match="signature"):
        signed_query({"signature": "x"}, signer, timestamp=1)


def test_encode_params_keeps_order_and_spells_booleans_like_binance() -> None:
    assert (
        encode_params({"b": True, "a": "x y", "c": '["BTC"]'}) == "b=true&a=x%20y&c=%5B%22BTC%22%5D"
    )


def test_signers_never_show_their_secret() -> None:
    assert SECRET not in repr(HmacSigner(SECRET))
    assert "redacted" in repr(Ed25519Signer(Ed25519PrivateKey.from_private_bytes(RFC_KEY_1)))
    with pytest.raises(ValueError):
        signer_from_config()
