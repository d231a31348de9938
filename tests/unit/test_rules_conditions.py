"""Problem-list topics: neuropathy-or-radiculopathy, venous-insufficiency,
peripheral-arterial-disease and prior-dvt, with their "test already done" exceptions."""

from __future__ import annotations

import pytest

from cds_service.clinical.rules import conditions as rules
from tests import builders as b
from tests.builders import ICD10CM, LOINC, SNOMED

CPT = "http://www.ama-assn.org/go/cpt"
SIX_MONTHS_AGO = "2026-05-28"
FOURTEEN_MONTHS_AGO = "2025-09-28"


def icd(code: str, display: str | None = None, **kwargs) -> dict:
    return b.condition(b.coding(ICD10CM, code, display), **kwargs)


def sct(code: str, display: str | None = None, **kwargs) -> dict:
    return b.condition(b.coding(SNOMED, code, display), **kwargs)


def procedure(
    text: str | None = None,
    code: str | None = None,
    performed: str = SIX_MONTHS_AGO,
    status: str = "completed",
) -> dict:
    concept: dict = {}
    if code:
        concept["coding"] = [b.coding(CPT, code)]
    if text:
        concept["text"] = text
    return {
        "resourceType": "Procedure",
        "id": b._id(),
        "status": status,
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
        "code": concept,
        "performedDateTime": performed,
    }


def service_request(
    text: str | None = None,
    code: str | None = None,
    status: str = "completed",
    when: str = SIX_MONTHS_AGO,
) -> dict:
    done = when if status == "completed" else None
    return b.service_request(code, text, status, when, system=CPT, occurrence=done)


render = b.cards_by_topic


make_check = b.engine_and_rule


NEURO = make_check("neuropathy-or-radiculopathy", rules.neuropathy_or_radiculopathy)
VENOUS = make_check("venous-insufficiency", rules.venous_insufficiency)
PAD = make_check("peripheral-arterial-disease", rules.peripheral_arterial_disease)
DVT = make_check("prior-dvt", rules.prior_dvt)
IDS = ["engine", "rule"]


@pytest.fixture(params=NEURO, ids=IDS)
def neuro(request):
    return request.param


@pytest.fixture(params=VENOUS, ids=IDS)
def venous(request):
    return request.param


@pytest.fixture(params=PAD, ids=IDS)
def pad(request):
    return request.param


@pytest.fixture(params=DVT, ids=IDS)
def dvt(request):
    return request.param


def variants(found: list) -> list[str]:
    return [f.variant for f in found]


