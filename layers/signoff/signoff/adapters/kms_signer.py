"""Receipt signatures made by KMS: an asymmetric ECC_NIST_P256 key whose private half never leaves
KMS. ES256 wants the raw ``r || s`` (64 bytes); KMS answers DER, converted here. The public keys
(the current one and any retired ones, so old receipts still verify) are served as a JWKS.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from signoff.domain.receipts import b64url

RAW_LIMIT = 4096  # KMS signs a RAW message up to this size; a longer one is sent as its SHA-256


def der_to_raw(der: bytes, size: int = 32) -> bytes:
    """An ECDSA signature from DER ``SEQUENCE { INTEGER r, INTEGER s }`` to ``r || s``."""
    if len(der) < 8 or der[0] != 0x30:
        raise ValueError("not a DER ECDSA signature")
    position = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    parts = []
    for _ in range(2):
        if der[position] != 0x02:
            raise ValueError("not a DER ECDSA signature")
        length = der[position + 1]
        value = der[position + 2 : position + 2 + length]
        parts.append(value.lstrip(b"\x00").rjust(size, b"\x00"))
        position += 2 + length
    return parts[0] + parts[1]


def jwk_from_spki(der: bytes, kid: str) -> dict[str, Any]:
    """A P-256 public key (SubjectPublicKeyInfo DER, as KMS returns it) as a JWK."""
    point = der[-65:]
    if point[0] != 0x04:
        raise ValueError("not an uncompressed P-256 point")
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(point[1:33]),
        "y": b64url(point[33:]),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }


def _kid(key_arn_or_id: str) -> str:
    return key_arn_or_id.rsplit("/", 1)[-1]


class KmsReceiptSigner:
    def __init__(self, client: Any, key_id: str, retired_key_ids: tuple[str, ...] = ()):
        self._client = client
        self._key = key_id
        self._retired = retired_key_ids
        self._jwks: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return _kid(self._key)

    def sign(self, message: bytes) -> bytes:
        if len(message) <= RAW_LIMIT:
            response = self._client.sign(
                KeyId=self._key, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
            )
        else:  # ES256 signs SHA-256(message): the digest is the same signature
            response = self._client.sign(
                KeyId=self._key,
                Message=hashlib.sha256(message).digest(),
                MessageType="DIGEST",
                SigningAlgorithm="ECDSA_SHA_256",
            )
        return der_to_raw(response["Signature"])

    def jwks(self) -> dict[str, Any]:
        """Every key a receipt of this deployment may carry (kept per sandbox: keys do not change)."""
        with self._lock:
            if self._jwks is None:
                keys = []
                for key in (self._key, *self._retired):
                    public = self._client.get_public_key(KeyId=key)
                    keys.append(jwk_from_spki(public["PublicKey"], _kid(public.get("KeyId", key))))
                self._jwks = {"keys": keys}
            return self._jwks
