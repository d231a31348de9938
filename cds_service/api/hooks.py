"""POST /cds-services/{id}: parse the HTTP request, call the evaluator, log one line."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid

import orjson
from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from cds_service import metrics
from cds_service.api import runtime
from cds_service.api.security import authenticated_client
from cds_service.clinical.reader import NumberOutOfRange
from cds_service.errors import RequestInvalid
from cds_service.evaluation import Outcome
from cds_service.explain import log_codes
from cds_service.hooks.body import decode_hook_body

bp = Blueprint("hooks", __name__)
log = logging.getLogger(__name__)


@bp.before_request
def _start_clock() -> None:
    g.hook_started = time.perf_counter()


@bp.post("/cds-services/<service_id>")
def call_hook(service_id: str):
    rt = runtime()
    rt.evaluator.service(service_id)  # 404 before anything else
    client = authenticated_client()
    body = read_hook_body()
    g.hook_instance = _hook_instance(body)
    try:
        outcome = rt.evaluator.evaluate(service_id, body, client)
    except NumberOutOfRange as refused:  # read from the typed body: as json's parse refuses it
        raise RequestInvalid(str(refused)) from None
    g.hook_outcome = outcome
    if outcome.answered_at is not None and outcome.patient is not None:
        rt.feedback.record(
            service_id,
            outcome.hook_instance,
            outcome.patient,
            outcome.response["cards"],
            outcome.answered_at,
        )
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "hook explained",
            extra={
                "hook_instance": outcome.hook_instance,
                "decisions": log_codes(outcome.decisions),  # reason codes only: no values
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
    if outcome.gathered.truncated:
        log.warning(
            "FHIR search cut short; results beyond the pages read were not seen",
            extra={
                "hook_instance": outcome.hook_instance,
                "cut_short": list(outcome.gathered.truncated),
                "skipped_entries": dict(outcome.gathered.skipped),
            },
        )
    if outcome.report.skipped_total:
        log.warning(
            "skipped unreadable resources",
            extra={"hook_instance": outcome.hook_instance, "skipped": dict(outcome.report.skipped)},
        )
    return jsonify(outcome.response)


@bp.after_request
def _account(response: Response) -> Response:
    """One log line and the metrics for every hook call, answered or refused.

    Only ids of the call, counts, topics and the status: never patient data or tokens. A
    CORS preflight (OPTIONS, answered by flask-cors) is not a hook call: neither logged nor
    counted.
    """
    if request.method == "OPTIONS":
        return response
    service_id = (request.view_args or {}).get("service_id")
    known = service_id if service_id in runtime().services else None
    outcome: Outcome | None = g.get("hook_outcome")
    topics = outcome.topics if outcome and response.status_code == 200 else []
    skipped = dict(outcome.report.skipped) if outcome else {}
    seconds = time.perf_counter() - g.get("hook_started", time.perf_counter())
    log.info(
        "hook answered",
        extra={
            "hook_instance": outcome.hook_instance if outcome else g.get("hook_instance"),
            "service": known,
            "status": response.status_code,
            "cards": len(topics),
            "topics": topics,
            "skipped_resources": sum(skipped.values()),
            "duration_ms": round(seconds * 1000, 1),
        },
    )
    metrics.observe_hook(known or "unknown", response.status_code, seconds, topics, skipped)
    return response


def _hook_instance(body: object) -> str | None:
    """The request's hookInstance when it is a UUID (anything else might be patient text)."""
    value = body.get("hookInstance") if isinstance(body, dict) else None
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def read_hook_body() -> object:
    """A hook call's body, decoded once (cds_service.hooks.body), or as read_json_body
    reads it when that decode leaves it to the generic parse."""
    raw = _json_body()
    decoded = decode_hook_body(raw)
    return decoded if decoded is not None else parse_json(raw)


def read_json_body() -> object:
    """The body as JSON, or RequestInvalid saying why not (never echoing the body)."""
    return parse_json(_json_body())


def _json_body() -> bytes:
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise RequestInvalid("Content-Type must be application/json")
    return _body()


def parse_json(raw: bytes) -> object:
    """`raw` parsed as Python's json would, or RequestInvalid saying why not."""
    if raw.translate(_DIGITS_AS_ZERO).find(_LONG_INTEGER) < 0:
        try:  # orjson parses 1.5x as fast; anything it refuses gets json's exact answer
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except UnicodeDecodeError:
        raise RequestInvalid("the body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise RequestInvalid(f"the body is not valid JSON (line {exc.lineno})") from None
    except RecursionError:
        raise RequestInvalid("the body nests too deeply") from None
    except ValueError:  # an integer beyond Python's 4300-digit conversion limit
        raise RequestInvalid("the body holds a number too long to read") from None


def _body() -> bytes:
    """The raw body; 413 above max_body_bytes however it is framed.

    Flask refuses a Content-Length above the limit at once. A chunked body (no
    Content-Length) is read through werkzeug's limited stream, which stops silently at the
    limit: one byte more from the server's own stream tells a body of exactly the limit
    from a longer one, which would otherwise be cut and called "not valid JSON".
    """
    raw = request.get_data(cache=False)
    limit = request.max_content_length
    cut = limit is not None and request.content_length is None and len(raw) >= limit
    if cut and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return raw


#: orjson reads an integer beyond 64 bits as a float, json as an int: a body with a run of
#: 19 digits (found cheaply on a copy with every digit turned into 0) goes to json.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_INTEGER = b"0" * 19


def _finite_float(text: str) -> float:
    """1e400 is valid JSON but no lab value: as infinity it would make or hide a card."""
    value = float(text)
    if not math.isfinite(value):
        raise RequestInvalid("the body holds a number too large to read")
    return value


def _reject_constant(name: str) -> float:
    """Python's json accepts NaN and Infinity; JSON does not, and neither do we."""
    raise RequestInvalid(f"the body is not valid JSON ({name} is not a JSON number)")
