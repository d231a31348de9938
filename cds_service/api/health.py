"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from flask import Blueprint, jsonify

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
