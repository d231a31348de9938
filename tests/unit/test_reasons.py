"""Each rule's "no card" says why in the rule's own terms: the values and dates of the
patient's data and the thresholds of its card file (cards/*.toml), never a second decision
made by the explainer."""

from __future__ import annotations

from types import MappingProxyType

from cds_service.clinical.engine import Engine
from cds_service.clinical.findings import NoCard
from cds_service.clinical.rules import conditions, iron, medications
from tests import builders as b

K = b.KNOWLEDGE


def reasons(engine: Engine, *resources: dict, **kwargs) -> dict[str, str]:
    _, decisions = engine.decide_patient_view(b.picture(*resources, **kwargs))
    return {t: d.reason.text if d.reason else "fired" for t, d in decisions.items()}


def test_iron_at_target_names_both_values_with_their_dates_and_the_card_limits():
    found = reasons(
        b.ENGINE, b.rls(), b.kidney_ok(), b.observation(b.FERRITIN, 180, "ng/mL"),
        b.observation(b.TSAT, 30, "%"),
    )  # fmt: skip
    assert found["iron-below-target"] == (
        "ferritin 180 ng/mL on 2026-10-15 is above 100; TSAT 30 % on 2026-10-15 is not below 20"
    )


def test_the_limit_in_a_reason_is_the_card_files_threshold():
    thresholds = {t: dict(v) for t, v in K.thresholds.items()}
    thresholds["iron-below-target"]["ferritin_iv_max"] = 150
    engine = Engine(
        MappingProxyType(thresholds), K.dosing, K.iron_catalogue, K.indications
    )  # the same rules, another card file
    found = reasons(engine, b.rls(), b.kidney_ok(), b.observation(b.FERRITIN, 180, "ng/mL"))
    assert found["iron-below-target"] == "ferritin 180 ng/mL on 2026-10-15 is above 150; no TSAT"


def test_no_iron_studies_in_the_window_says_so():
    found = reasons(b.ENGINE, b.rls(), b.kidney_ok())
    assert found["iron-below-target"] == "no ferritin and no TSAT in the last 365 days"
    assert found["iron-studies-due"] == "fired"


def test_the_gate_counts_the_conditions_it_read():
    found = reasons(b.ENGINE, b.condition(b.coding(b.SNOMED, "38341003", "Hypertension")))
    assert set(found.values()) == {
        "no active RLS condition: rules not run (conditions read: 1, none RLS)"
    }


def test_data_not_read_is_the_reason_of_the_rules_that_need_it():
    found = reasons(b.ENGINE, b.rls(), unavailable=frozenset({"labs"}))
    assert found["iron-below-target"] == "labs not read: rule not run"
    assert found["prior-dvt"].startswith("no past DVT")  # needs no labs: it ran


def test_rules_called_directly_return_their_no_card_with_its_reason():
    picture = b.picture(b.rls(), b.kidney_ok())
    for topic, rule in (
        ("antipsychotic", medications.antipsychotic),
        ("venous-insufficiency", conditions.venous_insufficiency),
        ("iron-below-target", iron.below_target),
    ):
        result = rule(picture, b.params(topic))
        assert isinstance(result, NoCard) and result == [] and result.reason.code, topic
