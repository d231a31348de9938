"""Issue 16, point 1: one URL discipline for every URL the service fetches, over HTTP.

The red team forged tokens with ``jku = <allowed URL>/../../uploads/attacker.json`` (the raw
path passed the prefix check, then the HTTP library removed the dot segments and fetched
the attacker's file), carried one tenant's FHIR token to another tenant's path through a
search ``next`` link, and sent ``fhirServer`` values with a query, a fragment or ``..%2F``.
Every case here runs against the service on a real socket, with loopback hosts standing in
for the key server and the FHIR server; those hosts decode percent escapes and dot segments
before routing, as many servers and proxies do, so a URL that escapes its path on the wire
is seen to escape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import builders as b
from tests.security.conftest import ISS, Signer
from tests.security.stub_host import StubHost, stub_host

ATTACKER_FILE = "/uploads/attacker.json"
FHIR_TOKEN = "tenant-a-fhir-token"


@pytest.fixture(scope="module")
def attacker() -> Signer:
    """The attacker's own key; it may upload a JWK Set of it to the key host."""
    return Signer(ec.generate_private_key(ec.SECP384R1()), "attacker", "ES384")


@pytest.fixture
def key_host(es384, attacker) -> Iterator[StubHost]:
    with stub_host() as host:
        host.serve("/oauth/jwks.json", {"keys": [es384.jwk()]})
        host.serve(ATTACKER_FILE, {"keys": [attacker.jwk()]})
        yield host


def jku_entry(key_host: StubHost, fhir: str = "https://ehr.example.org/fhir/R4") -> dict:
    return {
        "iss": ISS,
        "jwks": {"keys": []},
        "jku_allowlist": [key_host.base + "/oauth/jwks.json"],
        "fhir_servers": [fhir],
    }


class TestJku:
    def test_the_allow_listed_jku_itself_is_used(self, live, key_host, es384):
        service = live([jku_entry(key_host)])
        response = service.hook(es384.token(headers={"jku": key_host.base + "/oauth/jwks.json"}))
        assert response.status_code == 200, response.text[:300]
        assert key_host.paths() == ["/oauth/jwks.json"]

    @pytest.mark.parametrize(
        "tail",
        [
            "/../../uploads/attacker.json",
            "/%2e%2e/%2e%2e/uploads/attacker.json",
            "/%2E%2E/%2E%2E/uploads/attacker.json",
            "/.%2e/.%2e/uploads/attacker.json",
            "/..%2f..%2fuploads/attacker.json",
            "/..%5c..%5cuploads/attacker.json",
            "/%252e%252e/%252e%252e/uploads/attacker.json",
            "\\..\\..\\uploads\\attacker.json",
            "/..;/..;/uploads/attacker.json",
            "/./../../uploads/attacker.json",
        ],
    )
    def test_dot_segments_after_the_allowed_url_are_refused_before_any_fetch(
        self, live, key_host, attacker, tail
    ):
        service = live([jku_entry(key_host)])
        jku = key_host.base + "/oauth/jwks.json" + tail
        response = service.hook(attacker.token(headers={"jku": jku}))
        assert response.status_code == 401, response.text[:300]
        assert "jku" in response.json()["message"]
        assert ATTACKER_FILE not in key_host.decoded_paths()
        assert key_host.paths() == []

    @pytest.mark.parametrize(
        "variant",
        [
            "{base}/oauth/jwks.json?n=1",
            "{base}/oauth/jwks.json?",
            "{base}/oauth/jwks.json#k",
            "{base}/oauth/jwks.json/",
            "{base}/oauth/jwks.json/../jwks.json",
            "{base}/oauth/./jwks.json",
            "{base}/oauth//jwks.json",
            "{base}/oauth/jwks%2Ejson",
            "{user}/oauth/jwks.json",
            "{base}/oauth/jwks.json\t",
            "{base}/oauth/jwks.json\x00",
            " {base}/oauth/jwks.json",
            "{upper}/oauth/jwks.json",
        ],
    )
    def test_anything_but_the_exact_allowed_url_is_refused_before_any_fetch(
        self, live, key_host, attacker, variant
    ):
        service = live([jku_entry(key_host)])
        jku = variant.format(
            base=key_host.base,
            user=key_host.base.replace("http://", "http://user@"),
            upper=key_host.base.replace("http://", "HTTP://"),
        )
        response = service.hook(attacker.token(headers={"jku": jku}))
        assert response.status_code == 401, response.text[:300]
        assert key_host.paths() == []

    @pytest.mark.parametrize(
        "url",
        [
            "https://ehr.example.org/keys/../attacker/jwks.json",
            "https://ehr.example.org/keys/%2e%2e/jwks.json",
            "https://ehr.example.org/keys/jwks.json?x=1",
            "https://ehr.example.org/keys\\jwks.json",
        ],
    )
    def test_a_trusted_clients_file_with_such_a_url_does_not_start(self, make_app, url):
        from cds_service.auth import TrustedClientsInvalid

        entry = {
            "iss": ISS,
            "jwks_url": "https://ehr.example.org/jwks.json",
            "jku_allowlist": [url],
        }
        with pytest.raises(TrustedClientsInvalid, match="jku_allowlist"):
            make_app([entry])


