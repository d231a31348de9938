"""A pregnancy is never missed, whatever form the record gives it, and is dated where the
record allows: the answers laboratory feeds send, quantitative hCG, O-chapter codes with a
trimester character, Z3A weeks and gestational-age observations (contract revision
2026-12-02). Delivery and puerperium codes are never a pregnancy."""

from __future__ import annotations

import pytest

from cds_service.clinical.gestation import Gestation, read_pregnancy_codes, z3a_weeks
from cds_service.clinical.rules import pregnancy as rule
from tests import builders as b
from tests.builders import ICD10CM, LOINC, SNOMED

PARAMS = b.params("pregnancy")
PREGNANCY_VS = b.KNOWLEDGE.value_sets["pregnancy"]
RECENT = "2026-10-15T08:00:00Z"


def qualitative(answer: dict | None = None, text: str | None = None, code: str = "2106-3",
         when: str = RECENT) -> dict:  # fmt: skip
    resource = b.observation(code, None, None, when=when)
    if answer is not None:
        resource["valueCodeableConcept"] = answer
    if text is not None:
        resource["valueString"] = text
    return resource


def coded(system: str, code: str, display: str | None = None) -> dict:
    return {"coding": [b.coding(system, code, display)]}


def hcg(value: float, unit: str, code: str = "21198-7", comparator: str | None = None,
        when: str = RECENT) -> dict:  # fmt: skip
    return b.observation(code, value, unit, when=when, comparator=comparator)


def current(*resources: dict, **patient):
    return rule.current(b.picture(b.rls(), *resources, **patient), PARAMS)


def fires(*resources: dict) -> bool:
    return "pregnancy" in b.findings(b.kidney_ok(), *resources)


POSITIVE_FORMS = {
    "snomed-positive": qualitative(coded(SNOMED, "10828004")),
    "snomed-detected": qualitative(coded(SNOMED, "260373001", "Detected")),
    "snomed-reactive": qualitative(coded(SNOMED, "11214006", "Reactive")),
    "snomed-pregnant": qualitative(coded(SNOMED, "77386006")),
    "loinc-answer-positive": qualitative(coded(LOINC, "LA6576-8")),
    "loinc-answer-detected": qualitative(coded(LOINC, "LA11882-0")),
    "text-detected": qualitative({"text": "Detected"}),
    "text-reactive": qualitative({"text": "REACTIVE"}),
    "text-pos": qualitative({"text": "POS"}),
    "value-string-detected": qualitative(text="hCG detected"),
    "serum-2118-8-detected": qualitative(coded(SNOMED, "260373001"), code="2118-8"),
    "beta-2110-5-reactive": qualitative({"text": "Reactive"}, code="2110-5"),
}
NEGATIVE_FORMS = {
    "snomed-negative": qualitative(coded(SNOMED, "260385009")),
    "snomed-not-detected": qualitative(coded(SNOMED, "260415000")),
    "snomed-non-reactive": qualitative(coded(SNOMED, "131194007")),
    "snomed-not-pregnant": qualitative(coded(SNOMED, "60001007")),
    "loinc-answer-negative": qualitative(coded(LOINC, "LA6577-6")),
    "loinc-answer-not-detected": qualitative(coded(LOINC, "LA11883-8")),
    "loinc-answer-nonreactive": qualitative(coded(LOINC, "LA15256-3")),
    "text-not-detected": qualitative({"text": "Not detected"}),
    "text-non-reactive": qualitative({"text": "Non-reactive"}),
    "text-nonreactive": qualitative({"text": "nonreactive"}),
    "text-none-detected": qualitative(text="None detected"),
    "text-neg": qualitative({"text": "NEG"}),
}


class TestQualitativeAnswers:
    @pytest.mark.parametrize("name", sorted(POSITIVE_FORMS))
    def test_positive_forms_turn_the_safeguards_on(self, name):
        assert fires(POSITIVE_FORMS[name])

    @pytest.mark.parametrize("name", sorted(NEGATIVE_FORMS))
    def test_negative_forms_are_not_a_pregnancy(self, name):
        assert not fires(NEGATIVE_FORMS[name])

    @pytest.mark.parametrize("name", sorted(NEGATIVE_FORMS))
    def test_a_newer_negative_in_any_form_ends_an_older_positive(self, name):
        negative = NEGATIVE_FORMS[name] | {"effectiveDateTime": "2026-11-01T08:00:00Z"}
        assert not fires(POSITIVE_FORMS["snomed-detected"], negative)

    def test_detected_with_the_race_code_system_is_not_a_pregnancy_test(self):
        race = qualitative(coded(SNOMED, "260373001"))
        race["code"]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.6.238"
        assert not fires(race)

    @pytest.mark.parametrize("text", ["Equivocal", "Indeterminate", "see comment"])
    def test_an_answer_that_says_neither_is_not_read(self, text):
        assert not fires(qualitative({"text": text}))


