"""Client signing keys: JWK Sets parsed into public keys by ``kid``, and a cache of fetched sets.

Only asymmetric signing keys are kept (EC P-256/P-384 and RSA of 2048 bits or more); a
symmetric (``oct``) key never becomes a verification key, so no token can be checked with
a shared secret. Fetched sets are cached for a TTL; an unknown ``kid`` causes at most one
refetch per URL within the refetch interval (a flood of made-up ``kid`` values cannot turn
the service into a load generator against the EHR).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

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
MAX_CACHED_SETS = 256
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
            with session.get(
                url, timeout=FETCH_TIMEOUT_S, allow_redirects=False, stream=True
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
    attempted_at: float


class JwksCache:
    """JWK Sets by URL, fetched on first use, kept for `ttl_s`, refetched once on a new kid.

    Fetches of one URL are at least `refetch_interval_s` apart, except the first. When a
    refetch fails, the set fetched before stays in use; with nothing fetched yet, the key
    is unavailable.
    """

    def __init__(
        self,
        fetch: Fetcher,
        ttl_s: float,
        refetch_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._refetch_interval_s = refetch_interval_s
        self._clock = clock
        self._cached: dict[str, _Cached] = {}
        self._failed_at: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def key(self, url: str, kid: str) -> SigningKey | None:
        """The key `kid` of the set at `url`; None when the set does not hold it."""
        with self._guard:
            if url not in self._locks and len(self._locks) >= MAX_CACHED_SETS:
                oldest = next(iter(self._locks))  # a bound: jku URLs come from tokens
                for table in (self._locks, self._cached, self._failed_at):
                    table.pop(oldest, None)
            lock = self._locks.setdefault(url, threading.Lock())
        with lock:  # one fetch per URL at a time; other clients' sets are not held up
            now = self._clock()
            cached = self._cached.get(url)
            if cached is None:
                failed_at = self._failed_at.get(url)
                if failed_at is not None and now - failed_at < self._refetch_interval_s:
                    raise KeysUnavailable("the last fetch failed; not retried yet")
                return self._refresh(url, now, None).keys.get(kid)
            may_fetch = now - cached.attempted_at >= self._refetch_interval_s
            if may_fetch and now - cached.fetched_at >= self._ttl_s:
                return self._refresh(url, now, cached).keys.get(kid)
            found = cached.keys.get(kid)
            if found is None and may_fetch:  # the client may have rotated its keys
                found = self._refresh(url, now, cached).keys.get(kid)
            return found

    def _refresh(self, url: str, now: float, stale: _Cached | None) -> _Cached:
        try:
            keys = KeySet.parse(self._fetch(url))
        except (KeysUnavailable, ValueError) as exc:
            log.warning("JWKS fetch failed", extra={"jwks_url": url, "reason": str(exc)})
            if stale is None:
                self._failed_at[url] = now
                raise KeysUnavailable(str(exc)) from None
            stale.attempted_at = now
            return stale
        fresh = _Cached(keys, now, now)
        self._cached[url] = fresh
        self._failed_at.pop(url, None)
        return fresh