# --- FHIR: fhirServer, next links, Medication reads ---------------------------------------


def partial_request(server: str, patient_id: str = b.PATIENT_ID, **context: Any) -> dict:
    """A patient-view call whose labs the service must fetch from `server` with the token."""
    body = b.hook_request(fhirServer=server)
    body["context"] |= {"patientId": patient_id, **context}
    del body["prefetch"]["labs"]
    body["fhirAuthorization"] = {
        "access_token": FHIR_TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "rls-cds",
    }
    return body


@pytest.fixture
def fhir_host() -> Iterator[StubHost]:
    with stub_host() as host:
        host.serve("/tenant-a/fhir/Observation", b.searchset())
        host.serve("/tenant-b/fhir/Observation", b.searchset())
        yield host


def two_tenants(fhir_host: StubHost, ehr_entry: dict, other_entry: dict) -> list[dict]:
    """Client 'ehr' owns tenant A's FHIR path, the other client tenant B's, on one host."""
    return [
        {**ehr_entry, "fhir_servers": [fhir_host.base + "/tenant-a/fhir"]},
        {**other_entry, "fhir_servers": [fhir_host.base + "/tenant-b/fhir"]},
    ]


def outside_tenant_a(host: StubHost) -> list[str]:
    return [p for p in host.decoded_paths() if not p.startswith("/tenant-a/fhir/")]


class TestFhirServer:
    def test_the_clients_own_server_is_queried(
        self, live, fhir_host, ehr_entry, other_entry, es384
    ):
        service = live(two_tenants(fhir_host, ehr_entry, other_entry))
        response = service.hook(es384.token(), partial_request(fhir_host.base + "/tenant-a/fhir"))
        assert response.status_code == 200, response.text[:300]
        (seen,) = fhir_host.seen
        assert seen.path.startswith("/tenant-a/fhir/Observation?")
        assert seen.headers["Authorization"] == f"Bearer {FHIR_TOKEN}"

    @pytest.mark.parametrize(
        "tail",
        [
            "?x=1",
            "?",
            "#frag",
            "/..%2F..%2Ftenant-b/fhir",
            "/..%2f..%2ftenant-b/fhir",
            "/../../tenant-b/fhir",
            "/%2e%2e/%2e%2e/tenant-b/fhir",
            "\\..\\..\\tenant-b\\fhir",
            "/..%5C..%5Ctenant-b/fhir",
            "/%252e%252e/%252e%252e/tenant-b/fhir",
            "/x\ty",
            "/x%00y",
        ],
    )
    def test_a_fhir_server_with_a_query_fragment_or_escape_is_400_without_connecting(
        self, live, fhir_host, ehr_entry, other_entry, es384, tail
    ):
        service = live(two_tenants(fhir_host, ehr_entry, other_entry))
        server = fhir_host.base + "/tenant-a/fhir" + tail
        response = service.hook(es384.token(), partial_request(server))
        assert response.status_code == 400, response.text[:300]
        body = response.json()
        assert [d["loc"] for d in body["details"]] == ["fhirServer"]
        assert "tenant-b" not in response.text and FHIR_TOKEN not in response.text
        assert fhir_host.paths() == []

    def test_userinfo_in_the_fhir_server_is_400(
        self, live, fhir_host, ehr_entry, other_entry, es384
    ):
        service = live(two_tenants(fhir_host, ehr_entry, other_entry))
        server = fhir_host.base.replace("http://", "http://a:b@") + "/tenant-a/fhir"
        response = service.hook(es384.token(), partial_request(server))
        assert response.status_code == 400
        assert fhir_host.paths() == []

    def test_a_dot_segment_patient_id_is_never_sent(
        self, live, fhir_host, ehr_entry, other_entry, es384
    ):
        """patientId '..' is a valid FHIR id, but ``Patient/..`` is a dot segment: the read
        is refused (412, naming the key) instead of being sent."""
        service = live(two_tenants(fhir_host, ehr_entry, other_entry))
        body = partial_request(fhir_host.base + "/tenant-a/fhir", patient_id="..")
        del body["prefetch"]["patient"]
        response = service.hook(es384.token(), body)
        assert response.status_code == 412, response.text[:300]
        assert outside_tenant_a(fhir_host) == []
        assert not any("/Patient/.." in p for p in fhir_host.paths())


