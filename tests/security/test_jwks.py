"""Client keys from a JWKS URL or an allow-listed jku: cached, refetched once on a new kid."""

from __future__ import annotations

import pytest
import responses

from cds_service.auth.keys import JwksCache, KeySet, KeysUnavailable
from tests.security.conftest import FHIR, ISS, post_hook

JWKS_URL = "https://ehr.example.org/oauth/jwks.json"
JKU = "https://ehr.example.org/oauth/keys/current.json"


@pytest.fixture
def url_entry() -> dict:
    return {"iss": ISS, "jwks_url": JWKS_URL, "fhir_servers": [FHIR]}


class TestJwksUrl:
    def test_keys_are_fetched_once_and_cached(self, make_app, url_entry, es384):
        client = make_app([url_entry]).test_client()
        with responses.RequestsMock() as mock:
            mock.get(JWKS_URL, json={"keys": [es384.jwk()]})
            for _ in range(3):
                assert post_hook(client, es384.token()).status_code == 200
            assert len(mock.calls) == 1

    def test_unknown_kid_refetches_once_then_is_refused(self, make_app, url_entry, es384):
        client = make_app([url_entry], jwks_refetch_interval_s=0).test_client()
        with responses.RequestsMock() as mock:
            mock.get(JWKS_URL, json={"keys": [es384.jwk()]})
            assert post_hook(client, es384.token()).status_code == 200
            response = post_hook(client, es384.token(headers={"kid": "rotated"}))
            assert response.status_code == 401
            assert len(mock.calls) == 2

    def test_unknown_kids_do_not_refetch_within_the_interval(self, make_app, url_entry, es384):
        """A flood of made-up kids cannot turn the service against the EHR's key server."""
        client = make_app([url_entry]).test_client()  # default interval: 30 s
        with responses.RequestsMock() as mock:
            mock.get(JWKS_URL, json={"keys": [es384.jwk()]})
            assert post_hook(client, es384.token()).status_code == 200
            for n in range(5):
                assert post_hook(client, es384.token(headers={"kid": f"k{n}"})).status_code == 401
            assert len(mock.calls) == 1

    def test_a_rotated_key_is_picked_up_by_the_refetch(self, make_app, url_entry, es384, rs384):
        client = make_app([url_entry], jwks_refetch_interval_s=0).test_client()
        with responses.RequestsMock() as mock:
            mock.get(JWKS_URL, json={"keys": [es384.jwk()]})
            mock.get(JWKS_URL, json={"keys": [es384.jwk(), rs384.jwk()]})
            assert post_hook(client, es384.token()).status_code == 200
            assert post_hook(client, rs384.token()).status_code == 200
            assert len(mock.calls) == 2

    @pytest.mark.parametrize(
        "answer",
        [
            {"status": 500, "json": {}},
            {"status": 200, "body": "not json"},
            {"status": 200, "json": ["not", "a", "set"]},
            {"status": 302, "headers": {"Location": "https://attacker.example/jwks"}},
        ],
    )
    def test_unusable_jwks_answer_is_401(self, make_app, url_entry, es384, answer):
        client = make_app([url_entry]).test_client()
        with responses.RequestsMock() as mock:
            mock.get(JWKS_URL, **answer)
            response = post_hook(client, es384.token())
            assert len(mock.calls) == 1  # a redirect is not followed
        assert response.status_code == 401
        assert "keys cannot be fetched" in response.get_json()["message"]

    def test_symmetric_and_private_keys_in_a_fetched_set_are_never_used(
        self, make_app, url_entry, es384
    ):
        odd = [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**es384.jwk(), "kid": "with-private", "d": "AAAA"},
        ]
        client = make_app([url_entry]).test_client()
        with responses.RequestsMock() as mock:
            mock.get(JWKS_URL, json={"keys": [*odd, es384.jwk()]})
            assert post_hook(client, es384.token()).status_code == 200
            assert (
                post_hook(client, es384.token(headers={"kid": "with-private"})).status_code == 401
            )


class TestJku:
    def test_allow_listed_jku_is_used(self, make_app, es384, rs384):
        entry = {
            "iss": ISS,
            "jwks": {"keys": [rs384.jwk()]},
            "jku_allowlist": [JKU],
            "fhir_servers": [FHIR],
        }
        client = make_app([entry]).test_client()
        with responses.RequestsMock() as mock:
            mock.get(JKU, json={"keys": [es384.jwk()]})
            response = post_hook(client, es384.token(headers={"jku": JKU}))
            assert response.status_code == 200
            assert [c.request.url for c in mock.calls] == [JKU]

    @pytest.mark.parametrize(
        "jku",
        [
            "https://ehr.example.org.attacker.example/oauth/keys/x.json",
            "https://ehr.example.org/oauth/keysX.json",
            "http://ehr.example.org/oauth/keys/x.json",
            "https://user@ehr.example.org/oauth/keys/x.json",
            "https://ehr.example.org/oauth/keys/other.json",  # under the same path: not exact
        ],
    )
    def test_look_alike_jku_is_never_requested_and_the_configured_keys_decide(
        self, make_app, es384, stranger, jku
    ):
        """Issue 19: a jku off the allow-list is ignored, not refused: the client's own key
        still verifies its token, and a stranger's key served at the look-alike URL never
        does, because that URL is never asked."""
        entry = {
            "iss": ISS,
            "jwks": {"keys": [es384.jwk()]},
            "jku_allowlist": [JKU],
        }
        client = make_app([entry]).test_client()
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.get(jku, json={"keys": [stranger.jwk()]})
            assert post_hook(client, es384.token(headers={"jku": jku})).status_code == 200
            forged = post_hook(client, stranger.token(headers={"jku": jku}))
            assert len(mock.calls) == 0
        assert forged.status_code == 401
        assert "signature" in forged.get_json()["message"]


