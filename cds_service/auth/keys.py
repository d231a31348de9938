"""Client signing keys: JWK Sets parsed into public keys by ``kid``, and a cache of fetched sets.

Only asymmetric signing keys are kept (EC P-256/P-384 and RSA of 2048 bits or more); a
symmetric (``oct``) key never becomes a verification key, so no token can be checked with
a shared secret. Fetched sets are cached for a TTL; only configured URLs are fetched, and
after the first fetch at most once per issuer within the refetch interval (a flood of
made-up ``kid`` or ``jku`` values cannot turn the service into a load generator against the
EHR, nor evict a client's keys).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from cds_service.outbound import UrlRefused, prepared_get

log = logging.getLogger(__name__)

#: The algorithms a client may sign with, and the key each needs: (kty, crv).
ALGORITHMS: Mapping[str, tuple[str, str | None]] = {
    "ES384": ("EC", "P-384"),
    "RS384": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
}
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 256 * 1024
FETCH_TIMEOUT_S = (1.0, 2.0)

Fetcher = Callable[[str], Mapping[str, Any]]
"""Returns the JWK Set published at a URL, or raises KeysUnavailable."""


class KeysUnavailable(Exception):
    """Raised when a JWK Set cannot be fetched or is not a JWK Set."""


@dataclass(frozen=True)
class SigningKey:
    """One public key of a client, with what it may verify."""

    kid: str
    kty: str
    crv: str | None
    alg: str | None
    key: Any

    def fits(self, alg: str) -> bool:
        """True when a token signed with `alg` may be verified with this key."""
        kty, crv = ALGORITHMS[alg]
        return self.kty == kty and self.crv == crv and self.alg in (None, alg)


class KeySet:
    """The usable keys of one JWK Set, by kid."""

    def __init__(self, keys: dict[str, SigningKey]):
        self.keys = keys

    def get(self, kid: str) -> SigningKey | None:
        return self.keys.get(kid)

    @classmethod
    def parse(cls, jwks: Mapping[str, Any], strict: bool = False) -> KeySet:
        """Keys of a JWK Set. `strict` (a configured inline set): any bad key is an error;
        otherwise (a fetched set) keys we cannot use are skipped."""
        entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError('a JWK Set is an object with a "keys" list')
        keys: dict[str, SigningKey] = {}
        for index, jwk in enumerate(entries):
            try:
                key = _signing_key(jwk)
            except ValueError as exc:
                if strict:
                    raise ValueError(f"key {index}: {exc}") from None
                log.info("JWKS key skipped", extra={"index": index, "reason": str(exc)})
                continue
            if key.kid in keys:
                raise ValueError(f"key {index}: kid {key.kid!r} is not unique in the set")
            keys[key.kid] = key
        return cls(keys)


def _signing_key(jwk: Any) -> SigningKey:
    if not isinstance(jwk, dict):
        raise ValueError("not a JSON object")
    kid, kty, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("alg")
    if not isinstance(kid, str) or not kid:
        raise ValueError("no kid")
    if "d" in jwk or "k" in jwk:
        raise ValueError("holds private or symmetric key material; publish public keys only")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("not a signature key (use)")
    if alg is not None and alg not in ALGORITHMS:
        raise ValueError(f"alg {alg!r} is not one of {', '.join(ALGORITHMS)}")
    try:
        if kty == "EC":
            crv = jwk.get("crv")
            if crv not in ("P-256", "P-384"):
                raise ValueError(f"curve {crv!r} is not P-256 or P-384")
            return SigningKey(kid, kty, crv, alg, ECAlgorithm.from_jwk(jwk))
        if kty == "RSA":
            public = RSAAlgorithm.from_jwk(jwk)
            if public.key_size < MIN_RSA_BITS:  # type: ignore[union-attr]
                raise ValueError(f"RSA key shorter than {MIN_RSA_BITS} bits")
            return SigningKey(kid, kty, None, alg, public)
    except InvalidKeyError as exc:
        raise ValueError(f"unreadable key ({exc})") from None
    raise ValueError(f"key type {kty!r} is not EC or RSA")


def http_fetcher(session: requests.Session) -> Fetcher:
    """Fetch JWK Sets over HTTP: short timeouts, no redirects, a size bound."""

    def fetch(url: str) -> Mapping[str, Any]:
        body = b""
        try:
            with prepared_get(
                session, url, timeout=FETCH_TIMEOUT_S, allow_redirects=False, stream=True
            ) as response:
                if response.status_code != 200:
                    raise KeysUnavailable(f"HTTP {response.status_code}")
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise KeysUnavailable("JWK Set larger than the bound")
            data = json.loads(body)
        except requests.RequestException as exc:
            raise KeysUnavailable(type(exc).__name__) from None
        except UrlRefused as refused:
            raise KeysUnavailable(str(refused)) from None
        except ValueError:
            raise KeysUnavailable("not JSON") from None
        if not isinstance(data, dict):
            raise KeysUnavailable("not a JWK Set")
        return data

    return fetch


@dataclass
class _Cached:
    keys: KeySet
    fetched_at: float


class JwksCache:
    """The trusted clients' JWK Sets, by issuer and URL.

    Only the URLs configured for an issuer (its ``jwks_url`` and ``jku_allowlist``) are
    ever fetched or held: a token cannot add a set, evict one, or multiply fetches by
    varying the URL. Each set is fetched on first use and kept for `ttl_s`. After that
    first fetch, an issuer's sets are fetched again (its TTL passed, an unknown kid, a
    failed fetch) at most once per `refetch_interval_s` for that issuer, whatever URL or
    kid its tokens name. When a refetch fails the set fetched before stays in use; with
    nothing fetched yet the key is unavailable.
    """

    def __init__(
        self,
        fetch: Fetcher,
        sources: Mapping[str, Iterable[str]],
        ttl_s: float,
        refetch_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._sources = {issuer: frozenset(urls) for issuer, urls in sources.items()}
        self._ttl_s = ttl_s
        self._refetch_interval_s = refetch_interval_s
        self._clock = clock
        self._cached: dict[tuple[str, str], _Cached] = {}
        self._attempted: set[tuple[str, str]] = set()
        self._last_fetch: dict[str, float] = {}
        # one fetch per issuer at a time; other clients' sets are not held up
        self._locks = {issuer: threading.Lock() for issuer in self._sources}

    def key(self, issuer: str, url: str, kid: str) -> SigningKey | None:
        """The key `kid` of `issuer`'s set at `url`; None when the set does not hold it."""
        if url not in self._sources.get(issuer, ()):
            raise KeysUnavailable("not a key URL configured for this client")
        with self._locks[issuer]:
            now = self._clock()
            source = (issuer, url)
            cached = self._cached.get(source)
            last = self._last_fetch.get(issuer)
            may_fetch = (
                source not in self._attempted
                or last is None
                or now - last >= self._refetch_interval_s
            )
            if cached is None:
                if not may_fetch:
                    raise KeysUnavailable("the last fetch failed; not retried yet")
                return self._refresh(source, now, None).keys.get(kid)
            if may_fetch and now - cached.fetched_at >= self._ttl_s:
                return self._refresh(source, now, cached).keys.get(kid)
            found = cached.keys.get(kid)
            if found is None and may_fetch:  # the client may have rotated its keys
                found = self._refresh(source, now, cached).keys.get(kid)
            return found

    def _refresh(self, source: tuple[str, str], now: float, stale: _Cached | None) -> _Cached:
        issuer, url = source
        self._attempted.add(source)
        self._last_fetch[issuer] = now
        try:
            keys = KeySet.parse(self._fetch(url))
        except (KeysUnavailable, ValueError) as exc:
            log.warning("JWKS fetch failed", extra={"jwks_url": url, "reason": str(exc)})
            if stale is None:
                raise KeysUnavailable(str(exc)) from None
            return stale
        fresh = _Cached(keys, now)
        self._cached[source] = fresh
        return fresh
