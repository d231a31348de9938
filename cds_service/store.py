"""The service's database (SQLite file by default, PostgreSQL with DATABASE_URL).

The feedback store (cds_service/feedback) builds on this engine; readiness checks it.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from cds_service.settings import Settings


def make_engine(settings: Settings) -> Engine:
    """An engine for the configured database; creates the SQLite directory when needed.

    An in-memory SQLite database (``sqlite://``, tests and one-shot commands) exists once per
    connection, so all threads share one connection to it.
    """
    url = settings.effective_database_url
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if url in ("sqlite://", "sqlite:///:memory:"):
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    return create_engine(url, pool_pre_ping=True)


def reachable(engine: Engine) -> bool:
    """True when a trivial query succeeds."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
