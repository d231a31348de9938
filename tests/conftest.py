"""Fixture chain: settings -> app -> client, on a temp data dir and a fixed clock."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.settings import Settings
from tests.builders import NOW


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(demo=True, data_dir=tmp_path)


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings, clock=lambda: NOW)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
