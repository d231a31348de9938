"""Issue 16, point 5: key fetches are limited per issuer, whatever the jku string.

The red team sent 50 forged tokens with ``jku=<allowed>?n=i`` and the EHR's key server got
50 fetches, although at most one refetch per 30 s was promised; and with enough distinct
``jku`` strings the cached key sets of real clients could be pushed out. Here the key server
is a loopback host that counts what it is asked.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.security.conftest import FHIR, ISS, Signer
from tests.security.stub_host import StubHost, stub_host


@pytest.fixture
def key_host(es384) -> Iterator[StubHost]:
    with stub_host() as host:
        host.serve("/oauth/jwks.json", {"keys": [es384.jwk()]})
        host.serve("/oauth/keys/current.json", {"keys": [es384.jwk()]})
        yield host


def entry(key_host: StubHost) -> dict:
    return {
        "iss": ISS,
        "jwks_url": key_host.base + "/oauth/jwks.json",
        "jku_allowlist": [key_host.base + "/oauth/keys/current.json"],
        "fhir_servers": [FHIR],
    }


def test_fifty_forged_jku_variants_fetch_no_jku(live, key_host, es384):
    """No variant is fetched: each is ignored (issue 19) and the client's jwks_url is used,
    fetched once on first use and not again within the interval, whatever the kid."""
    service = live([entry(key_host)])
    allowed = key_host.base + "/oauth/keys/current.json"
    for n in range(50):
        token = es384.token(headers={"jku": f"{allowed}?n={n}", "kid": f"k{n}"})
        assert service.hook(token).status_code == 401
    assert key_host.paths() == ["/oauth/jwks.json"]


def test_unknown_kids_refetch_at_most_once_per_issuer_per_interval_across_its_urls(
    live, key_host, es384
):
    """One first fetch of each configured URL; within the interval (30 s) after the issuer's
    last fetch no other, however the tokens alternate between its jwks_url and its jku
    (tests/security/test_jwks.py: the one refetch when the interval has passed)."""
    service = live([entry(key_host)])
    allowed = key_host.base + "/oauth/keys/current.json"
    assert service.hook(es384.token()).status_code == 200
    assert service.hook(es384.token(headers={"jku": allowed})).status_code == 200
    for n in range(50):
        headers = {"kid": f"made-up-{n}"} | ({"jku": allowed} if n % 2 else {})
        assert service.hook(es384.token(headers=headers)).status_code == 401
    assert key_host.paths() == ["/oauth/jwks.json", "/oauth/keys/current.json"]


def test_attacker_chosen_urls_never_evict_a_clients_keys(live, key_host, es384):
    """300 distinct jku strings (the old cache held 256 sets): the real set stays cached."""
    service = live([entry(key_host)])
    assert service.hook(es384.token()).status_code == 200
    attacker = Signer(ec.generate_private_key(ec.SECP384R1()), "x", "ES384")
    for n in range(300):
        jku = f"{key_host.base}/oauth/keys/current.json/../x{n}.json"
        assert service.hook(attacker.token(headers={"jku": jku})).status_code == 401
    assert service.hook(es384.token()).status_code == 200
    assert key_host.paths() == ["/oauth/jwks.json"]
