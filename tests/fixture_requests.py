"""The example hook requests in fhir_fixtures/requests/, made from the patient bundles.

They are what `rls-cds evaluate` sends for each demo patient, so they cannot drift from the
bundles: tests/test_fixtures.py fails when a file differs from what this produces.
Regenerate with ``python -m tests.fixture_requests``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from cds_service.hooks.bundles import hook_request
from cds_service.hooks.services import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW, build_services
from tests.builders import KNOWLEDGE

ROOT = Path(__file__).resolve().parent.parent / "fhir_fixtures"
PATIENTS = ROOT / "patients"
DRAFTS = ROOT / "drafts"
REQUESTS = ROOT / "requests"
NAMESPACE = uuid.UUID("6f0e3f64-3c1e-4f4e-9d2a-2f3f2f6f9a10")


def expected_requests() -> dict[str, dict]:
    """File name -> request body: a patient-view request per demo patient, and an
    order-select and an order-sign request per draft-orders bundle in drafts/ (named
    ``<patient>.<what>.json``: the drafts are that patient's)."""
    services = build_services(KNOWLEDGE.value_sets)
    requests = {}
    for path in sorted(PATIENTS.glob("*.json")):
        name = f"patient-view-{path.stem}.json"
        bundle = json.loads(path.read_text("utf-8"))
        requests[name] = hook_request(
            services[PATIENT_VIEW], bundle, hook_instance=str(uuid.uuid5(NAMESPACE, name))
        )
    for path in sorted(DRAFTS.glob("*.json")):
        patient = path.name.split(".")[0]
        bundle = json.loads((PATIENTS / f"{patient}.json").read_text("utf-8"))
        drafts = json.loads(path.read_text("utf-8"))
        for service_id in (ORDER_SELECT, ORDER_SIGN):
            name = f"{service_id.removeprefix('rls-')}-{path.stem.replace('.', '-')}.json"
            requests[name] = hook_request(
                services[service_id], bundle, drafts, str(uuid.uuid5(NAMESPACE, name))
            )
    return requests


def render(body: dict) -> str:
    return json.dumps(body, indent=2) + "\n"


def main() -> None:
    REQUESTS.mkdir(exist_ok=True)
    for name, body in expected_requests().items():
        (REQUESTS / name).write_text(render(body), "utf-8")
        print(f"wrote {REQUESTS.name}/{name}")


if __name__ == "__main__":
    main()
