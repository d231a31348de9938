"""Value-set matching: (system, code) pairs, ICD-10-CM hierarchy, phrases, and loading."""

from __future__ import annotations

import json

import pytest

from cds_service.clinical.terminology import (
    INCLUDES_DESCENDANTS,
    TEXT_MATCH,
    ValueSet,
    ValueSetError,
    any_member,
    icd10_ancestors,
    load_value_sets,
    normalise_icd10,
)
from tests.builders import ICD10CM, KNOWLEDGE, LOINC, SNOMED

CDC_RACE = "urn:oid:2.16.840.1.113883.6.238"
DESCENDANTS = [{"url": INCLUDES_DESCENDANTS, "valueBoolean": True}]


def entry(system: str, code: str, descendants: bool = False) -> dict:
    found = {"system": system, "code": code, "display": f"display of {code}"}
    if descendants:
        found["extension"] = DESCENDANTS
    return found


def value_set_resource(*entries: dict, vs_id: str = "test", phrases: tuple = ()) -> dict:
    return {
        "resourceType": "ValueSet",
        "id": vs_id,
        "url": f"urn:test:valueset:{vs_id}",
        "extension": [{"url": TEXT_MATCH, "valueString": p} for p in phrases],
        "expansion": {"contains": list(entries)},
    }


def value_set(*entries: dict, phrases: tuple = ()) -> ValueSet:
    return ValueSet.from_resource(value_set_resource(*entries, phrases=phrases))


class TestSystemAndCode:
    def test_code_matches_only_in_its_own_system(self):
        """LOINC 2106-3 (pregnancy test) is also CDC race "White": the system decides."""
        pregnancy_test = value_set(entry(LOINC, "2106-3"))
        assert pregnancy_test.has_code(LOINC, "2106-3")
        assert not pregnancy_test.has_code(CDC_RACE, "2106-3")

    @pytest.mark.parametrize("system", [None, "", "http://example.org/local"])
    def test_code_without_the_right_system_does_not_match(self, system):
        assert not value_set(entry(LOINC, "2106-3")).has_code(system, "2106-3")

    @pytest.mark.parametrize("code", [None, "", "   "])
    def test_missing_code_does_not_match(self, code):
        assert not value_set(entry(LOINC, "2106-3")).has_code(LOINC, code)

    @pytest.mark.parametrize(
        ("alias", "canonical", "code"),
        [
            ("urn:oid:2.16.840.1.113883.6.1", LOINC, "2276-4"),
            ("urn:oid:2.16.840.1.113883.6.96", SNOMED, "32914008"),
            ("http://snomed.info/sct/", SNOMED, "32914008"),
            ("urn:oid:2.16.840.1.113883.6.90", ICD10CM, "G25.81"),
            ("http://hl7.org/fhir/sid/icd-10-us", ICD10CM, "G25.81"),
        ],
    )
    def test_oid_and_legacy_system_spellings_match(self, alias, canonical, code):
        assert value_set(entry(canonical, code)).has_code(alias, code)

    def test_value_set_written_with_an_oid_matches_the_canonical_uri(self):
        assert value_set(entry("urn:oid:2.16.840.1.113883.6.1", "2276-4")).has_code(LOINC, "2276-4")

    def test_any_member_is_true_when_one_pair_matches(self):
        vs = value_set(entry(LOINC, "2106-3"))
        assert any_member(vs, [(CDC_RACE, "2106-3"), (LOINC, "2106-3")])
        assert not any_member(vs, [(CDC_RACE, "2106-3")])


class TestIcd10Hierarchy:
    @pytest.mark.parametrize("code", ["G25.81", "g25.81", "G2581", "g2581", " G25.81 "])
    def test_spellings_of_g25_81_match(self, code):
        assert value_set(entry(ICD10CM, "G25.81", descendants=True)).has_code(ICD10CM, code)

    @pytest.mark.parametrize("code", ["I83.9", "I83.90", "I83.91", "I83.913", "i83913"])
    def test_root_covers_itself_and_its_descendants(self, code):
        assert value_set(entry(ICD10CM, "I83.9", descendants=True)).has_code(ICD10CM, code)

    @pytest.mark.parametrize("code", ["I83.0", "I83", "I8", "I83.81", "I84.9", "I93.9"])
    def test_root_does_not_cover_siblings_ancestors_or_string_prefixes(self, code):
        assert not value_set(entry(ICD10CM, "I83.9", descendants=True)).has_code(ICD10CM, code)

    def test_entry_without_the_flag_matches_exactly_only(self):
        vs = value_set(entry(ICD10CM, "I83.9"))
        assert vs.has_code(ICD10CM, "I83.9")
        assert not vs.has_code(ICD10CM, "I83.91")

    def test_hierarchy_applies_to_icd10cm_only(self):
        """A SNOMED code that happens to look like a child is not one."""
        vs = value_set(entry(ICD10CM, "I83.9", descendants=True))
        assert not vs.has_code(SNOMED, "I83.91")

    def test_descendants_flag_on_a_non_icd10_entry_is_rejected(self):
        with pytest.raises(ValueSetError):
            value_set(entry(SNOMED, "32914008", descendants=True))

    @pytest.mark.parametrize(
        ("code", "normalised"), [("g2581", "G25.81"), ("I83.913", "I83.913"), ("n186", "N18.6")]
    )
    def test_normalise_upper_cases_and_dots(self, code, normalised):
        assert normalise_icd10(code) == normalised

    def test_ancestors_nearest_first(self):
        assert icd10_ancestors("I83.913") == ["I83.913", "I83.91", "I83.9", "I83"]


