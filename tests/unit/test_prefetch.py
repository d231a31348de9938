"""Prefetch templates: every token the spec allows, and which keys count as unsatisfied."""

from __future__ import annotations

import pytest

from cds_service.hooks.prefetch import (
    TemplateError,
    render,
    resource_type,
    token_values,
    unsatisfied,
)

CONTEXT = {
    "userId": "Practitioner/doc-1",
    "patientId": "p 1",
    "encounterId": "enc-9",
    "draftOrders": {"resourceType": "Bundle"},
    "selections": ["MedicationRequest/x"],
}


class TestRendering:
    @pytest.mark.parametrize(
        ("template", "expected"),
        [
            ("Patient/{{context.patientId}}", "Patient/p%201"),
            ("Encounter/{{context.encounterId}}", "Encounter/enc-9"),
            ("Practitioner?_id={{context.userId}}", "Practitioner?_id=Practitioner%2Fdoc-1"),
            ("Practitioner/{{userPractitionerId}}", "Practitioner/doc-1"),
            ("Condition?patient={{ context.patientId }}", "Condition?patient=p%201"),
        ],
    )
    def test_context_and_user_tokens_are_filled_and_escaped(self, template, expected):
        assert render(template, CONTEXT) == expected

    @pytest.mark.parametrize(
        ("user", "token"),
        [
            ("Practitioner/a", "userPractitionerId"),
            ("PractitionerRole/a", "userPractitionerRoleId"),
            ("Patient/a", "userPatientId"),
            ("RelatedPerson/a", "userRelatedPersonId"),
        ],
    )
    def test_each_user_token_comes_from_user_id(self, user, token):
        assert token_values({"userId": user})[token] == "a"

    def test_a_user_token_of_another_kind_is_not_offered(self):
        values = token_values({"userId": "Patient/a"})
        assert "userPractitionerId" not in values

    @pytest.mark.parametrize(
        "template",
        [
            "Encounter/{{context.encounterId}}",
            "X?d={{context.draftOrders}}",
            "X?s={{context.selections}}",
            "X/{{userPractitionerRoleId}}",
        ],
    )
    def test_tokens_the_request_cannot_fill_raise(self, template):
        """Non-primitive context fields are never tokens; absent fields cannot be filled."""
        context = {k: v for k, v in CONTEXT.items() if k != "encounterId"}
        with pytest.raises(TemplateError):
            render(template, context)


TEMPLATES = {"patient": "Patient/{{context.patientId}}", "labs": "Observation?x=1"}


class TestUnsatisfied:
    def test_absent_keys_are_unsatisfied(self):
        assert unsatisfied(TEMPLATES, {"patient": {}}) == ["labs"]

    def test_no_prefetch_at_all_leaves_every_key(self):
        assert unsatisfied(TEMPLATES, None) == ["patient", "labs"]

    def test_operation_outcome_is_unsatisfied(self):
        prefetch = {"patient": {}, "labs": {"resourceType": "OperationOutcome"}}
        assert unsatisfied(TEMPLATES, prefetch) == ["labs"]

    def test_null_and_empty_searchset_are_data(self):
        prefetch = {"patient": None, "labs": {"resourceType": "Bundle", "type": "searchset"}}
        assert unsatisfied(TEMPLATES, prefetch) == []


@pytest.mark.parametrize(
    ("template", "kind"),
    [
        ("Patient/{{context.patientId}}", "Patient"),
        ("Observation?patient=1&code=a|b", "Observation"),
        ("MedicationStatement?patient=1", "MedicationStatement"),
        ("Encounter/{{context.encounterId}}", "Encounter"),
    ],
)
def test_template_resource_type(template, kind):
    assert resource_type(template) == kind
