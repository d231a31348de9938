"""Verification of a CDS client's JWT (CDS Hooks 2.0, "Trusting CDS Clients") with PyJWT.

In order, each step refusing with 401 (AuthenticationFailed) and a logged reason:

1. ``Authorization: Bearer <jwt>`` (its length and uniqueness are checked by the HTTP
   adapter: cds_service.api.security);
2. header: ``alg`` one of ES384, RS384, ES256, RS256 (never ``none`` or HS*), ``kid``
   present, ``typ`` JWT; no ``crit`` (PyJWT refuses it: we implement no extension a token
   could make critical) and no key of its own (``jwk``, ``x5c``, ``x5u``): keys come
   only from the client's configuration;
3. ``iss`` (read before the signature, only to pick the client) is a trusted client;
4. key by ``kid`` from the ``jku`` set when ``jku`` is exactly one of that client's
   ``jku_allowlist`` URLs, else from its configured ``jwks_url``/``jwks``: any other
   ``jku`` is ignored (logged at debug), never fetched; the key's type must fit ``alg``;
5. signature, then claims: ``iss``, ``aud`` equal to the URL called (string or array),
   ``exp``, ``iat`` (not ahead of our clock by more than the leeway), ``nbf`` when sent,
   ``jti``; a lifetime of at most MAX_LIFETIME_S; ``tenant``, when both the token and the
   client entry carry one, must agree, and must fit the store (cds_service.stored_text);
6. the ``jti`` is new and the token not older than the replay records (replay store; 429
   when the issuer holds its share of records, 503 when the store cannot tell).

Neither the token nor its claims are logged: the reason, the issuer when trusted, and
``kid``/``alg`` are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt

from cds_service import metrics
from cds_service.auth.clients import TrustedClient, TrustedClients
from cds_service.auth.keys import ALGORITHMS, JwksCache, KeySet, KeysUnavailable, SigningKey
from cds_service.auth.model import Client
from cds_service.auth.replay import ReplayStore, Use
from cds_service.errors import AuthenticationFailed
from cds_service.outbound import AllowList
from cds_service.stored_text import CLIENT_CHARS, storable

log = logging.getLogger(__name__)

MAX_LIFETIME_S = 3600
"""Longest `exp - iat` accepted: replay records must not have to live for days."""
#: Longest token read (431 above, like gunicorn's default header bound of 8190 bytes).
MAX_TOKEN_CHARS = 8000
#: Header parameters that would let a token bring or point to its own key.
EMBEDDED_KEYS = ("jwk", "x5c", "x5u")
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
#: The refusal when a jku was ignored and the configured keys lack the kid: it says both.
JKU_IGNORED_NO_KID = (
    "kid is not in the client's configured keys (the token's jku is not on the client's "
    "allow-list, so it was not used)"
)


class _Refused(Exception):
    """A verification step failed; `reason` is logged and sent (never token content)."""

    def __init__(self, reason: str, **log_fields: Any):
        super().__init__(reason)
        self.reason = reason
        self.log_fields = log_fields


#: PyJWT's exceptions, most specific first, as the reason we give.
_JWT_ERRORS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (iat or nbf in the future)"),
    (jwt.InvalidAudienceError, "aud is not the URL called"),
    (jwt.InvalidIssuerError, "iss does not match the trusted client"),
    (jwt.InvalidIssuedAtError, "iat is not a number"),
    (jwt.InvalidSignatureError, "the signature does not verify"),
    (jwt.InvalidKeyError, "the signing key cannot verify this token"),
    (jwt.DecodeError, "the token is malformed"),
    (jwt.InvalidTokenError, "the token is invalid"),
]


@contextmanager
def _translating_jwt_errors() -> Iterator[None]:
    """PyJWT exceptions become _Refused with a fixed reason; nothing else passes through."""
    try:
        yield
    except jwt.MissingRequiredClaimError as exc:
        raise _Refused(f"the token lacks the required claim {exc.claim}") from None
    except jwt.InvalidTokenError as exc:
        reason = next(text for kind, text in _JWT_ERRORS if isinstance(exc, kind))
        raise _Refused(reason) from None


class JwtAuthenticator:
    """Lets in the trusted clients whose JWT verifies for the URL called, once per jti."""

    def __init__(
        self,
        clients: TrustedClients,
        jwks: JwksCache,
        replay: ReplayStore,
        leeway_s: int,
    ):
        self._clients = clients
        self._jwks = jwks
        self._replay = replay
        self._leeway_s = leeway_s
        self._inline = {
            iss: KeySet.parse(c.jwks) for iss, c in clients.items() if c.jwks is not None
        }
        self._fhir_servers = {iss: AllowList.of(c.fhir_servers) for iss, c in clients.items()}
        self._jwt = jwt.PyJWT({"enforce_minimum_key_length": True})

    def authenticate(self, authorization: str | None, audience: str) -> Client:
        try:
            return self._verify(authorization, audience)
        except _Refused as refused:
            metrics.AUTH_FAILURES.labels(refused.reason).inc()
            log.warning(
                "client authentication refused",
                extra={"reason": refused.reason, "audience": audience, **refused.log_fields},
            )
            raise AuthenticationFailed(f"client authentication failed: {refused.reason}") from None

    def _verify(self, authorization: str | None, audience: str) -> Client:
        token = _bearer_token(authorization)
        with _translating_jwt_errors():
            header = jwt.get_unverified_header(token)
            alg, kid = _checked_header(header)
            unverified = self._jwt.decode(token, options={"verify_signature": False})
        trusted = self._client(unverified.get("iss"))
        key = self._key(trusted, header, alg, kid)
        with _translating_jwt_errors():
            claims = self._jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=trusted.iss,
                leeway=self._leeway_s,
                options={"require": REQUIRED_CLAIMS, "verify_sub": False, "verify_jti": True},
            )
        jti = _checked_claims(claims, trusted)
        use = self._replay.first_use(
            trusted.iss, jti, claims["iat"], claims["exp"] + self._leeway_s
        )
        if use is Use.REPLAY:
            raise _Refused("the token was used before (jti replay)", iss=trusted.iss)
        if use is Use.PREDATES_RECORDS:
            raise _Refused(
                "the token was issued before the replay records begin; send a new token",
                iss=trusted.iss,
            )
        tenant = claims.get("tenant")
        return Client(
            issuer=trusted.iss,
            fhir_servers=self._fhir_servers[trusted.iss],
            tenant=trusted.tenant or (tenant if isinstance(tenant, str) else None),
        )

    def _client(self, iss: Any) -> TrustedClient:
        trusted = self._clients.get(iss) if isinstance(iss, str) else None
        if trusted is None:
            raise _Refused("iss is not a trusted client")
        return trusted

    def _key(self, client: TrustedClient, header: dict[str, Any], alg: str, kid: str) -> SigningKey:
        """The key `kid` names: from the `jku` set when `jku` is exactly allow-listed, else
        from the client's configured keys. A `jku` off the allow-list is never fetched but
        ignored: in CDS Hooks a client's key set may be shared out of band, and a client
        configured that way may still send a `jku` (the CDS Hooks Sandbox always does).
        Only the configured keys can then verify the token."""
        jku = header.get("jku")
        listed = jku if isinstance(jku, str) and jku in client.jku_allowlist else None
        ignored = jku is not None and listed is None
        if ignored:
            log.debug(
                "the token's jku is not on the client's allow-list: ignored, the client's "
                "configured keys are used",
                extra={"iss": client.iss},
            )
        try:
            if listed is not None:
                key = self._jwks.key(client.iss, listed, kid)
            elif client.jwks_url is not None:
                key = self._jwks.key(client.iss, client.jwks_url, kid)
            else:
                key = self._inline[client.iss].get(kid)
        except KeysUnavailable:
            raise _Refused("the client's keys cannot be fetched", iss=client.iss) from None
        if key is None:
            reason = JKU_IGNORED_NO_KID if ignored else "kid is not in the client's key set"
            raise _Refused(reason, iss=client.iss, kid=kid)
        if not key.fits(alg):
            raise _Refused("the key named by kid does not fit alg", iss=client.iss, alg=alg)
        return key


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _Refused("a bearer JWT from a trusted CDS client is required")
    return token


def _checked_header(header: dict[str, Any]) -> tuple[str, str]:
    alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        shown = alg if isinstance(alg, str) and len(alg) <= 10 else "?"
        raise _Refused(f"alg must be one of {', '.join(ALGORITHMS)}", alg=shown)
    if not isinstance(kid, str) or not kid:
        raise _Refused("the header has no kid")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise _Refused("typ must be JWT")
    if any(name in header for name in EMBEDDED_KEYS):
        raise _Refused("the token carries or points to its own key (jwk, x5c, x5u)")
    return alg, kid


def _checked_claims(claims: dict[str, Any], client: TrustedClient) -> str:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _Refused("jti must be a non-empty string", iss=client.iss)
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _Refused(f"{name} must be a number (NumericDate)", iss=client.iss)
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_S:
        raise _Refused(f"the token lives longer than {MAX_LIFETIME_S} s", iss=client.iss)
    tenant = claims.get("tenant")
    if isinstance(tenant, str) and not _storable_tenant(tenant):
        raise _Refused(
            f"tenant must be at most {CLIENT_CHARS} characters, without NUL or lone surrogates",
            iss=client.iss,
        )
    if client.tenant is not None and tenant is not None and tenant != client.tenant:
        raise _Refused("tenant is not the client's tenant", iss=client.iss)
    return jti


def _storable_tenant(tenant: str) -> bool:
    """Whether the store can hold the tenant (it is stored with every card and feedback
    item): else the cards issued to it could never be recorded (issue 17)."""
    try:
        storable(tenant)
    except ValueError:
        return False
    return len(tenant) <= CLIENT_CHARS
