"""One JSON log line per hook call, answered or refused, without patient data or tokens."""

from __future__ import annotations

import json

import pytest

from cds_service.app import create_app
from cds_service.logs import JsonFormatter
from cds_service.settings import Settings
from tests import builders as b

HOOK = "/cds-services/rls-secondary-causes"
WHO = "zz-secret-patient"
NAME = "Zyxwvutsrq"
TOKEN = "zz-secret-token-123"
FIELDS = {"hook_instance", "service", "status", "duration_ms", "cards", "topics"}


def request_body(**overrides) -> dict:
    patient = {**b.patient(WHO), "name": [{"family": NAME, "given": ["Ann"]}]}
    low = b.observation(b.FERRITIN, 37.123, "ng/mL", patient_id=WHO)
    prefetch = b.prefetch(b.rls(patient_id=WHO), low, b.kidney_ok(patient_id=WHO),
                          with_patient=patient)  # fmt: skip
    context = {"userId": "Practitioner/example", "patientId": WHO}
    return b.hook_request(prefetch, context=context) | overrides


def lines(caplog) -> list[dict]:
    """The captured records as the service writes them: one JSON object each."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records]


def call(client, caplog, body, headers=None) -> tuple[int, dict, list[dict]]:
    caplog.clear()
    with caplog.at_level("INFO", logger="cds_service"):
        response = client.post(HOOK, data=json.dumps(body), content_type="application/json",
                               headers=headers or {})  # fmt: skip
    written = lines(caplog)
    (line,) = [entry for entry in written if entry["message"] == "hook answered"]
    return response.status_code, line, written


def assert_no_secrets(written: list[dict]) -> None:
    text = json.dumps(written)
    for secret in (WHO, NAME, TOKEN, "37.1"):
        assert secret not in text


def test_answered_call_logs_ids_counts_topics_status_and_duration(client, caplog):
    body = request_body()
    status, line, written = call(client, caplog, body)
    assert status == 200
    assert set(line) >= FIELDS
    assert line["hook_instance"] == body["hookInstance"]
    assert line["service"] == "rls-secondary-causes"
    assert (line["status"], line["cards"], line["topics"]) == (200, 1, ["iron-below-target"])
    assert isinstance(line["duration_ms"], float)
    assert_no_secrets(written)


def test_invalid_call_is_logged_with_its_status(client, caplog):
    body = request_body()
    del body["context"]["userId"]
    status, line, written = call(client, caplog, body)
    assert status == line["status"] == 400
    assert line["hook_instance"] == body["hookInstance"]
    assert (line["cards"], line["topics"]) == (0, [])
    assert_no_secrets(written)


def test_hook_instance_that_is_not_a_uuid_is_not_logged(client, caplog):
    status, line, written = call(client, caplog, request_body(hookInstance=f"{WHO} {NAME}"))
    assert status == 400 and line["hook_instance"] is None
    assert_no_secrets(written)


def test_precondition_failure_is_logged_without_the_token(client, caplog):
    prefetch = request_body()["prefetch"]
    del prefetch["labs"]
    authorization = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                     "scope": "patient/*.read", "subject": "rls-cds"}  # fmt: skip
    body = request_body(fhirAuthorization=authorization)
    body["prefetch"] = prefetch
    status, line, written = call(client, caplog, body)  # no fhirServer: 400, token unused
    assert status == line["status"] == 400
    body["fhirServer"] = "http://127.0.0.1:9"  # nothing listens: unreachable, 412
    status, line, written = call(client, caplog, body)
    assert status == line["status"] == 412
    assert_no_secrets(written)


@pytest.fixture
def secured(tmp_path):
    clients = tmp_path / "clients.json"
    entry = {"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks"}
    clients.write_text(json.dumps([entry]))
    settings = Settings(
        data_dir=tmp_path,
        trusted_clients=clients,
        redis_url=None,
        public_base_url="http://localhost",
    )
    return create_app(settings, clock=lambda: b.NOW).test_client()


def test_refused_client_is_logged_without_the_token(secured, caplog):
    status, line, written = call(
        secured, caplog, request_body(), {"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == line["status"] == 401
    assert line["service"] == "rls-secondary-causes"
    assert_no_secrets(written)
