"""Gathering: all keys in flight at once, nothing waited for past the deadline."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import responses
from responses import matchers

from cds_service.fhir.client import FhirClient, new_session
from cds_service.fhir.errors import FhirRefused, FhirUnavailable
from cds_service.fhir.gather import gather
from cds_service.outbound import AllowList

BASE = "https://ehr.example/fhir"
KEYS = {f"k{i}": f"Observation?k={i}" for i in range(5)}
EMPTY = {"resourceType": "Bundle", "type": "searchset"}


def run(urls=KEYS, seconds: float = 2.0):
    """Gather on a fresh pool; the pool is not waited for (a stuck request may outlive it)."""
    client = FhirClient(new_session(8), 1.0, 10, allowed=AllowList.of([BASE]))
    executor = ThreadPoolExecutor(8)
    try:
        return gather(client, executor, BASE, "t", urls, time.monotonic() + seconds)
    finally:
        executor.shutdown(wait=False)


@responses.activate
def test_every_key_is_in_flight_at_the_same_time():
    """Each response waits at a barrier that opens only when all five requests have arrived."""
    barrier = threading.Barrier(len(KEYS), timeout=5)

    def all_together(request):
        barrier.wait()
        return 200, {}, '{"resourceType": "Bundle", "type": "searchset"}'

    for i in range(len(KEYS)):
        responses.add_callback(
            responses.GET,
            f"{BASE}/Observation",
            callback=all_together,
            match=[matchers.query_param_matcher({"k": str(i)})],
        )
    gathered = run()
    assert sorted(gathered.values) == sorted(KEYS) and not gathered.failed


@responses.activate
def test_a_key_not_back_by_the_deadline_is_unavailable_and_the_rest_answer():
    release = threading.Event()

    def stuck(request):
        release.wait(5)
        return 200, {}, '{"resourceType": "Bundle", "type": "searchset"}'

    responses.add_callback(
        responses.GET,
        f"{BASE}/Observation",
        callback=stuck,
        match=[matchers.query_param_matcher({"k": "0"})],
    )
    for i in range(1, 5):
        responses.get(f"{BASE}/Observation?k={i}", json=EMPTY)
    started = time.monotonic()
    gathered = run(seconds=0.3)
    waited = time.monotonic() - started
    release.set()
    assert set(gathered.values) == {"k1", "k2", "k3", "k4"}
    assert isinstance(gathered.failed["k0"], FhirUnavailable)
    assert not gathered.fatal
    assert waited < 4  # not the 5 s the stuck request would have taken


@responses.activate
def test_refusal_is_fatal_and_logged_per_request():
    for i, url in enumerate(KEYS.values()):
        responses.get(f"{BASE}/{url}", status=401 if i == 0 else 200, json=EMPTY)
    gathered = run()
    assert list(gathered.fatal) == ["k0"]
    assert isinstance(gathered.fatal["k0"], FhirRefused)
    assert len(gathered.requests) == 5