class TestQuantitativeHcg:
    @pytest.mark.parametrize(
        ("value", "unit", "expected"),
        [
            (25, "mIU/mL", True), (24.9, "mIU/mL", False), (1000, "m[IU]/mL", True),
            (25, "IU/L", True), (25, "[IU]/L", True), (30, "U/L", True), (0.025, "IU/mL", True),
            (10, "mIU/mL", False), (4.9, "mIU/mL", False),
        ],
    )  # fmt: skip
    def test_positive_at_or_above_25_miu_per_ml_in_every_unit(self, value, unit, expected):
        assert fires(hcg(value, unit)) is expected

    @pytest.mark.parametrize("code", ["19080-1", "21198-7"])
    def test_both_codes_are_read(self, code):
        assert fires(hcg(40, "mIU/mL", code=code))

    def test_a_greater_than_result_is_positive_and_a_less_than_one_is_not(self):
        assert fires(hcg(25, "mIU/mL", comparator=">"))
        assert not fires(hcg(25, "mIU/mL", comparator="<"))

    @pytest.mark.parametrize(
        ("value", "comparator", "ends"),
        [(4.9, None, True), (5, "<", True), (5, None, False), (2, "<", True), (10, None, False)],
    )
    def test_below_5_is_negative_and_ends_an_older_pregnancy(self, value, comparator, ends):
        old = b.condition(b.coding(ICD10CM, "Z33.1"), onset="2026-06-01")
        newer = hcg(value, "mIU/mL", comparator=comparator, when="2026-11-01T08:00:00Z")
        assert fires(old, newer) is not ends

    def test_an_unconvertible_unit_is_not_read(self):
        assert not fires(hcg(40, "ng/mL"))

    def test_hcg_is_read_whatever_the_recorded_gender(self):
        """A false 'pregnant' adds caution; a missed pregnancy removes it."""
        found = b.findings(b.kidney_ok(), hcg(40, "mIU/mL"), gender="male")
        assert "pregnancy" in found


O_CODES = [
    ("O09.511", 1), ("O09.512", 2), ("O09.513", 3), ("O09.519", None), ("O09.00", None),
    ("O09.01", 1), ("O09.A1", 1), ("O26.891", 1), ("O26.893", 3), ("O26.90", None),
    ("O99.011", 1), ("O99.019", None), ("O99.350", None), ("O99.351", 1), ("O99.352", 2),
    ("O99.353", 3), ("O99.843", 3), ("O13.1", 1), ("O13.9", None), ("O30.002", 2),
    ("O10.013", 3), ("Z34.02", 2), ("Z34.93", 3), ("Z34.90", None),
]  # fmt: skip
ENDED = ["O99.354", "O99.355", "O99.214", "O99.215", "O99.844", "O99.845", "O99.814",
         "O13.4", "O13.5", "O14.04", "O14.05"]  # fmt: skip
NOT_PREGNANCY = ["O80", "O82", "O90.3", "O99.02", "O99.03", "O26.62", "O88.02", "Z39.2",
                 "O24.414", "O34.211"]  # fmt: skip


