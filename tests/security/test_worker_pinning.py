"""Issue 16, point 4, over HTTP: a request of long digit runs cannot pin a worker.

The red team's 200 KB request held a gunicorn worker for 122 s. Now it is answered, with
the dose card saying the dose could not be read; and a per-call CPU budget (its clock
injected here, so the test counts reads instead of timing them) turns whatever is left
over into "not read", never a hang. (The linear-time proof is test_linear_text.py.)
"""

from __future__ import annotations

import json
import uuid

from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.security.conftest import LOCAL


def gabapentinoid(text: str, sigs: list[str], code: str = "310431") -> dict:
    request = b.medication_request(code=code, text=text)
    request["dosageInstruction"] = [{"text": sig} for sig in sigs]
    return request


def ckd_prefetch(*extra: dict) -> dict:
    return b.prefetch(b.rls(), b.observation(b.EGFR, 40, "mL/min/{1.73_m2}"), *extra)


def test_a_200kb_request_of_digit_runs_is_answered_and_its_dose_is_unknown(live, es384):
    """The red team's request: sigs and product names of long digit runs. Answered (200),
    and the order with a 100,000-digit sig is still read for its drug (its sig is not):
    the dose card names it and says its dose could not be read, never a guessed dose."""
    long_name = "gabapentin " + "1" * (10_000 - 11)  # the longest product name a resource holds
    orders = [gabapentinoid(long_name, ["1" * 9_000]) for _ in range(10)]
    orders.append(gabapentinoid("pregabalin 150 MG Oral Capsule", ["3" * 100_000], "483440"))
    body = b.hook_request(ckd_prefetch(*orders))
    assert len(json.dumps(body)) > 200_000
    response = live().hook(es384.token(), body)
    assert response.status_code == 200, response.text[:300]
    (dose,) = [c for c in response.json()["cards"]
               if c["source"]["topic"]["code"] == "gabapentinoid-renal-dose"]  # fmt: skip
    assert "daily dose not readable" in dose["summary"]
    assert "Medication order: pregabalin 150 MG Oral Capsule (active)" in dose["detail"]


class CountingCpuClock:
    """A CPU clock that advances a fixed step each time it is read: deterministic."""

    def __init__(self, step_s: float):
        self.step_s = step_s
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def test_an_exhausted_cpu_budget_leaves_resources_unread_never_a_hang(
    tmp_path, ehr_entry, es384, serve
):
    """A budget of 0.5 s read by a clock that advances 0.01 s per look: about fifty
    resources are read, the rest are 'not read'. Their kinds of data become unavailable,
    so no rule concludes from their absence: here the RLS condition is among them, so the
    gate cannot be checked and no card is shown; the call is answered at once (200) and
    the skipped resources are counted by reason."""
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps([ehr_entry]), "utf-8")
    settings = Settings(
        data_dir=tmp_path, trusted_clients=clients, public_base_url=LOCAL, redis_url=None,
        demo=False, domain_cpu_budget_s=0.5, log_level="ERROR",
    )  # fmt: skip
    app = create_app(settings, clock=lambda: b.NOW, cpu_clock=CountingCpuClock(0.01))
    service = serve(app)
    labs = [b.observation(b.FERRITIN, 38 + n % 5, "ng/mL") for n in range(200)]
    body = b.hook_request(b.prefetch(b.rls(), *labs))
    body["hookInstance"] = str(uuid.uuid4())
    response = service.hook(es384.token(), body)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["cards"] == []
    metrics = service.get("/metrics").text
    assert 'reason="budget-exhausted",resource_type="Observation"' in metrics
    assert 'reason="budget-exhausted",resource_type="Condition"' in metrics


def test_the_default_budget_reads_a_large_honest_record_whole(live, es384):
    """200 labs, 50 medications, 50 conditions: read in full within 0.5 s of CPU."""
    labs = [b.observation(b.FERRITIN, 38, "ng/mL", when=f"2026-10-{1 + n % 28:02d}T08:00:00Z")
            for n in range(200)]  # fmt: skip
    medications = [b.medication_request(text=f"Diphenhydramine {n} mg tablet") for n in range(50)]
    conditions = [b.condition(b.coding(b.SNOMED, "38341003", "Hypertension")) for _ in range(50)]
    body = b.hook_request(b.prefetch(b.rls(), b.kidney_ok(), *labs, *medications, *conditions))
    response = live().hook(es384.token(), body)
    assert response.status_code == 200
    topics = {c["source"]["topic"]["code"] for c in response.json()["cards"]}
    assert {"iron-below-target", "sedating-antihistamine"} <= topics
