"""/openapi.json: a valid OpenAPI 3.1 document, and the live app keeps to it (schemathesis)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cds_service.api.demo_data import HOOKS
from cds_service.app import create_app
from cds_service.settings import Settings
from tests.builders import NOW, hook_request
from tests.fixture_requests import REQUESTS

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_app(tmp_path_factory) -> Iterator[Flask]:
    settings = Settings(demo=True, data_dir=tmp_path_factory.mktemp("api"), log_level="ERROR")
    yield create_app(settings, clock=lambda: NOW)


@pytest.fixture(scope="module")
def api_schema(api_app: Flask):
    return schemathesis.openapi.from_wsgi("/openapi.json", api_app)


def document(app: Flask) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


class TestDocument:
    def test_is_valid_openapi_3_1(self, api_app: Flask):
        spec = document(api_app)
        assert spec["openapi"].startswith("3.1")
        validate(spec)

    def test_describes_discovery_hooks_feedback_health_and_metrics(self, api_app: Flask):
        assert set(document(api_app)["paths"]) == {
            "/cds-services",
            "/cds-services/rls-secondary-causes",
            "/cds-services/rls-order-select",
            "/cds-services/rls-order-sign",
            "/cds-services/{service_id}/feedback",
            "/healthz",
            "/readyz",
            "/metrics",
        }

    def test_metrics_are_plain_text(self, api_app: Flask):
        metrics = document(api_app)["paths"]["/metrics"]["get"]["responses"]["200"]
        assert list(metrics["content"]) == ["text/plain"]

    def test_request_bodies_come_from_the_wire_models(self, api_app: Flask):
        schemas = document(api_app)["components"]["schemas"]
        sign = schemas["OrderSignRequest"]
        assert sign["properties"]["hook"]["const"] == "order-sign"
        assert sign["properties"]["context"] == {"$ref": "#/components/schemas/OrderSignContext"}
        assert "draftOrders" in schemas["OrderSignContext"]["required"]
        assert schemas["FeedbackItem"]["properties"]["outcome"]["enum"] == [
            "accepted",
            "overridden",
        ]

    def test_outside_demo_mode_hooks_need_the_client_jwt(self, tmp_path):
        settings = Settings(
            data_dir=tmp_path, log_level="ERROR", public_base_url="https://cds.example.org"
        )
        app = create_app(settings)
        spec = document(app)
        validate(spec)
        hook = spec["paths"]["/cds-services/rls-secondary-causes"]["post"]
        assert hook["security"] == [{"cdsHooksJwt": []}]
        assert spec["paths"]["/cds-services"]["get"]["security"] == []
        assert app.test_client().get("/").status_code == 404

    @pytest.mark.parametrize("path", sorted(REQUESTS.glob("*.json")), ids=lambda p: p.stem)
    def test_example_requests_fit_their_documented_body(self, api_app: Flask, path: Path):
        spec = document(api_app)
        body = json.loads(path.read_text("utf-8"))
        operation = spec["paths"][f"/cds-services/{HOOKS[body['hook']]}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        validator = Draft202012Validator({**schema, "components": spec["components"]})
        assert list(validator.iter_errors(body)) == []


FHIR = "https://ehr.example.org/fhir/R4"
TOKEN = {
    "access_token": "lent-token",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/*.read",
    "subject": "rls-cds",
}
ACCEPTED = {"card": "c-1", "outcome": "accepted", "outcomeTimestamp": "2026-11-28T12:00:00Z"}
#: The two cross-field rules (issue 17): a body breaking one, a body keeping it, and the
#: document's schema and the request's URL.
CROSS_FIELD = {
    "fhirAuthorization-without-fhirServer": (
        "PatientViewRequest",
        "/cds-services/rls-secondary-causes",
        lambda: {**hook_request(), "fhirAuthorization": TOKEN},
        lambda: {**hook_request(), "fhirAuthorization": TOKEN, "fhirServer": FHIR},
    ),
    "fhirAuthorization-with-a-null-fhirServer": (
        "PatientViewRequest",
        "/cds-services/rls-secondary-causes",
        lambda: {**hook_request(), "fhirAuthorization": TOKEN, "fhirServer": None},
        lambda: {**hook_request(), "fhirAuthorization": None, "fhirServer": None},
    ),
    # FUZZ found it: the document refused a null token without the fhirServer key, which the
    # service (rightly: null is absent) takes
    "a-null-fhirAuthorization-without-fhirServer": (
        "PatientViewRequest",
        "/cds-services/rls-secondary-causes",
        lambda: {**hook_request(), "fhirAuthorization": TOKEN},
        lambda: {**hook_request(), "fhirAuthorization": None},
    ),
    # FUZZ found it: a token with a space fitted the document and was refused
    "an-access_token-with-a-space": (
        "PatientViewRequest",
        "/cds-services/rls-secondary-causes",
        lambda: {
            **hook_request(),
            "fhirAuthorization": {**TOKEN, "access_token": "a b"},
            "fhirServer": FHIR,
        },
        lambda: {
            **hook_request(),
            "fhirAuthorization": {**TOKEN, "access_token": "a~b"},
            "fhirServer": FHIR,
        },
    ),
    "accepted-without-acceptedSuggestions": (
        "FeedbackRequest",
        "/cds-services/rls-secondary-causes/feedback",
        lambda: {"feedback": [ACCEPTED]},
        lambda: {"feedback": [{**ACCEPTED, "acceptedSuggestions": [{"id": "s-1"}]}]},
    ),
    "accepted-with-no-suggestion": (
        "FeedbackRequest",
        "/cds-services/rls-secondary-causes/feedback",
        lambda: {"feedback": [{**ACCEPTED, "acceptedSuggestions": []}]},
        lambda: {"feedback": [{**ACCEPTED, "outcome": "overridden"}]},
    ),
}


@pytest.mark.parametrize(
    ("schema", "url", "broken", "kept"), CROSS_FIELD.values(), ids=CROSS_FIELD.keys()
)
def test_the_cross_field_rules_are_documented_and_enforced_alike(
    api_app: Flask, schema: str, url: str, broken, kept
):
    """The document states the rules the service enforces (`fhirAuthorization` needs a
    `fhirServer`, `accepted` needs `acceptedSuggestions`): what the schema refuses the
    service answers 400, and what it allows the service does not refuse for that rule."""
    spec = document(api_app)
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    )
    assert list(validator.iter_errors(broken())) != []
    assert list(validator.iter_errors(kept())) == []
    client = api_app.test_client()
    refused = client.post(url, json=broken())
    assert refused.status_code == 400, refused.get_json()
    assert client.post(url, json=kept()).status_code != 400


def test_the_rules_are_written_as_json_schema_conditions(api_app: Flask):
    schemas = document(api_app)["components"]["schemas"]
    for request in ("HookRequest", "PatientViewRequest", "OrderSignRequest"):
        assert schemas[request]["if"]["required"] == ["fhirAuthorization"]
        assert schemas[request]["then"]["required"] == ["fhirServer"]
    item = schemas["FeedbackItem"]
    assert item["if"]["properties"]["outcome"] == {"const": "accepted"}
    assert item["then"]["required"] == ["acceptedSuggestions"]


#: Every documented operation (the schemathesis run covers each, in both modes).
OPERATIONS = [
    ("/cds-services", "GET"),
    ("/cds-services/rls-secondary-causes", "POST"),
    ("/cds-services/rls-order-select", "POST"),
    ("/cds-services/rls-order-sign", "POST"),
    ("/cds-services/{service_id}/feedback", "POST"),
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/metrics", "GET"),
]


def test_the_schemathesis_run_covers_every_documented_operation(api_app: Flask):
    paths = document(api_app)["paths"]
    documented = {(path, method.upper()) for path, item in paths.items() for method in item}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize("path", [p for p, m in OPERATIONS if p.startswith("/cds-services/rls")])
def test_documented_example_gets_cards_as_documented(api_app: Flask, api_schema, path: str):
    """Each hook's documented example (a shipped request) answers 200 with cards that fit
    the response schema."""
    content = document(api_app)["paths"][path]["post"]["requestBody"]["content"]
    (example,) = content["application/json"]["examples"].values()
    case = api_schema[path]["POST"].Case(body=example["value"], media_type="application/json")
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code == 200
    assert response.json()["cards"]


#: Positive data for every operation; negative data for those that take input (a GET
#: without parameters has no invalid request to make).
RUNS = [(path, method, GenerationMode.POSITIVE) for path, method in OPERATIONS] + [
    (path, method, GenerationMode.NEGATIVE) for path, method in OPERATIONS if method == "POST"
]


@pytest.mark.parametrize(
    ("path", "method", "mode"), RUNS, ids=[f"{m} {p} {mode}" for p, m, mode in RUNS]
)
def test_live_app_answers_as_documented_and_never_5xx(
    api_schema, path: str, method: str, mode: GenerationMode
):
    """Schemathesis: generated valid (positive) and invalid (negative) requests; every
    answer is documented, matches its schema and content type, and none is a 5xx."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case) -> None:
        case.call_and_validate(checks=CHECKS)

    call()


def test_the_rules_beyond_the_schema_are_listed_per_operation(api_app: Flask):
    """What JSON Schema cannot state is in the document, in words and as data (the FUZZ
    benchmark accepts exactly these refusals of schema-valid requests)."""
    paths = document(api_app)["paths"]
    listed = {
        path: [(r["field"], r["status"]) for r in paths[path]["post"]["x-rules-beyond-schema"]]
        for path, method in OPERATIONS
        if method == "POST"
    }
    hook = [("prefetch", 412), ("fhirServer", 400)]
    assert listed == {
        "/cds-services/rls-secondary-causes": hook,
        "/cds-services/rls-order-select": [*hook, ("context.selections", 400)],
        "/cds-services/rls-order-sign": hook,
        "/cds-services/{service_id}/feedback": [("outcomeTimestamp", 400)],
    }
    for path in listed:
        assert "Beyond the schema: `" in paths[path]["post"]["description"]
