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


class TestPreflightDetails:
    def test_private_network_preflight_is_allowed_for_an_allowed_origin(self, cors_client):
        """Chrome asks before a public page (the sandbox) calls a loopback service."""
        headers = {"Origin": SANDBOX, **PREFLIGHT, "Access-Control-Request-Private-Network": "true"}
        response = cors_client.options(HOOK_PATH, headers=headers)
        assert response.headers["Access-Control-Allow-Private-Network"] == "true"

    def test_private_network_preflight_from_another_origin_gets_nothing(self, cors_client):
        headers = {"Origin": "https://evil.example", **PREFLIGHT,
                   "Access-Control-Request-Private-Network": "true"}  # fmt: skip
        response = cors_client.options(HOOK_PATH, headers=headers)
        assert "Access-Control-Allow-Private-Network" not in response.headers
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_a_preflight_is_not_logged_or_counted_as_a_hook_call(self, cors_client, caplog):
        from prometheus_client import REGISTRY

        labels = {"service": "rls-secondary-causes", "status": "200"}
        before = REGISTRY.get_sample_value("rls_cds_hook_duration_seconds_count", labels) or 0
        with caplog.at_level("INFO", logger="cds_service"):
            cors_client.options(HOOK_PATH, headers={"Origin": SANDBOX, **PREFLIGHT})
        assert [r for r in caplog.records if r.getMessage() == "hook answered"] == []
        after = REGISTRY.get_sample_value("rls_cds_hook_duration_seconds_count", labels) or 0
        assert after == before
