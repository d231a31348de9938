"""POST /cds-services/{id}/feedback: the spec's feedback endpoint (CDS Hooks 2.0, Feedback).

Authenticated like the hooks. Each item is validated (400 names the item and field), stored
once however often it is sent, and acknowledged only once stored: a store that cannot take
it answers 503, for the EHR to retry. A POST is stored whole or not at all: an item about a
card not issued to this client at this service is 404 (naming the item, never saying
whether the card exists elsewhere), an impossible outcomeTimestamp 400, and items beyond
the client's quota 429 with Retry-After.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from pydantic import ValidationError

from cds_service import metrics
from cds_service.api import runtime
from cds_service.api.hooks import read_json_body
from cds_service.api.security import authenticated_client
from cds_service.errors import QuotaExceeded, RequestInvalid, StoreUnavailable
from cds_service.hooks.wire import FeedbackRequest

bp = Blueprint("feedback", __name__)
log = logging.getLogger(__name__)


@bp.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str):
    rt = runtime()
    rt.evaluator.service(service_id)  # 404 before anything else
    client = authenticated_client()
    request = _parse(read_json_body())
    try:
        stored = rt.feedback.store_feedback(
            request.feedback, service_id, client, rt.evaluator.now()
        )
    except StoreUnavailable:
        metrics.STORE_FAILURES.labels("feedback").inc()
        raise
    except QuotaExceeded:
        metrics.FEEDBACK_REFUSED.labels("quota").inc(len(request.feedback))
        raise
    metrics.FEEDBACK_STORED.inc(stored.stored)
    log.info(
        "feedback stored",
        extra={
            "service": service_id,
            "received": stored.received,
            "stored": stored.stored,
            "already_stored": stored.already_stored,
        },
    )
    return jsonify(
        {
            "received": stored.received,
            "stored": stored.stored,
            "alreadyStored": stored.already_stored,
        }
    )


def _parse(body: object) -> FeedbackRequest:
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    try:
        return FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        details = [
            {"loc": _location(error["loc"]), "msg": error["msg"]}
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise RequestInvalid("the feedback does not follow CDS Hooks 2.0", details) from None


def _location(parts: tuple[int | str, ...]) -> str:
    """``feedback[3].outcome`` rather than ``feedback.3.outcome``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
