"""The CDS Hooks sandbox's way of calling, end to end: a browser origin allowed by CORS, an
ES384 token without `sub` whose `jku` names the sandbox's key set, and the spec's feedback."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.app import create_app
from cds_service.auth.devkeys import public_jwk
from cds_service.settings import Settings
from tests.builders import NOW
from tests.fixture_requests import REQUESTS

SANDBOX = "https://sandbox.cds-hooks.org"
JWKS_URL = f"{SANDBOX}/.well-known/jwks.json"
FHIR = "https://launch.smarthealthit.org/v/r4/fhir"
BASE = "http://localhost"
HOOK = "/cds-services/rls-secondary-causes"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def sandbox_client(tmp_path, key):
    """The service configured as the README says for the sandbox (README: Security)."""
    clients = tmp_path / "trusted-clients.json"
    entry = {
        "iss": SANDBOX,
        "jwks_url": JWKS_URL,
        "jku_allowlist": [JWKS_URL],
        "fhir_servers": [FHIR],
    }
    clients.write_text(json.dumps([entry]), "utf-8")
    settings = Settings(
        trusted_clients=clients,
        cors_origins=SANDBOX,
        data_dir=tmp_path,
        redis_url=None,
        public_base_url=BASE,
    )
    app = create_app(settings, clock=lambda: NOW)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        jwk = {**public_jwk(key), "kid": "sandbox-key", "alg": "ES384", "use": "sig"}
        mock.get(JWKS_URL, json={"keys": [jwk]})
        yield app.test_client()


def sandbox_token(key, path: str) -> str:
    """What the sandbox sends: ES384, kid and jku in the header; iss, aud, exp, iat, jti."""
    now = int(time.time())
    claims = {"iss": SANDBOX, "aud": BASE + path, "iat": now, "exp": now + 300}
    headers = {"typ": "JWT", "kid": "sandbox-key", "jku": JWKS_URL}
    return jwt.encode({**claims, "jti": str(uuid.uuid4())}, key, "ES384", headers=headers)


def test_sandbox_preflight_discovery_hook_and_feedback(sandbox_client, key):
    origin = {"Origin": SANDBOX}
    preflight = sandbox_client.options(
        HOOK,
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == SANDBOX

    discovery = sandbox_client.get("/cds-services", headers=origin)
    assert discovery.status_code == 200
    assert discovery.headers["Access-Control-Allow-Origin"] == SANDBOX

    body = json.loads((REQUESTS / "patient-view-rls-low-ferritin.json").read_text("utf-8"))
    body["fhirServer"] = FHIR  # the sandbox names its FHIR server; the prefetch is complete
    auth = {"Authorization": f"Bearer {sandbox_token(key, HOOK)}", **origin}
    answer = sandbox_client.post(HOOK, json=body, headers=auth)
    assert answer.status_code == 200, answer.get_json()
    assert answer.headers["Access-Control-Allow-Origin"] == SANDBOX
    (card,) = answer.get_json()["cards"]
    assert card["source"]["topic"]["code"] == "iron-below-target"

    feedback_path = f"{HOOK}/feedback"
    item = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-11-28T12:05:00Z",
    }
    auth = {"Authorization": f"Bearer {sandbox_token(key, feedback_path)}", **origin}
    stored = sandbox_client.post(feedback_path, json={"feedback": [item]}, headers=auth)
    assert stored.status_code == 200
    assert stored.get_json() == {"received": 1, "stored": 1, "alreadyStored": 0}


def test_demo_mode_answers_the_sandbox_whatever_token_it_sends(tmp_path, key):
    """`RLS_CDS_CORS_ORIGINS=https://sandbox.cds-hooks.org make run`: the README's quick look."""
    settings = Settings(demo=True, cors_origins=SANDBOX, data_dir=tmp_path, log_level="ERROR")
    client = create_app(settings, clock=lambda: NOW).test_client()
    body = json.loads((REQUESTS / "patient-view-rls-low-ferritin.json").read_text("utf-8"))
    headers = {"Authorization": f"Bearer {sandbox_token(key, HOOK)}", "Origin": SANDBOX}
    answer = client.post(HOOK, json=body, headers=headers)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert [c["source"]["topic"]["code"] for c in answer.get_json()["cards"]] == [
        "iron-below-target"
    ]
