"""Settings: one frozen object from RLS_CDS_* variables, with safe defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cds_service.settings import Settings, normalise_database_url


class TestSettings:
    def test_defaults_are_safe(self, monkeypatch):
        """Demo mode (no authentication) is never on unless asked for."""
        for name in ("RLS_CDS_DEMO", "DATABASE_URL", "RLS_CDS_DATABASE_URL"):
            monkeypatch.delenv(name, raising=False)
        settings = Settings()
        assert settings.demo is False
        assert settings.max_body_bytes == 5 * 1024 * 1024
        assert (settings.host, settings.port) == ("127.0.0.1", 8080)
        assert settings.effective_database_url.startswith("sqlite:///")

    def test_values_come_from_prefixed_environment(self, monkeypatch):
        monkeypatch.setenv("RLS_CDS_DEMO", "1")
        monkeypatch.setenv("RLS_CDS_PORT", "9090")
        monkeypatch.setenv("RLS_CDS_MAX_BODY_BYTES", "2048")
        settings = Settings()
        assert (settings.demo, settings.port, settings.max_body_bytes) == (True, 9090, 2048)

    def test_plain_database_url_is_honoured(self, monkeypatch):
        monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/cds")
        assert Settings().effective_database_url == "postgresql+psycopg://u@db:5432/cds"

    def test_settings_are_frozen(self):
        settings = Settings(demo=True)
        with pytest.raises(ValidationError):
            settings.demo = False  # type: ignore[misc]

    @pytest.mark.parametrize("field", [{"port": 0}, {"log_level": "LOUD"}, {"max_body_bytes": 1}])
    def test_invalid_values_are_refused(self, field):
        with pytest.raises(ValidationError):
            Settings(**field)

    def test_security_defaults_are_closed(self, monkeypatch):
        """No trusted client, open discovery (the spec allows it), no CORS, replay in memory."""
        for name in ("RLS_CDS_TRUSTED_CLIENTS", "REDIS_URL", "RLS_CDS_REDIS_URL"):
            monkeypatch.delenv(name, raising=False)
        settings = Settings()
        assert settings.trusted_clients is None
        assert settings.public_base_url is None
        assert settings.protect_discovery is False
        assert settings.cors_origins == ()
        assert (settings.redis_url, settings.redis_prefix) == (None, "rls-cds")
        assert 0 < settings.jwt_leeway_s <= 300

    def test_security_values_come_from_the_environment(self, monkeypatch):
        monkeypatch.setenv("RLS_CDS_TRUSTED_CLIENTS", "/etc/rls-cds/clients.json")
        monkeypatch.setenv("RLS_CDS_PUBLIC_BASE_URL", "https://cds.example.org/rls/")
        monkeypatch.setenv("RLS_CDS_PROTECT_DISCOVERY", "true")
        monkeypatch.setenv("RLS_CDS_CORS_ORIGINS", "https://sandbox.cds-hooks.org, https://a.b/")
        monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
        monkeypatch.setenv("RLS_CDS_REDIS_PREFIX", "rls-cds-staging")
        settings = Settings()
        assert settings.trusted_clients == Path("/etc/rls-cds/clients.json")
        assert settings.public_base_url == "https://cds.example.org/rls"
        assert settings.protect_discovery is True
        assert settings.cors_origins == ("https://sandbox.cds-hooks.org", "https://a.b")
        assert (settings.redis_url, settings.redis_prefix) == (
            "redis://cache:6379/1",
            "rls-cds-staging",
        )

    @pytest.mark.parametrize(
        "field",
        [
            {"public_base_url": "cds.example.org"},
            {"public_base_url": "https://cds.example.org/?x=1"},
            {"cors_origins": "*"},
            {"cors_origins": "https://a.example/path"},
            {"cors_origins": "null"},
            {"jwt_leeway_s": 3600},
            {"redis_prefix": ""},
        ],
    )
    def test_invalid_security_values_are_refused(self, field):
        with pytest.raises(ValidationError):
            Settings(**field)

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("postgresql://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
            ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
            ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
            ("sqlite:///x.db", "sqlite:///x.db"),
        ],
    )
    def test_database_urls_are_normalised_for_psycopg(self, url, expected):
        assert normalise_database_url(url) == expected


def test_readme_documents_every_setting():
    """The configuration table in README.md names each setting's environment variable."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for name in Settings.model_fields:
        assert f"`RLS_CDS_{name.upper()}`" in table, name
    # read by the gunicorn configuration (serve --prod), not by Settings
    for variable in (
        "RLS_CDS_WORKERS",
        "RLS_CDS_THREADS",
        "RLS_CDS_BIND",
        "PROMETHEUS_MULTIPROC_DIR",
    ):
        assert f"`{variable}`" in table, variable
