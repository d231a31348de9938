"""What the gunicorn master does once, before it forks its workers (``serve --prod``).

Importing the application takes most of a worker's start (issue 20: 0.84-0.91 s of the
2.1 s to /readyz, in every worker at once on CPUs the workers share). Done here, in the
master, the workers inherit the imported modules with the fork, each page shared until
written, and only build their own app (knowledge base, database engine, thread pools,
card recorder: per process, never shared through a fork). The master also checks the
start-up settings (a bad one is one line and exit 2, before any worker boots) and applies
the database migrations once, instead of every worker racing to.

Both ways in run this: ``rls-cds serve --prod`` calls `prepare` before gunicorn's arbiter
logs its first line, and gunicorn's ``on_starting`` hook (cds_service.gunicorn_conf) calls
it for a plain ``gunicorn -c python:cds_service.gunicorn_conf ...``; the second call does
nothing. After an upgrade, restart the master: a HUP re-forks workers from the modules it
imported.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cds_service.settings import Settings

log = logging.getLogger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: Set for the workers once the master has migrated the store: they need not (Settings).
MIGRATED_VARIABLE = "RLS_CDS_MIGRATE_ON_START"

_own_metrics_dir: list[str] = []
_prepared: list[bool] = []


def metrics_directory() -> None:
    """Give the workers a metrics directory, emptied (values left by an earlier run would be
    added in). It must be set before prometheus_client is first imported: the client picks
    its multi-process value store at import."""
    if MULTIPROC_DIR not in os.environ:
        os.environ[MULTIPROC_DIR] = tempfile.mkdtemp(prefix="rls-cds-metrics-")
        _own_metrics_dir.append(os.environ[MULTIPROC_DIR])
    directory = Path(os.environ[MULTIPROC_DIR])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def prepare(settings: Settings) -> None:
    """Once per master: the metrics directory, the start-up checks (cli.InputError), the
    application's modules imported, the store migrated."""
    if _prepared:
        return
    _prepared.append(True)
    # The imports below allocate objects by the hundred thousand, all kept: the cyclic GC
    # would walk them again and again (about 150 ms of the master's CPU) for nothing.
    gc.disable()
    try:
        _prepare(settings)
    finally:
        # What the master built stays out of the workers' collections too: a collection in
        # a worker would otherwise touch, and so copy, every page the fork shares.
        gc.freeze()
        gc.enable()


def _prepare(settings: Settings) -> None:
    metrics_directory()
    from cds_service.cli import check_startup
    from cds_service.logs import configure as configure_logging

    try:
        check_startup(settings)
    except BaseException:
        cleanup()  # the master never starts: no on_exit to remove the directory
        raise
    configure_logging(settings.log_level)
    _import_application(settings)
    if settings.migrate_on_start:
        _migrate(settings)


def _import_application(settings: Settings) -> None:
    """The modules every worker imports when it creates its app, and those this
    configuration adds (each imported where it is used, so only when configured)."""
    import cds_service.app  # noqa: F401
    from cds_service.suggestions import load_models

    load_models()
    if settings.redis_url:
        import redis  # noqa: F401


def _migrate(settings: Settings) -> None:
    """Migrate the store once, here; the workers then skip it. A store that cannot be
    migrated now leaves it to the workers, as before (each retries on first use)."""
    from sqlalchemy.exc import SQLAlchemyError

    from cds_service.feedback.store import FeedbackStore
    from cds_service.store import make_engine

    engine = make_engine(settings)
    try:
        FeedbackStore(engine, secret=None).migrate()
    except SQLAlchemyError as exc:
        log.warning(
            "store not migrated by the gunicorn master; the workers try",
            extra={"error": type(exc).__name__},
        )
        return
    finally:
        engine.dispose()  # no pooled connection may cross the fork
    os.environ[MIGRATED_VARIABLE] = "false"
    log.info("store migrated by the gunicorn master")


def cleanup() -> None:
    """At the master's exit: remove the metrics directory it created."""
    for directory in _own_metrics_dir:
        shutil.rmtree(directory, ignore_errors=True)
