"""POST /cds-services/{id}: parse the HTTP request, call the evaluator, log one line."""

from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, jsonify, request

from cds_service.api import runtime
from cds_service.api.security import authenticated_client
from cds_service.errors import RequestInvalid

bp = Blueprint("hooks", __name__)
log = logging.getLogger(__name__)


@bp.post("/cds-services/<service_id>")
def call_hook(service_id: str):
    started = time.perf_counter()
    rt = runtime()
    rt.evaluator.service(service_id)  # 404 before anything else
    client = authenticated_client()
    outcome = rt.evaluator.evaluate(service_id, read_json_body(), client.fhir_servers)
    if outcome.answered_at is not None:
        rt.feedback.record(
            service_id,
            outcome.hook_instance,
            outcome.patient_id,
            outcome.response["cards"],
            outcome.answered_at,
        )
    log.info(
        "hook answered",
        extra={
            "hook_instance": outcome.hook_instance,
            "service": service_id,
            "cards": len(outcome.response["cards"]),
            "topics": outcome.topics,
            "skipped_resources": outcome.report.skipped_total,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    if outcome.gathered.failed:
        log.warning(
            "FHIR data not read; rules needing it were skipped",
            extra={
                "hook_instance": outcome.hook_instance,
                "not_read": {key: str(error) for key, error in outcome.gathered.failed.items()},
            },
        )
    if outcome.report.skipped_total:
        log.warning(
            "skipped unreadable resources",
            extra={"hook_instance": outcome.hook_instance, "skipped": dict(outcome.report.skipped)},
        )
    return jsonify(outcome.response)


def read_json_body() -> object:
    """The body as JSON, or RequestInvalid saying why not (never echoing the body)."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise RequestInvalid("Content-Type must be application/json")
    raw = request.get_data(cache=False)  # 413 from Flask above max_body_bytes
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise RequestInvalid("the body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise RequestInvalid(f"the body is not valid JSON (line {exc.lineno})") from None
    except RecursionError:
        raise RequestInvalid("the body nests too deeply") from None


def _reject_constant(name: str) -> float:
    """Python's json accepts NaN and Infinity; JSON does not, and neither do we."""
    raise RequestInvalid(f"the body is not valid JSON ({name} is not a JSON number)")
