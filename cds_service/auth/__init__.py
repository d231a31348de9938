"""Who may call the service: the policy chosen at start-up and its parts.

    model.py    Client (the verified caller) and the Authenticator interface
    clients.py  the trusted-clients file, validated at start-up
    keys.py     JWK Sets: parsing, fetching, the TTL cache
    replay.py   jti replay stores (memory, Redis)
    verify.py   JwtAuthenticator: the CDS Hooks 2.0 JWT checks
    devkeys.py  demo keys and tokens for integrators (``rls-cds dev-keys | dev-token``)

Three policies: demo mode lets every caller in and says so loudly; with a trusted-clients
file every call needs a JWT that verifies; with neither, every call is refused with 401
(fail closed, never open).
"""

from __future__ import annotations

import http.cookiejar
import logging

import requests

from cds_service.auth.clients import TrustedClients, TrustedClientsInvalid, load_trusted_clients
from cds_service.auth.keys import JwksCache, http_fetcher
from cds_service.auth.model import Authenticator, Client
from cds_service.auth.replay import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStore,
    issuer_share,
)
from cds_service.auth.verify import JwtAuthenticator
from cds_service.errors import AuthenticationFailed, ConfigurationInvalid
from cds_service.settings import Settings

__all__ = [
    "Authenticator",
    "Client",
    "DemoAuthenticator",
    "JwtAuthenticator",
    "NoTrustedClients",
    "Security",
    "TrustedClientsInvalid",
    "build_security",
]

log = logging.getLogger(__name__)


class DemoAuthenticator:
    """Demo mode: no verification at all; every caller is 'demo'."""

    def authenticate(self, authorization: str | None, audience: str) -> Client:
        return Client(issuer="demo")


class NoTrustedClients:
    """Production mode with no trusted client configured: nobody gets in."""

    def authenticate(self, authorization: str | None, audience: str) -> Client:
        if not (authorization or "").startswith("Bearer "):
            raise AuthenticationFailed("a bearer JWT from a trusted CDS client is required")
        raise AuthenticationFailed("no trusted CDS clients are configured on this service")


class Security:
    """What create_app needs from this package: the policy and the stores behind it."""

    def __init__(self, authenticator: Authenticator, replay: ReplayStore, clients: TrustedClients):
        self.authenticator = authenticator
        self.replay = replay
        self.clients = clients


def require_public_base_url(settings: Settings) -> None:
    """ConfigurationInvalid outside demo mode without RLS_CDS_PUBLIC_BASE_URL: the aud a
    token must name is never taken from the caller's Host header."""
    if not settings.demo and settings.public_base_url is None:
        raise ConfigurationInvalid(
            "RLS_CDS_PUBLIC_BASE_URL must be set outside demo mode: a JWT's aud is checked "
            "against it (e.g. https://cds.example.org), never against the caller's Host header"
        )


def build_security(settings: Settings) -> Security:
    """The authentication policy the settings ask for; TrustedClientsInvalid for a bad file,
    ConfigurationInvalid for settings that cannot make a safe service."""
    if settings.demo:
        log.warning(
            "DEMO MODE: client authentication is OFF; any caller can invoke the hooks. "
            "Never use demo mode with real patient data."
        )
        if settings.trusted_clients:
            log.warning("demo mode ignores the trusted clients file")
        return Security(
            DemoAuthenticator(), MemoryReplayStore(settings.replay_cache_size), TrustedClients([])
        )
    require_public_base_url(settings)
    clients = (
        load_trusted_clients(settings.trusted_clients)
        if settings.trusted_clients
        else TrustedClients([])
    )
    share = issuer_share(settings.replay_cache_size, len(clients))
    replay: ReplayStore
    if settings.redis_url:
        import redis  # only when configured (~50 ms of start-up otherwise)

        replay = RedisReplayStore.from_url(settings.redis_url, settings.redis_prefix, share)
        try:
            replay.begin()
        except redis.RedisError:  # down at start-up: the first call writes the mark
            log.warning("replay store (Redis) not reachable at start-up")
    else:
        replay = MemoryReplayStore(share)
    if not clients:
        log.warning(
            "no trusted CDS clients are configured: every hook call will be refused with 401"
        )
        return Security(NoTrustedClients(), replay, clients)
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    jwks = JwksCache(
        http_fetcher(session),
        clients.key_urls,
        settings.jwks_cache_ttl_s,
        settings.jwks_refetch_interval_s,
    )
    log.info(
        "client JWT verification on",
        extra={
            "trusted_issuers": list(clients),
            "replay_store": "redis" if settings.redis_url else "memory",
            "replay_records_per_issuer": share,
        },
    )
    return Security(JwtAuthenticator(clients, jwks, replay, settings.jwt_leeway_s), replay, clients)