class TestPhrases:
    @pytest.fixture
    def rls(self) -> ValueSet:
        return value_set(entry(SNOMED, "32914008"), phrases=("restless legs", "Willis-Ekbom"))

    @pytest.mark.parametrize(
        "text",
        [
            "Restless legs syndrome",
            "RESTLESS-LEGS",
            "restless  legs",
            "Secondary restless legs syndrome",
            "Willis-Ekbom disease",
            "willis-ekbom disease",
        ],
    )
    def test_phrase_matches_whole_words_any_case(self, rls, text):
        assert rls.names_in(text)

    @pytest.mark.parametrize(
        "text", ["restlesslegs", "unrestless legsy", "restless leg", "legs restless", "", None]
    )
    def test_phrase_does_not_match_inside_words_or_other_text(self, rls, text):
        assert not rls.names_in(text)

    @pytest.mark.parametrize("text", ["Willis Ekbom disease", "Willis–Ekbom disease"])
    def test_willis_ekbom_matches_with_space_or_en_dash(self, text):
        assert KNOWLEDGE.value_sets["rls"].names_in(text)

    def test_shipped_rls_value_set_names_the_disease(self):
        rls = KNOWLEDGE.value_sets["rls"]
        assert rls.names_in("Restless legs syndrome")
        assert rls.names_in("Willis-Ekbom disease")
        assert not rls.names_in("Restless")


class TestLoading:
    def write(self, directory, name: str, resource: dict) -> None:
        (directory / name).write_text(json.dumps(resource), encoding="utf-8")

    def test_loads_every_json_keyed_by_id(self, tmp_path):
        self.write(tmp_path, "a.json", value_set_resource(entry(LOINC, "1-8"), vs_id="a"))
        self.write(tmp_path, "b.json", value_set_resource(entry(LOINC, "2-6"), vs_id="b"))
        assert set(load_value_sets(tmp_path)) == {"a", "b"}

    @pytest.mark.parametrize(
        "expansion", [None, {}, {"contains": []}, {"timestamp": "2026-11-28T00:00:00Z"}]
    )
    def test_file_without_expansion_contains_is_rejected(self, tmp_path, expansion):
        resource = value_set_resource(entry(LOINC, "1-8"))
        resource["expansion"] = expansion
        self.write(tmp_path, "bad.json", resource)
        with pytest.raises(ValueSetError, match=r"bad\.json"):
            load_value_sets(tmp_path)

    def test_duplicate_ids_are_rejected(self, tmp_path):
        self.write(tmp_path, "a.json", value_set_resource(entry(LOINC, "1-8"), vs_id="same"))
        self.write(tmp_path, "b.json", value_set_resource(entry(LOINC, "2-6"), vs_id="same"))
        with pytest.raises(ValueSetError, match="duplicate"):
            load_value_sets(tmp_path)

    @pytest.mark.parametrize(
        "content",
        [
            "{not json",
            json.dumps({"resourceType": "CodeSystem", "id": "x"}),
            json.dumps(value_set_resource({"system": LOINC, "code": "1-8"})),
        ],
    )
    def test_unreadable_or_incomplete_file_is_rejected(self, tmp_path, content):
        """Invalid JSON, not a ValueSet, or an entry without a display."""
        (tmp_path / "bad.json").write_text(content, encoding="utf-8")
        with pytest.raises(ValueSetError):
            load_value_sets(tmp_path)

    def test_every_shipped_value_set_loads(self):
        directory = KNOWLEDGE.directory / "valuesets"
        loaded = load_value_sets(directory)
        assert len(loaded) == len(list(directory.glob("*.json")))
        assert all(vs.concepts for vs in loaded.values())

    @pytest.mark.parametrize(
        ("vs_id", "system", "code"),
        [
            ("rls", SNOMED, "32914008"),
            ("rls", ICD10CM, "G25.81"),
            ("esrd-dialysis", ICD10CM, "N18.6"),
            ("esrd-dialysis", ICD10CM, "Z99.2"),
            ("ferritin", LOINC, "2276-4"),
            ("creatinine", LOINC, "14682-9"),
            ("egfr", LOINC, "98979-8"),
        ],
    )
    def test_shipped_value_sets_hold_the_codes_of_knowledge_md(self, vs_id, system, code):
        assert KNOWLEDGE.value_sets[vs_id].has_code(system, code)
