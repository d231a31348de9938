"""An app whose store writes slowly (issue 17, point 5): for gunicorn in test_graceful_stop.

gunicorn loads ``tests.operations.slow_store_app:create_app()`` in its worker; every write of
issued cards then waits ``SLOW_STORE_WRITE_S`` (environment, seconds) first, so that cards
queue up behind it and a SIGTERM finds them still queued.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from flask import Flask

from cds_service import app as service_app
from cds_service.feedback.store import FeedbackStore, IssuedCards


def create_app() -> Flask:
    """The service's app over a store whose card writes are slow."""
    delay_s = float(os.environ.get("SLOW_STORE_WRITE_S", "1.0"))
    record = FeedbackStore.record

    def slow_record(self: FeedbackStore, answers: Sequence[IssuedCards]) -> None:
        time.sleep(delay_s)
        record(self, answers)

    FeedbackStore.record = slow_record  # type: ignore[method-assign]  # this worker only
    return service_app.create_app()