class TestNeuropathyOrRadiculopathy:
    @pytest.mark.parametrize(
        "problem",
        [
            icd("G62.9", "Polyneuropathy, unspecified"),
            icd("G60.0", "Hereditary motor and sensory neuropathy"),
            icd("G63", "Polyneuropathy in diseases classified elsewhere"),
            icd("E11.42", "Type 2 diabetes mellitus with diabetic polyneuropathy"),
            icd("E11.40", "Type 2 diabetes mellitus with diabetic neuropathy, unspecified"),
            icd("E10.42"),
            icd("M54.16", "Radiculopathy, lumbar region"),
            icd("M54.17"),
            icd("M48.062", "Spinal stenosis, lumbar region with neurogenic claudication"),
            icd("M48.061"),
            icd("M48.07"),
            icd("M51.16", "Intervertebral disc disorders with radiculopathy, lumbar region"),
            icd("M51.26", "Other intervertebral disc displacement, lumbar region"),
            icd("M47.26"),
            icd("M5116"),
            sct("368581000119106", "Neuropathy due to type 2 diabetes mellitus"),
            sct("42345000", "Polyneuropathy"),
            sct("72274001", "Radiculopathy"),
            b.condition(text="Peripheral neuropathy"),
            b.condition(text="Lumbar spinal stenosis"),
            b.condition(text="Herniated disc L5-S1"),
        ],
        ids=lambda r: (r["code"].get("coding") or [{}])[0].get("code") or r["code"]["text"],
    )
    def test_fires(self, neuro, problem):
        [finding] = neuro(problem)
        assert finding.variant == "default"
        assert finding.suggestions is None
        assert finding.notes == ()

    @pytest.mark.parametrize(
        "problem",
        [
            icd("E11.43", "Type 2 diabetes mellitus with diabetic autonomic (poly)neuropathy"),
            icd("E11.41", "Type 2 diabetes mellitus with diabetic mononeuropathy"),
            icd("E11.9", "Type 2 diabetes mellitus without complications"),
            icd("M51.36", "Other intervertebral disc degeneration, lumbar region"),
            icd("M54.5", "Low back pain"),
            icd("M54.4"),
            icd("M48.02", "Spinal stenosis, cervical region"),
            icd("G56.00", "Carpal tunnel syndrome"),
            icd("G65.2"),
            icd("G6"),
            b.condition(text="Spondylosis without myelopathy or radiculopathy"),
            sct("G62.9"),  # an ICD-10-CM code under the SNOMED system
        ],
        ids=lambda r: (r["code"].get("coding") or [{}])[0].get("code") or r["code"]["text"],
    )
    def test_does_not_fire(self, neuro, problem):
        assert neuro(problem) == []

    @pytest.mark.parametrize("clinical", ["inactive", "resolved", "remission"])
    def test_inactive_does_not_fire(self, neuro, clinical):
        assert neuro(icd("G62.9", clinical=clinical)) == []

    @pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
    def test_refuted_does_not_fire(self, neuro, verification):
        assert neuro(icd("G62.9", verification=verification)) == []

    def test_one_card_names_every_problem(self, neuro):
        first = icd("E11.42", "Diabetic polyneuropathy")
        second = icd("M54.16", "Lumbar radiculopathy")
        [finding] = neuro(first, second)
        assert finding.values["conditions"] == "Diabetic polyneuropathy and Lumbar radiculopathy"
        assert [d.source for d in finding.data] == [
            f"Condition/{first['id']}",
            f"Condition/{second['id']}",
        ]

    @pytest.mark.parametrize(
        "record",
        [
            procedure(text="Nerve conduction study"),
            procedure(code="95910"),
            procedure(text="Electromyography, both legs"),
            service_request(text="Nerve conduction study"),
            service_request(text="Nerve conduction study", status="active"),
            procedure(text="Nerve conduction study", status="in-progress"),
        ],
        ids=["procedure-text", "procedure-cpt", "emg", "service-request-done",
             "service-request-pending", "procedure-in-progress"],
    )  # fmt: skip
    def test_recent_ncs_drops_the_suggestion_with_a_note(self, neuro, record):
        [finding] = neuro(icd("G62.9"), record)
        assert finding.suggestions == ()
        assert len(finding.notes) == 1
        assert "not suggested again" in finding.notes[0]
        kind = record["resourceType"]
        assert f"{kind}/{record['id']}" in [d.source for d in finding.data]

    def test_done_note_names_the_date(self, neuro):
        [finding] = neuro(icd("G62.9"), procedure(text="Nerve conduction study"))
        assert "2026-05-28" in finding.notes[0]
        assert "was done" in finding.notes[0]

    @pytest.mark.parametrize(
        "record",
        [
            procedure(text="Nerve conduction study", performed=FOURTEEN_MONTHS_AGO),
            service_request(text="Nerve conduction study", when=FOURTEEN_MONTHS_AGO),
            procedure(text="Nerve conduction study", status="not-done"),
            procedure(text="Nerve conduction study", status="entered-in-error"),
            service_request(text="Nerve conduction study", status="revoked"),
            procedure(text="Venous duplex ultrasound"),
        ],
        ids=["procedure-old", "service-request-old", "not-done", "entered-in-error",
             "revoked", "other-test"],
    )  # fmt: skip
    def test_old_or_not_done_ncs_keeps_the_suggestion(self, neuro, record):
        [finding] = neuro(icd("G62.9"), record)
        assert (finding.suggestions, finding.notes) == (None, ())

    def test_card_suggests_ncs_emg(self):
        card = render(b.findings(b.kidney_ok(), icd("G62.9")))["neuropathy-or-radiculopathy"]
        assert card["indicator"] == "info"
        [suggestion] = card["suggestions"]
        [action] = suggestion["actions"]
        assert action["resource"]["resourceType"] == "ServiceRequest"
        assert "Nerve conduction" in action["resource"]["code"]["text"]

    def test_card_without_suggestion_when_done(self):
        found = b.findings(b.kidney_ok(), icd("G62.9"), procedure(text="Nerve conduction study"))
        card = render(found)["neuropathy-or-radiculopathy"]
        assert "suggestions" not in card
        assert "not suggested again" in card["detail"]


