"""The attack suite: each forged, stale or misdirected token is refused with 401.

Every case runs against the app (Flask test client) with verification on, a real
trusted-clients file and keys generated for the session. The valid tokens pass.
"""

from __future__ import annotations

import time

import pytest
import responses

from tests import builders as b
from tests.security.conftest import (
    FHIR,
    HOOK_PATH,
    HOOK_URL,
    ISS,
    LOCAL,
    OTHER_FHIR,
    claims,
    post_hook,
    unsigned_token,
)


def assert_refused(response, fragment: str = "") -> None:
    """401, a JSON body, and the Bearer challenge (RFC 6750)."""
    assert response.status_code == 401, response.get_json()
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["error"] == "unauthorized"
    assert fragment in body["message"]


class TestValidTokens:
    @pytest.mark.parametrize("signer", ["es384", "rs384", "es256", "rs256"])
    def test_token_of_each_allowed_algorithm_passes(self, client, request, signer):
        token = request.getfixturevalue(signer).token()
        response = post_hook(client, token)
        assert response.status_code == 200, response.get_json()
        assert "cards" in response.get_json()

    def test_epic_style_token_with_sub_nbf_and_tenant_passes(self, client, rs384):
        """Epic sends sub (its client id) and nbf; CDS Hooks 2.0 tolerates both."""
        token = rs384.token(sub="epic-client-id", nbf=int(time.time()), tenant="hospital-1")
        assert post_hook(client, token).status_code == 200

    def test_aud_as_array_holding_the_url_passes(self, client, es384):
        token = es384.token(aud=["https://elsewhere.example/x", HOOK_URL])
        assert post_hook(client, token).status_code == 200

    def test_iat_slightly_ahead_within_the_leeway_passes(self, client, es384):
        now = int(time.time())
        assert post_hook(client, es384.token(iat=now + 20, exp=now + 300)).status_code == 200

    def test_bearer_scheme_is_case_insensitive(self, client, es384):
        headers = {"Authorization": f"bearer {es384.token()}"}
        assert post_hook(client, None, **headers).status_code == 200


class TestMissingOrMalformed:
    def test_no_authorization_header(self, client):
        assert_refused(post_hook(client, None), "bearer JWT")

    @pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token-only"])
    def test_not_a_bearer_header(self, client, value):
        assert_refused(post_hook(client, None, Authorization=value))

    @pytest.mark.parametrize(
        "token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzM4NCJ9.e30", "...", "x" * 7900]
    )
    def test_malformed_token(self, client, token):
        assert_refused(post_hook(client, token))


class TestHeader:
    def test_alg_none_is_refused(self, client, es384):
        header = {"alg": "none", "typ": "JWT", "kid": es384.kid}
        assert_refused(post_hook(client, unsigned_token(header, claims(), None)), "alg")

    def test_hs256_signed_with_the_public_key_is_refused(self, client, es384):
        """Key confusion: the public key (which anybody has) used as an HMAC secret."""
        header = {"alg": "HS256", "typ": "JWT", "kid": es384.kid}
        token = unsigned_token(header, claims(), es384.public_pem())
        assert_refused(post_hook(client, token), "alg")

    @pytest.mark.parametrize("alg", ["HS384", "HS512", "ES512", "PS256", "EdDSA"])
    def test_other_algorithms_are_refused(self, client, es384, alg):
        header = {"alg": alg, "typ": "JWT", "kid": es384.kid}
        assert_refused(post_hook(client, unsigned_token(header, claims(), b"secret")), "alg")

    def test_missing_kid_is_refused(self, client, es384):
        assert_refused(post_hook(client, es384.token(headers={"kid": None})), "kid")

    @pytest.mark.parametrize("typ", [None, "at+jwt", "JWS"])
    def test_typ_other_than_jwt_is_refused(self, client, es384, typ):
        assert_refused(post_hook(client, es384.token(headers={"typ": typ})), "typ")

    def test_unknown_kid_is_refused(self, client, es384):
        token = es384.token(headers={"kid": "no-such-key"})
        assert_refused(post_hook(client, token), "kid")

    def test_alg_that_does_not_fit_the_key_is_refused(self, client, rs384, es384):
        """An ES384 signature presented under the kid of the client's RSA key."""
        token = es384.token(headers={"kid": rs384.kid})
        assert_refused(post_hook(client, token), "does not fit")

    def test_jku_off_the_allow_list_is_never_fetched_so_a_forgery_fails(
        self, make_app, es384, stranger
    ):
        """Issue 19: a jku off the allow-list is ignored and the configured keys decide: the
        attacker's key set is never asked for, so the attacker's signature does not verify."""
        entry = {
            "iss": ISS,
            "jwks": {"keys": [es384.jwk()]},
            "jku_allowlist": ["https://ehr.example.org/keys/jwks.json"],
            "fhir_servers": [FHIR],
        }
        client = make_app([entry]).test_client()
        attacker = "https://attacker.example.com/jwks.json"
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.get(attacker, json={"keys": [stranger.jwk()]})
            token = stranger.token(headers={"jku": attacker})
            assert_refused(post_hook(client, token), "signature")
            assert len(mock.calls) == 0

    def test_jku_without_any_allow_list_is_ignored(self, client, es384, stranger):
        jku = {"jku": "https://ehr.example.org/jwks.json"}
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            assert post_hook(client, es384.token(headers=jku)).status_code == 200
            assert_refused(post_hook(client, stranger.token(headers=jku)), "signature")
            unknown = es384.token(headers={**jku, "kid": "made-up"})
            assert_refused(post_hook(client, unknown), "jku is not on the client's allow-list")
            assert len(mock.calls) == 0


