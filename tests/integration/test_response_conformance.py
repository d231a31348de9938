"""Every response obeys the CDS Hooks response rules (checklist 2, 19 to 29, 41).

Responses come from the demo requests and from synthetic patients that reach every card
variant with extreme values; a walker fails on null or empty values anywhere but the
top-level `cards: []`.
"""

from __future__ import annotations

import json
import re

import pytest
from fhir.resources.R4B import get_fhir_model_class

from tests import builders as b
from tests.contract import TOPIC_CODES
from tests.fixture_requests import REQUESTS

CONTRACT_TOPICS = frozenset(TOPIC_CODES)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def synthetic_prefetches() -> dict[str, dict]:
    o = b.observation
    return {
        "never-tested": b.prefetch(b.rls()),
        "outdated": b.prefetch(b.rls(), o(b.FERRITIN, 99999.5, "ng/mL", when="2020-01-01")),
        "oral-or-iv-tiny": b.prefetch(b.rls(), o(b.FERRITIN, 0.001, "ng/mL", comparator="<")),
        "oral-or-iv-tsat": b.prefetch(b.rls(), o(b.FERRITIN, 99999, "ng/mL"), o(b.TSAT, 0.5, "%")),
        "iv-only": b.prefetch(b.rls(), o(b.FERRITIN, 88, "ng/mL"), o(b.TSAT, 30, "%")),
        "iv-withheld": b.prefetch(b.rls(), o(b.FERRITIN, 90, "ng/mL"), o(b.TSAT, 60, "%")),
        "computed-tsat": b.prefetch(
            b.rls(), o(b.FERRITIN, 60, "ng/mL"), o(b.IRON, 40, "ug/dL"), o(b.TIBC, 400, "ug/dL")
        ),
        "esrd": b.prefetch(
            b.rls(),
            b.condition(
                b.coding(b.ICD10CM, "N18.6"), text="ESRD " + "<b>*x*</b>" * 60, onset="2024-05-02"
            ),
            b.kidney_ok(),
            o(b.FERRITIN, 150, "ng/mL"),
            o(b.TSAT, 10, "%"),
        ),
        # The iron safety paths (issue 14): each variant and the cause work-up.
        "cause-man": b.prefetch(
            b.rls(),
            o(b.FERRITIN, 9, "ng/mL"),
            o(b.TSAT, 8, "%"),
            with_patient=b.patient(gender="male", birth_date="1959-03-01"),
        ),
        "child": b.prefetch(
            b.rls(),
            o(b.FERRITIN, 20, "ng/mL"),
            o(b.WEIGHT, 28, "kg"),
            with_patient=b.patient(gender="male", birth_date="2017-05-01"),
        ),
        "overload": b.prefetch(
            b.rls(), o(b.FERRITIN, 30, "ng/mL"), b.condition(b.coding(b.ICD10CM, "E83.110"))
        ),
        "on-iron": b.prefetch(
            b.rls(), o(b.FERRITIN, 30, "ng/mL"), b.medication_request(text="Ferrous sulfate")
        ),
        "inflammation": b.prefetch(b.rls(), o(b.FERRITIN, 620, "ng/mL"), o(b.TSAT, 12, "%")),
        "esrd-egfr": b.prefetch(
            b.rls(),
            o(b.EGFR, 12, "mL/min/{1.73_m2}"),
            o(b.FERRITIN, 150, "ng/mL"),
            o(b.TSAT, 9, "%"),
        ),
        "pregnancy-detected": b.prefetch(
            b.rls(),
            b.observation("2106-3", None, None)
            | {"valueCodeableConcept": {"coding": [b.coding(b.SNOMED, "260373001")]}},
        ),
    }


def all_responses(client) -> list[tuple[str, dict]]:
    bodies = {p.stem: json.loads(p.read_text("utf-8")) for p in REQUESTS.glob("*.json")}
    bodies |= {name: b.hook_request(pf) for name, pf in synthetic_prefetches().items()}
    responses = []
    services = {"patient-view": "rls-secondary-causes"} | {
        hook: f"rls-{hook}" for hook in ("order-select", "order-sign")
    }
    for name, body in bodies.items():
        response = client.post(f"/cds-services/{services[body['hook']]}", json=body)
        assert response.status_code == 200, name
        responses.append((name, response.get_json()))
    return responses


