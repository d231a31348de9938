"""POST /cds-services/{id}/feedback (checklist 31-32): the spec's examples, validation that
names the bad item, several items per POST, idempotency, and feedback on unknown cards or at
another service's URL (404, issue 16)."""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from cds_service.knowledge import OVERRIDE_REASON_SYSTEM
from tests import builders as b
from tests.feedback.conftest import (
    ORDER_SIGN,
    PATIENT_VIEW,
    accepted,
    as_utc,
    cards_by_topic,
    feedback_url,
    flush,
    iso,
    order_sign_body,
    overridden,
    patient_view_body,
    post_json,
)

# The two examples of CDS Hooks 2.0, section Feedback.
SPEC_ACCEPTED = {
    "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
    "outcome": "accepted",
    "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
    "outcomeTimestamp": "2020-12-11T00:00:00Z",
}
SPEC_OVERRIDDEN = {
    "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
    "outcome": "overridden",
    "overrideReason": {
        "reason": {
            "code": "reason-code-provided-by-service",
            "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
        },
        "userComment": "clinician can add a free text comment here",
    },
    "outcomeTimestamp": "2020-12-11T00:00:00Z",
}


def answer(response) -> dict:
    assert response.status_code == 200, response.get_json()
    assert response.is_json
    return response.get_json()


@pytest.fixture
def cards(app, client) -> dict[str, dict]:
    """Cards issued to the (demo) client by patient-view, recorded before feedback comes."""
    issued = cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body()))
    flush(app)
    return issued


def as_spec_accepted(card: dict) -> dict:
    """The spec's accepted example, about an issued card and its first suggestion."""
    suggestion = [{"id": card["suggestions"][0]["uuid"]}]
    return {**SPEC_ACCEPTED, "card": card["uuid"], "acceptedSuggestions": suggestion,
            "outcomeTimestamp": iso(b.NOW)}  # fmt: skip


def as_spec_overridden(card: dict) -> dict:
    return {**SPEC_OVERRIDDEN, "card": card["uuid"], "outcomeTimestamp": iso(b.NOW)}


# --- the spec's examples ------------------------------------------------------------------


def test_spec_example_accepted(store_backend, client, cards):
    item = as_spec_accepted(cards["iron-below-target"])
    body = {"feedback": [item]}
    assert answer(post_json(client, feedback_url(), body)) == {
        "received": 1,
        "stored": 1,
        "alreadyStored": 0,
    }
    (row,) = store_backend.rows("feedback")
    assert row["card_uuid"] == item["card"]
    assert row["outcome"] == "accepted"
    suggestions = row["accepted_suggestions"]
    if isinstance(suggestions, str):  # SQLite JSON read back as text by raw SQL
        suggestions = json.loads(suggestions)
    assert suggestions == [item["acceptedSuggestions"][0]["id"]]
    assert row["reason_code"] is None and row["user_comment"] is None
    assert as_utc(row["outcome_at"]) == b.NOW
    assert as_utc(row["received_at"]) == b.NOW
    assert row["service_id"] == "rls-secondary-causes"
    assert (row["client"], row["tenant"]) == ("demo", "")  # the sending client (demo mode)


def test_spec_example_overridden_with_reason_and_comment(store_backend, client, cards):
    body = {"feedback": [as_spec_overridden(cards["sedating-antihistamine"])]}
    assert answer(post_json(client, feedback_url(), body))["stored"] == 1
    (row,) = store_backend.rows("feedback")
    assert row["outcome"] == "overridden"
    assert row["reason_system"] == SPEC_OVERRIDDEN["overrideReason"]["reason"]["system"]
    assert row["reason_code"] == "reason-code-provided-by-service"
    assert row["user_comment"] == "clinician can add a free text comment here"


def test_several_items_in_one_post(store_backend, client, cards):
    iron, anti = cards["iron-below-target"], cards["sedating-antihistamine"]
    items = [
        accepted(iron),
        overridden(anti["uuid"], "benefit-outweighs-risk"),
        as_spec_overridden(iron),
        {  # overridden with a comment and no coded reason, in another offset
            "card": anti["uuid"],
            "outcome": "overridden",
            "overrideReason": {"userComment": "not today"},
            "outcomeTimestamp": "2026-11-28T13:00:00.123+01:00",
        },
        {"card": anti["uuid"], "outcome": "overridden", "outcomeTimestamp": iso(b.NOW)},
    ]
    assert answer(post_json(client, feedback_url(), {"feedback": items})) == {
        "received": 5,
        "stored": 5,
        "alreadyStored": 0,
    }
    assert store_backend.count("feedback") == 5


def test_unknown_extra_fields_are_ignored(store_backend, client, cards):
    item = {**as_spec_accepted(cards["iron-below-target"]), "extension": {"example.org/x": 1}}
    body = {"feedback": [item], "extension": {"example.org/y": True}}
    assert answer(post_json(client, feedback_url(), body))["stored"] == 1


