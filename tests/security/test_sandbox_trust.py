"""Issue 19, points 1 and 2: the CDS Hooks Sandbox is trusted with its key configured, offline.

The sandbox (its ``src/retrieve-data-helpers/jwt-generator.js``) signs every call with
ES384 under ``kid`` 44823f3d-0b01-4a6c-a80e-b9d3e8a7226f and always sends
``jku: https://sandbox.cds-hooks.org/.well-known/jwks.json`` and
``iss: https://sandbox.cds-hooks.org``, even when it is self-hosted; it always sends
``fhirServer`` too (``https://launch.smarthealthit.org/v/r2/fhir`` by default). The service
used to refuse such a client configured with the key inline (the ``jku`` was not on its
allow-list), and refused every hook whose ``fhirServer`` was not one of the client's even
when nothing was to be fetched.

Here tokens have the sandbox's exact header and claims, signed with a key generated for the
test under the sandbox's ``kid``. Everything runs over HTTP on loopback; host name lookups
are recorded (and any name off loopback fails), so "no connection to the jku host was
attempted" is seen, not assumed, and the stub hosts count every connection they accept.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import builders as b
from tests.sandbox_stack import SANDBOX_JWKS
from tests.security.conftest import HOOK_PATH, LOCAL, Signer
from tests.security.stub_host import StubHost, stub_host

SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_R2 = "https://launch.smarthealthit.org/v/r2/fhir"
SANDBOX_R4 = "https://launch.smarthealthit.org/v/r4/fhir"
OFF_LOOPBACK = ("sandbox.cds-hooks.org", "launch.smarthealthit.org")
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
FHIR_TOKEN = "zz-lent-fhir-token-19"
#: The public key the sandbox publishes at SANDBOX_JKU (its repository, cds-hooks/sandbox:
#: .well-known/jwks.json), from the project's one copy; its private half is in that
#: repository too, so it is not used here.
(SANDBOX_PUBLISHED_JWK,) = json.loads(SANDBOX_JWKS.read_text("utf-8"))["keys"]
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def sandbox() -> Signer:
    """A key of our own under the sandbox's kid and alg."""
    return Signer(ec.generate_private_key(ec.SECP384R1()), SANDBOX_KID, "ES384")


@pytest.fixture(scope="module")
def forger() -> Signer:
    """Somebody else's P-384 key, under the sandbox's kid."""
    return Signer(ec.generate_private_key(ec.SECP384R1()), SANDBOX_KID, "ES384")


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name resolved in this process during the test (a connection by name needs
    one); a name off loopback fails at once, so the test never reaches the internet."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        seen.append(name)
        if name not in LOOPBACK_NAMES:
            raise socket.gaierror(socket.EAI_NONAME, "no network in this test")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return seen


@pytest.fixture
def key_host(sandbox: Signer) -> Iterator[StubHost]:
    """Where a self-hosting integrator publishes the sandbox's public key (its jwks_url)."""
    with stub_host() as host:
        host.serve("/keys/sandbox.json", {"keys": [sandbox.jwk()]})
        yield host


@pytest.fixture
def forger_host(forger: Signer) -> Iterator[StubHost]:
    """A host serving the forger's key: fetching it would make the forged token verify."""
    with stub_host() as host:
        host.serve("/.well-known/jwks.json", {"keys": [forger.jwk()]})
        yield host


def sandbox_token(signer: Signer, jku: str = SANDBOX_JKU) -> str:
    """As jwt-generator.js builds it: header alg, typ, kid, jku; claims iss, aud, exp (+300 s),
    iat, jti (a UUID); no sub. The kid is the signer's (a forger may pick any)."""
    token = signer.token(
        aud=LOCAL + HOOK_PATH, iss=SANDBOX_ISS, headers={"jku": jku}, jti=str(uuid.uuid4())
    )
    header = {"alg": "ES384", "typ": "JWT", "kid": signer.kid, "jku": jku}
    assert jwt.get_unverified_header(token) == header
    return token


