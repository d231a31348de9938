"""The service's database (SQLite file by default, PostgreSQL with DATABASE_URL).

Only reachability is needed so far (readiness); the feedback store builds on this engine.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service.settings import Settings


def make_engine(settings: Settings) -> Engine:
    """An engine for the configured database; creates the SQLite directory when needed."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return create_engine(settings.effective_database_url, pool_pre_ping=True)


def reachable(engine: Engine) -> bool:
    """True when a trivial query succeeds."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