def test_feedback_to_each_service(store_backend, app, client):
    """Each service's feedback URL takes the cards that service issued."""
    order = order_sign_body()
    select = copy.deepcopy(order) | {"hook": "order-select", "hookInstance": str(uuid.uuid4())}
    select["context"]["selections"] = ["MedicationRequest/hx"]
    issued = {
        "rls-secondary-causes": post_json(client, PATIENT_VIEW, patient_view_body()),
        "rls-order-select": post_json(client, "/cds-services/rls-order-select", select),
        "rls-order-sign": post_json(client, ORDER_SIGN, order),
    }
    flush(app)
    for service, response in issued.items():
        card = next(iter(cards_by_topic(response).values()))
        item = overridden(card["uuid"], "benefit-outweighs-risk")
        assert answer(post_json(client, feedback_url(service), {"feedback": [item]}))
    assert {r["service_id"] for r in store_backend.rows("feedback")} == set(issued)


# --- validation ---------------------------------------------------------------------------


def with_item(index: int, item: object) -> dict:
    """A valid body of three items whose item `index` is replaced by `item`."""
    items: list[object] = [copy.deepcopy(SPEC_ACCEPTED) for _ in range(3)]
    for n, each in enumerate(items):
        each["card"] = f"card-{n}"  # type: ignore[index]
    items[index] = item
    return {"feedback": items}


def without(item: dict, key: str) -> dict:
    return {k: v for k, v in item.items() if k != key}


INVALID = {
    "accepted-without-acceptedSuggestions": (
        with_item(1, without(SPEC_ACCEPTED, "acceptedSuggestions")),
        "feedback[1]",
    ),
    "accepted-with-empty-acceptedSuggestions": (
        with_item(1, {**SPEC_ACCEPTED, "acceptedSuggestions": []}),
        "feedback[1]",
    ),
    "suggestion-without-id": (
        with_item(0, {**SPEC_ACCEPTED, "acceptedSuggestions": [{}]}),
        "feedback[0].acceptedSuggestions[0].id",
    ),
    "bad-outcome": (with_item(2, {**SPEC_ACCEPTED, "outcome": "dismissed"}), "feedback[2].outcome"),
    "missing-outcome": (with_item(0, without(SPEC_ACCEPTED, "outcome")), "feedback[0].outcome"),
    "missing-card": (with_item(2, without(SPEC_OVERRIDDEN, "card")), "feedback[2].card"),
    "empty-card": (with_item(1, {**SPEC_OVERRIDDEN, "card": ""}), "feedback[1].card"),
    "card-not-a-string": (with_item(1, {**SPEC_OVERRIDDEN, "card": 7}), "feedback[1].card"),
    "missing-timestamp": (
        with_item(1, without(SPEC_OVERRIDDEN, "outcomeTimestamp")),
        "feedback[1].outcomeTimestamp",
    ),
    "timestamp-without-timezone": (
        with_item(1, {**SPEC_OVERRIDDEN, "outcomeTimestamp": "2026-11-28T12:00:00"}),
        "feedback[1].outcomeTimestamp",
    ),
    "timestamp-date-only": (
        with_item(0, {**SPEC_OVERRIDDEN, "outcomeTimestamp": "2026-11-28"}),
        "feedback[0].outcomeTimestamp",
    ),
    "timestamp-not-a-date": (
        with_item(2, {**SPEC_OVERRIDDEN, "outcomeTimestamp": "yesterday"}),
        "feedback[2].outcomeTimestamp",
    ),
    "timestamp-a-number": (
        with_item(2, {**SPEC_OVERRIDDEN, "outcomeTimestamp": 1764331200}),
        "feedback[2].outcomeTimestamp",
    ),
    "reason-without-code": (
        with_item(
            0,
            {**SPEC_OVERRIDDEN, "overrideReason": {"reason": {"system": OVERRIDE_REASON_SYSTEM}}},
        ),
        "feedback[0].overrideReason.reason.code",
    ),
    "item-not-an-object": (with_item(1, "accepted"), "feedback[1]"),
    "item-null": (with_item(0, None), "feedback[0]"),
    "empty-list": ({"feedback": []}, "feedback"),
    "feedback-not-a-list": ({"feedback": SPEC_ACCEPTED}, "feedback"),
    "no-feedback-key": ({"cards": [SPEC_ACCEPTED]}, "feedback"),
}


