"""Bulkheads: one FHIR server that drips its headers costs only its own hooks their data.

Issue 17, point 3 (fault found): all hooks of a worker shared one fetch pool, so while one
EHR's server dripped its headers (a byte every 0.2 s: no socket read ever times out), 14 of
16 hooks against a healthy server answered ``{"cards": []}``. Here N hooks call a dripping
server and M a healthy one at the same time, both stubs on loopback. The FHIR ticker stands
still (tests/hardening/ticker.py): every healthy hook must get its cards while no deadline
can pass; then the ticker moves past the deadline and each dripping hook must answer, with
its data "not read", and the watchdog must have cut every dripping exchange. No assertion
reads the wall clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cds_service.api import EXTENSION
from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.hardening.fhir_faults import FaultyFhir, faulty_fhir
from tests.hardening.test_fhir_faults import HOOK, RECORD
from tests.hardening.test_fhir_faults import log as log
from tests.ticker import ManualTicker

DEADLINE_S = 1.0
DRIPPING_HOOKS = 6
HEALTHY_HOOKS = 6
#: Real seconds a thread may take before the test gives up on it (a hang, not a bound).
HANG_S = 30.0
TYPES = (
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "ServiceRequest",
    "Procedure",
)
ALL_KEYS = {
    "patient",
    "conditions",
    "labs",
    "weight",
    "medicationRequests",
    "medicationStatements",
    "completedMedicationRequests",
    "medicationAdministrations",
    "serviceRequests",
    "procedures",
}
HEALTHY_TOPICS = ["iron-below-target", "sedating-antihistamine"]


@pytest.fixture
def ticker() -> ManualTicker:
    return ManualTicker()


@pytest.fixture
def app(tmp_path: Path, ticker: ManualTicker) -> Flask:
    settings = Settings(
        demo=True, data_dir=tmp_path, hook_deadline_s=DEADLINE_S, log_level="WARNING"
    )
    return create_app(settings, clock=lambda: b.NOW, fhir_ticker=ticker)


@pytest.fixture
def servers() -> Iterator[tuple[FaultyFhir, FaultyFhir]]:
    with (
        faulty_fhir(RECORD, dict.fromkeys(TYPES, "drip-headers")) as dripping,
        faulty_fhir(RECORD) as healthy,
    ):
        yield dripping, healthy


def _hook(app: Flask, base: str, results: dict[str, Any], name: str) -> None:
    body = b.hook_request(fhirServer=base)
    del body["prefetch"]
    response = app.test_client().post(HOOK, json=body)
    payload = response.get_json() or {}
    topics = [c["source"]["topic"]["code"] for c in payload.get("cards", [])]
    results[name] = (response.status_code, topics, body["hookInstance"])


def _start(app: Flask, base: str, results: dict[str, Any], name: str) -> threading.Thread:
    thread = threading.Thread(target=_hook, args=(app, base, results, name), daemon=True)
    thread.start()
    return thread


def _until(condition: Any, what: str) -> None:
    done = threading.Event()
    for _ in range(int(HANG_S / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError(f"gave up waiting: {what}")


def test_a_dripping_server_leaves_healthy_hooks_their_cards(app, servers, ticker, log):
    dripping, healthy = servers
    results: dict[str, Any] = {}
    held = [_start(app, dripping.base_url, results, f"drip-{i}") for i in range(DRIPPING_HOOKS)]
    share = app.extensions[EXTENSION].evaluator.fetch_slots.shares.server
    _until(lambda: len(dripping.open_drips("drip-headers")) >= share, "the dripping share")

    served = [_start(app, healthy.base_url, results, f"ok-{i}") for i in range(HEALTHY_HOOKS)]
    for thread in served:
        thread.join(HANG_S)
    answered = [results.get(f"ok-{i}") for i in range(HEALTHY_HOOKS)]
    assert [a[:2] if a else None for a in answered] == [(200, HEALTHY_TOPICS)] * HEALTHY_HOOKS
    assert len(dripping.open_drips("drip-headers")) <= share  # never more than its share
    assert all(thread.is_alive() for thread in held)  # no deadline has passed yet

    ticker.advance(DEADLINE_S)
    for thread in held:
        thread.join(HANG_S)
    for i in range(DRIPPING_HOOKS):
        assert results[f"drip-{i}"][:2] == (200, [])
    not_read = {
        r.hook_instance: set(r.not_read)  # type: ignore[attr-defined]
        for r in log.records
        if r.getMessage().startswith("FHIR data not read")
    }
    for i in range(DRIPPING_HOOKS):
        assert not_read[results[f"drip-{i}"][2]] == ALL_KEYS
    _until(lambda: not dripping.open_drips("drip-headers"), "the watchdog to cut every drip")
