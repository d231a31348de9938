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
from cds_service.hooks.services import PATIENT_VIEW, build_services
from tests.builders import KNOWLEDGE

ROOT = Path(__file__).resolve().parent.parent / "fhir_fixtures"
PATIENTS = ROOT / "patients"
REQUESTS = ROOT / "requests"
NAMESPACE = uuid.UUID("6f0e3f64-3c1e-4f4e-9d2a-2f3f2f6f9a10")


def expected_requests() -> dict[str, dict]:
    """File name -> request body, one patient-view request per demo patient."""
    service = build_services(KNOWLEDGE.value_sets)[PATIENT_VIEW]
    requests = {}
    for path in sorted(PATIENTS.glob("*.json")):
        name = f"patient-view-{path.stem}.json"
        bundle = json.loads(path.read_text("utf-8"))
        requests[name] = hook_request(
            service, bundle, hook_instance=str(uuid.uuid5(NAMESPACE, name))
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
