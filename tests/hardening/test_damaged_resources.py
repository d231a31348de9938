"""Damaged resources: one resource of a valid demo record broken at a time (hypothesis).

Every request in fhir_fixtures/requests/ (built from the demo bundles by
tests/fixture_requests.py) is a valid call. A property draws a request, one resource in its
prefetch (every copy of it: Medications ride along under two keys) and a damage from
damage.py. The hook must answer 200, count what it could not use (ReadReport skipped or
ignored) and answer exactly as it does for the reference request: the resource removed when
the damage makes it unusable, or the resource without the broken element when only that
element is lost. So every card the intact resources justify is still returned, and none is
built from the damaged resource.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.api import EXTENSION
from cds_service.app import create_app
from cds_service.evaluation import Evaluator, Outcome
from cds_service.settings import Settings
from tests import builders as b
from tests.builders import strip_uuids
from tests.fixture_requests import expected_requests
from tests.hardening.damage import DAMAGES, REMOVED, Damage

REQUESTS = expected_requests()
SERVICE_OF_HOOK = {
    "patient-view": "rls-secondary-causes",
    "order-select": "rls-order-select",
    "order-sign": "rls-order-sign",
}
NO_UPDATE_NOTE = re.compile(
    r"\*\*Note:\*\* A one-click change of the order could not be offered[^\n]*\n\n"
)


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Flask:
    settings = Settings(demo=True, data_dir=tmp_path_factory.mktemp("damaged"), log_level="ERROR")
    return create_app(settings, clock=lambda: b.NOW)


def _identities(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(type, id) of every resource in the prefetch, in a stable order."""
    found: dict[tuple[str, str], None] = {}
    for value in body["prefetch"].values():
        for resource in _resources(value):
            found[(resource["resourceType"], resource["id"])] = None
    return list(found)


def _resources(value: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(value, dict):
        return
    if value.get("resourceType") == "Bundle":
        for entry in value.get("entry") or []:
            yield entry["resource"]
    else:
        yield value


def _with(body: dict[str, Any], identity: tuple[str, str], new: dict[str, Any] | None) -> dict:
    """`body` with every copy of the resource `identity` replaced by `new` (None: removed)."""
    body = copy.deepcopy(body)

    def same(resource: dict[str, Any]) -> bool:
        return (resource.get("resourceType"), resource.get("id")) == identity

    for key, value in body["prefetch"].items():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            entries = [
                e if not same(e["resource"]) else ({**e, "resource": new} if new else None)
                for e in value.get("entry") or []
            ]
            value["entry"] = [e for e in entries if e is not None]
        elif same(value):
            assert new is not None, "the Patient is never removed: the hook would answer 412"
            body["prefetch"][key] = new
    return body


def _evaluator(app: Flask) -> Evaluator:
    return app.extensions[EXTENSION].evaluator


def _answer(app: Flask, body: dict[str, Any]) -> Outcome:
    return _evaluator(app).evaluate(SERVICE_OF_HOOK[body["hook"]], body)


def _cards(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The cards without uuids and suggestions (compared apart: see _suggestions), without
    the selectionBehavior only cards with suggestions carry, and without the note that says
    a one-click change could not be offered."""
    return [
        {
            k: NO_UPDATE_NOTE.sub("", v) if k == "detail" else v
            for k, v in strip_uuids(card).items()
            if k not in ("suggestions", "selectionBehavior")
        }
        for card in response["cards"]
    ]


def _suggestions(response: dict[str, Any]) -> set[tuple[str, str]]:
    """(topic, label) of every suggestion.

    An update suggestion carries the MedicationRequest as received, re-validated with
    fhir.resources (suggestions.validated_update): an order with a broken element, even one
    the rules do without (an impossible authoredOn, an odd extension), is not offered back as
    a one-click update, and the card's detail says so (NO_UPDATE_NOTE). So a damage may cost
    a suggestion, never a card.
    """
    return {
        (card["source"]["topic"]["code"], suggestion["label"])
        for card in response["cards"]
        for suggestion in card.get("suggestions") or []
    }


def _uncounted(outcome: Outcome) -> int:
    """Resources the reader skipped or ignored."""
    return sum(outcome.report.skipped.values()) + sum(outcome.report.ignored.values())


@st.composite
def damaged_calls(draw) -> tuple[str, tuple[str, str], Damage, dict, dict | None, dict]:
    name = draw(st.sampled_from(sorted(REQUESTS)))
    body = REQUESTS[name]
    identity = draw(st.sampled_from(_identities(body)))
    resource = next(
        r
        for v in body["prefetch"].values()
        for r in _resources(v)
        if (r["resourceType"], r["id"]) == identity
    )
    damage = draw(st.sampled_from([d for d in DAMAGES if d.applies(resource)]))
    damaged, reference = damage.apply(copy.deepcopy(resource), draw(st.integers(0, 41)))
    return name, identity, damage, damaged, reference, resource


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(call=damaged_calls())
def test_one_damaged_resource_costs_only_that_resource(app, call):
    name, identity, damage, damaged, reference, _ = call
    body = REQUESTS[name]
    broken_body = _with(body, identity, damaged)
    reference_body = _with(body, identity, reference)

    broken = _answer(app, broken_body)
    expected = _answer(app, reference_body)

    where = f"{name}: {identity} {damage.name}"
    assert _cards(broken.response) == _cards(expected.response), where
    assert _suggestions(broken.response) <= _suggestions(expected.response), where
    if _suggestions(broken.response) != _suggestions(expected.response):
        assert any(NO_UPDATE_NOTE.search(c["detail"]) for c in broken.response["cards"]), where
    if reference is REMOVED:
        assert _suggestions(broken.response) == _suggestions(expected.response), where
    if reference is REMOVED and identity[0] != "Medication":
        # The damaged resource itself is skipped or ignored, and counted.
        assert _uncounted(broken) >= _uncounted(expected) + 1, (where, broken.report)
    elif reference is REMOVED:  # a Medication: the requests naming it cannot be read
        assert _uncounted(broken) >= _uncounted(expected), (where, broken.report)


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(call=damaged_calls())
def test_damaged_resources_over_http_answer_200_with_the_reference_cards(app, call):
    name, identity, _, damaged, reference, _ = call
    body = REQUESTS[name]
    client = app.test_client()
    service = SERVICE_OF_HOOK[body["hook"]]
    responses = [
        client.post(
            f"/cds-services/{service}",
            data=json.dumps(_with(body, identity, new)),
            content_type="application/json",
        )
        for new in (damaged, reference)
    ]
    assert [r.status_code for r in responses] == [200, 200], responses[0].get_json()
    broken, expected = (r.get_json() for r in responses)
    assert _cards(broken) == _cards(expected), f"{name}: {identity}"


def test_every_damage_applies_to_some_resource_of_the_demo_records():
    """The property can reach every damage (a damage no resource accepts tests nothing)."""
    resources = [
        r for body in REQUESTS.values() for v in body["prefetch"].values() for r in _resources(v)
    ]
    for damage in DAMAGES:
        assert any(damage.applies(r) for r in resources), damage.name


def test_the_intact_requests_are_read_without_skipping(app):
    """The baseline: the demo requests are clean, so every count above is the damage's."""
    for name, body in REQUESTS.items():
        outcome = _answer(app, body)
        assert not outcome.report.skipped, (name, outcome.report.skipped)