class FakeKeyServer:
    def __init__(self, *key_sets: dict):
        self.answers = list(key_sets)
        self.calls = 0

    def __call__(self, url: str) -> dict:
        self.calls += 1
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestJwksCache:
    def _cache(self, server: FakeKeyServer, clock: Clock) -> JwksCache:
        sources = {ISS: [JWKS_URL, JKU]}
        return JwksCache(server, sources, ttl_s=300, refetch_interval_s=30, clock=clock)

    def test_the_set_is_refetched_after_its_ttl(self, es384):
        server, clock = FakeKeyServer({"keys": [es384.jwk()]}), Clock()
        cache = self._cache(server, clock)
        assert cache.key(ISS, JWKS_URL, es384.kid) is not None
        clock.now += 299
        cache.key(ISS, JWKS_URL, es384.kid)
        assert server.calls == 1
        clock.now += 1
        cache.key(ISS, JWKS_URL, es384.kid)
        assert server.calls == 2

    def test_unknown_kid_refetches_at_most_once_per_interval(self, es384):
        server, clock = FakeKeyServer({"keys": [es384.jwk()]}), Clock()
        cache = self._cache(server, clock)
        cache.key(ISS, JWKS_URL, es384.kid)
        clock.now += 30
        assert cache.key(ISS, JWKS_URL, "new") is None
        assert cache.key(ISS, JWKS_URL, "newer") is None
        assert server.calls == 2
        clock.now += 30
        assert cache.key(ISS, JWKS_URL, "newest") is None
        assert server.calls == 3

    def test_a_failed_refetch_keeps_the_old_set(self, es384):
        server, clock = FakeKeyServer({"keys": [es384.jwk()]}, KeysUnavailable("down")), Clock()
        cache = self._cache(server, clock)
        cache.key(ISS, JWKS_URL, es384.kid)
        clock.now += 301
        assert cache.key(ISS, JWKS_URL, es384.kid) is not None
        assert cache.key(ISS, JWKS_URL, es384.kid) is not None
        assert server.calls == 2

    def test_a_failing_first_fetch_is_not_retried_within_the_interval(self):
        server, clock = FakeKeyServer(KeysUnavailable("down")), Clock()
        cache = self._cache(server, clock)
        for _ in range(3):
            with pytest.raises(KeysUnavailable):
                cache.key(ISS, JWKS_URL, "k")
        assert server.calls == 1
        clock.now += 30
        with pytest.raises(KeysUnavailable):
            cache.key(ISS, JWKS_URL, "k")
        assert server.calls == 2

    def test_refetches_are_counted_per_issuer_whatever_the_url(self, es384):
        """Issue 16, point 5: the interval holds for the issuer, not for each URL."""
        server, clock = FakeKeyServer({"keys": [es384.jwk()]}), Clock()
        cache = self._cache(server, clock)
        cache.key(ISS, JWKS_URL, es384.kid)
        cache.key(ISS, JKU, es384.kid)  # the first fetch of a configured URL
        assert server.calls == 2
        clock.now += 30
        for n in range(20):
            assert cache.key(ISS, (JWKS_URL, JKU)[n % 2], f"made-up-{n}") is None
        assert server.calls == 3  # one refetch in the interval, for either URL

    def test_a_url_not_configured_for_the_issuer_is_never_fetched(self, es384):
        server, clock = FakeKeyServer({"keys": [es384.jwk()]}), Clock()
        cache = self._cache(server, clock)
        for url in (JWKS_URL + "?n=1", "https://attacker.example/jwks.json", JKU + "/"):
            with pytest.raises(KeysUnavailable):
                cache.key(ISS, url, es384.kid)
        with pytest.raises(KeysUnavailable):
            cache.key("https://other.example", JWKS_URL, es384.kid)
        assert server.calls == 0

    def test_one_issuers_refetches_do_not_hold_up_another(self, es384):
        server, clock = FakeKeyServer({"keys": [es384.jwk()]}), Clock()
        other = "https://other.example"
        cache = JwksCache(server, {ISS: [JWKS_URL], other: [JKU]}, 300, 30, clock=clock)
        cache.key(ISS, JWKS_URL, es384.kid)
        cache.key(ISS, JWKS_URL, "made-up")
        assert cache.key(other, JKU, es384.kid) is not None
        assert server.calls == 2


class TestKeySet:
    def test_inline_set_with_a_repeated_kid_is_an_error(self, es384):
        with pytest.raises(ValueError, match="not unique"):
            KeySet.parse({"keys": [es384.jwk(), es384.jwk()]})

    @pytest.mark.parametrize(
        ("change", "fragment"),
        [
            ({"kid": None}, "no kid"),
            ({"d": "AAAA"}, "private"),
            ({"use": "enc"}, "use"),
            ({"alg": "HS256"}, "alg"),
            ({"crv": "P-521"}, "curve"),
            ({"kty": "oct"}, "key type"),
        ],
    )
    def test_strict_parse_names_the_bad_key(self, es384, change, fragment):
        jwk = {k: v for k, v in {**es384.jwk(), **change}.items() if v is not None}
        with pytest.raises(ValueError, match=fragment):
            KeySet.parse({"keys": [jwk]}, strict=True)

    def test_short_rsa_keys_are_refused(self):
        from cryptography.hazmat.primitives.asymmetric import rsa

        from cds_service.auth.devkeys import public_jwk

        short = public_jwk(rsa.generate_private_key(65537, 1024))
        with pytest.raises(ValueError, match="2048"):
            KeySet.parse({"keys": [short]}, strict=True)
