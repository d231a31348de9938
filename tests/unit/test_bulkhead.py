"""Bulkheads: each FHIR server and client holds at most its share, a wait ends at the
deadline on the ticker, and nothing is remembered of a server once its fetches are done."""

from __future__ import annotations

import threading

import pytest

from cds_service.explain import fetch_cause
from cds_service.fhir.bulkhead import Bulkheads, NoSlot, Shares
from tests.ticker import ManualTicker

SERVER = "https://ehr.example/fhir"
OTHER = "https://ehr.example/fhir-tenant-2"


def heads(ticker: ManualTicker) -> Bulkheads:
    return Bulkheads(Shares(server=2, client=3, pool=4), ticker)


def test_a_server_holds_no_more_than_its_share_and_others_keep_theirs():
    ticker = ManualTicker()
    slots = heads(ticker)
    deadline = ticker.now() + 1
    slots.acquire(slots.keys(SERVER, "a"), deadline)
    slots.acquire(slots.keys(SERVER + "/", "b"), deadline)  # the same server, written twice
    ticker.advance(1)
    with pytest.raises(NoSlot):
        slots.acquire(slots.keys(SERVER, "c"), deadline)
    slots.acquire(slots.keys(OTHER, "c"), ticker.now() + 1)  # another tenant's path: free
    assert (slots.held(SERVER), slots.held(OTHER), slots.held()) == (2, 1, 3)


def test_a_client_holds_no_more_than_its_share_across_servers():
    ticker = ManualTicker()
    slots = heads(ticker)
    for server in (SERVER, OTHER, "https://b.example/fhir"):
        slots.acquire(slots.keys(server, "ehr"), ticker.now() + 1)
    ticker.advance(1)
    with pytest.raises(NoSlot):
        slots.acquire(slots.keys("https://c.example/fhir", "ehr"), ticker.now())
    assert slots.held(client="ehr") == 3


def test_a_waiter_gets_the_slot_given_back_before_its_deadline():
    ticker = ManualTicker()
    slots = heads(ticker)
    first = slots.keys(SERVER, "a")
    slots.acquire(first, ticker.now() + 1)
    slots.acquire(slots.keys(SERVER, "a"), ticker.now() + 1)
    got: list[bool] = []
    waiter = threading.Thread(
        target=lambda: got.append(slots.acquire(slots.keys(SERVER, "b"), ticker.now() + 1) is None)
    )
    waiter.start()
    slots.release(first)
    waiter.join(10)
    assert got == [True]


def test_slots_given_back_leave_nothing_behind():
    ticker = ManualTicker()
    slots = heads(ticker)
    with slots.slot(SERVER, "a", ticker.now() + 1), slots.slot(OTHER, "a", ticker.now() + 1):
        assert slots.held(client="a") == 2
    assert slots._held == {}


def test_a_key_without_a_slot_is_explained_as_such():
    assert "slot" in fetch_cause(NoSlot("no FHIR fetch slot came free"))
