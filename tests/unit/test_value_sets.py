"""The shipped value sets against the classic coding traps, and their file structure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cds_service.clinical.facts import MEDICATION_VALUE_SETS, REQUIRED_VALUE_SETS
from cds_service.clinical.terminology import ICD10CM, canonical_system
from cds_service.knowledge import Knowledge, KnowledgeError
from cds_service.resources import shipped_dir
from tests import builders as b
from tests.builders import ICD10CM as ICD
from tests.builders import LOINC, RXNORM, SNOMED

CARDS = shipped_dir("cards")
VALUE_SET_FILES = sorted((CARDS / "valuesets").glob("*.json"))
VS = b.KNOWLEDGE.value_sets
CDC_RACE = "urn:oid:2.16.840.1.113883.6.238"
VERIFIED = "urn:rls-cds:fhir:verified"
INCLUDES_DESCENDANTS = "urn:rls-cds:fhir:includes-descendants"
#: The drug-class value sets a medication is matched against.
DRUG_CLASSES = MEDICATION_VALUE_SETS


def sets_with_code(system: str, code: str, among=DRUG_CLASSES) -> set[str]:
    return {vs_id for vs_id in among if VS[vs_id].has_code(system, code)}


def sets_naming(text: str, among=DRUG_CLASSES) -> set[str]:
    return {vs_id for vs_id in among if VS[vs_id].names_in(text)}


# --- (system, code), never code alone -------------------------------------------------------


def test_pregnancy_test_code_is_matched_with_its_system():
    assert VS["pregnancy-test"].has_code(LOINC, "2106-3")
    assert not VS["pregnancy-test"].has_code(CDC_RACE, "2106-3")  # race "White"
    assert not VS["pregnancy-test"].has_code(None, "2106-3")
    assert not VS["pregnancy-test"].has_code(SNOMED, "2106-3")


def test_race_coded_observation_is_not_a_pregnancy_result():
    positive = {"coding": [{"system": SNOMED, "code": "10828004", "display": "Positive"}]}
    race = b.observation("2106-3", None, None, system=CDC_RACE) | {"valueCodeableConcept": positive}
    test = b.observation("2106-3", None, None) | {"valueCodeableConcept": positive}
    assert b.picture(race).pregnancy_results == ()
    assert [r.positive for r in b.picture(test).pregnancy_results] == [True]


def test_egfr_codes():
    assert VS["egfr"].has_code(LOINC, "98979-8")  # CKD-EPI 2021
    assert VS["egfr"].has_code(LOINC, "62238-1")  # CKD-EPI 2009
    assert not VS["egfr"].has_code(LOINC, "2160-0")  # creatinine


def test_egfr_2009_code_is_read_as_a_reported_egfr():
    found = b.picture(b.observation("62238-1", 48, "mL/min/{1.73_m2}")).on_record("egfr")
    assert [(r.value, r.reported) for r in found] == [(48, True)]


# --- ICD-10-CM hierarchy --------------------------------------------------------------------


@pytest.mark.parametrize("code", ["I82.4", "I82.40", "I82.401", "I82.409", "I82.4Z9", "i82402"])
def test_acute_dvt_codes_are_acute_not_history(code):
    assert VS["dvt-acute"].has_code(ICD, code)
    assert not VS["dvt-history"].has_code(ICD, code)


@pytest.mark.parametrize("code", ["Z86.718", "I82.5", "I82.501", "I82.509", "I82.5Z9"])
def test_dvt_history_codes_are_history_not_acute(code):
    assert VS["dvt-history"].has_code(ICD, code)
    assert not VS["dvt-acute"].has_code(ICD, code)


@pytest.mark.parametrize("code", ["Z86.71", "Z86.711", "Z86.7", "I82", "I82.6", "I82.90"])
def test_not_dvt(code):
    assert not VS["dvt-history"].has_code(ICD, code)
    assert not VS["dvt-acute"].has_code(ICD, code)


@pytest.mark.parametrize("code", ["Z33.1", "Z34.00", "Z34.83", "O09.511", "Z3A.20"])
def test_pregnancy_codes(code):
    assert VS["pregnancy"].has_code(ICD, code)


@pytest.mark.parametrize("code", ["O80", "Z39.2", "Z39.0", "Z33.2", "Z30.09"])
def test_delivery_postpartum_and_termination_are_not_pregnancy(code):
    assert not VS["pregnancy"].has_code(ICD, code)


@pytest.mark.parametrize("code", ["I83.93", "I83", "I83.9", "I830", "I83.813", "I87.2"])
def test_venous_insufficiency_by_hierarchy(code):
    assert VS["venous-insufficiency"].has_code(ICD, code)


@pytest.mark.parametrize("code", ["I8", "I80.1", "I80", "I81", "I85.00", "I86.1", "I87.1", "I87"])
def test_prefix_tricks_are_not_venous_insufficiency(code):
    assert not VS["venous-insufficiency"].has_code(ICD, code)


def test_icd10_code_under_another_system_is_not_matched():
    assert not VS["venous-insufficiency"].has_code(SNOMED, "I83.93")
    assert not VS["rls"].has_code(SNOMED, "G25.81")


def test_rls_parent_code_is_not_rls():
    assert VS["rls"].has_code(ICD, "G25.81")
    assert not VS["rls"].has_code(ICD, "G25.8")
    assert not VS["rls"].has_code(ICD, "G25")


# --- drug classes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "buPROPion XL 150 mg",
        "Wellbutrin",
        "Wellbutrin XL 300 MG",
        "bupropion hydrochloride 150 MG Extended Release Oral Tablet",
        "loratadine 10 MG Oral Tablet",
        "Claritin",
        "fexofenadine 180 MG Oral Tablet",
        "Allegra",
        "cetirizine hydrochloride 10 MG Oral Tablet",
        "Zyrtec",
        "levocetirizine 5 mg",
        "desloratadine",
        "Tylenol",
        "ondansetron 4 mg",
        "trazodone 50 mg at bedtime",
    ],
)
def test_non_class_drug_names_are_in_no_drug_class(name):
    assert sets_naming(name) == set()


@pytest.mark.parametrize(
    "code",
    [
        "42347",  # bupropion
        "28889",  # loratadine
        "311372",  # loratadine 10 MG Oral Tablet
        "87636",  # fexofenadine
        "20610",  # cetirizine
        "26225",  # ondansetron
    ],
)
def test_non_class_drug_codes_are_in_no_drug_class(code):
    assert sets_with_code(RXNORM, code) == set()


@pytest.mark.parametrize(
    "name",
    [
        "Benadryl",
        "Diphenhydramine HCl 25 mg",
        "diphenhydrAMINE 25 mg capsule",
        "hydroxyzine pamoate 25 mg",
        "Tylenol PM",
        "doxylamine succinate 25 MG Oral Tablet [Unisom]",
    ],
)
def test_sedating_antihistamine_names(name):
    # hydroxyzine is also in its own subset, used to name its indication (anxiety)
    assert sets_naming(name) - {"hydroxyzine"} == {"sedating-antihistamine"}


def test_promethazine_is_a_sedating_antihistamine_not_an_antiemetic_antagonist():
    for found in (
        sets_naming("promethazine 25 mg tablet"),
        sets_naming("Phenergan"),
        sets_with_code(RXNORM, "8745"),
    ):
        assert found == {"sedating-antihistamine"}


def test_dopamine_antagonist_antiemetics():
    assert sets_naming("metoclopramide 10 mg") == {"dopamine-antagonist-antiemetic"}
    assert sets_naming("prochlorperazine 10 mg") == {"dopamine-antagonist-antiemetic"}
    assert sets_with_code(RXNORM, "6915") == {"dopamine-antagonist-antiemetic"}


def test_gabapentin_enacarbil_text():
    assert VS["gabapentin-enacarbil"].names_in("gabapentin enacarbil 600 mg ER tablet")
    assert VS["gabapentin-enacarbil"].names_in("Horizant")
    assert not VS["gabapentin-enacarbil"].names_in("gabapentin 300 mg capsule")


def test_picture_classifies_gabapentin_enacarbil():
    picture = b.picture(b.medication_request(text="gabapentin enacarbil 600 mg ER tablet"))
    assert [m.name for m in picture.medications_in("gabapentin-enacarbil")] == [
        "gabapentin enacarbil 600 mg ER tablet"
    ]


def test_picture_does_not_classify_plain_gabapentin_as_enacarbil():
    picture = b.picture(b.medication_request(code="310431", text="gabapentin 300 MG Oral Capsule"))
    assert picture.medications_in("gabapentin-enacarbil") == []
    assert len(picture.medications_in("gabapentin")) == 1


# --- code system spellings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vs_id", "system", "code"),
    [
        ("rls", "urn:oid:2.16.840.1.113883.6.96", "32914008"),
        ("rls", "urn:oid:2.16.840.1.113883.6.90", "G25.81"),
        ("venous-insufficiency", "urn:oid:2.16.840.1.113883.6.90", "I83.93"),
        ("sedating-antihistamine", "urn:oid:2.16.840.1.113883.6.88", "3498"),
        ("pregnancy-test", "urn:oid:2.16.840.1.113883.6.1", "2106-3"),
        ("rls", "http://snomed.info/sct/", "32914008"),
        ("sedating-antihistamine", "http://www.nlm.nih.gov/research/umls/rxnorm/", "3498"),
        ("rls", " http://snomed.info/sct ", "32914008"),
    ],
)
def test_oid_and_legacy_system_spellings_match(vs_id, system, code):
    assert VS[vs_id].has_code(system, code)


def test_oid_coded_condition_is_classified_in_the_picture():
    condition = b.condition(b.coding("urn:oid:2.16.840.1.113883.6.90", "G25.81"))
    assert b.picture(condition).has_rls


# --- structure of the shipped files ---------------------------------------------------------


def _load(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


@pytest.mark.parametrize("path", VALUE_SET_FILES, ids=lambda p: p.stem)
def test_value_set_file_identity(path):
    resource = _load(path)
    assert resource["resourceType"] == "ValueSet"
    assert resource["id"] == path.stem
    assert resource["url"] == f"urn:rls-cds:valueset:{path.stem}"


@pytest.mark.parametrize("path", VALUE_SET_FILES, ids=lambda p: p.stem)
def test_every_entry_says_how_it_was_verified(path):
    unverified = []
    for entry in _load(path)["expansion"]["contains"]:
        values = [
            e.get("valueString") or "" for e in entry.get("extension", []) if e["url"] == VERIFIED
        ]
        if len(values) != 1 or values[0][:1] not in ("V", "P", "U"):
            unverified.append(f"{entry['system']}|{entry['code']}")
    assert unverified == []


@pytest.mark.parametrize("path", VALUE_SET_FILES, ids=lambda p: p.stem)
def test_includes_descendants_only_on_icd10cm(path):
    for entry in _load(path)["expansion"]["contains"]:
        flags = [e for e in entry.get("extension", []) if e["url"] == INCLUDES_DESCENDANTS]
        if flags:
            assert canonical_system(entry["system"]) == ICD10CM, entry["code"]


def test_every_required_value_set_is_shipped():
    shipped = {path.stem for path in VALUE_SET_FILES}
    assert set(REQUIRED_VALUE_SETS) - shipped == set()
    assert set(REQUIRED_VALUE_SETS) <= set(VS)


def test_card_referring_to_an_unknown_value_set_fails_start_up(tmp_path):
    cards = tmp_path / "cards"
    shutil.copytree(CARDS, cards)
    card = cards / "gabapentinoid-renal-dose.toml"
    text = card.read_text("utf-8")
    old = 'value_set = "gabapentin"\n'
    assert old in text
    card.write_text(text.replace(old, 'value_set = "nope"\n', 1), "utf-8")
    with pytest.raises(KnowledgeError, match="nope"):
        Knowledge.load(cards)