class TestSignature:
    def test_signature_by_a_different_key_is_refused(self, client, stranger):
        assert_refused(post_hook(client, stranger.token()), "signature")

    def test_tampered_payload_is_refused(self, client, es384):
        header, _, signature = es384.token().split(".")
        forged = unsigned_token({}, claims(iss=ISS), None).split(".")[1]
        assert_refused(post_hook(client, f"{header}.{forged}.{signature}"))


class TestClaims:
    def test_untrusted_issuer_is_refused(self, client, es384):
        assert_refused(post_hook(client, es384.token(iss="https://evil.example")), "iss")

    @pytest.mark.parametrize(
        "aud",
        [
            LOCAL + "/cds-services/rls-order-sign",
            "https://other-service.example/cds-services/rls-secondary-causes",
            HOOK_URL + "/",
            LOCAL + "/cds-services",
            ["https://other-service.example/cds-services/x"],
        ],
    )
    def test_aud_other_than_the_url_called_is_refused(self, client, es384, aud):
        assert_refused(post_hook(client, es384.token(aud=aud)), "aud")

    def test_expired_token_is_refused(self, client, es384):
        now = int(time.time())
        token = es384.token(iat=now - 900, exp=now - 600)
        assert_refused(post_hook(client, token), "expired")

    def test_iat_far_in_the_future_is_refused(self, client, es384):
        now = int(time.time())
        token = es384.token(iat=now + 3600, exp=now + 3900)
        assert_refused(post_hook(client, token), "not valid yet")

    def test_nbf_in_the_future_is_refused(self, client, es384):
        assert_refused(post_hook(client, es384.token(nbf=int(time.time()) + 600)), "not valid")

    @pytest.mark.parametrize("claim", ["jti", "exp", "iat", "aud", "iss"])
    def test_missing_required_claim_is_refused(self, client, es384, claim):
        response = post_hook(client, es384.token(drop=(claim,)))
        assert_refused(response)
        if claim not in ("iss",):
            assert claim in response.get_json()["message"]

    @pytest.mark.parametrize(
        ("claim", "value"),
        [("jti", ""), ("jti", 12345), ("exp", "9999999999"), ("iat", True), ("exp", None)],
    )
    def test_claim_of_the_wrong_type_is_refused(self, client, es384, claim, value):
        assert_refused(post_hook(client, es384.token(**{claim: value})))

    def test_token_living_longer_than_an_hour_is_refused(self, client, es384):
        now = int(time.time())
        assert_refused(post_hook(client, es384.token(exp=now + 7200)), "longer")

    def test_tenant_other_than_the_clients_is_refused(self, make_app, ehr_entry, es384):
        client = make_app([{**ehr_entry, "tenant": "hospital-1"}]).test_client()
        assert post_hook(client, es384.token(tenant="hospital-1")).status_code == 200
        assert post_hook(client, es384.token()).status_code == 200
        assert_refused(post_hook(client, es384.token(tenant="hospital-2")), "tenant")

    @pytest.mark.parametrize("tenant", ["t" * 256, "hospital\x00-1"], ids=["too-long", "nul"])
    def test_a_tenant_no_store_column_can_hold_is_refused(self, client, es384, tenant):
        """Issue 17: cards issued to such a tenant could never be recorded on PostgreSQL
        (and took the other answers of their batch with them); feedback from it was a 503
        no retry could cure."""
        response = post_hook(client, es384.token(tenant=tenant))
        assert_refused(response, "tenant")
        assert tenant not in response.get_data(as_text=True)

    def test_a_tenant_at_the_store_columns_width_passes(self, client, es384):
        assert post_hook(client, es384.token(tenant="t" * 255)).status_code == 200


