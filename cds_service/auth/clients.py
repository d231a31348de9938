"""The trusted CDS clients (EHRs), read and validated from the operator's JSON file.

The file is a JSON list; each entry names an issuer, where its signing keys come from
(``jwks_url`` or an inline ``jwks``, plus the exact URLs a token's ``jku`` may name), an
optional tenant and the FHIR servers the client may name. Every URL must pass the service's
URL discipline (cds_service.outbound) and be written in its canonical form, so that what the
operator wrote is exactly what is fetched. A bad file stops the start-up with one message
per problem, each naming the entry and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from cds_service.auth.keys import KeySet
from cds_service.outbound import UrlRefused, prefix_target, target
from cds_service.stored_text import CLIENT_CHARS, storable

LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}


class TrustedClientsInvalid(ValueError):
    """Raised at start-up when the trusted-clients file cannot be used; says why."""


def _key_url(url: str) -> str:
    """A URL keys may be fetched from: https (http only on the loopback interface), no
    query, fragment, credentials, dot segments or escapes, written as it will be sent."""
    try:
        found = target(url)
    except UrlRefused as refused:
        raise ValueError(f"{url!r}: {refused}") from None
    if not (found.scheme == "https" or found.host in LOOPBACK):
        raise ValueError(f"{url!r} must be an https URL (http only on loopback)")
    if found.url != url:
        raise ValueError(f"{url!r} must be written as it is sent: {found.url!r}")
    return url


def _fhir_prefix(url: str) -> str:
    try:
        prefix_target(url)
    except UrlRefused as refused:
        raise ValueError(f"{url!r} is not a usable FHIR server prefix: {refused}") from None
    return url.rstrip("/")


class TrustedClient(BaseModel):
    """One EHR allowed to call the service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iss: str = Field(min_length=1, max_length=CLIENT_CHARS, description="The `iss` its JWTs carry.")
    jwks_url: str | None = Field(None, description="Where its JWK Set is published.")
    jwks: dict[str, Any] | None = Field(None, description="Its JWK Set, inline.")
    jku_allowlist: tuple[str, ...] = Field(
        (), description="The exact URLs a token's `jku` header may name (no prefixes)."
    )
    tenant: str | None = Field(
        None, min_length=1, max_length=CLIENT_CHARS, description="Its tenant, when it sends one."
    )
    fhir_servers: tuple[str, ...] = Field(
        (), description="FHIR server URL prefixes it may name as `fhirServer`."
    )

    @field_validator("iss", "tenant")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        """Both are stored with every card and feedback item (cds_service.stored_text)."""
        return None if value is None else storable(value)

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        return None if value is None else _key_url(value)

    @field_validator("jku_allowlist")
    @classmethod
    def _jku_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_key_url(url) for url in value)

    @field_validator("fhir_servers")
    @classmethod
    def _fhir_servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_fhir_prefix(url) for url in value)

    @field_validator("jwks")
    @classmethod
    def _inline_jwks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            KeySet.parse(value, strict=True)  # raises ValueError naming the bad key
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedClient:
        if (self.jwks_url is None) == (self.jwks is None):
            raise ValueError("give exactly one of jwks_url or jwks")
        return self


class TrustedClients(Mapping[str, TrustedClient]):
    """The trusted clients by issuer."""

    def __init__(self, clients: list[TrustedClient]):
        self._by_iss = {client.iss: client for client in clients}

    def __getitem__(self, iss: str) -> TrustedClient:
        return self._by_iss[iss]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_iss)

    def __len__(self) -> int:
        return len(self._by_iss)

    @property
    def key_urls(self) -> dict[str, tuple[str, ...]]:
        """Every URL each client's keys may be fetched from, by issuer."""
        return {
            iss: tuple(url for url in dict.fromkeys((c.jwks_url, *c.jku_allowlist)) if url)
            for iss, c in self._by_iss.items()
        }

    @property
    def fhir_servers(self) -> tuple[str, ...]:
        """Every FHIR server prefix any trusted client may name."""
        return tuple(dict.fromkeys(p for c in self._by_iss.values() for p in c.fhir_servers))


_LIST = TypeAdapter(list[TrustedClient])


def load_trusted_clients(path: Path) -> TrustedClients:
    """Read and check the trusted-clients file, or TrustedClientsInvalid naming each problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrustedClientsInvalid(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrustedClientsInvalid(f"{path}: not valid JSON ({exc})") from None
    return parse_trusted_clients(data, str(path))


def parse_trusted_clients(data: Any, source: str = "trusted clients") -> TrustedClients:
    """Validate the decoded file content (a list of client entries)."""
    if not isinstance(data, list):
        raise TrustedClientsInvalid(f"{source}: must be a JSON list of client entries")
    if not data:
        raise TrustedClientsInvalid(
            f"{source}: lists no clients (leave RLS_CDS_TRUSTED_CLIENTS unset to refuse all calls)"
        )
    try:
        clients = _LIST.validate_python(data)
    except ValidationError as exc:
        problems = [_describe(error, data) for error in exc.errors(include_url=False)]
        raise TrustedClientsInvalid(f"{source}: " + "; ".join(problems)) from None
    seen: set[str] = set()
    for index, client in enumerate(clients):
        if client.iss in seen:
            raise TrustedClientsInvalid(f"{source}: entry {index}: iss {client.iss!r} repeats")
        seen.add(client.iss)
    return TrustedClients(clients)


def _describe(error: Any, data: list[Any]) -> str:
    """'entry 1 (iss 'https://ehr'): jwks_url: Value error, ...' for one validation error."""
    index, *field = error["loc"]
    entry = data[index] if isinstance(index, int) and index < len(data) else None
    iss = entry.get("iss") if isinstance(entry, dict) else None
    where = f"entry {index}" + (f" (iss {iss!r})" if isinstance(iss, str) else "")
    name = ".".join(str(part) for part in field) or "entry"
    return f"{where}: {name}: {error['msg']}"
