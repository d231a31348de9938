"""GET /cds-services: the discovery document."""

from __future__ import annotations

from flask import Blueprint, jsonify

from cds_service.api import runtime
from cds_service.api.security import authenticated_client

bp = Blueprint("discovery", __name__)


@bp.get("/cds-services")
def discovery():
    rt = runtime()
    if rt.settings.protect_discovery:
        authenticated_client()
    return jsonify(
        {"services": [s.discovery_entry(rt.settings.demo) for s in rt.services.values()]}
    )
