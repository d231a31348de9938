"""GET /openapi.json: the OpenAPI 3.1 description of this deployment (every mode)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from cds_service.api import runtime
from cds_service.hooks.openapi import openapi_document

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi():
    rt = runtime()
    return jsonify(openapi_document(rt.services, rt.settings.demo, rt.settings.protect_discovery))
