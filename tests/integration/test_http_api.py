"""The HTTP API as an EHR sees it: discovery, hook calls, every error status, health."""

from __future__ import annotations

import json

import pytest

from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b

HOOK_URL = "/cds-services/rls-secondary-causes"
SERVICE_IDS = ["rls-secondary-causes", "rls-order-select", "rls-order-sign"]


def post_json(client, url: str, body: object, **kwargs):
    return client.post(url, data=json.dumps(body), content_type="application/json", **kwargs)


class TestDiscovery:
    def test_lists_one_service_per_hook(self, client):
        services = client.get("/cds-services").get_json()["services"]
        assert [(s["id"], s["hook"]) for s in services] == [
            ("rls-secondary-causes", "patient-view"),
            ("rls-order-select", "order-select"),
            ("rls-order-sign", "order-sign"),
        ]
        for service in services:
            assert service["title"] and service["description"]

    def test_prefetch_fetches_patient_conditions_labs_and_medications(self, client):
        prefetch = client.get("/cds-services").get_json()["services"][0]["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        assert prefetch["conditions"] == "Condition?patient={{context.patientId}}"
        assert "http://loinc.org|2276-4" in prefetch["labs"]
        assert "http://loinc.org|2502-3" in prefetch["labs"]
        assert "http://loinc.org|2160-0" in prefetch["labs"]
        assert prefetch["medicationRequests"].startswith("MedicationRequest?patient=")
        assert prefetch["medicationStatements"].startswith("MedicationStatement?patient=")

    def test_templates_use_only_tokens_the_spec_allows(self, client):
        allowed = {"context.patientId", "context.encounterId", "context.userId"}
        for service in client.get("/cds-services").get_json()["services"]:
            for template in service["prefetch"].values():
                tokens = {t.split("}}")[0] for t in template.split("{{")[1:]}
                assert tokens <= allowed, template

    def test_demo_mode_is_stated_in_discovery(self, client):
        for service in client.get("/cds-services").get_json()["services"]:
            assert "DEMO MODE" in service["description"]

    @pytest.mark.parametrize("service_id", SERVICE_IDS)
    def test_every_listed_service_is_routable(self, client, service_id):
        assert client.post(f"/cds-services/{service_id}", json={}).status_code == 400


class TestPatientView:
    def test_rls_with_low_ferritin_gets_iron_card(self, client):
        body = b.hook_request(
            b.prefetch(b.rls(), b.kidney_ok(), b.observation(b.FERRITIN, 38, "ng/mL"))
        )
        response = post_json(client, HOOK_URL, body)
        assert response.status_code == 200
        (card,) = response.get_json()["cards"]
        assert card["source"]["topic"]["code"] == "iron-below-target"
        assert "38 ng/mL" in card["summary"]
        assert "2026-10-15" in card["detail"]

    def test_no_findings_answer_exactly_empty_cards(self, client):
        body = b.hook_request(b.prefetch(b.observation(b.FERRITIN, 10, "ng/mL")))
        response = post_json(client, HOOK_URL, body)
        assert response.get_json() == {"cards": []}

    def test_null_prefetch_key_means_no_data(self, client):
        """Spec: a null key is 'no data', not a reason to refuse; no ferritin -> studies due."""
        prefetch = b.prefetch(b.rls())
        prefetch["labs"] = None
        response = post_json(client, HOOK_URL, b.hook_request(prefetch))
        assert response.status_code == 200
        topics = [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]
        assert topics == ["iron-studies-due", "renal-function-due"]

    def test_unknown_top_level_keys_and_extensions_are_ignored(self, client):
        body = b.hook_request(extension={"com.example.x": 1}, somethingNew=[1, 2])
        assert post_json(client, HOOK_URL, body).status_code == 200

    def test_json_content_type_with_charset_is_accepted(self, client):
        response = client.post(
            HOOK_URL,
            data=json.dumps(b.hook_request()),
            content_type="application/json; charset=utf-8",
        )
        assert response.status_code == 200

    def test_one_malformed_resource_does_not_sink_the_hook(self, client):
        broken = b.observation(b.FERRITIN, 10, "ng/mL")
        broken["code"] = "not-a-codeable-concept"
        good = b.observation(b.FERRITIN, 38, "ng/mL")
        body = b.hook_request(b.prefetch(b.rls(), b.kidney_ok(), broken, good))
        (card,) = post_json(client, HOOK_URL, body).get_json()["cards"]
        assert "38 ng/mL" in card["summary"]

    @pytest.mark.parametrize("service_id", ["rls-order-select", "rls-order-sign"])
    def test_order_services_validate_and_answer_empty_cards(self, client, service_id):
        hook = service_id.removeprefix("rls-")
        draft = {**b.medication_request(text="Amoxicillin 500 mg", status="draft"), "id": "x"}
        context = {
            "userId": "Practitioner/example",
            "patientId": b.PATIENT_ID,
            "draftOrders": {"resourceType": "Bundle", "type": "collection",
                            "entry": [{"resource": draft}]},
        }  # fmt: skip
        if hook == "order-select":
            context["selections"] = ["MedicationRequest/x"]
        body = b.hook_request(hook=hook, context=context)
        response = post_json(client, f"/cds-services/{service_id}", body)
        assert response.status_code == 200
        assert response.get_json() == {"cards": []}


class TestLogging:
    def test_hook_log_line_has_counts_but_no_patient_data(self, client, caplog):
        who = "zz-secret-patient"
        resources = [
            b.rls(patient_id=who),
            b.observation(b.FERRITIN, 37.123, "ng/mL", patient_id=who),
            b.kidney_ok(patient_id=who),
            {**b.observation(b.FERRITIN, 1, "ng/mL", patient_id=who), "code": "broken"},
        ]
        body = b.hook_request(
            b.prefetch(*resources, with_patient=b.patient(who)),
            context={"userId": "Practitioner/example", "patientId": who},
        )
        with caplog.at_level("INFO", logger="cds_service"):
            assert post_json(client, HOOK_URL, body).status_code == 200
        (record,) = [r for r in caplog.records if r.getMessage() == "hook answered"]
        assert record.hook_instance == body["hookInstance"]
        assert record.topics == ["iron-below-target"]
        assert record.skipped_resources == 1
        logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
        assert who not in logged
        # "37.12": the value's own digits; "37.1" alone is also a plausible duration_ms.
        assert "37.12" not in logged


class TestBadRequests:
    @pytest.mark.parametrize(
        ("data", "content_type", "fragment"),
        [
            ("{not json", "application/json", "not valid JSON"),
            (b"\xff\xfe{}", "application/json", "UTF-8"),
            ("[]", "application/json", "JSON object"),
            ("null", "application/json", "JSON object"),
            ("", "application/json", "not valid JSON"),
            ("{}", "text/plain", "Content-Type"),
            ("hook=patient-view", "application/x-www-form-urlencoded", "Content-Type"),
            ("[" * 100_000 + "]" * 100_000, "application/json", "nests too deeply"),
            ('{"hook": NaN}', "application/json", "NaN is not a JSON number"),
        ],
    )
    def test_unreadable_body_is_400_with_json_reason(self, client, data, content_type, fragment):
        response = client.post(HOOK_URL, data=data, content_type=content_type)
        assert response.status_code == 400
        assert fragment in response.get_json()["message"]

    @pytest.mark.parametrize("missing", ["hook", "hookInstance", "context"])
    def test_missing_required_field_is_400_naming_it(self, client, missing):
        body = b.hook_request()
        del body[missing]
        response = post_json(client, HOOK_URL, body)
        assert response.status_code == 400
        assert missing in [d["loc"] for d in response.get_json()["details"]]

    @pytest.mark.parametrize("missing", ["patientId", "userId"])
    def test_missing_context_field_is_400_naming_it(self, client, missing):
        body = b.hook_request()
        del body["context"][missing]
        response = post_json(client, HOOK_URL, body)
        assert response.status_code == 400
        assert f"context.{missing}" in [d["loc"] for d in response.get_json()["details"]]

    def test_hook_instance_must_be_a_uuid(self, client):
        response = post_json(client, HOOK_URL, b.hook_request(hookInstance="not-a-uuid"))
        assert response.status_code == 400

    def test_wrong_hook_for_the_service_is_400(self, client):
        response = post_json(client, HOOK_URL, b.hook_request(hook="order-sign"))
        assert response.status_code == 400
        assert "patient-view" in response.get_json()["message"]

    def test_fhir_authorization_without_fhir_server_is_400_without_echoing_token(self, client):
        authorization = {
            "access_token": "secret-token-123",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "rls-cds",
        }
        response = post_json(client, HOOK_URL, b.hook_request(fhirAuthorization=authorization))
        assert response.status_code == 400
        assert "fhirServer" in response.get_data(as_text=True)
        assert "secret-token-123" not in response.get_data(as_text=True)

    def test_order_select_without_selections_is_400(self, client):
        context = {
            "userId": "Practitioner/example",
            "patientId": b.PATIENT_ID,
            "draftOrders": {"resourceType": "Bundle", "type": "collection"},
        }
        body = b.hook_request(hook="order-select", context=context)
        response = post_json(client, "/cds-services/rls-order-select", body)
        assert response.status_code == 400
        assert "context.selections" in [d["loc"] for d in response.get_json()["details"]]

    def test_unknown_service_is_404_json(self, client):
        response = post_json(client, "/cds-services/no-such-service", b.hook_request())
        assert response.status_code == 404
        assert response.get_json()["error"] == "unknown-service"

    def test_get_on_a_hook_is_405_json(self, client):
        response = client.get(HOOK_URL)
        assert response.status_code == 405
        assert response.get_json()["error"]

    @pytest.mark.parametrize(
        ("method", "url", "allowed"),
        [
            ("GET", HOOK_URL, {"POST"}),
            ("PUT", HOOK_URL, {"POST"}),
            ("GET", HOOK_URL + "/feedback", {"POST"}),
            ("DELETE", HOOK_URL + "/feedback", {"POST"}),
            ("POST", "/cds-services", {"GET", "HEAD"}),
        ],
        ids=["hook-get", "hook-put", "feedback-get", "feedback-delete", "discovery-post"],
    )
    def test_405_names_the_allowed_methods(self, client, method, url, allowed):
        """RFC 9110, 15.5.6: a 405 answer carries Allow (issue 17)."""
        response = client.open(url, method=method)
        assert response.status_code == 405
        assert response.get_json()["error"] == "method-not-allowed"
        methods = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed <= methods and method not in methods

    def test_body_above_the_limit_is_413(self, tmp_path):
        settings = Settings(demo=True, data_dir=tmp_path, max_body_bytes=4096)
        client = create_app(settings, clock=lambda: b.NOW).test_client()
        body = b.hook_request(padding="x" * 5000)
        response = post_json(client, HOOK_URL, body)
        assert response.status_code == 413
        assert response.get_json()["error"]

    def test_default_body_limit_is_5_mb(self, client):
        body = b.hook_request(padding="x" * (5 * 1024 * 1024))
        assert post_json(client, HOOK_URL, body).status_code == 413


class TestPrefetchUnavailable:
    def test_absent_prefetch_is_412_naming_every_key(self, client):
        body = b.hook_request()
        del body["prefetch"]
        response = post_json(client, HOOK_URL, body)
        assert response.status_code == 412
        named = [d["prefetch"] for d in response.get_json()["details"]]
        assert named == [
            "patient",
            "conditions",
            "labs",
            "medicationRequests",
            "medicationStatements",
        ]

    def test_operation_outcome_key_is_412_naming_it(self, client):
        prefetch = b.prefetch(b.rls())
        prefetch["labs"] = {"resourceType": "OperationOutcome", "issue": []}
        response = post_json(client, HOOK_URL, b.hook_request(prefetch))
        assert response.status_code == 412
        assert response.get_json()["details"] == [{"prefetch": "labs", "reason": "no fhirServer"}]


class TestAuthentication:
    def test_without_demo_mode_hooks_need_a_bearer_token(self, tmp_path):
        settings = Settings(data_dir=tmp_path, public_base_url="http://localhost")
        client = create_app(settings, clock=lambda: b.NOW).test_client()
        response = post_json(client, HOOK_URL, b.hook_request())
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["error"] == "unauthorized"

    def test_without_trusted_clients_every_token_is_refused(self, tmp_path):
        """Fail closed: until trusted clients can be configured nobody gets in."""
        settings = Settings(data_dir=tmp_path, public_base_url="http://localhost")
        client = create_app(settings, clock=lambda: b.NOW).test_client()
        headers = {"Authorization": "Bearer eyJhbGciOi.fake.token"}
        response = post_json(client, HOOK_URL, b.hook_request(), headers=headers)
        assert response.status_code == 401
        assert "eyJhbGciOi" not in response.get_data(as_text=True)


class TestHealth:
    def test_healthz_answers(self, client):
        assert client.get("/healthz").get_json() == {"status": "ok"}

    def test_readyz_checks_knowledge_store_and_replay_store(self, client):
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.get_json()["checks"] == {"knowledge": True, "store": True, "replay": True}

    def test_readyz_is_503_when_the_store_is_unreachable(self, tmp_path):
        settings = Settings(
            demo=True,
            data_dir=tmp_path,
            database_url="postgresql://nobody@127.0.0.1:1/none",
            patient_key_secret="test-secret",
        )
        response = create_app(settings).test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["store"] is False

    @pytest.mark.postgres
    def test_readyz_with_postgresql(self, tmp_path):
        settings = Settings(
            demo=True,
            data_dir=tmp_path,
            database_url="postgresql://postgres@127.0.0.1:5432/postgres",
            patient_key_secret="test-secret",
            migrate_on_start=False,  # reachability only: no tables in the shared database
        )
        assert create_app(settings).test_client().get("/readyz").status_code == 200
