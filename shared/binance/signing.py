"""Request signing and verification (reference §4).

Owns: how a REST query string is percent-encoded and signed, the HMAC-SHA256 and
Ed25519 primitives, and their verification for the simulator. The gateway picks a
:class:`Signer` from the configured key (DESIGN "Traps": HMAC or Ed25519, Ed25519
recommended) and calls :func:`signed_query`; the simulator calls
:func:`signature_payload` on the raw query string and body it received and then
:func:`verify_hmac` / :func:`verify_ed25519`. Reading key files is the caller's job.

REST (§4): the payload is the query string followed directly by the request body
(no separator), percent-encoded (UTF-8) *before* signing — mandatory since
2026-01-15 (CHANGELOG 2025-12-17). HMAC signatures are hex; Ed25519 (and RSA)
signatures are base64 and must be percent-encoded themselves in the URL.
WS-API (§4 last item): parameters sorted by name, raw UTF-8, not percent-encoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Protocol
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

Params = Mapping[str, object] | Iterable[tuple[str, object]]

# RFC 3986 unreserved characters stay as they are; everything else is %XX of UTF-8.
_SAFE = "-_.~"


def _pairs(params: Params) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), _text(v)) for k, v in items]


def _text(value: object) -> str:
    if isinstance(value, bool):  # Binance spells booleans in lower case
        return "true" if value else "false"
    return str(value)


def encode_params(params: Params) -> str:
    """``k=v&k=v`` in the given order, keys and values percent-encoded (UTF-8).

    Values are ``str()``-ed (``Decimal`` as its own string, ``bool`` as
    ``true``/``false``): pass quantities already formatted for the wire.
    """
    return "&".join(f"{quote(k, safe=_SAFE)}={quote(v, safe=_SAFE)}" for k, v in _pairs(params))


def signature_payload(query_string: str, body: str = "") -> str:
    """What is signed: the query string (without ``signature``) then the body, no separator (§4)."""
    return query_string + body


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


# --- HMAC-SHA256 -------------------------------------------------------------------------


def hmac_sha256_signature(secret: str | bytes, payload: str | bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``payload`` keyed with the API secret (§4)."""
    return hmac.new(_bytes(secret), _bytes(payload), hashlib.sha256).hexdigest()


def verify_hmac(secret: str | bytes, payload: str | bytes, signature: str) -> bool:
    """Constant-time check of a hex HMAC signature (hex is case-insensitive, §4)."""
    expected = hmac_sha256_signature(secret, payload)
    return hmac.compare_digest(expected, signature.lower())


# --- Ed25519 -----------------------------------------------------------------------------


def load_ed25519_private_key(pem: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PEM (PKCS#8) bytes."""
    key = load_pem_private_key(pem, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"not an Ed25519 private key: {type(key).__name__}")
    return key


def load_ed25519_public_key(pem: bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM (SubjectPublicKeyInfo) bytes, as registered on Binance."""
    key = load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key: {type(key).__name__}")
    return key


def ed25519_signature(private_key: Ed25519PrivateKey, payload: str | bytes) -> str:
    """Base64 Ed25519 signature of ``payload`` (deterministic, RFC 8032)."""
    return base64.b64encode(private_key.sign(_bytes(payload))).decode("ascii")


def verify_ed25519(public_key: Ed25519PublicKey, payload: str | bytes, signature: str) -> bool:
    """Check a base64 Ed25519 signature; a malformed signature is simply invalid."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, _bytes(payload))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --- signers -------------------------------------------------------------------------------


class Signer(Protocol):
    """Signs a payload; the gateway holds one, chosen by the configured key."""

    @property
    def kind(self) -> str:
        """``"hmac"`` or ``"ed25519"``."""
        ...

    def sign(self, payload: str) -> str: ...


class HmacSigner:
    """HMAC-SHA256 with the API secret. Its repr never shows the secret."""

    kind = "hmac"

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("empty HMAC secret")
        self._secret = secret.encode("utf-8")

    def sign(self, payload: str) -> str:
        return hmac_sha256_signature(self._secret, payload)

    def __repr__(self) -> str:
        return "HmacSigner(secret=<redacted>)"


class Ed25519Signer:
    """Ed25519 with a private key (Binance's recommendation). Its repr never shows the key."""

    kind = "ed25519"

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None) -> Ed25519Signer:
        return cls(load_ed25519_private_key(pem, password))

    def sign(self, payload: str) -> str:
        return ed25519_signature(self._key, payload)

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def __repr__(self) -> str:
        return "Ed25519Signer(private_key=<redacted>)"


def signer_from_config(
    *, secret: str | None = None, private_key_pem: bytes | None = None
) -> Signer:
    """The signer for the configured key: an Ed25519 key wins over an HMAC secret (DESIGN)."""
    if private_key_pem:
        return Ed25519Signer.from_pem(private_key_pem)
    if secret:
        return HmacSigner(secret)
    raise ValueError("no signing key configured (API secret or Ed25519 private key)")


# --- signed requests -------------------------------------------------------------------------


def signed_query(
    params: Params,
    signer: Signer,
    *,
    timestamp: int | None = None,
    recv_window: int | str | None = None,
) -> str:
    """The final query string of a SIGNED request, ``signature`` last (§4).

    ``recvWindow`` and ``timestamp`` are appended in that order when given (and not
    already in ``params``); the percent-encoded string is signed as it will be sent.
    """
    pairs = _pairs(params)
    names = {k for k, _ in pairs}
    if "signature" in names:
        raise ValueError("params already contain a signature")
    if recv_window is not None and "recvWindow" not in names:
        pairs.append(("recvWindow", str(recv_window)))
    if timestamp is not None and "timestamp" not in names:
        pairs.append(("timestamp", str(timestamp)))
    if "timestamp" not in {k for k, _ in pairs}:
        raise ValueError("a signed request needs a timestamp")
    query = encode_params(pairs)
    signature = signer.sign(query)
    return f"{query}&signature={quote(signature, safe=_SAFE)}"


def ws_api_signature_payload(params: Params) -> str:
    """WS-API payload: every param but ``signature`` sorted by name, raw UTF-8 (§4)."""
    pairs = sorted((k, v) for k, v in _pairs(params) if k != "signature")
    return "&".join(f"{k}={v}" for k, v in pairs)
