"""Security fixtures: real keys, a real trusted-clients file, an app per test, token minting.

Every app here runs with JWT verification on (no demo mode); tokens are signed with keys
generated for the test session and checked by the service exactly as in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.auth.devkeys import public_jwk
from cds_service.settings import Settings
from tests import builders as b
from tests.live import serving

ISS = "https://ehr.example.org/oauth"
FHIR = "https://ehr.example.org/fhir/R4"
OTHER_ISS = "https://other-ehr.example.net"
OTHER_FHIR = "https://other-ehr.example.net/fhir"
HOOK_PATH = "/cds-services/rls-secondary-causes"
LOCAL = "http://localhost"
HOOK_URL = LOCAL + HOOK_PATH
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Signer:
    """A private key with the kid and alg a client uses for it."""

    key: Any
    kid: str
    alg: str

    def jwk(self) -> dict[str, Any]:
        return {**public_jwk(self.key), "kid": self.kid, "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(
        self,
        aud: Any = HOOK_URL,
        iss: str = ISS,
        headers: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """A token that passes unless the arguments break it; `drop` removes claims."""
        now = int(time.time())
        payload = {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        payload = {k: v for k, v in {**payload, **claims}.items() if k not in drop}
        header = {"typ": "JWT", "kid": self.kid, **(headers or {})}
        header = {k: v for k, v in header.items() if v is not None or k == "typ"}
        return jwt.encode(payload, self.key, algorithm=self.alg, headers=header)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand: HMAC-SHA256 with `secret`, or no signature at all (None)."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return signing_input + "." + _b64(signature)


def claims(aud: str = HOOK_URL, iss: str = ISS) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}


@pytest.fixture(scope="session")
def es384() -> Signer:
    return Signer(ec.generate_private_key(ec.SECP384R1()), "ehr-es384", "ES384")


@pytest.fixture(scope="session")
def rs384() -> Signer:
    return Signer(rsa.generate_private_key(65537, 2048), "ehr-rs384", "RS384")


@pytest.fixture(scope="session")
def es256() -> Signer:
    return Signer(ec.generate_private_key(ec.SECP256R1()), "ehr-es256", "ES256")


@pytest.fixture(scope="session")
def rs256() -> Signer:
    return Signer(rsa.generate_private_key(65537, 2048), "ehr-rs256", "RS256")


@pytest.fixture(scope="session")
def stranger() -> Signer:
    """Somebody else's key under the trusted key's kid."""
    return Signer(ec.generate_private_key(ec.SECP384R1()), "ehr-es384", "ES384")


@pytest.fixture
def ehr_entry(es384, rs384, es256, rs256) -> dict[str, Any]:
    """The trusted client 'ehr' with an inline JWK Set of four keys, one FHIR server."""
    return {
        "iss": ISS,
        "jwks": {"keys": [s.jwk() for s in (es384, rs384, es256, rs256)]},
        "fhir_servers": [FHIR],
    }


@pytest.fixture
def other_entry() -> dict[str, Any]:
    """A second trusted client with its own key and FHIR server."""
    key = Signer(ec.generate_private_key(ec.SECP384R1()), "other", "ES384")
    return {"iss": OTHER_ISS, "jwks": {"keys": [key.jwk()]}, "fhir_servers": [OTHER_FHIR]}


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path, ehr_entry) -> AppFactory:
    """An app with verification on: `clients` (default: the 'ehr' entry) and settings."""

    def build(clients: list[dict[str, Any]] | None = None, **settings: Any) -> Flask:
        path = tmp_path / f"trusted-clients-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(clients if clients is not None else [ehr_entry]), "utf-8")
        values: dict[str, Any] = {
            "data_dir": tmp_path,
            "redis_url": None,
            "demo": False,
            "public_base_url": LOCAL,
        }
        config = Settings(trusted_clients=path, **(values | settings))
        return create_app(config, clock=lambda: b.NOW)

    return build


@pytest.fixture
def client(make_app: AppFactory) -> FlaskClient:
    return make_app().test_client()


@dataclass
class Live:
    """An app served over a real loopback socket, and an HTTP session to call it."""

    app: Flask
    base: str
    http: requests.Session

    def post(
        self,
        path: str,
        body: Any,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(self.base + path, data=data, headers=sent, timeout=60)

    def get(
        self, path: str, token: str | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return self.http.get(self.base + path, headers=sent, timeout=60)

    def hook(self, token: str | None, body: dict[str, Any] | None = None) -> requests.Response:
        return self.post(HOOK_PATH, body if body is not None else b.hook_request(), token)


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], Live]]:
    """Serve apps over HTTP for the test (each on its own port); all stopped after it."""
    with ExitStack() as stack:
        http = stack.enter_context(requests.Session())

        def start(app: Flask) -> Live:
            return Live(app, stack.enter_context(serving(app)), http)

        yield start


@pytest.fixture
def live(make_app: AppFactory, serve: Callable[[Flask], Live]) -> Callable[..., Live]:
    """`live(clients, **settings)`: make_app's app, served over HTTP."""

    def start(clients: list[dict[str, Any]] | None = None, **settings: Any) -> Live:
        return serve(make_app(clients, **settings))

    return start


def post_hook(
    client: FlaskClient,
    token: str | None,
    body: dict[str, Any] | None = None,
    path: str = HOOK_PATH,
    **headers: str,
):
    """POST a patient-view call (default: a complete prefetch, RLS only) with `token`."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(
        path,
        data=json.dumps(body if body is not None else b.hook_request()),
        content_type="application/json",
        headers=headers,
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test alone on the machine's Redis; its keys are deleted after."""
    prefix = f"rls-cds-test-{uuid.uuid4().hex}"
    yield prefix
    connection = redis.Redis.from_url(REDIS_URL)
    keys = list(connection.scan_iter(match=f"{prefix}:*"))
    if keys:
        connection.delete(*keys)
    connection.close()
