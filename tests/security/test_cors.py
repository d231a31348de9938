"""CORS for browser-based EHRs: allow-listed origins only, Authorization allowed, preflight."""

from __future__ import annotations

import pytest

from tests.security.conftest import HOOK_PATH, post_hook

SANDBOX = "https://sandbox.cds-hooks.org"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
def cors_client(make_app):
    return make_app(cors_origins=f"{SANDBOX}, https://ehr.example.org").test_client()


class TestCors:
    def test_preflight_from_an_allowed_origin_is_answered(self, cors_client):
        response = cors_client.options(HOOK_PATH, headers={"Origin": SANDBOX, **PREFLIGHT})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed
        assert "content-type" in allowed
        assert "POST" in response.headers["Access-Control-Allow-Methods"]

    def test_preflight_from_another_origin_gets_no_cors_headers(self, cors_client):
        headers = {"Origin": "https://evil.example", **PREFLIGHT}
        response = cors_client.options(HOOK_PATH, headers=headers)
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Headers" not in response.headers

    def test_call_from_an_allowed_origin_carries_the_header(self, cors_client, es384):
        response = post_hook(cors_client, es384.token(), Origin=SANDBOX)
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
        assert "Access-Control-Allow-Credentials" not in response.headers

    def test_a_refusal_is_readable_by_the_allowed_origin(self, cors_client):
        response = post_hook(cors_client, None, Origin=SANDBOX)
        assert response.status_code == 401
        assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
        assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]

    def test_discovery_allows_the_origin(self, cors_client):
        response = cors_client.get("/cds-services", headers={"Origin": SANDBOX})
        assert response.headers["Access-Control-Allow-Origin"] == SANDBOX

    def test_call_from_another_origin_gets_no_cors_header(self, cors_client, es384):
        response = post_hook(cors_client, es384.token(), Origin="https://evil.example")
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_no_origins_configured_means_no_cors_at_all(self, client):
        response = client.options(HOOK_PATH, headers={"Origin": SANDBOX, **PREFLIGHT})
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_preflight_needs_no_token(self, cors_client):
        """Browsers send OPTIONS without Authorization; it must not be a 401."""
        response = cors_client.options(HOOK_PATH, headers={"Origin": SANDBOX, **PREFLIGHT})
        assert response.status_code != 401