class TestPregnancyCodes:
    @pytest.mark.parametrize(("code", "trimester"), O_CODES)
    def test_o_codes_with_a_trimester_character_are_a_pregnancy(self, code, trimester):
        assert PREGNANCY_VS.has_code(ICD10CM, code)
        reading = read_pregnancy_codes(PREGNANCY_VS, [(ICD10CM, code)])
        assert not reading.ended
        expected = Gestation(trimester=trimester) if trimester else None
        assert reading.gestation == expected
        assert fires(b.condition(b.coding(ICD10CM, code), onset="2026-11-01"))

    @pytest.mark.parametrize("code", ENDED)
    def test_childbirth_and_puerperium_characters_are_not_a_pregnancy(self, code):
        assert read_pregnancy_codes(PREGNANCY_VS, [(ICD10CM, code)]).ended
        assert not fires(b.condition(b.coding(ICD10CM, code), onset="2026-11-01"))

    @pytest.mark.parametrize("code", NOT_PREGNANCY)
    def test_delivery_and_postpartum_codes_are_not_a_pregnancy(self, code):
        assert not fires(b.condition(b.coding(ICD10CM, code), onset="2026-11-01"))

    def test_a_puerperium_icd_code_wins_over_a_snomed_pregnancy_coding(self):
        both = b.condition(b.coding(SNOMED, "77386006"), b.coding(ICD10CM, "O99.355"))
        assert not fires(both)

    @pytest.mark.parametrize(
        ("code", "weeks"),
        [("Z3A.01", 0.0), ("Z3A.08", 8.0), ("Z3A.13", 13.0), ("Z3A.14", 14.0), ("Z3A.42", 42.0),
         ("Z3A.49", 42.0), ("Z3A.00", None), ("Z3A.1", None), ("Z3A.07", None), ("Z34.00", None),
         ("Z3A20", 20.0)],
    )  # fmt: skip
    def test_z3a_weeks(self, code, weeks):
        assert z3a_weeks(code) == weeks


class TestTrimester:
    @pytest.mark.parametrize(
        ("resource", "trimester"),
        [
            (b.condition(b.coding(ICD10CM, "Z3A.13"), onset="2026-11-28"), 1),
            (b.condition(b.coding(ICD10CM, "Z3A.13"), onset="2026-11-21"), 2),  # + 1 week
            (b.condition(b.coding(ICD10CM, "Z3A.27"), onset="2026-11-28"), 2),
            (b.condition(b.coding(ICD10CM, "Z3A.28"), onset="2026-11-28"), 3),
            (b.condition(b.coding(ICD10CM, "O09.511"), onset="2026-08-22"), 2),  # 14 weeks on
            (b.condition(b.coding(ICD10CM, "O09.511"), onset="2026-08-23"), 1),
            (b.condition(b.coding(ICD10CM, "O09.512"), onset="2026-11-27"), 2),
            (b.condition(b.coding(ICD10CM, "O09.512")), 2),  # undated: as it stands
            (b.condition(b.coding(ICD10CM, "Z33.1")), None),
            (b.observation("11884-4", 13.9, "wk", when="2026-11-28T12:00:00Z"), 1),
            (b.observation("18185-9", 14, "wk", when="2026-11-28T12:00:00Z"), 2),
            (b.observation("49051-6", 196, "d", when="2026-11-28T12:00:00Z"), 3),
            (b.observation("11885-1", 20, "weeks", when="2026-11-14T12:00:00Z"), 2),
        ],
    )
    def test_trimester_today(self, resource, trimester):
        found = current(resource)
        assert found is not None
        assert found.trimester == trimester

    def test_the_newest_dating_wins(self):
        old = b.condition(b.coding(ICD10CM, "O09.513"), onset="2026-05-01")
        scan = b.observation("11884-4", 10, "wk", when="2026-11-20T08:00:00Z")
        found = current(old, scan)
        assert found is not None and found.trimester == 1

    def test_a_dating_implausibly_far_along_leaves_the_trimester_unknown(self):
        """A third-trimester code 9 months old: still counted (never missed), not dated."""
        stale = b.condition(b.coding(ICD10CM, "O09.513"), onset="2026-03-01")
        found = current(stale)
        assert found is not None and found.trimester is None

    def test_a_gestational_age_implying_delivery_is_not_a_pregnancy(self):
        """39 weeks, 10 weeks ago: she has delivered."""
        assert current(b.observation("11884-4", 39, "wk", when="2026-09-19T08:00:00Z")) is None

    def test_a_recent_gestational_age_alone_is_a_pregnancy(self):
        assert fires(b.observation("11884-4", 20, "wk", when="2026-11-20T08:00:00Z"))

    def test_the_pregnancy_card_shows_the_dating(self):
        scan = b.observation("11884-4", 20, "wk", when="2026-11-21T12:00:00Z")
        finding = b.findings(b.kidney_ok(), scan)["pregnancy"]
        [gestation] = [d for d in finding.data if d.label == "Gestation"]
        assert gestation.value.startswith("at least 21 weeks today (second trimester)")
