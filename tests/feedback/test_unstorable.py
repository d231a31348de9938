"""Feedback nothing can poison (issue 17, point 4): an item the wire model accepted but the
store's columns could not hold (a card id over 64 characters, a reason code over 128, a
system over 255, a NUL character, a lone surrogate) was answered 503 "retry later" forever
on PostgreSQL, and the valid items sent with it were never stored. Now such an item is a
400 naming it, the whole POST is refused (all or nothing), and its value is never echoed.
A batch at exactly the limits is stored whole, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy import inspect as sa_inspect

from cds_service.feedback.models import Feedback, IssuedCard
from cds_service.knowledge import OVERRIDE_REASON_SYSTEM
from cds_service.stored_text import (
    CLIENT_CHARS,
    ID_CHARS,
    REASON_CODE_CHARS,
    URI_CHARS,
    USER_COMMENT_CHARS,
)
from tests import builders as b
from tests.feedback.conftest import (
    PATIENT_VIEW,
    accepted,
    cards_by_topic,
    feedback_url,
    flush,
    iso,
    patient_view_body,
    post_json,
)

#: Marks a bad value so that the test can tell it was not echoed.
MARK = "ZQXJ"


@pytest.fixture
def cards(app, client) -> dict[str, dict]:
    issued = cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body()))
    flush(app)
    return issued


def commented(card: str, code: str = "patient-declined", system: str = OVERRIDE_REASON_SYSTEM,
              comment: str = "not today") -> dict:  # fmt: skip
    return {
        "card": card,
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": system, "code": code}, "userComment": comment},
        "outcomeTimestamp": iso(b.NOW),
    }


def long_text(chars: int) -> str:
    return (MARK * chars)[:chars]


# What each case does to the second item (an override of an issued card), and the location
# the 400 must name.
UNSTORABLE = {
    "card-too-long": (("card",), long_text(ID_CHARS + 1), "feedback[1].card"),
    "code-too-long": (
        ("overrideReason", "reason", "code"),
        long_text(REASON_CODE_CHARS + 1),
        "feedback[1].overrideReason.reason.code",
    ),
    "system-too-long": (
        ("overrideReason", "reason", "system"),
        long_text(URI_CHARS + 1),
        "feedback[1].overrideReason.reason.system",
    ),
    "nul-in-card": (("card",), f"{MARK}\x00", "feedback[1].card"),
    "nul-in-code": (
        ("overrideReason", "reason", "code"),
        f"{MARK}\x00x",
        "feedback[1].overrideReason.reason.code",
    ),
    "nul-in-system": (
        ("overrideReason", "reason", "system"),
        f"urn:{MARK}\x00",
        "feedback[1].overrideReason.reason.system",
    ),
    "nul-in-display": (
        ("overrideReason", "reason", "display"),
        f"{MARK}\x00",
        "feedback[1].overrideReason.reason.display",
    ),
    "nul-in-comment": (
        ("overrideReason", "userComment"),
        f"a {MARK}\x00 comment",
        "feedback[1].overrideReason.userComment",
    ),
    "surrogate-in-code": (
        ("overrideReason", "reason", "code"),
        f"{MARK}\ud800",
        "feedback[1].overrideReason.reason.code",
    ),
    "surrogate-in-comment": (
        ("overrideReason", "userComment"),
        f"{MARK}\udfff",
        "feedback[1].overrideReason.userComment",
    ),
}


def _set(item: dict, path: tuple[str, ...], value: str) -> dict:
    changed = copy.deepcopy(item)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(("path", "value", "loc"), UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_an_unstorable_item_is_400_naming_it_and_nothing_is_stored(
    store_backend, client, cards, path, value, loc
):
    iron, anti = cards["iron-below-target"], cards["sedating-antihistamine"]
    bad = _set(commented(anti["uuid"]), path, value)
    items = [accepted(iron), bad, commented(iron["uuid"])]
    response = post_json(client, feedback_url(), {"feedback": items})
    assert response.status_code == 400, response.get_json()
    error = response.get_json()
    assert error["error"] == "invalid-request"
    assert [detail["loc"] for detail in error["details"]] == [loc]
    assert MARK not in response.get_data(as_text=True)  # never an echo of the value
    assert store_backend.count("feedback") == 0  # all or nothing: the valid items neither


def test_a_nul_in_an_accepted_suggestion_is_400_naming_it(store_backend, client, cards):
    iron = cards["iron-below-target"]
    bad = accepted(iron)
    bad["acceptedSuggestions"].append({"id": f"{MARK}\x00"})
    response = post_json(client, feedback_url(), {"feedback": [commented(iron["uuid"]), bad]})
    assert response.status_code == 400
    assert [d["loc"] for d in response.get_json()["details"]] == [
        "feedback[1].acceptedSuggestions[1].id"
    ]
    assert MARK not in response.get_data(as_text=True)
    assert store_backend.count("feedback") == 0


def test_a_batch_at_exactly_the_limits_is_stored_whole(store_backend, app, client, cards):
    """Every stored field at its column's width (a card id of 64 characters is not one this
    service issues, so one is put in the store directly) is stored as sent."""
    longest_card = long_text(ID_CHARS)
    with store_backend.engine().begin() as connection:
        connection.execute(
            insert(IssuedCard).values(
                card_uuid=longest_card,
                service_id="rls-secondary-causes",
                topic="iron-below-target",
                hook_instance=str(uuid.uuid4()),
                patient_key="0" * 64,
                issued_at=b.NOW - timedelta(minutes=1),
                issuer="demo",
                tenant="",
            )
        )
    code, system = long_text(REASON_CODE_CHARS), long_text(URI_CHARS)
    comment = "é" * USER_COMMENT_CHARS  # characters, not bytes: 20,000 bytes in UTF-8
    items = [
        commented(longest_card, code=code, system=system, comment=comment),
        accepted(cards["iron-below-target"]),
    ]
    response = post_json(client, feedback_url(), {"feedback": items})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"received": 2, "stored": 2, "alreadyStored": 0}
    (row,) = [r for r in store_backend.rows("feedback") if r["outcome"] == "overridden"]
    assert row["card_uuid"] == longest_card
    assert (row["reason_code"], row["reason_system"]) == (code, system)
    assert row["user_comment"] == comment


def test_the_limits_are_the_widths_of_the_migrated_columns(store_backend, app, cards):
    """One place for the widths: the models use the constants the wire model checks, and
    the tables the migrations built have those widths too."""
    widths = {
        (table, column["name"]): getattr(column["type"], "length", None)
        for table in ("issued_card", "feedback")
        for column in sa_inspect(store_backend.engine()).get_columns(table)
    }
    expected = {
        ("issued_card", "card_uuid"): ID_CHARS,
        ("issued_card", "issuer"): CLIENT_CHARS,
        ("issued_card", "tenant"): CLIENT_CHARS,
        ("feedback", "card_uuid"): ID_CHARS,
        ("feedback", "reason_code"): REASON_CODE_CHARS,
        ("feedback", "reason_system"): URI_CHARS,
        ("feedback", "client"): CLIENT_CHARS,
        ("feedback", "tenant"): CLIENT_CHARS,
    }
    assert {key: widths[key] for key in expected} == expected
    models = {
        ("issued_card", name): IssuedCard.__table__.c[name].type.length
        for name in ("card_uuid", "issuer", "tenant")
    } | {
        ("feedback", name): Feedback.__table__.c[name].type.length
        for name in ("card_uuid", "reason_code", "reason_system", "client", "tenant")
    }
    assert models == expected