class TestVenousInsufficiency:
    @pytest.mark.parametrize(
        "problem",
        [
            icd("I87.2", "Venous insufficiency (chronic) (peripheral)"),
            icd("I83.93", "Asymptomatic varicose veins of bilateral lower extremities"),
            icd("I83.90", "Asymptomatic varicose veins of unspecified lower extremity"),
            icd("I83.813"),
            icd("I87.313"),
            icd("I87.009"),
            sct("72866009", "Varicose veins of lower limb"),
            b.condition(text="Chronic venous insufficiency"),
            b.condition(text="Varicose veins of lower extremities"),
        ],
        ids=lambda r: (r["code"].get("coding") or [{}])[0].get("code") or r["code"]["text"],
    )
    def test_fires(self, venous, problem):
        [finding] = venous(problem)
        assert (finding.variant, finding.suggestions) == ("default", None)

    @pytest.mark.parametrize(
        "problem",
        [icd("I87.1"), icd("I80.10"), icd("I86.1"), icd("I85.00"), icd("I87.8"),
         icd("I87.2", clinical="resolved"), icd("I87.2", verification="refuted")],
        ids=["I87.1", "I80.10", "I86.1", "I85.00", "I87.8", "resolved", "refuted"],
    )  # fmt: skip
    def test_does_not_fire(self, venous, problem):
        assert venous(problem) == []

    @pytest.mark.parametrize(
        "record",
        [
            procedure(text="Venous duplex ultrasound of both legs"),
            procedure(code="93970"),
            service_request(text="Venous duplex ultrasound", status="active"),
        ],
        ids=["text", "cpt", "pending"],
    )
    def test_duplex_6_months_ago_drops_the_suggestion(self, venous, record):
        [finding] = venous(icd("I87.2"), record)
        assert finding.suggestions == ()
        assert "not suggested again" in finding.notes[0]

    def test_duplex_14_months_ago_keeps_the_suggestion(self, venous):
        old = procedure(text="Venous duplex ultrasound", performed=FOURTEEN_MONTHS_AGO)
        [finding] = venous(icd("I87.2"), old)
        assert (finding.suggestions, finding.notes) == (None, ())

    def test_card_suggests_duplex(self):
        card = render(b.findings(b.kidney_ok(), icd("I87.2")))["venous-insufficiency"]
        [suggestion] = card["suggestions"]
        assert "duplex" in suggestion["actions"][0]["resource"]["code"]["text"].lower()


class TestPeripheralArterialDisease:
    @pytest.mark.parametrize(
        "problem",
        [
            icd("I73.9", "Peripheral vascular disease, unspecified"),
            icd("I70.213", "Atherosclerosis of native arteries of extremities with "
                "intermittent claudication, bilateral legs"),
            icd("I70.203"),
            icd("I70.92"),
            icd("I70.399"),
            sct("399957001", "Peripheral arterial occlusive disease"),
            sct("840580004"),
            b.condition(text="Peripheral arterial disease"),
        ],
        ids=lambda r: (r["code"].get("coding") or [{}])[0].get("code") or r["code"]["text"],
    )  # fmt: skip
    def test_fires(self, pad, problem):
        [finding] = pad(problem)
        assert (finding.variant, finding.suggestions) == ("default", None)

    @pytest.mark.parametrize(
        "code", ["I74.3", "I73.00", "I73.1", "I73.81", "I75.021", "I72.4", "I70.0", "I70.1"]
    )
    def test_does_not_fire(self, pad, code):
        assert pad(icd(code)) == []

    def test_resolved_does_not_fire(self, pad):
        assert pad(icd("I73.9", clinical="resolved")) == []

    def test_recent_abi_drops_the_suggestion(self, pad):
        [finding] = pad(icd("I73.9"), procedure(text="Ankle brachial index"))
        assert finding.suggestions == ()
        assert len(finding.notes) == 1

    def test_old_abi_keeps_the_suggestion(self, pad):
        old = procedure(text="Ankle brachial index", performed=FOURTEEN_MONTHS_AGO)
        [finding] = pad(icd("I73.9"), old)
        assert finding.suggestions is None

    def test_card_suggests_abi(self):
        card = render(b.findings(b.kidney_ok(), icd("I73.9")))["peripheral-arterial-disease"]
        [suggestion] = card["suggestions"]
        assert "Ankle-brachial" in suggestion["actions"][0]["resource"]["code"]["text"]


