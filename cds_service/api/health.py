"""Liveness, readiness and metrics for orchestrators."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from cds_service import metrics
from cds_service.api import runtime
from cds_service.store import reachable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers HTTP."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when the knowledge base is loaded, the store answers a query and the replay
    store (Redis, when configured) answers a ping."""
    rt = runtime()
    checks = {
        "knowledge": bool(rt.knowledge.cards) and bool(rt.knowledge.value_sets),
        "store": reachable(rt.database),
        "replay": rt.replay.reachable(),
    }
    ready = all(checks.values())
    response = jsonify({"status": "ready" if ready else "not-ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus text format: of every worker under gunicorn (see cds_service.metrics)."""
    page, content_type = metrics.exposition()
    return Response(page, content_type=content_type)
