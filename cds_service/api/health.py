"""Liveness, readiness and metrics for orchestrators."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request

from cds_service import metrics
from cds_service.api import runtime

bp = Blueprint("health", __name__)
#: What the internal metrics port (RLS_CDS_METRICS_PORT) answers; everything else is 404 there.
INTERNAL_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


@bp.before_app_request
def _split_ports() -> None:
    """With a metrics port, /metrics is served there only and the hooks never are.

    SERVER_PORT is the port of the socket that accepted the connection (gunicorn and
    werkzeug take it from the listener, not from the Host header), so a caller cannot
    choose it."""
    metrics_port = runtime().settings.metrics_port
    if metrics_port is None:
        return
    internal = request.environ.get("SERVER_PORT") == str(metrics_port)
    if (request.path not in INTERNAL_PATHS) if internal else (request.path == "/metrics"):
        abort(404)


@bp.get("/healthz")
def healthz():
    """The process answers HTTP."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when the knowledge base is loaded, the store answers a query (within 1 s: a
    silent store is not ready) and the replay store (Redis, when configured) answers a ping.
    Not ready: 503 with Retry-After."""
    rt = runtime()
    checks = {
        "knowledge": bool(rt.knowledge.cards) and bool(rt.knowledge.value_sets),
        "store": rt.feedback.reachable(),
        "replay": rt.replay.reachable(),
    }
    ready = all(checks.values())
    response = jsonify({"status": "ready" if ready else "not-ready", "checks": checks})
    response.status_code = 200 if ready else 503
    if not ready:
        response.headers["Retry-After"] = "5"
    return response


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus text format: of every worker under gunicorn (see cds_service.metrics)."""
    page, content_type = metrics.exposition()
    return Response(page, content_type=content_type)
