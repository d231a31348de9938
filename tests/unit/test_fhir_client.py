"""The FHIR client: headers, paging within bounds, and every failure in our own terms."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from cds_service.fhir.client import ByteBudget, FhirClient, RequestLog, new_session
from cds_service.fhir.errors import FhirMalformed, FhirRefused, FhirUnavailable, FhirUnreachable
from cds_service.outbound import AllowList
from tests.ticker import ManualTicker

BASE = "https://ehr.example/fhir"
TOKEN = "tok-secret-123"


def client(max_pages: int = 10, **bounds: Any) -> FhirClient:
    return FhirClient(
        new_session(4),
        connect_timeout=1.0,
        max_pages=max_pages,
        allowed=AllowList.of([BASE]),
        **bounds,
    )


def page(entries: int, next_url: str | None = None) -> dict:
    bundle: dict = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Observation", "id": f"o{i}"}} for i in range(entries)
        ],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def get(relative: str, token: str | None = TOKEN, max_pages: int = 10, seconds: float = 2.0):
    log: list[RequestLog] = []
    fetched = client(max_pages).get(BASE, relative, token, time.monotonic() + seconds, log)
    return fetched, log


@responses.activate
def test_read_sends_bearer_token_and_fhir_json_accept():
    responses.get(
        f"{BASE}/Patient/p1",
        json={"resourceType": "Patient", "id": "p1"},
        match=[
            matchers.header_matcher(
                {"Authorization": f"Bearer {TOKEN}", "Accept": "application/fhir+json"}
            )
        ],
    )
    fetched, log = get("Patient/p1")
    assert fetched.value == {"resourceType": "Patient", "id": "p1"}
    assert [(entry.url, entry.status) for entry in log] == [(f"{BASE}/Patient/p1", 200)]


@responses.activate
def test_without_a_token_no_authorization_header_is_sent():
    responses.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    get("Patient/p1", token=None)
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_read_of_a_missing_resource_is_no_data():
    responses.get(f"{BASE}/Patient/p1", status=404, json={"resourceType": "OperationOutcome"})
    assert get("Patient/p1")[0].value is None


@responses.activate
def test_search_follows_relative_and_absolute_next_links_and_merges_pages():
    responses.get(f"{BASE}/Observation?patient=p1", json=page(2, "Observation?page=2"))
    responses.get(f"{BASE}/Observation?page=2", json=page(2, f"{BASE}/Observation?page=3"))
    responses.get(f"{BASE}/Observation?page=3", json=page(1))
    fetched, log = get("Observation?patient=p1")
    assert len(fetched.value["entry"]) == 5
    assert "link" not in fetched.value
    assert not fetched.truncated and len(log) == 3


@responses.activate
def test_paging_stops_at_the_page_bound():
    for n in range(1, 6):
        responses.get(f"{BASE}/Observation?page={n}", json=page(1, f"Observation?page={n + 1}"))
    fetched, log = get("Observation?page=1", max_pages=3)
    assert fetched.truncated and len(log) == 3 and len(fetched.value["entry"]) == 3


@responses.activate
def test_a_next_link_loop_ends():
    responses.get(f"{BASE}/Observation?page=1", json=page(1, "Observation?page=2"))
    responses.get(f"{BASE}/Observation?page=2", json=page(1, "Observation?page=1"))
    fetched, log = get("Observation?page=1")
    assert fetched.truncated and len(log) == 2


@responses.activate
def test_a_next_link_to_another_server_is_not_followed():
    responses.get(f"{BASE}/Observation?x=1", json=page(1, "https://evil.test/steal?x=1"))
    fetched, _ = get("Observation?x=1")
    assert fetched.truncated and len(responses.calls) == 1


@responses.activate
def test_a_next_link_to_another_allowed_server_is_not_followed():
    """Another trusted client's server is on the deployment's list, but this call's token
    was lent for the server the EHR named: paging never carries it elsewhere."""
    other = "https://other-ehr.example/fhir"
    wide = FhirClient(new_session(4), 1.0, 10, allowed=AllowList.of([BASE, other]))
    responses.get(f"{BASE}/Observation?x=1", json=page(1, f"{other}/Observation?page=2"))
    fetched = wide.get(BASE, "Observation?x=1", TOKEN, time.monotonic() + 2, [])
    assert fetched.truncated and len(responses.calls) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, FhirRefused), (403, FhirRefused), (500, FhirUnavailable), (429, FhirUnavailable),
     (400, FhirUnavailable), (302, FhirUnavailable)],
)  # fmt: skip
@responses.activate
def test_http_failures_map_to_fhir_errors(status, error):
    responses.get(
        f"{BASE}/Observation?x=1", status=status, json={"resourceType": "OperationOutcome"}
    )
    with pytest.raises(error) as raised:
        get("Observation?x=1")
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize("body", ["<html>oops</html>", "[1, 2]", '{"no": "type"}'])
@responses.activate
def test_an_answer_that_is_not_a_fhir_resource_is_malformed(body):
    responses.get(f"{BASE}/Observation?x=1", body=body, content_type="application/json")
    with pytest.raises(FhirMalformed):
        get("Observation?x=1")


@pytest.mark.parametrize(
    ("exception", "error"),
    [(requests.ConnectTimeout(), FhirUnavailable), (requests.ReadTimeout(), FhirUnavailable),
     (requests.ConnectionError(), FhirUnreachable)],
)  # fmt: skip
@responses.activate
def test_network_failures_map_to_fhir_errors(exception, error):
    responses.get(f"{BASE}/Observation?x=1", body=exception)
    with pytest.raises(error):
        get("Observation?x=1")


@responses.activate
def test_no_request_is_made_after_the_deadline():
    with pytest.raises(FhirUnavailable):
        get("Observation?x=1", seconds=-1)
    assert len(responses.calls) == 0


@responses.activate
def test_a_429_whose_retry_after_fits_the_deadline_is_tried_once_more():
    url = f"{BASE}/Observation?x=1"
    responses.get(url, status=429, headers={"Retry-After": "0"})
    responses.get(url, json=page(2))
    fetched, log = get("Observation?x=1")
    assert len(fetched.value["entry"]) == 2
    assert [entry.status for entry in log] == [429, 200]


@responses.activate
def test_a_429_asking_for_more_time_than_is_left_is_not_waited_for():
    responses.get(f"{BASE}/Observation?x=1", status=429, headers={"Retry-After": "30"})
    with pytest.raises(FhirUnavailable):
        get("Observation?x=1", seconds=1.0)
    assert len(responses.calls) == 1


@responses.activate
def test_an_answer_larger_than_the_bound_is_malformed():
    responses.get(f"{BASE}/Observation?x=1", json=page(100))
    with pytest.raises(FhirMalformed):
        client(max_answer_bytes=1000).get(BASE, "Observation?x=1", TOKEN, time.monotonic() + 5, [])


# Memory bounds (issue 17): entries per search, bytes per hook, no parse past the deadline.


@responses.activate
def test_entries_beyond_the_bound_are_skipped_and_reported():
    responses.get(f"{BASE}/Observation?x=1", json=page(30))
    fetched = client(max_entries=10).get(BASE, "Observation?x=1", TOKEN, time.monotonic() + 5, [])
    assert len(fetched.value["entry"]) == 10
    assert (fetched.skipped, fetched.truncated) == (20, True)


@responses.activate
def test_no_page_is_fetched_once_the_entry_bound_is_reached():
    responses.get(f"{BASE}/Observation?x=1", json=page(10, f"{BASE}/Observation?page=2"))
    responses.get(f"{BASE}/Observation?page=2", json=page(10))
    fetched = client(max_entries=10).get(BASE, "Observation?x=1", TOKEN, time.monotonic() + 5, [])
    assert len(fetched.value["entry"]) == 10 and fetched.truncated
    assert len(responses.calls) == 1


@responses.activate
def test_the_hook_byte_budget_spans_its_fetches():
    responses.get(f"{BASE}/Observation?x=1", json=page(40))
    responses.get(f"{BASE}/Condition?x=1", json=page(40))
    size = len(json.dumps(page(40)))
    budget = ByteBudget(int(size * 1.5))
    fhir = client()
    fhir.get(BASE, "Observation?x=1", TOKEN, time.monotonic() + 5, [], budget)
    with pytest.raises(FhirUnavailable, match="budget"):
        fhir.get(BASE, "Condition?x=1", TOKEN, time.monotonic() + 5, [], budget)


@responses.activate
def test_an_answer_whose_deadline_passed_while_it_arrived_is_not_parsed():
    ticker = ManualTicker()

    def late(request):
        ticker.advance(10)  # the answer takes longer than the hook had
        return 200, {}, json.dumps(page(3))

    responses.add_callback(responses.GET, f"{BASE}/Observation?x=1", callback=late)
    with pytest.raises(FhirUnavailable, match="deadline"):
        client(ticker=ticker).get(BASE, "Observation?x=1", TOKEN, ticker.now() + 2, [])