class TestPriorDvt:
    @pytest.mark.parametrize(
        "problem",
        [
            icd("Z86.718", "Personal history of other venous thrombosis and embolism"),
            icd("Z86.718", clinical="resolved"),
            icd("Z86.718", clinical=None),
            icd("I82.5Z9", "Chronic embolism and thrombosis of unsp deep veins of distal LE"),
            icd("I82.501"),
            icd("I82.5Z9", clinical="inactive"),
            icd("I82.401", "Acute embolism and thrombosis of unsp deep veins of right LE",
                clinical="resolved"),
            icd("I82.4Z2", clinical="inactive"),
            icd("I82.409", clinical="remission"),
            sct("132281000119108", "Acute deep venous thrombosis", clinical="resolved"),
            sct("128053003", clinical="resolved"),
            b.condition(text="Personal history of DVT"),
        ],
        ids=["Z86.718", "Z86.718-resolved", "Z86.718-no-status", "I82.5Z9", "I82.501",
             "I82.5Z9-inactive", "I82.401-resolved", "I82.4Z2-inactive", "I82.409-remission",
             "sct-acute-resolved", "sct-dvt-resolved", "text"],
    )  # fmt: skip
    def test_fires(self, dvt, problem):
        [finding] = dvt(problem)
        assert (finding.variant, finding.suggestions) == ("default", None)

    @pytest.mark.parametrize(
        "problem",
        [
            icd("I82.401", "Acute DVT of right leg"),
            icd("I82.401", clinical=None),
            icd("I82.401", clinical="recurrence"),
            sct("132281000119108", "Acute deep venous thrombosis"),
            icd("Z86.711", "Personal history of pulmonary embolism"),
            icd("I80.10"),
            icd("Z86.718", verification="refuted"),
            icd("Z86.718", verification="entered-in-error"),
            icd("I82.401", clinical="resolved", verification="entered-in-error"),
            b.condition(text="Family history of DVT"),
        ],
        ids=["I82.401-active", "I82.401-no-status", "I82.401-recurrence", "sct-acute-active",
             "Z86.711", "I80.10", "refuted", "entered-in-error", "resolved-entered-in-error",
             "family-history"],
    )  # fmt: skip
    def test_does_not_fire(self, dvt, problem):
        assert dvt(problem) == []

    @pytest.mark.parametrize(
        ("onset", "fires"),
        [
            ("2020-09-01", True),  # the case: "active" for six years
            ("2026-08-29T11:59:00Z", True),  # 91 days before NOW
            ("2026-08-30T11:00:00Z", True),  # just over 90 days
            ("2026-08-30T13:00:00Z", False),  # just under 90 days: a current clot
            ("2026-11-01", False),
        ],
    )
    def test_an_active_acute_dvt_older_than_3_months_is_history(self, dvt, onset, fires):
        """Revised row 15: acute-DVT entries begun more than 3 months ago count as history."""
        problem = icd("I82.401", "Acute DVT of right leg", onset=onset)
        assert bool(dvt(problem)) is fires

    def test_an_old_recorded_date_counts_when_there_is_no_onset(self, dvt):
        problem = icd("I82.401", "Acute DVT of right leg")
        problem["recordedDate"] = "2021-03-01"
        assert len(dvt(problem)) == 1

    def test_the_3_months_is_the_card_files_threshold(self):
        assert b.params("prior-dvt")["acute_dvt_history_days"] == 90

    def test_with_venous_insufficiency_the_duplex_is_left_to_that_card(self, dvt):
        [finding] = dvt(icd("Z86.718"), icd("I87.2"))
        assert finding.suggestions == ()
        assert finding.notes == ("The venous insufficiency card offers the venous duplex.",)

    def test_both_cards_fire_and_only_one_suggests_the_duplex(self):
        cards = render(b.findings(b.kidney_ok(), icd("Z86.718"), icd("I87.2")))
        assert "suggestions" in cards["venous-insufficiency"]
        assert "suggestions" not in cards["prior-dvt"]
        assert "venous insufficiency card" in cards["prior-dvt"]["detail"]

    def test_resolved_venous_insufficiency_does_not_take_the_duplex(self, dvt):
        [finding] = dvt(icd("Z86.718"), icd("I87.2", clinical="resolved"))
        assert finding.suggestions is None

    @pytest.mark.parametrize(
        ("performed", "dropped"), [(SIX_MONTHS_AGO, True), (FOURTEEN_MONTHS_AGO, False)]
    )
    def test_duplex_done_drops_the_suggestion_only_within_12_months(self, dvt, performed, dropped):
        duplex = procedure(text="Venous duplex ultrasound", performed=performed)
        [finding] = dvt(icd("Z86.718"), duplex)
        assert (finding.suggestions == ()) is dropped
        assert bool(finding.notes) is dropped

    def test_duplex_done_and_venous_insufficiency_keeps_the_done_note(self, dvt):
        duplex = procedure(text="Venous duplex ultrasound")
        [finding] = dvt(icd("Z86.718"), icd("I87.2"), duplex)
        assert finding.suggestions == ()
        assert "not suggested again" in finding.notes[0]

    def test_one_card_for_several_dvt_records(self, dvt):
        [finding] = dvt(icd("Z86.718", "History of DVT"), icd("I82.5Z9", "Chronic DVT"))
        assert finding.values["conditions"] == "History of DVT and Chronic DVT"


def test_conditions_of_another_patient_are_ignored():
    other = icd("G62.9", patient_id="someone-else")
    assert "neuropathy-or-radiculopathy" not in b.findings(b.kidney_ok(), other)


def test_loinc_is_not_a_condition_system():
    assert "venous-insufficiency" not in b.findings(
        b.kidney_ok(), b.condition(b.coding(LOINC, "I87.2"))
    )