def bare_token(signer: Signer) -> str:
    """The sandbox's token without its jku: point 2's tests do not depend on point 1."""
    return signer.token(aud=LOCAL + HOOK_PATH, iss=SANDBOX_ISS)


def inline_entry(signer: Signer, fhir: str = SANDBOX_R4) -> dict[str, Any]:
    """The README's sandbox entry: the sandbox's key inline, no jku_allowlist."""
    return {"iss": SANDBOX_ISS, "jwks": {"keys": [signer.jwk()]}, "fhir_servers": [fhir]}


def url_entry(host: StubHost, fhir: str = SANDBOX_R4) -> dict[str, Any]:
    return {
        "iss": SANDBOX_ISS,
        "jwks_url": host.base + "/keys/sandbox.json",
        "fhir_servers": [fhir],
    }


def low_ferritin(fhir_server: str | None = SANDBOX_R4, **overrides: Any) -> dict[str, Any]:
    """A patient-view call with a complete prefetch: RLS, normal kidneys, ferritin 38 ng/mL."""
    resources = (b.rls(), b.kidney_ok(), b.observation(b.FERRITIN, 38, "ng/mL"))
    body = b.hook_request(b.prefetch(*resources), **overrides)
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {
            "access_token": FHIR_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "rls-cds",
        }
    return body


def topics(response: Any) -> list[str]:
    return [card["source"]["topic"]["code"] for card in response.json()["cards"]]


def off_loopback(lookups: list[str]) -> list[str]:
    return [name for name in lookups if name.endswith(OFF_LOOPBACK)]


# --- point 1: a jku off the allow-list is ignored; the configured keys decide --------------


class TestJkuOffTheAllowList:
    def test_the_inline_key_verifies_the_sandbox_token_and_its_jku_is_never_contacted(
        self, live, sandbox, lookups, caplog
    ):
        service = live([inline_entry(sandbox)])
        service_log = logging.getLogger("cds_service")  # propagate=False: attach directly
        service_log.addHandler(caplog.handler)
        token = sandbox_token(sandbox)
        try:
            with caplog.at_level(logging.DEBUG, logger="cds_service"):
                service_log.setLevel(logging.DEBUG)
                response = service.hook(token, low_ferritin())
        finally:
            service_log.removeHandler(caplog.handler)
        assert response.status_code == 200, response.text[:300]
        assert topics(response) == ["iron-below-target"]
        assert off_loopback(lookups) == []
        (ignored,) = [r for r in caplog.records if "jku" in r.getMessage()]
        assert ignored.levelno == logging.DEBUG
        logged = f"{ignored.getMessage()} {ignored.__dict__}"
        for secret in (token, token.split(".")[2], SANDBOX_JKU, b.PATIENT_ID):
            assert secret not in logged

    def test_a_jwks_url_verifies_the_sandbox_token_and_its_jku_is_never_contacted(
        self, live, sandbox, key_host, lookups
    ):
        service = live([url_entry(key_host)])
        for _ in range(2):
            response = service.hook(sandbox_token(sandbox), low_ferritin())
            assert response.status_code == 200, response.text[:300]
            assert topics(response) == ["iron-below-target"]
        assert key_host.paths() == ["/keys/sandbox.json"]  # fetched once, then cached
        assert off_loopback(lookups) == []

    @pytest.mark.parametrize("keys", ["inline", "jwks_url"])
    @pytest.mark.parametrize("kid", [SANDBOX_KID, "forger-kid"])
    def test_a_forged_token_naming_its_own_key_set_is_401_and_that_set_is_never_fetched(
        self, live, sandbox, forger, key_host, forger_host, lookups, keys, kid
    ):
        """The forger's jku names a host serving the forger's key: fetching it would let the
        token in. It is not on the allow-list, so the configured keys are used: they do not
        hold the forger's key (under the sandbox's kid: the signature fails; under another
        kid: no such key)."""
        entry = inline_entry(sandbox) if keys == "inline" else url_entry(key_host)
        service = live([entry])
        forged = Signer(forger.key, kid, "ES384")
        jku = forger_host.base + "/.well-known/jwks.json"
        response = service.hook(sandbox_token(forged, jku), low_ferritin())
        assert response.status_code == 401, response.text[:300]
        assert response.json()["error"] == "unauthorized"
        assert forger_host.connections == 0
        assert off_loopback(lookups) == []

    def test_an_allow_listed_jku_is_used_as_before(self, live, sandbox, forger, key_host):
        """A client that lists the jku: its set (here the real key) decides, not the inline
        set (here a stranger's key)."""
        entry = {
            **inline_entry(forger),
            "jku_allowlist": [key_host.base + "/keys/sandbox.json"],
        }
        service = live([entry])
        response = service.hook(
            sandbox_token(sandbox, jku=key_host.base + "/keys/sandbox.json"), low_ferritin()
        )
        assert response.status_code == 200, response.text[:300]
        assert key_host.paths() == ["/keys/sandbox.json"]


