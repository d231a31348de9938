"""All configuration, read from the environment (prefix ``RLS_CDS_``) into one frozen object.

Defaults are safe for production: the demo mode, which switches off client authentication,
must be asked for. The object is created once and passed down; nothing imports a global.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cds_service.outbound import UrlRefused, prefix_target

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024


class Settings(BaseSettings):
    """Every setting the service reads; each field is also an ``RLS_CDS_<NAME>`` variable."""

    model_config = SettingsConfigDict(env_prefix="RLS_CDS_", frozen=True, extra="ignore")

    host: str = Field("127.0.0.1", description="Interface `rls-cds serve` binds to.")
    port: int = Field(8080, ge=1, le=65535, description="Port `rls-cds serve` listens on.")
    demo: bool = Field(
        False,
        description="Demo mode: no client authentication (loudly logged). Never in production.",
    )
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES, ge=1024, description="Largest request body accepted (413 above)."
    )
    cards_dir: Path | None = Field(
        None, description="Knowledge base directory; default: the one installed with the package."
    )
    data_dir: Path = Field(
        Path("var"), description="Where the default SQLite database file is created."
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("RLS_CDS_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL of the store; default: SQLite file in data_dir.",
    )
    log_level: str = Field("INFO", description="Python logging level name.")
    fhir_server_allowlist: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description=(
            "URL prefixes of FHIR servers the service may query (comma-separated); "
            "demo mode adds http://127.0.0.1:* and http://localhost:* (any port)."
        ),
    )
    hook_deadline_s: float = Field(
        2.5, gt=0, le=60, description="A hook answers within this many seconds, with what it has."
    )
    fhir_connect_timeout_s: float = Field(
        1.0, gt=0, le=30, description="Connect timeout of each FHIR request."
    )
    fhir_max_pages: int = Field(
        10, ge=1, le=1000, description="Most search pages followed per prefetch key."
    )
    fhir_max_parallel: int = Field(
        24, ge=1, le=64, description="FHIR requests in flight at once, across all hooks."
    )
    fhir_server_share: int = Field(
        10,
        ge=1,
        le=64,
        description=(
            "FHIR requests one FHIR server (origin and path) may have in flight at once, "
            "at most half of fhir_max_parallel (room for the others); a hook that gets no "
            "slot before its deadline does without the data."
        ),
    )
    fhir_client_share: int = Field(
        16,
        ge=1,
        le=64,
        description=(
            "FHIR requests one client (JWT issuer) may have in flight at once, at most "
            "fhir_max_parallel."
        ),
    )
    fhir_answer_bytes: int = Field(
        2 * 1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="Largest FHIR answer read (one read or search page); larger: not read.",
    )
    fhir_hook_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        le=256 * 1024 * 1024,
        description="FHIR answer bytes one hook may read across all its fetches.",
    )
    fhir_max_entries: int = Field(
        2000,
        ge=1,
        le=100_000,
        description="Entries one search keeps (all pages); the rest are skipped and reported.",
    )

    trusted_clients: Path | None = Field(
        None,
        description=(
            "JSON file listing the trusted CDS clients (EHRs): issuer, keys, FHIR servers; "
            "unset: every call is refused with 401 (outside demo mode)."
        ),
    )
    public_base_url: str | None = Field(
        None,
        description=(
            "Externally visible base URL (e.g. https://cds.example.org); a JWT's `aud` must be "
            "it plus the path called. Default: the URL of the request as received."
        ),
    )
    protect_discovery: bool = Field(
        False, description="Require a client JWT on GET /cds-services too (the spec allows both)."
    )
    jwt_leeway_s: int = Field(
        60, ge=0, le=300, description="Clock skew allowed on a JWT's `exp`, `iat` and `nbf`."
    )
    jwks_cache_ttl_s: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="How long a fetched client JWKS is used before refetching.",
    )
    jwks_refetch_interval_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="Least time between two fetches of one JWKS caused by an unknown `kid`.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("RLS_CDS_REDIS_URL", "REDIS_URL"),
        description=(
            "Redis shared by all instances for JWT replay protection (`jti`); default: "
            "in memory. Redis unreachable: authenticated calls get 503 (fail closed)."
        ),
    )
    redis_prefix: str = Field(
        "rls-cds",
        min_length=1,
        description="Prefix of this deployment's Redis keys (several deployments, one Redis).",
    )
    replay_cache_size: int = Field(
        100_000,
        ge=100,
        description="Most unexpired `jti` values the in-memory replay store holds (503 when full).",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description=(
            "Browser origins allowed by CORS (comma-separated, e.g. "
            "https://sandbox.cds-hooks.org); default: none."
        ),
    )
    patient_key_secret: SecretStr | None = Field(
        None,
        description=(
            "Secret of the HMAC-SHA256 pseudonym under which the store keeps patient ids; "
            "default: a random key kept in data_dir (SQLite only; set it with DATABASE_URL)."
        ),
    )
    suppression_days: int = Field(
        90,
        ge=0,
        description="Days a topic overridden as handled or declined stays hidden for a patient.",
    )
    suppressing_reasons: Annotated[tuple[str, ...], NoDecode] = Field(
        ("already-addressed", "patient-declined"),
        description="Override reason codes that suppress the topic for the patient.",
    )
    suppression_cache_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description=(
            "Seconds a worker remembers that nothing is suppressed for a patient (0: off). "
            "Feedback stored through that worker ends it at once; feedback stored through "
            "another worker or instance shows there at most this much later (until then "
            "the card may show again, which is safe; nothing is ever hidden from memory)."
        ),
    )
    feedback_quota_items: int = Field(
        10_000,
        ge=1,
        description=(
            "Feedback items one client (issuer and tenant) may send per quota window "
            "(429 with Retry-After beyond; shared through Redis when REDIS_URL is set)."
        ),
    )
    feedback_quota_window_s: float = Field(
        60.0, gt=0, le=86400, description="The window of the feedback quota, in seconds."
    )
    feedback_clock_skew_s: float = Field(
        300.0,
        ge=0,
        le=3600,
        description=(
            "Clock skew allowed between the EHR and the service on a feedback item's "
            "outcomeTimestamp (later than receipt, or earlier than the card's issue)."
        ),
    )
    domain_cpu_budget_s: float = Field(
        0.5,
        gt=0,
        le=30,
        description=(
            "CPU seconds one hook call may spend reading the patient's data; resources "
            "beyond it are not read (rules needing them stay silent), never a hang."
        ),
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=(
            "Under `serve --prod`, a second port that answers only /metrics, /healthz and "
            "/readyz, while /metrics answers 404 on the main port (keep it off the public "
            "route). Default: /metrics on the main port."
        ),
    )
    store_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description=(
            "Longest wait for the store: PostgreSQL statement_timeout and lock_timeout, pool "
            "checkout, SQLite busy timeout; a feedback POST (or a demo-page store call) that "
            "the store does not answer within it is 503 with Retry-After."
        ),
    )
    suppression_budget_s: float = Field(
        0.5,
        gt=0,
        le=10,
        description=(
            "Longest wait of a patient-view hook for its suppression read; beyond it the hook "
            "answers without suppression (counted as `suppression-timeout`)."
        ),
    )
    recorder_flush_s: float = Field(
        10.0,
        ge=0,
        le=60,
        description=(
            "On a graceful stop, the longest wait for the issued cards still queued to be "
            "written; those left are logged and counted (gunicorn's graceful_timeout leaves "
            "room for it)."
        ),
    )
    migrate_on_start: bool = Field(
        True, description="Apply the store's database migrations at start-up."
    )

    @field_validator("suppressing_reasons", mode="before")
    @classmethod
    def _split_reasons(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("fhir_server_allowlist", "cors_origins", mode="before")
    @classmethod
    def _split_prefixes(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("fhir_server_allowlist")
    @classmethod
    def _fhir_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            try:
                prefix_target(prefix)
            except UrlRefused as refused:
                raise ValueError(f"{prefix!r} is not a usable URL prefix: {refused}") from None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        split = urlsplit(value.strip())
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if split.query or split.fragment or split.username:
            raise ValueError("must not carry a query, fragment or credentials")
        return value.strip().rstrip("/")

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Exact origins only: flask-cors would read ``*`` or brackets as a regular expression
        (``https://*.hospital.org`` then matches nothing, or more than meant)."""
        return tuple(_origin(origin) for origin in value)

    @property
    def effective_fhir_allowlist(self) -> tuple[str, ...]:
        """The configured prefixes, plus loopback in demo mode (local sandboxes)."""
        demo = ("http://127.0.0.1:*", "http://localhost:*") if self.demo else ()
        return self.fhir_server_allowlist + demo

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the SQLite file under ``data_dir``."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'rls-cds.sqlite3').resolve()}"


_ORIGIN = re.compile(r"^(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::([0-9]{1,5}))?$")


def _origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, or ValueError saying what is wrong."""
    written = origin.strip().rstrip("/")
    if "*" in written:
        raise ValueError(
            f"{written!r} has a wildcard; browsers send exact origins, so list each one "
            "(e.g. https://ehr1.hospital.org, https://ehr2.hospital.org)"
        )
    found = _ORIGIN.match(written.lower())
    if found is None or (found.group(3) and not 0 < int(found.group(3)) < 65536):
        raise ValueError(
            f"{written!r} is not an origin: scheme://host[:port] with a DNS name or IPv4 "
            "address, no path, query, credentials or wildcard"
        )
    return written.lower()


def normalise_database_url(url: str) -> str:
    """Map the usual ``postgresql://`` form to the psycopg 3 driver SQLAlchemy should use."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
