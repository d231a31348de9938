"""Demo signing keys and tokens, so integrators can exercise the real JWT path locally.

``rls-cds dev-keys`` writes an ES384 key pair (private key PEM, public JWK Set) and a
trusted-clients file that trusts it; ``rls-cds dev-token`` signs a CDS Hooks client JWT
with that key. The ``kid`` is the key's RFC 7638 thumbprint, so both agree without being
told.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PRIVATE_KEY_FILE = "private-key.pem"
JWKS_FILE = "jwks.json"
CLIENTS_FILE = "trusted-clients.json"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ES384 (P-384) signing key."""
    return ec.generate_private_key(ec.SECP384R1())


def algorithm_for(key: PrivateKey) -> str:
    """ES384 for P-384, ES256 for P-256, RS384 for RSA."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS384"
    return {"secp384r1": "ES384", "secp256r1": "ES256"}.get(key.curve.name, "unsupported")


def public_jwk(key: PrivateKey) -> dict[str, Any]:
    """The public half as a JWK with kid (thumbprint), alg and use."""
    public = key.public_key()
    jwk: dict[str, Any] = json.loads(
        RSAAlgorithm.to_jwk(public)
        if isinstance(public, rsa.RSAPublicKey)
        else ECAlgorithm.to_jwk(public)
    )
    return {**jwk, "kid": thumbprint(jwk), "alg": algorithm_for(key), "use": "sig"}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url without padding)."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def write_dev_keys(out: Path, issuer: str) -> dict[str, Path]:
    """Write the private key (mode 0600), its JWK Set and a trusted-clients file into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    key = new_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    paths = {"key": out / PRIVATE_KEY_FILE, "jwks": out / JWKS_FILE, "clients": out / CLIENTS_FILE}
    descriptor = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    jwks = {"keys": [public_jwk(key)]}
    paths["jwks"].write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")
    clients = [{"iss": issuer, "jwks": jwks, "fhir_servers": ["http://127.0.0.1:*"]}]
    paths["clients"].write_text(json.dumps(clients, indent=2) + "\n", encoding="utf-8")
    return paths


def load_private_key(path: Path) -> PrivateKey:
    """An EC (P-256/P-384) or RSA private key from a PEM file; ValueError otherwise."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("not an EC or RSA private key")
    if algorithm_for(key) == "unsupported":
        raise ValueError("EC keys must be on P-256 or P-384")
    return key


def mint_token(
    key: PrivateKey,
    issuer: str,
    audience: str,
    kid: str | None = None,
    ttl_s: int = 300,
    now: float | None = None,
) -> str:
    """A CDS Hooks client JWT: alg by key type, typ JWT, kid, iss, aud, iat, exp, random jti."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": str(uuid.uuid4()),
    }
    headers = {"typ": "JWT", "kid": kid or public_jwk(key)["kid"]}
    return jwt.encode(claims, key, algorithm=algorithm_for(key), headers=headers)
