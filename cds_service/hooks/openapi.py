"""The OpenAPI 3.1 description of the service, generated from the pydantic wire models.

Request bodies are the models the service validates with (``HookRequest`` with the hook's
context model, ``FeedbackRequest``); responses are the answer models in ``wire.py``. The
document describes the deployment that serves it: the services it offers and whether calls
need a client JWT (not in demo mode).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cds_service.hooks import wire
from cds_service.hooks.services import ServiceDefinition
from cds_service.resources import shipped_dir

REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "cdsHooksJwt"

_REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    wire.HookRequest,
    *wire.CONTEXT_MODELS.values(),
    wire.FeedbackRequest,
)
_RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    wire.DiscoveryResponse,
    wire.HookResponse,
    wire.FeedbackResponse,
    wire.ErrorResponse,
    wire.HealthResponse,
    wire.ReadinessResponse,
)
#: Statuses a hook call answers besides 200, and when.
_HOOK_ERRORS = {
    "400": "Not a valid CDS Hooks request for this hook (the body names the fields), or "
    "credentials outside one Authorization header.",
    "401": "No client JWT, or one that is not acceptable (not in demo mode).",
    "412": "Data the rules need is neither prefetched nor fetchable.",
    "413": "The body is larger than the configured limit.",
    "429": "The client holds its share of unexpired tokens; retry after Retry-After.",
    "431": "The Authorization header is longer than any client JWT accepted.",
    "503": "A store the call needs cannot be reached; retry later.",
}
#: One shipped example request per hook (fhir_fixtures/requests/), shown as its example.
EXAMPLES = {
    "patient-view": "patient-view-rls-low-ferritin",
    "order-select": "order-select-rls-gabapentin-ckd-pregabalin",
    "order-sign": "order-sign-rls-gabapentin-ckd-pregabalin",
}
#: What a schema-valid request must also satisfy and JSON Schema cannot state (it depends on
#: the deployment, on other fields' values or on the time of receipt). Each broken rule is
#: refused with its status, naming the field. The document lists them per operation
#: (``x-rules-beyond-schema``, and in words in the description) for integrators and for the
#: fuzzing of `make bench`, which accepts these refusals of schema-valid requests and no other.
HOOK_RULES: tuple[dict[str, Any], ...] = (
    {
        "field": "prefetch",
        "status": 412,
        "rule": "the prefetch holds every key the rules need, or fhirServer names a server "
        "that can provide the missing ones",
    },
    {
        "field": "fhirServer",
        "status": 400,
        "rule": "when data must be fetched, fhirServer is under a prefix of this deployment's "
        "FHIR allow-list and, for a client bound to FHIR servers, one of them",
    },
)
ORDER_SELECT_RULES: tuple[dict[str, Any], ...] = (
    {
        "field": "context.selections",
        "status": 400,
        "rule": "each selection names a draft order of context.draftOrders (its Type/id, or "
        "the entry's fullUrl)",
    },
)
FEEDBACK_RULES: tuple[dict[str, Any], ...] = (
    {
        "field": "outcomeTimestamp",
        "status": 400,
        "rule": "no later than the item's receipt and no earlier than its card's issue, each "
        "within the allowed clock skew",
    },
)
_FEEDBACK_ERRORS = {
    "400": "Not valid CDS Hooks feedback (the body names the item and field), an "
    "outcomeTimestamp later than now or earlier than its card, or credentials outside one "
    "Authorization header.",
    "401": "No client JWT, or one that is not acceptable (not in demo mode).",
    "404": "No service with that id, or a card not issued to this client at this service "
    "(the body names the item).",
    "413": "The body is larger than the configured limit.",
    "429": "The client's feedback quota is used up; retry after Retry-After.",
    "431": "The Authorization header is longer than any client JWT accepted.",
    "503": "The store cannot take the items now, or their cards are still being recorded; "
    "nothing was acknowledged, retry later.",
}


def _package_version() -> str:
    try:
        return version("rls-cds")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "0.0.0"


def _schemas() -> dict[str, Any]:
    """Every model's JSON Schema (2020-12, as OpenAPI 3.1 uses), keyed by model name."""
    models = [(m, "validation") for m in _REQUEST_MODELS]
    models += [(m, "serialization") for m in _RESPONSE_MODELS]
    _, top = models_json_schema(models, ref_template=REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = top["$defs"]
    for hook, context in wire.CONTEXT_MODELS.items():
        request = copy.deepcopy(schemas["HookRequest"])
        request["title"] = f"{context.__name__.removesuffix('Context')}Request"
        request["description"] = f"A CDS Hooks 2.0 `{hook}` request."
        request["properties"]["hook"] = {"type": "string", "const": hook}
        request["properties"]["context"] = {"$ref": REF.format(model=context.__name__)}
        schemas[request["title"]] = request
    return schemas


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=schema_name)}}},
    }


