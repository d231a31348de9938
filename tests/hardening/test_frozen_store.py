"""A frozen PostgreSQL holds nothing (issue 17, point 1).

A private server (tests/private_postgres.py) is frozen with SIGSTOP on its postmaster and
every backend: the pooled connections stay open and nothing answers, as with a paused VM or
a partition that keeps TCP up. Before, a patient-view hook then waited for its suppression
read as long as the freeze lasted (40 s in the fault pass), and feedback and /readyz hung the
same way. Now the hook answers within its deadline without suppression (counted), feedback
is 503 with Retry-After, /readyz 503; after SIGCONT all recover, the app never restarted.

Time is measured only as a generous bound (the deadline plus 2 s), so that a loaded machine
does not fail the test; what is asserted is the answers.
"""

from __future__ import annotations

import time

import requests
from prometheus_client import REGISTRY
from sqlalchemy import text

from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.feedback.conftest import SECRET, feedback_url, overridden, patient_view_body
from tests.live import serving
from tests.private_postgres import private_postgres

PATIENT_VIEW = "/cds-services/rls-secondary-causes"
DEADLINE_S = 2.5
#: What "answered within its deadline" may take on a loaded 2-core machine.
BOUND_S = DEADLINE_S + 2.0
ANTIHISTAMINE = "sedating-antihistamine"
IRON = "iron-below-target"


def topics(response: requests.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {card["source"]["topic"]["code"] for card in response.json()["cards"]}


def timeouts() -> float:
    sample = REGISTRY.get_sample_value(
        "rls_cds_store_failures_total", {"operation": "suppression-timeout"}
    )
    return sample or 0.0


def timed(call, *args, **kwargs) -> tuple[requests.Response, float]:
    start = time.monotonic()
    response = call(*args, timeout=BOUND_S, **kwargs)
    return response, time.monotonic() - start


def test_a_frozen_postgresql_holds_no_hook_no_feedback_no_probe(tmp_path):
    with private_postgres() as pg:
        settings = Settings(
            demo=True,
            data_dir=tmp_path,
            database_url=pg.url,
            patient_key_secret=SECRET,
            log_level="ERROR",
            hook_deadline_s=DEADLINE_S,
            store_timeout_s=1.0,
        )
        app = create_app(settings, clock=lambda: b.NOW)
        recorder = app.extensions["rls_cds"].feedback.recorder
        try:
            with serving(app) as base:
                hook = f"{base}{PATIENT_VIEW}"
                first = requests.post(hook, json=patient_view_body(), timeout=10)
                assert topics(first) == {IRON, ANTIHISTAMINE}
                card = next(c for c in first.json()["cards"] if c["source"]["topic"]["code"]
                            == ANTIHISTAMINE)  # fmt: skip
                assert recorder.flush()
                item = overridden(card["uuid"], "already-addressed")
                stored = requests.post(f"{base}{feedback_url()}", json={"feedback": [item]})
                assert stored.status_code == 200, stored.text
                assert topics(requests.post(hook, json=patient_view_body())) == {IRON}
                assert recorder.flush()
                before = timeouts()
                with app.extensions["rls_cds"].database.connect() as connection:
                    # the server itself cancels what runs or waits longer than the timeout
                    for name in ("statement_timeout", "lock_timeout"):
                        assert connection.execute(text(f"SHOW {name}")).scalar_one() == "1s"

                pg.freeze()
                try:
                    answered, took = timed(requests.post, hook, json=patient_view_body())
                    # Answered without suppression: the overridden topic shows again (safe).
                    assert topics(answered) == {IRON, ANTIHISTAMINE}
                    assert took < BOUND_S
                    assert timeouts() == before + 1
                    again, took = timed(requests.post, hook, json=patient_view_body())
                    assert topics(again) == {IRON, ANTIHISTAMINE} and took < BOUND_S

                    refused, took = timed(
                        requests.post, f"{base}{feedback_url()}", json={"feedback": [item]}
                    )
                    assert refused.status_code == 503, refused.text
                    assert refused.headers["Retry-After"].isdigit()
                    assert took < BOUND_S

                    probe, took = timed(requests.get, f"{base}/readyz")
                    assert probe.status_code == 503
                    assert probe.headers["Retry-After"].isdigit()
                    assert probe.json()["checks"]["store"] is False
                    assert took < BOUND_S
                finally:
                    pg.thaw()

                ready_by = time.monotonic() + 20
                while requests.get(f"{base}/readyz", timeout=10).status_code != 200:
                    assert time.monotonic() < ready_by, "not ready again after SIGCONT"
                    time.sleep(0.2)
                assert topics(requests.post(hook, json=patient_view_body(), timeout=10)) == {IRON}
                assert recorder.flush()
                accepted = requests.post(
                    f"{base}{feedback_url()}", json={"feedback": [item]}, timeout=10
                )
                assert accepted.status_code == 200, accepted.text
        finally:
            recorder.flush(1.0)
            app.extensions["rls_cds"].database.dispose()