@pytest.fixture(scope="module")
def responses():
    from cds_service.app import create_app
    from cds_service.settings import Settings

    app = create_app(Settings(demo=True, database_url="sqlite://"), clock=lambda: b.NOW)
    return all_responses(app.test_client())


def empty_values(value, path="$"):
    """Paths of null, "", [] or {} anywhere in `value`."""
    if value is None or value == "" or value == [] or value == {}:
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from empty_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from empty_values(item, f"{path}[{index}]")


def cards_of(responses):
    return [(name, card) for name, response in responses for card in response["cards"]]


def test_every_card_variant_is_reached(responses):
    summaries = " ".join(card["summary"] for _, card in cards_of(responses))
    for phrase in ("no ferritin on record", "over 12 months ago", "oral or IV iron",
                   "consider IV iron", "IV iron sucrose", "oral iron by weight",
                   "see haematology", "on iron already", "look for inflammation",
                   "(kidney failure)", "RLS in pregnancy"):  # fmt: skip
        assert phrase in summaries


def test_no_null_or_empty_values_except_top_level_cards(responses):
    for name, response in responses:
        for card_index, card in enumerate(response["cards"]):
            assert list(empty_values(card, f"cards[{card_index}]")) == [], name


def test_summaries_are_shorter_than_140_characters(responses):
    for name, card in cards_of(responses):
        assert len(card["summary"]) < 140, (name, card["summary"])


def test_cards_carry_uuid_indicator_source_and_contract_topic(responses):
    for _, card in cards_of(responses):
        assert UUID.match(card["uuid"])
        assert card["indicator"] in {"info", "warning", "critical"}
        assert card["source"]["label"]
        assert card["source"]["url"].startswith("https://")
        topic = card["source"]["topic"]
        assert topic["system"] == "urn:rls-cds:card-topic"
        assert topic["code"] in CONTRACT_TOPICS
        assert topic["display"]


def test_suggestions_have_uuid_label_selection_behavior_and_valid_fhir(responses):
    for _, card in cards_of(responses):
        if "suggestions" not in card:
            continue
        assert card["selectionBehavior"] in {"at-most-one", "any"}
        recommended = [s for s in card["suggestions"] if s.get("isRecommended")]
        if card["selectionBehavior"] == "at-most-one":
            assert len(recommended) <= 1
        for suggestion in card["suggestions"]:
            assert UUID.match(suggestion["uuid"]) and suggestion["label"]
            for action in suggestion["actions"]:
                assert action["type"] in {"create", "update", "delete"} and action["description"]
                if action["type"] == "delete":  # spec: resourceId, a relative reference
                    assert re.fullmatch(r"MedicationRequest/[A-Za-z0-9\-.]+", action["resourceId"])
                    assert "resource" not in action
                    continue
                resource = action["resource"]
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
                assert resource["subject"]["reference"].startswith("Patient/")


def test_override_reasons_and_links_are_complete(responses):
    for _, card in cards_of(responses):
        for reason in card.get("overrideReasons", []):
            assert reason["system"] and reason["code"] and reason["display"]
        for link in card.get("links", []):
            assert link["type"] == "absolute" and link["url"].startswith("https://")
            assert link["label"]


def test_card_and_suggestion_uuids_are_unique(responses):
    ids = [card["uuid"] for _, card in cards_of(responses)]
    ids += [s["uuid"] for _, card in cards_of(responses) for s in card.get("suggestions", [])]
    assert len(ids) == len(set(ids))


def test_patient_text_cannot_inject_markup_into_detail(responses):
    esrd = [card for name, card in cards_of(responses) if name == "esrd"]
    assert {c["source"]["topic"]["code"] for c in esrd} >= {"iron-below-target", "kidney-disease"}
    for card in esrd:
        assert "ESRD" in card["detail"]
        assert "<b>" not in card["detail"]
        assert "\\<b\\>" in card["detail"]


def test_detail_names_the_data_used_and_its_date(responses):
    for name, card in cards_of(responses):
        if "on record;" in card["summary"]:  # nothing on record is what these cards say
            continue
        assert "**Data used**" in card["detail"], name
        assert re.search(r"\(\d{4}-\d{2}-\d{2}\)", card["detail"]), name
