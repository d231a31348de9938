"""Apps for the hardening tests: demo mode, and JWT mode with one trusted client."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from cds_service.app import create_app
from cds_service.auth.devkeys import public_jwk
from cds_service.settings import Settings
from tests import builders as b

ISS = "https://ehr.example.org/oauth"
FHIR = "https://ehr.example.org/fhir/R4"


@dataclass(frozen=True)
class Client:
    """A trusted EHR: signs a fresh token (new jti) for every call, like the real thing."""

    key: Any
    kid: str = "hardening-es384"

    def jwk(self) -> dict[str, Any]:
        return {**public_jwk(self.key), "kid": self.kid, "alg": "ES384"}

    def token(self, url: str) -> str:
        now = int(time.time())
        claims = {"iss": ISS, "aud": url, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def ehr() -> Client:
    return Client(ec.generate_private_key(ec.SECP384R1()))


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory) -> Flask:
    data = tmp_path_factory.mktemp("demo")
    return create_app(Settings(demo=True, data_dir=data, log_level="ERROR"), clock=lambda: b.NOW)


@pytest.fixture(scope="module")
def jwt_app(tmp_path_factory, ehr: Client) -> Flask:
    data: Path = tmp_path_factory.mktemp("jwt")
    clients = data / "trusted-clients.json"
    entry = {"iss": ISS, "jwks": {"keys": [ehr.jwk()]}, "fhir_servers": [FHIR]}
    clients.write_text(json.dumps([entry]), "utf-8")
    settings = Settings(
        demo=False,
        trusted_clients=clients,
        data_dir=data,
        redis_url=None,
        log_level="ERROR",
        public_base_url="http://localhost",
    )
    return create_app(settings, clock=lambda: b.NOW)
