"""All configuration, read from the environment (prefix ``RLS_CDS_``) into one frozen object.

Defaults are safe for production: the demo mode, which switches off client authentication,
must be asked for. The object is created once and passed down; nothing imports a global.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


def normalise_database_url(url: str) -> str:
    """Map the usual ``postgresql://`` form to the psycopg 3 driver SQLAlchemy should use."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
