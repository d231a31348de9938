"""GET /metrics: Prometheus text with the hook, card, FHIR, reader, auth and feedback metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families

from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b

HOOK = "/cds-services/rls-secondary-causes"
FHIR = "https://ehr.example.org/fhir"


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the page, by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(page, name: str, **labels: str) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


def post(client, body) -> int:
    return client.post(HOOK, data=json.dumps(body), content_type="application/json").status_code


class TestHookMetrics:
    def test_latency_histogram_counts_each_call_by_service_and_status(self, client):
        before = scrape(client)
        assert post(client, b.hook_request()) == 200
        assert post(client, b.hook_request(hookInstance="nope")) == 400
        after = scrape(client)
        name = "rls_cds_hook_duration_seconds_count"
        for status in ("200", "400"):
            labels = {"service": "rls-secondary-causes", "status": status}
            assert value(after, name, **labels) == value(before, name, **labels) + 1

    def test_unknown_service_is_one_label_not_the_url(self, client):
        client.post("/cds-services/zz-anything", json=b.hook_request())
        page = scrape(client)
        assert value(page, "rls_cds_hook_duration_seconds_count", service="unknown", status="404")
        assert not any("zz-anything" in str(key) for key in page)

    def test_cards_issued_counted_per_topic(self, client):
        name = "rls_cds_cards_issued_total"
        labels = {"service": "rls-secondary-causes", "topic": "iron-below-target"}
        before = value(scrape(client), name, **labels)
        low = b.observation(b.FERRITIN, 38, "ng/mL")
        assert post(client, b.hook_request(b.prefetch(b.rls(), low, b.kidney_ok()))) == 200
        assert value(scrape(client), name, **labels) == before + 1

    def test_skipped_resources_counted_by_type_and_reason(self, client):
        name = "rls_cds_skipped_resources_total"
        labels = {"resource_type": "Observation", "reason": "malformed"}
        before = value(scrape(client), name, **labels)
        broken = {**b.observation(b.FERRITIN, 1, "ng/mL"), "code": "broken"}
        assert post(client, b.hook_request(b.prefetch(b.rls(), broken, broken))) == 200
        assert value(scrape(client), name, **labels) == before + 2


class TestFhirQueryMetrics:
    @pytest.fixture
    def app(self, tmp_path):
        settings = Settings(demo=True, data_dir=tmp_path, fhir_server_allowlist=(FHIR,))
        return create_app(settings, clock=lambda: b.NOW)

    @responses.activate
    def test_queries_counted_by_outcome_and_timed(self, client):
        prefetch = b.prefetch(b.rls())
        del prefetch["labs"], prefetch["conditions"]
        responses.get(f"{FHIR}/Observation", json=b.searchset(b.kidney_ok()))
        responses.get(f"{FHIR}/Condition", status=503)
        before = scrape(client)
        assert post(client, b.hook_request(prefetch, fhirServer=FHIR)) == 200
        after = scrape(client)
        for outcome in ("ok", "unavailable"):
            name = "rls_cds_fhir_queries_total"
            assert value(after, name, outcome=outcome) == value(before, name, outcome=outcome) + 1
        name = "rls_cds_fhir_query_duration_seconds_count"
        assert value(after, name) == value(before, name) + 2

    @responses.activate
    def test_refusal_counted_as_refused(self, client):
        prefetch = b.prefetch(b.rls())
        del prefetch["labs"]
        responses.get(f"{FHIR}/Observation", status=401)
        before = value(scrape(client), "rls_cds_fhir_queries_total", outcome="refused")
        assert post(client, b.hook_request(prefetch, fhirServer=FHIR)) == 412
        after = value(scrape(client), "rls_cds_fhir_queries_total", outcome="refused")
        assert after == before + 1


class TestAuthFailureMetrics:
    @pytest.fixture
    def app(self, tmp_path):
        clients = tmp_path / "clients.json"
        entry = {"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks"}
        clients.write_text(json.dumps([entry]))
        settings = Settings(
            data_dir=tmp_path,
            trusted_clients=clients,
            redis_url=None,
            public_base_url="http://localhost",
        )
        return create_app(settings, clock=lambda: b.NOW)

    @pytest.mark.parametrize(
        ("authorization", "reason"),
        [
            (None, "a bearer JWT from a trusted CDS client is required"),
            ("Bearer not-a-jwt", "the token is malformed"),
        ],
    )
    def test_refusals_counted_by_reason(self, client, authorization, reason):
        name = "rls_cds_auth_failures_total"
        before = value(scrape(client), name, reason=reason)
        headers = {"Authorization": authorization} if authorization else {}
        response = client.post(HOOK, json=b.hook_request(), headers=headers)
        assert response.status_code == 401
        assert value(scrape(client), name, reason=reason) == before + 1


def test_feedback_stored_counts_each_item_once(client):
    before = value(scrape(client), "rls_cds_feedback_stored_total")
    answered = client.post(HOOK, json=b.hook_request())
    client.application.extensions["rls_cds"].feedback.recorder.flush()
    item = {
        "card": answered.get_json()["cards"][0]["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-28T12:00:00Z",
    }
    for _ in range(2):  # the same item twice is stored, and counted, once
        response = client.post(f"{HOOK}/feedback", json={"feedback": [item]})
        assert response.status_code == 200
    assert value(scrape(client), "rls_cds_feedback_stored_total") == before + 1


def test_multiprocess_mode_adds_up_the_workers(tmp_path):
    """Under gunicorn each worker writes files; /metrics of any worker shows the sum."""
    script = (
        "from cds_service import metrics\n"
        "metrics.CARDS_ISSUED.labels('rls-secondary-causes', 'pregnancy').inc(3)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two "workers", two processes
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
    page = subprocess.run(
        [sys.executable, "-c", "from cds_service import metrics; "
         "print(metrics.exposition()[0].decode())"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert (
        'rls_cds_cards_issued_total{service="rls-secondary-causes",topic="pregnancy"} 6.0' in page
    )
    assert list(Path(tmp_path).glob("*.db"))


class TestMetricsPort:
    """RLS_CDS_METRICS_PORT: /metrics only on the internal port, hooks never there."""

    @pytest.fixture
    def client(self, tmp_path):
        settings = Settings(demo=True, data_dir=tmp_path, metrics_port=9090)
        return create_app(settings, clock=lambda: b.NOW).test_client()

    @staticmethod
    def on(port: int) -> dict[str, str]:
        return {"SERVER_PORT": str(port)}

    def test_metrics_answer_on_the_metrics_port_only(self, client):
        assert client.get("/metrics", environ_overrides=self.on(9090)).status_code == 200
        refused = client.get("/metrics", environ_overrides=self.on(8080))
        assert refused.status_code == 404 and refused.get_json()["error"]

    def test_probes_answer_on_both_ports(self, client):
        for port in (8080, 9090):
            assert client.get("/healthz", environ_overrides=self.on(port)).status_code == 200
            assert client.get("/readyz", environ_overrides=self.on(port)).status_code == 200

    def test_hooks_and_discovery_are_not_served_on_the_metrics_port(self, client):
        assert client.get("/cds-services", environ_overrides=self.on(9090)).status_code == 404
        hook = client.post(
            "/cds-services/rls-secondary-causes", json=b.hook_request(),
            environ_overrides=self.on(9090),
        )  # fmt: skip
        assert hook.status_code == 404
        assert client.get("/cds-services", environ_overrides=self.on(8080)).status_code == 200

    def test_the_host_header_cannot_choose_the_port(self, client):
        page = client.get("/metrics", environ_overrides=self.on(8080), headers={"Host": "x:9090"})
        assert page.status_code == 404