def readme_sandbox_entries() -> list[dict[str, Any]]:
    """The trusted-clients entries for the sandbox that the README's JSON samples give."""
    found = []
    for block in re.findall(r"```json\n(.*?)```", README.read_text("utf-8"), re.S):
        sample = json.loads(block)
        if isinstance(sample, list):
            found += [e for e in sample if isinstance(e, dict) and e.get("iss") == SANDBOX_ISS]
    return found


class TestTheReadmesSandboxEntry:
    def test_it_holds_the_published_key_inline_and_no_key_url(self):
        entries = readme_sandbox_entries()
        assert len(entries) == 2  # Configuring a trusted client; Try it in the sandbox
        for entry in entries:
            assert entry["jwks"] == {"keys": [SANDBOX_PUBLISHED_JWK]}
            assert "jwks_url" not in entry and "jku_allowlist" not in entry
            assert entry["fhir_servers"] == [SANDBOX_R4]

    def test_the_service_starts_with_it_and_refuses_a_token_from_another_key(
        self, live, forger, lookups
    ):
        """The published key parses as an inline set; a token of the sandbox's shape signed
        with any other key under its kid fails the signature, with nothing fetched."""
        service = live(readme_sandbox_entries()[:1])
        response = service.hook(sandbox_token(forger), low_ferritin())
        assert response.status_code == 401, response.text[:300]
        assert "signature" in response.json()["message"]
        assert off_loopback(lookups) == []


# --- point 2: fhirServer binds only the servers the service would contact ------------------


@pytest.fixture
def fhir_host() -> Iterator[StubHost]:
    """A FHIR server that answers anything asked: a connection to it would succeed."""
    with stub_host() as host:
        host.serve("/fhir/Observation", b.searchset())
        host.serve("/fhir/Medication", b.searchset(b.medication("med-1", "ferrous sulfate")))
        yield host


@pytest.fixture(params=["another client's", "on no list"])
def foreign(request, live, sandbox, fhir_host, other_entry) -> tuple[Any, str]:
    """The sandbox client (bound to the r4 server) and a FHIR server it may not name: one
    another trusted client may name (the deployment would connect to it for that client),
    or the sandbox's default r2 server, on no list at all."""
    other = {**other_entry, "fhir_servers": [fhir_host.base + "/fhir"]}
    server = fhir_host.base + "/fhir" if request.param == "another client's" else SANDBOX_R2
    return live([inline_entry(sandbox), other]), server


def referencing_medication(server: str) -> dict[str, Any]:
    """A complete prefetch but for the Medication an active MedicationRequest references."""
    order = b.medication_request(text="x")
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": "Medication/med-1"}
    body = low_ferritin(server)
    body["prefetch"] = b.prefetch(b.rls(), b.kidney_ok(), order)
    return body


def assert_bound_400(response: Any, server: str) -> None:
    assert response.status_code == 400, response.text[:300]
    body = response.json()
    assert body["message"] == "fhirServer is not one of the FHIR servers this client may name"
    assert [d["loc"] for d in body["details"]] == ["fhirServer"]
    assert FHIR_TOKEN not in response.text and server not in response.text


