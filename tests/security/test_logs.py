"""Neither the client's JWT, nor the EHR's FHIR access token, nor the patient id is logged."""

from __future__ import annotations

import io
import logging

import responses

from cds_service.logs import JsonFormatter
from tests import builders as b
from tests.security.conftest import FHIR, post_hook

PATIENT = "zz-log-scan-patient-4711"
ACCESS_TOKEN = "zz-fhir-access-token-9f8e7d"


def full_hook_request() -> dict:
    """A hook whose labs must be fetched from the client's FHIR server with its token."""
    resources = [b.rls(patient_id=PATIENT), b.kidney_ok(patient_id=PATIENT)]
    body = b.hook_request(
        b.prefetch(*resources, with_patient=b.patient(PATIENT)),
        context={"userId": "Practitioner/example", "patientId": PATIENT},
        fhirServer=FHIR,
        fhirAuthorization={
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "rls-cds",
            "patient": PATIENT,
        },
    )
    del body["prefetch"]["labs"]
    return body


def test_full_hook_and_refusals_log_no_token_and_no_patient_id(make_app, es384, caplog):
    client = make_app().test_client()
    service_log = logging.getLogger("cds_service")  # JSON lines, propagate=False
    written = io.StringIO()
    json_lines = logging.StreamHandler(written)
    json_lines.setFormatter(JsonFormatter())
    service_log.addHandler(json_lines)
    service_log.addHandler(caplog.handler)
    token = es384.token()
    ferritin = b.observation(b.FERRITIN, 38, "ng/mL", patient_id=PATIENT)
    try:
        with caplog.at_level(logging.DEBUG), responses.RequestsMock() as mock:
            service_log.setLevel(logging.DEBUG)
            mock.get(f"{FHIR}/Observation", json=b.searchset(ferritin))
            response = post_hook(client, token, full_hook_request())
            assert response.status_code == 200, response.get_json()
            assert mock.calls[0].request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
            assert post_hook(client, token, full_hook_request()).status_code == 401  # replay
            assert post_hook(client, token + "x", full_hook_request()).status_code == 401
    finally:
        service_log.removeHandler(json_lines)
        service_log.removeHandler(caplog.handler)
    topics = [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]
    assert "iron-below-target" in topics
    records = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for logged in (records, written.getvalue()):
        assert "hook answered" in logged
        assert "client authentication refused" in logged
        for secret in (token, token.split(".")[2], ACCESS_TOKEN, PATIENT):
            assert secret not in logged