class TestReplayInMemory:
    def test_replayed_jti_is_refused(self, client, es384):
        token = es384.token()
        assert post_hook(client, token).status_code == 200
        assert_refused(post_hook(client, token), "replay")

    def test_same_jti_in_a_fresh_token_is_refused(self, client, es384):
        assert post_hook(client, es384.token(jti="fixed-jti")).status_code == 200
        assert_refused(post_hook(client, es384.token(jti="fixed-jti")), "replay")

    def test_a_refused_token_does_not_use_up_its_jti(self, client, es384):
        """Only verified tokens are recorded: forgeries cannot burn a client's jti."""
        assert_refused(post_hook(client, es384.token(jti="j-1", aud=LOCAL + "/x")))
        assert post_hook(client, es384.token(jti="j-1")).status_code == 200


class TestFhirServerBinding:
    def _partial_request(self, server: str) -> dict:
        body = b.hook_request(fhirServer=server)
        del body["prefetch"]["labs"]  # the service would have to fetch it
        body["fhirAuthorization"] = {
            "access_token": "ehr-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "rls-cds",
        }
        return body

    def test_fhir_server_of_another_client_is_400_without_connecting(
        self, make_app, ehr_entry, other_entry, es384
    ):
        client = make_app([ehr_entry, other_entry]).test_client()
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.get(f"{OTHER_FHIR}/Observation", json=b.searchset())
            response = post_hook(client, es384.token(), self._partial_request(OTHER_FHIR))
            assert len(mock.calls) == 0
        assert response.status_code == 400
        assert response.get_json()["details"][0]["loc"] == "fhirServer"
        assert "ehr-access-token" not in response.get_data(as_text=True)

    @pytest.mark.parametrize(
        "server",
        [
            "https://attacker.example/fhir",
            "https://ehr.example.org/fhir/R4evil",
            "http://169.254.169.254/",
        ],
    )
    def test_fhir_server_outside_the_clients_list_is_400(self, client, es384, server):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            response = post_hook(client, es384.token(), self._partial_request(server))
            assert len(mock.calls) == 0
        assert response.status_code == 400

    def test_fhir_server_of_the_client_is_queried_with_the_ehr_token(self, client, es384):
        with responses.RequestsMock() as mock:
            mock.get(f"{FHIR}/Observation", json=b.searchset())
            response = post_hook(client, es384.token(), self._partial_request(FHIR + "/"))
            assert response.status_code == 200, response.get_json()
            (call,) = mock.calls
            assert call.request.headers["Authorization"] == "Bearer ehr-access-token"


class TestAudienceAndDiscovery:
    def test_public_base_url_sets_the_expected_audience(self, make_app, es384):
        client = make_app(public_base_url="https://cds.example.org/rls/").test_client()
        public = "https://cds.example.org/rls" + HOOK_PATH
        assert post_hook(client, es384.token(aud=public)).status_code == 200
        assert_refused(post_hook(client, es384.token(aud=HOOK_URL)), "aud")

    def test_audience_ignores_the_query_string(self, client, es384):
        response = post_hook(client, es384.token(), path=HOOK_PATH + "?x=1")
        assert response.status_code == 200

    def test_discovery_is_open_by_default(self, client):
        assert client.get("/cds-services").status_code == 200

    def test_protected_discovery_needs_a_token_for_its_own_url(self, make_app, es384):
        client = make_app(protect_discovery=True).test_client()
        assert_refused(client.get("/cds-services"))
        wrong = {"Authorization": f"Bearer {es384.token()}"}  # aud is the hook's URL
        assert_refused(client.get("/cds-services", headers=wrong), "aud")
        right = {"Authorization": f"Bearer {es384.token(aud=LOCAL + '/cds-services')}"}
        response = client.get("/cds-services", headers=right)
        assert response.status_code == 200
        assert "DEMO MODE" not in response.get_data(as_text=True)

    def test_unknown_service_is_still_404(self, client):
        assert post_hook(client, None, path="/cds-services/nope").status_code == 404
