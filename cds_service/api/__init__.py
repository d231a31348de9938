"""HTTP adapters: one blueprint per concern, all reading the app's Runtime."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Engine as DatabaseEngine

from cds_service.auth import Authenticator
from cds_service.auth.replay import ReplayStore
from cds_service.evaluation import Evaluator
from cds_service.feedback import FeedbackService
from cds_service.hooks.services import ServiceDefinition
from cds_service.knowledge import Knowledge
from cds_service.settings import Settings

EXTENSION = "rls_cds"


@dataclass(frozen=True)
class Runtime:
    """Everything a request handler needs, built once by create_app."""

    settings: Settings
    knowledge: Knowledge
    services: dict[str, ServiceDefinition]
    evaluator: Evaluator
    authenticator: Authenticator
    database: DatabaseEngine
    replay: ReplayStore
    feedback: FeedbackService


def runtime() -> Runtime:
    """The Runtime of the app serving the current request."""
    return current_app.extensions[EXTENSION]