class TestNextLinks:
    @pytest.mark.parametrize(
        "link",
        [
            "{base}/tenant-a/fhir/../../tenant-b/fhir/Observation?page=2",
            "{base}/tenant-a/fhir/%2e%2e/%2e%2e/tenant-b/fhir/Observation?page=2",
            "{base}/tenant-a/fhir/..%2F..%2Ftenant-b/fhir/Observation?page=2",
            "{base}/tenant-a/fhir\\..\\..\\tenant-b\\fhir/Observation?page=2",
            "{base}/tenant-a/fhir/%252e%252e/%252e%252e/tenant-b/fhir/Observation?page=2",
            "../../tenant-b/fhir/Observation?page=2",
            "/tenant-b/fhir/Observation?page=2",
            "{base}/tenant-b/fhir/Observation?page=2",
            "{user}/tenant-a/fhir/Observation?page=2",
            "https://attacker.example/tenant-a/fhir/Observation?page=2",
        ],
    )
    def test_a_next_link_leaving_the_requests_fhir_path_is_not_followed(
        self, live, fhir_host, ehr_entry, other_entry, es384, link
    ):
        url = link.format(base=fhir_host.base, user=fhir_host.base.replace("http://", "http://u@"))
        first = b.searchset(b.observation(b.FERRITIN, 38, "ng/mL"))
        first["link"] = [{"relation": "next", "url": url}]
        fhir_host.serve("/tenant-a/fhir/Observation", first)
        service = live(two_tenants(fhir_host, ehr_entry, other_entry))
        response = service.hook(es384.token(), partial_request(fhir_host.base + "/tenant-a/fhir"))
        assert response.status_code == 200, response.text[:300]
        assert outside_tenant_a(fhir_host) == []
        assert len(fhir_host.seen) == 1  # the first page only
        topics = [c["source"]["topic"]["code"] for c in response.json()["cards"]]
        assert "iron-below-target" in topics  # what was read is used

    def test_a_next_link_under_the_fhir_path_is_followed(
        self, live, fhir_host, ehr_entry, other_entry, es384
    ):
        first = b.searchset()
        first["link"] = [
            {"relation": "next", "url": fhir_host.base + "/tenant-a/fhir/Observation?page=2"}
        ]
        fhir_host.serve("/tenant-a/fhir/Observation", first)
        fhir_host.serve(
            "/tenant-a/fhir/Observation?page=2",
            b.searchset(b.observation(b.FERRITIN, 38, "ng/mL")),
        )
        service = live(two_tenants(fhir_host, ehr_entry, other_entry))
        response = service.hook(es384.token(), partial_request(fhir_host.base + "/tenant-a/fhir"))
        assert response.status_code == 200
        assert fhir_host.paths()[1] == "/tenant-a/fhir/Observation?page=2"
        topics = [c["source"]["topic"]["code"] for c in response.json()["cards"]]
        assert "iron-below-target" in topics


class TestMedicationReads:
    def test_a_hostile_medication_reference_stays_in_the_query_under_the_fhir_path(
        self, live, fhir_host, ehr_entry, other_entry, es384
    ):
        request = b.medication_request(text="x")
        del request["medicationCodeableConcept"]
        request["medicationReference"] = {"reference": "Medication/..%2F..%2Ftenant-b"}
        body = b.hook_request(
            b.prefetch(b.rls(), b.kidney_ok(), request),
            fhirServer=fhir_host.base + "/tenant-a/fhir",
        )
        body["fhirAuthorization"] = partial_request("x")["fhirAuthorization"]
        fhir_host.serve("/tenant-a/fhir/Medication", b.searchset())
        service = live(two_tenants(fhir_host, ehr_entry, other_entry))
        response = service.hook(es384.token(), body)
        assert response.status_code == 200, response.text[:300]
        (seen,) = fhir_host.seen
        assert seen.path.startswith("/tenant-a/fhir/Medication?_id=")
        assert outside_tenant_a(fhir_host) == []