@pytest.mark.parametrize(("body", "loc"), INVALID.values(), ids=INVALID.keys())
def test_invalid_feedback_is_400_naming_the_item(store_backend, client, body, loc):
    response = post_json(client, feedback_url(), body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["error"] == "invalid-request"
    locs = [detail["loc"] for detail in error["details"]]
    assert any(found == loc or found.startswith(loc + ".") for found in locs), locs
    assert store_backend.count("feedback") == 0  # nothing of a refused POST is stored


def test_accepted_without_suggestions_names_the_field(store_backend, client):
    body = with_item(1, without(SPEC_ACCEPTED, "acceptedSuggestions"))
    details = post_json(client, feedback_url(), body).get_json()["details"]
    assert any(
        d["loc"] == "feedback[1].acceptedSuggestions" or "acceptedSuggestions" in d["msg"]
        for d in details
    ), details


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'"feedback"', b"null", b"{not json", b'{"feedback": [NaN]}'],
    ids=["list", "string", "null", "not-json", "nan"],
)
def test_a_body_that_is_not_an_object_is_400(store_backend, client, raw):
    response = client.post(feedback_url(), data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid-request"


def test_wrong_content_type_is_400(store_backend, client):
    response = client.post(
        feedback_url(), data=json.dumps({"feedback": [SPEC_ACCEPTED]}), content_type="text/plain"
    )
    assert response.status_code == 400
    assert store_backend.count("feedback") == 0


def test_unknown_service_is_404(store_backend, client):
    response = post_json(client, feedback_url("no-such-service"), {"feedback": [SPEC_ACCEPTED]})
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown-service"
    assert store_backend.count("feedback") == 0


def test_get_is_not_allowed(store_backend, client):
    assert client.get(feedback_url()).status_code == 405


# --- idempotency --------------------------------------------------------------------------


def test_the_same_item_twice_is_stored_once(store_backend, client, cards):
    body = {"feedback": [as_spec_overridden(cards["iron-below-target"])]}
    assert answer(post_json(client, feedback_url(), body)) == {
        "received": 1,
        "stored": 1,
        "alreadyStored": 0,
    }
    assert answer(post_json(client, feedback_url(), body)) == {
        "received": 1,
        "stored": 0,
        "alreadyStored": 1,
    }
    assert store_backend.count("feedback") == 1


def test_the_same_item_twice_in_one_post_is_stored_once(store_backend, client, cards):
    first = as_spec_overridden(cards["iron-below-target"])
    body = {"feedback": [first, as_spec_accepted(cards["iron-below-target"]), first]}
    assert answer(post_json(client, feedback_url(), body)) == {
        "received": 3,
        "stored": 2,
        "alreadyStored": 1,
    }
    assert store_backend.count("feedback") == 2


def test_the_same_item_written_differently_is_the_same_item(store_backend, client, cards):
    """Key order and an equivalent timestamp in another offset do not make a new item."""
    item = as_spec_overridden(cards["iron-below-target"])
    assert answer(post_json(client, feedback_url(), {"feedback": [item]}))["stored"]
    reordered = dict(reversed(list(item.items())))
    reordered["outcomeTimestamp"] = "2026-11-28T13:00:00+01:00"
    again = answer(post_json(client, feedback_url(), {"feedback": [reordered]}))
    assert again == {"received": 1, "stored": 0, "alreadyStored": 1}
    assert store_backend.count("feedback") == 1


def test_a_different_outcome_for_the_same_card_is_a_new_item(store_backend, client, cards):
    item = as_spec_overridden(cards["iron-below-target"])
    later = {**item, "outcomeTimestamp": "2026-11-28T12:01:00Z"}
    body = {"feedback": [item, later]}
    assert answer(post_json(client, feedback_url(), body))["stored"] == 2


def test_a_repeat_with_new_items_stores_only_the_new_ones(store_backend, client, cards):
    iron = cards["iron-below-target"]
    answer(post_json(client, feedback_url(), {"feedback": [as_spec_accepted(iron)]}))
    body = {"feedback": [as_spec_accepted(iron), as_spec_overridden(iron)]}
    assert answer(post_json(client, feedback_url(), body)) == {
        "received": 2,
        "stored": 1,
        "alreadyStored": 1,
    }


# --- unknown cards, and cards of another service (issue 16: tenant-bound feedback) -------


def test_feedback_on_an_unknown_card_is_404_naming_it_and_nothing_is_stored(
    store_backend, app, client, cards
):
    unknown = str(uuid.uuid4())
    items = [accepted(cards["iron-below-target"]), overridden(unknown, "patient-declined")]
    response = post_json(client, feedback_url(), {"feedback": items})
    assert response.status_code == 404
    body = response.get_json()
    assert body["error"] == "unknown-card"
    assert [d["loc"] for d in body["details"]] == ["feedback[1].card"]
    assert unknown not in response.get_data(as_text=True)
    assert store_backend.count("feedback") == 0  # all or nothing
    _, unknown_count = app.extensions["rls_cds"].feedback.store.report(None)
    assert unknown_count == 0


def test_a_card_is_answered_only_at_its_own_services_feedback_url(store_backend, client, cards):
    item = overridden(cards["sedating-antihistamine"]["uuid"], "patient-declined")
    response = post_json(client, feedback_url("rls-order-sign"), {"feedback": [item]})
    assert response.status_code == 404
    unknown = overridden(str(uuid.uuid4()), "patient-declined")
    elsewhere = post_json(client, feedback_url("rls-order-sign"), {"feedback": [unknown]})
    assert response.get_json() == elsewhere.get_json()  # not a word about where it exists
    assert store_backend.count("feedback") == 0


def test_feedback_needs_the_same_authentication_as_the_hooks(store_backend, make_app):
    """Outside demo mode, with no trusted client, the hooks and the feedback are refused."""
    client = make_app(demo=False, public_base_url="http://localhost").test_client()
    assert post_json(client, PATIENT_VIEW, patient_view_body()).status_code == 401
    response = post_json(client, feedback_url(), {"feedback": [SPEC_ACCEPTED]})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert store_backend.count("feedback") == 0
