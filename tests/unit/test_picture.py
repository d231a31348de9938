"""build_picture: the RLS gate, recent labs in canonical units, computed values, robust reading."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cds_service.clinical.picture import build_picture
from tests import builders as b
from tests.builders import ICD10CM, KNOWLEDGE, NOW, PATIENT_ID, SNOMED

YEAR = timedelta(days=365)
RECENT = "2026-10-15T08:00:00Z"
OLD = "2025-06-01T08:00:00Z"


def read(prefetch: dict):
    return build_picture(prefetch, PATIENT_ID, NOW, KNOWLEDGE.value_sets)


def ferritin(value, unit="ng/mL", **kwargs) -> dict:
    return b.observation(b.FERRITIN, value, unit, **kwargs)


class TestGate:
    @pytest.mark.parametrize(
        "condition",
        [
            b.rls(),
            b.condition(b.coding(SNOMED, "32914008")),
            b.condition(b.coding(ICD10CM, "G25.81")),
            b.condition(b.coding(ICD10CM, "g2581")),
            b.condition(text="Willis-Ekbom disease"),
            b.condition(b.coding("http://ehr.example.org/problems", "123", "Restless legs")),
        ],
        ids=["snomed", "snomed-no-display", "icd10", "icd10-undotted", "text", "display"],
    )
    def test_rls_is_recognised(self, condition):
        assert b.picture(condition).has_rls

    @pytest.mark.parametrize("clinical", ["active", "recurrence", "relapse", None])
    def test_active_or_absent_clinical_status_opens_the_gate(self, clinical):
        assert b.picture(b.rls(clinical=clinical)).has_rls

    @pytest.mark.parametrize("clinical", ["resolved", "inactive", "remission"])
    def test_resolved_rls_keeps_the_gate_shut(self, clinical):
        assert not b.picture(b.rls(clinical=clinical)).has_rls

    @pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
    def test_refuted_rls_keeps_the_gate_shut(self, verification):
        assert not b.picture(b.rls(verification=verification)).has_rls

    @pytest.mark.parametrize("verification", ["confirmed", "unconfirmed", "provisional", None])
    def test_other_verification_statuses_open_the_gate(self, verification):
        assert b.picture(b.rls(verification=verification)).has_rls

    def test_rls_of_another_patient_keeps_the_gate_shut(self):
        picture = b.picture(b.rls(patient_id="other"))
        assert not picture.has_rls
        assert picture.report.ignored["Condition:other-patient"] == 1

    @pytest.mark.parametrize("conditions", [(), (b.esrd(),), (b.condition(text="Restless"),)])
    def test_no_rls_keeps_the_gate_shut(self, conditions):
        assert not b.picture(*conditions).has_rls

    @pytest.mark.parametrize(
        ("deceased", "shut"),
        [
            ({"deceasedBoolean": True}, True),
            ({"deceasedDateTime": "2011-03-02"}, True),
            ({"deceasedBoolean": False}, False),
            ({"deceasedDateTime": "2031-01-01"}, False),  # a date in the future is an error
        ],
    )
    def test_a_deceased_patient_gets_no_cards(self, deceased, shut):
        prefetch = b.prefetch(b.rls(), with_patient=b.patient() | deceased)
        picture = build_picture(prefetch, b.PATIENT_ID, b.NOW, b.KNOWLEDGE.value_sets)
        assert picture.has_rls is not shut
        assert (b.ENGINE.patient_view(picture) == []) is shut


class TestRecentLabs:
    def test_latest_within_365_days_wins(self):
        picture = b.picture(ferritin(40, when="2026-01-10T08:00:00Z"), ferritin(60, when=RECENT))
        assert picture.latest("ferritin", YEAR).value == 60

    def test_ferritin_older_than_365_days_is_ignored_by_latest(self):
        picture = b.picture(ferritin(40, when=OLD))
        assert picture.latest("ferritin", YEAR) is None
        assert [lab.value for lab in picture.labs["ferritin"]] == [40]

    @pytest.mark.parametrize(
        ("when", "counts"),
        [("2025-11-28T12:00:00Z", True), ("2025-11-28T11:59:59Z", False)],
    )
    def test_window_is_365_days_before_now(self, when, counts):
        assert (b.picture(ferritin(40, when=when)).latest("ferritin", YEAR) is not None) is counts

    @pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "registered"])
    def test_unusable_status_is_ignored(self, status):
        picture = b.picture(ferritin(40, status=status))
        assert "ferritin" not in picture.labs
        assert picture.report.ignored[f"Observation:status-{status}"] == 1

    @pytest.mark.parametrize("status", ["final", "preliminary", "amended", "corrected"])
    def test_usable_status_is_read(self, status):
        assert b.picture(ferritin(40, status=status)).latest("ferritin", YEAR).value == 40

    def test_unconvertible_unit_is_ignored_and_counted(self):
        picture = b.picture(ferritin(40, unit="mg/L"), ferritin(60, when="2026-09-01"))
        assert picture.latest("ferritin", YEAR).value == 60
        assert picture.report.ignored["Observation:unconvertible-unit"] == 1

    @pytest.mark.parametrize(("value", "unit"), [(38, "ug/L"), (38 * 2.247, "pmol/L")])
    def test_ferritin_converted_to_ng_per_ml(self, value, unit):
        lab = b.picture(ferritin(value, unit=unit)).latest("ferritin", YEAR)
        assert (lab.value, lab.unit) == (pytest.approx(38), "ng/mL")

    def test_non_ucum_unit_code_falls_back_to_the_unit_text(self):
        obs = ferritin(38)
        obs["valueQuantity"] |= {"system": "http://ehr.example.org/units", "code": "NGML"}
        lab = b.picture(obs).latest("ferritin", YEAR)
        assert lab is not None and lab.value == 38


class TestSyntheaKidneyLabs:
    """Synthea writes creatinine as LOINC 38483-4 (blood) and eGFR in "mL/min"."""

    def test_blood_creatinine_counts_as_creatinine(self):
        found = b.picture(b.observation("38483-4", 1.1, "mg/dL")).latest("creatinine", YEAR)
        assert found is not None and found.value == pytest.approx(1.1)

    def test_egfr_labelled_ml_per_min_reads_as_per_1_73_m2(self):
        found = b.picture(b.observation("33914-3", 52, "mL/min")).latest("egfr", YEAR)
        assert found is not None and found.value == 52

    def test_renal_function_is_not_due_with_synthea_labs(self):
        assert "renal-function-due" not in b.findings(b.observation("38483-4", 1.1, "mg/dL"))


class TestComputedValues:
    def test_tsat_computed_from_same_day_iron_and_tibc(self):
        iron = b.observation(b.IRON, 50, "ug/dL")
        tibc = b.observation(b.TIBC, 400, "ug/dL")
        tsat = b.picture(iron, tibc).latest("transferrin-saturation", YEAR)
        assert tsat.value == pytest.approx(12.5)
        assert not tsat.reported
        assert [part.source for part in tsat.derived_from] == [
            f"Observation/{iron['id']}",
            f"Observation/{tibc['id']}",
        ]

    def test_tsat_not_computed_from_iron_and_tibc_of_different_days(self):
        iron = b.observation(b.IRON, 50, "ug/dL", when="2026-10-14T08:00:00Z")
        picture = b.picture(iron, b.observation(b.TIBC, 400, "ug/dL"))
        assert "transferrin-saturation" not in picture.labs

    def test_tsat_not_computed_when_reported_that_day(self):
        picture = b.picture(
            b.observation(b.IRON, 50, "ug/dL"),
            b.observation(b.TIBC, 400, "ug/dL"),
            b.observation(b.TSAT, 14, "%", when="2026-10-15T09:00:00Z"),
        )
        assert [(lab.value, lab.reported) for lab in picture.labs["transferrin-saturation"]] == [
            (14, True)
        ]

    def test_egfr_computed_from_creatinine_age_and_sex(self):
        """Male, 55 on the draw date, creatinine 1.2 mg/dL: the published 71."""
        creatinine = b.observation(b.CREATININE, 1.2, "mg/dL")
        egfr = b.picture(creatinine, gender="male", birth_date="1971-06-01").latest("egfr", YEAR)
        assert round(egfr.value) == 71
        assert not egfr.reported
        assert egfr.derived_from[0].source == f"Observation/{creatinine['id']}"

    def test_creatinine_in_umol_per_litre_is_used(self):
        creatinine = b.observation(b.CREATININE_UMOL, 106.08, "umol/L")
        picture = b.picture(creatinine, gender="male", birth_date="1971-06-01")
        assert picture.latest("creatinine", YEAR).value == pytest.approx(1.2)
        assert round(picture.latest("egfr", YEAR).value) == 71

    @pytest.mark.parametrize(
        "patient_fields",
        [{"gender": None}, {"gender": "unknown"}, {"birth_date": "2010-01-01"}, {"birth_date": ""}],
        ids=["no-sex", "sex-unknown", "minor", "no-birth-date"],
    )
    def test_egfr_not_computed_without_sex_or_adult_age(self, patient_fields):
        picture = b.picture(b.observation(b.CREATININE, 1.2, "mg/dL"), **patient_fields)
        assert picture.latest("egfr", YEAR) is None

    def test_reported_egfr_preferred_over_computed_at_the_same_time(self):
        picture = b.picture(
            b.observation(b.CREATININE, 1.2, "mg/dL"),
            b.observation(b.EGFR_2021, 48, "mL/min/1.73m2"),
        )
        egfr = picture.latest("egfr", YEAR)
        assert (egfr.value, egfr.reported) == (48, True)

    def test_reported_egfr_preferred_over_computed_on_the_same_date(self):
        picture = b.picture(
            b.observation(b.CREATININE, 1.2, "mg/dL", when="2026-10-15T08:05:00Z"),
            b.observation(b.EGFR_2021, 48, "mL/min/1.73m2", when="2026-10-15T08:00:00Z"),
        )
        assert picture.latest("egfr", YEAR).reported


class TestRobustness:
    @pytest.mark.parametrize(
        "damage", [{"code": "not-an-object"}, {"status": 5}, {"valueQuantity": "many"}]
    )
    def test_malformed_observation_is_skipped_and_the_rest_read(self, damage):
        picture = b.picture(b.rls(), ferritin(40) | damage, ferritin(60, when="2026-09-01"))
        assert picture.report.skipped["Observation:malformed"] == 1
        assert picture.has_rls
        assert picture.latest("ferritin", YEAR).value == 60

    @pytest.mark.parametrize(
        "value",
        [None, {"resourceType": "OperationOutcome", "issue": []}, [], [b.rls()], "oops", 42, {}],
        ids=["null", "operation-outcome", "empty-list", "list", "string", "number", "empty"],
    )
    def test_odd_prefetch_values_never_raise(self, value):
        picture = read(b.prefetch(b.rls()) | {"odd": value})
        assert picture.has_rls

    @pytest.mark.parametrize("entry", [[1, "x", None, [], {}, {"resource": 5}], "x", None])
    def test_bundle_with_garbage_entries_is_survived(self, entry):
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entry}
        assert read(b.prefetch(b.rls()) | {"odd": bundle}).has_rls

    def test_garbage_entries_are_counted_as_skipped(self):
        bundle = {"resourceType": "Bundle", "entry": [1, {"resource": "x"}, {}]}
        picture = read(b.prefetch() | {"odd": bundle})
        assert picture.report.skipped["Bundle:entry-without-resource"] == 3

    def test_urn_uuid_full_url_is_an_alias_of_the_patient(self):
        condition = b.rls()
        condition["subject"] = {"reference": "urn:uuid:7d1e"}
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:7d1e", "resource": b.patient()},
                {"fullUrl": "urn:uuid:c0de", "resource": condition},
            ],
        }
        assert read({"everything": bundle}).has_rls

    def test_duplicate_resources_are_read_once(self):
        condition = b.rls()
        picture = read(b.prefetch(condition) | {"again": b.searchset(condition)})
        assert picture.report.read["Condition"] == 1
        assert len(picture.conditions) == 1


class TestMedications:
    @pytest.mark.parametrize(
        ("status", "counts"),
        [
            ("active", True),
            ("on-hold", True),
            ("stopped", False),
            ("completed", False),
            ("cancelled", False),
            ("entered-in-error", False),
        ],
    )
    def test_medication_request_counts_only_when_active(self, status, counts):
        picture = b.picture(b.medication_request("3498", "Diphenhydramine 25 mg", status=status))
        assert bool(picture.medications) is counts

    @pytest.mark.parametrize(
        ("status", "end", "counts"),
        [
            ("active", None, True),
            ("intended", None, True),
            ("unknown", None, True),
            ("unknown", "2026-06-01", False),
            ("stopped", None, False),
            ("completed", None, False),
            ("entered-in-error", None, False),
        ],
    )
    def test_medication_statement_counts_when_active_intended_or_open_unknown(
        self, status, end, counts
    ):
        statement = b.medication_statement(text="Diphenhydramine", status=status, end=end)
        assert bool(b.picture(statement).medications) is counts

    def test_reference_to_contained_medication_resolves(self):
        request = b.medication_request()
        del request["medicationCodeableConcept"]
        request["medicationReference"] = {"reference": "#med1"}
        request["contained"] = [b.medication("med1", "Hydroxyzine 25 mg tablet", "5553")]
        assert [m.name for m in b.picture(request).medications] == ["Hydroxyzine 25 mg tablet"]

    @pytest.mark.parametrize(
        "reference", ["Medication/m1", "https://ehr.example.org/fhir/Medication/m1"]
    )
    def test_reference_to_medication_elsewhere_in_prefetch_resolves(self, reference):
        request = b.medication_request()
        del request["medicationCodeableConcept"]
        request["medicationReference"] = {"reference": reference}
        medications = b.searchset(b.medication("m1", "Quetiapine 25 mg tablet"))
        picture = read(b.prefetch(request) | {"medications": medications})
        assert [m.name for m in picture.medications] == ["Quetiapine 25 mg tablet"]

    def test_unresolvable_reference_is_ignored_and_counted(self):
        request = b.medication_request()
        del request["medicationCodeableConcept"]
        request["medicationReference"] = {"reference": "Medication/missing"}
        picture = b.picture(request)
        assert picture.medications == ()
        assert picture.report.ignored["MedicationRequest:medication-unresolved"] == 1
