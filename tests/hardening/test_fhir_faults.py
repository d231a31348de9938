"""FHIR faults: the hook answers within its deadline with what it could read, says what it
could not, and never answers 5xx.

The service runs in demo mode (loopback FHIR servers allowed) with a 1 s hook deadline and
fetches everything from the fault-injecting stub of fhir_faults.py (no prefetch); one
resource type at a time misbehaves. The failing types run on a FHIR ticker that stands
still (tests/ticker.py) and is moved past the deadline only once every other fetch is back,
so no outcome depends on how loaded the machine is. A few cases run against the real local
FHIR sandbox (Medplum) slowed down with SANDBOX_DELAY_MS.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from cds_service.api import EXTENSION
from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.fixture_requests import REQUESTS
from tests.hardening.fhir_faults import FaultyFhir, faulty_fhir
from tests.integration.fhir_sandbox import (
    FIXTURE_BUNDLES,
    load_bundles,
    start_sandbox,
    stop_sandbox,
)
from tests.ticker import ManualTicker

DEADLINE_S = 1.0
GRACE_S = 0.5
HOOK = "/cds-services/rls-secondary-causes"
RECORD = [
    b.patient(),
    b.rls(),
    b.observation(b.FERRITIN, 38, "ng/mL"),
    b.kidney_ok(),
    b.medication_statement(text="diphenhydramine 25 mg"),
]
#: The prefetch keys each resource type answers.
KEYS = {
    "Observation": {"labs", "weight"},
    "MedicationRequest": {"medicationRequests", "completedMedicationRequests"},
    "Condition": {"conditions"},
}
FAILING = ("slow", "500", "429", "truncated", "not-json")
PAGING = ("next-loop", "endless")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def not_read(self) -> set[str]:
        """The keys named by every "FHIR data not read" warning."""
        return {
            key
            for r in self.records
            if r.getMessage().startswith("FHIR data not read")
            for key in r.not_read  # type: ignore[attr-defined]
        }


@pytest.fixture
def log() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("cds_service")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _app(tmp_path: Path, ticker: ManualTicker | None = None, **settings: object) -> Flask:
    config = Settings(
        demo=True, data_dir=tmp_path, hook_deadline_s=DEADLINE_S, log_level="WARNING", **settings
    )
    if ticker is None:
        return create_app(config, clock=lambda: b.NOW)
    return create_app(config, clock=lambda: b.NOW, fhir_ticker=ticker)


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Flask:
    return _app(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def ticking(tmp_path_factory) -> tuple[Flask, ManualTicker]:
    ticker = ManualTicker()
    return _app(tmp_path_factory.mktemp("ticking"), ticker), ticker


@pytest.fixture(scope="module")
def fhir() -> Iterator[FaultyFhir]:
    with faulty_fhir(RECORD) as stub:
        yield stub


def _call(app: Flask, fhir_base: str, patient_id: str = b.PATIENT_ID) -> tuple[int, list, float]:
    body = b.hook_request(
        fhirServer=fhir_base,
        context={"userId": "Practitioner/example", "patientId": patient_id},
    )
    del body["prefetch"]
    started = time.monotonic()
    response = app.test_client().post(HOOK, json=body)
    seconds = time.monotonic() - started
    payload = response.get_json() or {}
    topics = [c["source"]["topic"]["code"] for c in payload.get("cards", [])]
    return response.status_code, topics, seconds


def _with_fault(app, fhir: FaultyFhir, kind: str, fault: str | None):
    fhir.faults.clear()
    if fault:
        fhir.faults[kind] = fault
    try:
        return _call(app, fhir.base_url)
    finally:
        fhir.faults.clear()


@pytest.fixture(scope="module")
def healthy(app, fhir) -> list[str]:
    status, topics, _ = _with_fault(app, fhir, "", None)
    assert status == 200
    assert topics == ["iron-below-target", "sedating-antihistamine"]
    return topics


#: What can still be said when one type cannot be read: iron without medications, the
#: antihistamine without labs, nothing without the conditions (the RLS gate).
DEGRADED = {
    "Observation": ["sedating-antihistamine"],
    "MedicationRequest": ["iron-below-target"],
    "Condition": [],
}


#: Requests one hook without prefetch makes (one per prefetch key).
HOOK_REQUESTS = 10
#: Real seconds before a test gives up on a hook (a hang, never a bound asserted).
HANG_S = 30.0


def _on_the_ticker(ticking: tuple[Flask, ManualTicker], fhir: FaultyFhir) -> tuple[int, list]:
    """One hook, with the ticker still until every fetch but the slow ones is back; then
    the ticker moves to the deadline, once: an answer then came within the deadline."""
    app, ticker = ticking
    before = len(fhir.served)
    answer: list[tuple[int, list, float]] = []
    call = threading.Thread(target=lambda: answer.append(_call(app, fhir.base_url)))
    call.start()
    waiting = threading.Event()
    slots = app.extensions[EXTENSION].evaluator.fetch_slots
    for _ in range(int(HANG_S / 0.01)):
        mine = fhir.served[before:]
        slow = sum(1 for s in mine if s.fault == "slow")
        if answer or (len(mine) == HOOK_REQUESTS and slots.held() == slow):
            break
        waiting.wait(0.01)
    ticker.advance(DEADLINE_S)
    call.join(HANG_S)
    assert answer, "the hook did not answer once its deadline had passed"
    status, topics, _ = answer[0]
    return status, topics


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("fault", FAILING)
def test_a_failing_type_costs_only_its_keys(ticking, fhir, healthy, log, kind, fault):
    fhir.faults.clear()
    fhir.faults[kind] = fault
    try:
        status, topics = _on_the_ticker(ticking, fhir)
    finally:
        fhir.faults.clear()
    assert status == 200
    assert topics == DEGRADED[kind]
    assert set(topics) <= set(healthy)
    assert log.not_read() == KEYS[kind]


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("fault", PAGING)
def test_endless_or_looping_pages_stop_and_keep_what_was_read(app, fhir, healthy, kind, fault):
    status, topics, seconds = _with_fault(app, fhir, kind, fault)
    assert status == 200
    assert seconds < DEADLINE_S + GRACE_S
    assert topics == healthy


@pytest.mark.parametrize("fault", PAGING)
def test_a_search_cut_short_is_stated_in_the_log(app, fhir, healthy, log, fault):
    """A search whose pages were not all read was not wholly read: some warning must name
    the key (Gathered.truncated), as for keys not read at all."""
    _with_fault(app, fhir, "Observation", fault)
    warned = " ".join(
        json.dumps({**r.__dict__, "msg": r.getMessage()}, default=str)
        for r in log.records
        if r.levelno >= logging.WARNING
    )
    assert "labs" in warned


@pytest.fixture
def dripping(tmp_path) -> Iterator[tuple[Flask, FaultyFhir]]:
    # a small pool, so fetches that outlive the deadline would soon hold all of it; with
    # the bulkheads one server holds half (4): the 2 dripping keys and 2 for the rest
    app = _app(tmp_path, fhir_max_parallel=8)
    with faulty_fhir(RECORD, {"Observation": "drip"}) as stub:
        yield app, stub


def test_a_dripping_body_does_not_delay_the_answer(dripping, log):
    app, stub = dripping
    status, topics, seconds = _call(app, stub.base_url)
    assert status == 200
    assert seconds < DEADLINE_S + GRACE_S
    assert topics == DEGRADED["Observation"]
    assert log.not_read() == KEYS["Observation"]


def test_a_dripping_body_is_abandoned_at_the_deadline(dripping):
    """The fetch must stop when the hook's deadline passes; a read timeout applies to each
    socket read, so a byte every 100 ms keeps it going unless the client enforces a total
    time (the worker thread and the connection stay held)."""
    app, stub = dripping
    _call(app, stub.base_url)
    give_up = time.monotonic() + GRACE_S + 0.5
    while stub.open_drips() and time.monotonic() < give_up:
        time.sleep(0.05)
    assert not stub.open_drips(), f"{len(stub.open_drips())} drip fetches still reading"


def test_dripping_servers_do_not_starve_other_hooks(dripping, fhir, healthy):
    """Two hooks on a dripping server hold 4 of the 8 FHIR workers if fetches outlive the
    deadline; a hook on a healthy server must still read everything."""
    app, stub = dripping
    _call(app, stub.base_url)
    _call(app, stub.base_url)
    status, topics, seconds = _call(app, fhir.base_url)
    assert status == 200
    assert seconds < DEADLINE_S + GRACE_S
    assert topics == healthy


# The real FHIR server (Medplum sandbox), slowed down.


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[str]:
    process, base_url = start_sandbox({"SANDBOX_DELAY_MS": "1500"})
    try:
        load_bundles(base_url, [p for p in FIXTURE_BUNDLES if p.stem == "rls-low-ferritin"])
        yield base_url
    finally:
        stop_sandbox(process)


@pytest.fixture(scope="module")
def lagging_sandbox() -> Iterator[str]:
    process, base_url = start_sandbox({"SANDBOX_DELAY_MS": "300"})
    try:
        load_bundles(base_url, [p for p in FIXTURE_BUNDLES if p.stem == "rls-low-ferritin"])
        yield base_url
    finally:
        stop_sandbox(process)


def _prefetched_topics(app: Flask, name: str) -> list[str]:
    body = json.loads((REQUESTS / name).read_text("utf-8"))
    cards = app.test_client().post(HOOK, json=body).get_json()["cards"]
    return [c["source"]["topic"]["code"] for c in cards]


def test_sandbox_slower_than_the_deadline(app, slow_sandbox, log):
    """Every answer comes after 1.5 s, the deadline is 1 s: nothing is read, the hook says
    so and answers in time (no cards: the RLS condition could not be read)."""
    status, topics, seconds = _call(app, slow_sandbox, "rls-low-ferritin")
    assert status == 200
    assert seconds < DEADLINE_S + GRACE_S
    assert topics == []
    assert log.not_read() == {
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


def test_sandbox_slow_but_within_the_deadline(app, lagging_sandbox, log):
    """300 ms per answer, 10 queries in parallel: all read, the same cards as with prefetch."""
    status, topics, seconds = _call(app, lagging_sandbox, "rls-low-ferritin")
    assert status == 200
    assert seconds < DEADLINE_S + GRACE_S
    assert topics == _prefetched_topics(app, "patient-view-rls-low-ferritin.json")
    assert log.not_read() == set()