class TestFhirServerBinding:
    def test_a_complete_prefetch_is_answered_whatever_fhir_server_it_names(
        self, foreign, sandbox, fhir_host, lookups
    ):
        service, server = foreign
        response = service.hook(bare_token(sandbox), low_ferritin(server))
        assert response.status_code == 200, response.text[:300]
        assert topics(response) == ["iron-below-target"]
        assert fhir_host.connections == 0
        assert off_loopback(lookups) == []
        assert FHIR_TOKEN not in response.text

    def test_the_sandbox_as_shipped_is_answered_offline(self, live, sandbox, lookups):
        """Points 1 and 2 together: the sandbox's own token (jku and all) and its default
        fhirServer (r2), a client with the key inline and bound to r4 only."""
        service = live([inline_entry(sandbox, fhir=SANDBOX_R4)])
        response = service.hook(sandbox_token(sandbox), low_ferritin(SANDBOX_R2))
        assert response.status_code == 200, response.text[:300]
        assert topics(response) == ["iron-below-target"]
        assert off_loopback(lookups) == []

    def test_a_required_key_to_fetch_from_a_foreign_fhir_server_is_400_without_connecting(
        self, foreign, sandbox, fhir_host, lookups
    ):
        service, server = foreign
        body = low_ferritin(server)
        del body["prefetch"]["labs"]
        assert_bound_400(service.hook(bare_token(sandbox), body), server)
        assert fhir_host.connections == 0
        assert off_loopback(lookups) == []

    def test_an_optional_key_left_out_with_a_foreign_fhir_server_is_done_without(
        self, foreign, sandbox, fhir_host, lookups
    ):
        """Weight is optional: with a server the client may not have contacted, the call is
        answered without it (as when no fhirServer is named), never fetched from there."""
        service, server = foreign
        body = low_ferritin(server)
        del body["prefetch"]["weight"]
        response = service.hook(bare_token(sandbox), body)
        assert response.status_code == 200, response.text[:300]
        assert topics(response) == ["iron-below-target"]
        assert fhir_host.connections == 0
        assert off_loopback(lookups) == []

    def test_a_medication_to_read_from_a_foreign_fhir_server_is_400_without_connecting(
        self, foreign, sandbox, fhir_host, lookups
    ):
        service, server = foreign
        response = service.hook(bare_token(sandbox), referencing_medication(server))
        assert_bound_400(response, server)
        assert fhir_host.connections == 0
        assert off_loopback(lookups) == []


class TestTheClientsOwnServer:
    """The same calls at a server the client may name: the fetches the 400s above prevent."""

    @pytest.fixture
    def own(self, live, sandbox, fhir_host) -> tuple[Any, str]:
        return live(
            [inline_entry(sandbox, fhir=fhir_host.base + "/fhir")]
        ), fhir_host.base + "/fhir"

    def test_a_left_out_key_is_fetched_with_the_lent_token(self, own, sandbox, fhir_host):
        service, server = own
        body = low_ferritin(server)
        del body["prefetch"]["labs"]
        response = service.hook(bare_token(sandbox), body)
        assert response.status_code == 200, response.text[:300]
        (seen,) = fhir_host.seen
        assert seen.path.startswith("/fhir/Observation?")
        assert seen.headers["Authorization"] == f"Bearer {FHIR_TOKEN}"

    def test_a_referenced_medication_is_read(self, own, sandbox, fhir_host):
        service, server = own
        response = service.hook(bare_token(sandbox), referencing_medication(server))
        assert response.status_code == 200, response.text[:300]
        assert fhir_host.paths() == ["/fhir/Medication?_id=med-1"]

    def test_a_complete_prefetch_makes_no_connection_either(self, own, sandbox, fhir_host):
        service, server = own
        assert service.hook(bare_token(sandbox), low_ferritin(server)).status_code == 200
        assert fhir_host.connections == 0