def _errors(statuses: Mapping[str, str]) -> dict[str, Any]:
    errors = {status: _json("ErrorResponse", text) for status, text in statuses.items()}
    errors["default"] = _json("ErrorResponse", "Any other error, with the same body.")
    return errors


def _example(hook: str) -> dict[str, Any]:
    """The shipped example request of the hook, as an OpenAPI ``examples`` entry."""
    name = EXAMPLES.get(hook)
    path = shipped_dir("fhir_fixtures") / "requests" / f"{name}.json"
    if name is None or not path.is_file():
        return {}
    return {
        name: {
            "summary": f"fhir_fixtures/requests/{name}.json",
            "value": json.loads(path.read_text("utf-8")),
        }
    }


def rules_beyond_schema(hook: str | None) -> tuple[dict[str, Any], ...]:
    """The rules of HOOK_RULES and its kin that apply to a hook's requests (None: feedback)."""
    if hook is None:
        return FEEDBACK_RULES
    return HOOK_RULES + (ORDER_SELECT_RULES if hook == "order-select" else ())


def _with_rules(description: str, hook: str | None) -> dict[str, Any]:
    """The operation's description with its rules beyond the schema, in words and as data."""
    rules = rules_beyond_schema(hook)
    words = "; ".join(f"`{r['field']}`: {r['rule']} (else {r['status']})" for r in rules)
    return {
        "description": f"{description}\n\nBeyond the schema: {words}.",
        "x-rules-beyond-schema": list(rules),
    }


def _hook_operation(service: ServiceDefinition, security: list[dict[str, list[str]]]) -> dict:
    request = f"{wire.CONTEXT_MODELS[service.hook].__name__.removesuffix('Context')}Request"
    body: dict[str, Any] = {"schema": {"$ref": REF.format(model=request)}}
    if examples := _example(service.hook):
        body["examples"] = examples
    return {
        "post": {
            "operationId": f"call-{service.id}",
            "tags": ["hooks"],
            "summary": f"{service.title} ({service.hook})",
            **_with_rules(service.description, service.hook),
            "security": security,
            "requestBody": {
                "required": True,
                "content": {"application/json": body},
            },
            "responses": {
                "200": _json("HookResponse", "The cards (none when nothing applies)."),
                **_errors(_HOOK_ERRORS),
            },
        }
    }


def openapi_document(
    services: Mapping[str, ServiceDefinition], demo: bool, protect_discovery: bool
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a deployment offering `services`."""
    security: list[dict[str, list[str]]] = [] if demo else [{SECURITY_SCHEME: []}]
    discovery_security = security if protect_discovery else []
    paths: dict[str, Any] = {
        "/cds-services": {
            "get": {
                "operationId": "discovery",
                "tags": ["hooks"],
                "summary": "The discovery document: the services and their prefetch templates",
                "security": discovery_security,
                "responses": {
                    "200": _json("DiscoveryResponse", "The services this deployment offers."),
                    **_errors({"401": "A client JWT is required for discovery here."}),
                },
            }
        }
    }
    for service in services.values():
        paths[f"/cds-services/{service.id}"] = _hook_operation(service, security)
    paths["/cds-services/{service_id}/feedback"] = {
        "post": {
            "operationId": "feedback",
            "tags": ["hooks"],
            "summary": "The spec's feedback: a card accepted (which suggestions) or overridden",
            **_with_rules("Items are stored all or none: one bad item refuses the batch.", None),
            "security": security,
            "parameters": [
                {
                    "name": "service_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": list(services)},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model="FeedbackRequest")}}
                },
            },
            "responses": {
                "200": _json("FeedbackResponse", "Every item is stored (idempotent)."),
                **_errors(_FEEDBACK_ERRORS),
            },
        }
    }
    paths.update(_operations_paths())
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "rls-cds: CDS Hooks 2.0 service for restless legs syndrome",
            "version": _package_version(),
            "description": (
                "Cards for the secondary and vascular causes of RLS (patient-view) and "
                "medication safety checks of draft orders (order-select, order-sign). "
                + (
                    "DEMO MODE: calls are not authenticated; not for patient data."
                    if demo
                    else "Hook and feedback calls carry the EHR's JWT (CDS Hooks 2.0)."
                )
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "hooks", "description": "CDS Hooks 2.0: discovery, services, feedback"},
            {"name": "operations", "description": "Health, readiness and metrics"},
        ],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The CDS client's signed JWT (ES384/RS384, CDS Hooks 2.0).",
                }
            },
        },
    }


def _operations_paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["operations"],
                "summary": "Liveness: the process answers HTTP",
                "security": [],
                "responses": {"200": _json("HealthResponse", "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["operations"],
                "summary": "Readiness: knowledge loaded, store and replay store reachable",
                "security": [],
                "responses": {
                    "200": _json("ReadinessResponse", "Ready to take calls."),
                    "503": _json("ReadinessResponse", "Not ready; `checks` says what failed."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Metrics in the Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors({}),
                },
            }
        },
    }
