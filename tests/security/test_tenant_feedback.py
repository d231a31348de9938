"""Issue 16, points 2 and 3: no tenant can hide another's cards, and no override lasts forever.

The red team had EHR B override its own card for its patient with ``already-addressed``;
EHR A's different patient with the same FHIR id then got no card (pseudonyms were of the id
alone). B could also post feedback on a card uuid issued to A, through another service's
feedback URL, and hide A's card; and an ``outcomeTimestamp`` of 2099 hid a card until 2100.
Everything here runs against the service on a real socket with two trusted EHRs.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import builders as b
from tests.feedback.conftest import iso, patient_view_body
from tests.security.conftest import FHIR, HOOK_PATH, ISS, LOCAL, OTHER_FHIR, OTHER_ISS, Live, Signer

ANTIHISTAMINE = "sedating-antihistamine"
IRON = "iron-below-target"
FEEDBACK = HOOK_PATH + "/feedback"
ORDER_SIGN_FEEDBACK = "/cds-services/rls-order-sign/feedback"


@pytest.fixture(scope="module")
def ehr_b() -> Signer:
    return Signer(ec.generate_private_key(ec.SECP384R1()), "ehr-b", "ES384")


@pytest.fixture
def two_ehrs(es384, ehr_b) -> list[dict[str, Any]]:
    """EHR A (tenant hospital-a) and EHR B (tenant hospital-b), each with its own server."""
    return [
        {"iss": ISS, "jwks": {"keys": [es384.jwk()]}, "tenant": "hospital-a",
         "fhir_servers": [FHIR]},
        {"iss": OTHER_ISS, "jwks": {"keys": [ehr_b.jwk()]}, "tenant": "hospital-b",
         "fhir_servers": [OTHER_FHIR]},
    ]  # fmt: skip


class Ehr:
    """One EHR talking to the live service: hooks and feedback with fresh tokens."""

    def __init__(self, service: Live, signer: Signer, iss: str, fhir: str | None, **claims: Any):
        self.service, self.signer, self.iss, self.fhir, self.claims = (
            service, signer, iss, fhir, claims,
        )  # fmt: skip

    def token(self, path: str) -> str:
        return self.signer.token(aud=LOCAL + path, iss=self.iss, **self.claims)

    def cards(self, patient_id: str = b.PATIENT_ID, fhir: str | None = None) -> dict[str, dict]:
        body = patient_view_body(patient_id)
        server = fhir or self.fhir
        if server:
            body["fhirServer"] = server
        response = self.service.post(HOOK_PATH, body, self.token(HOOK_PATH))
        assert response.status_code == 200, response.text[:300]
        self.service.app.extensions["rls_cds"].feedback.recorder.flush()
        return {card["source"]["topic"]["code"]: card for card in response.json()["cards"]}

    def feedback(self, items: list[dict], path: str = FEEDBACK):
        return self.service.post(path, {"feedback": items}, self.token(path))


def override(card: dict, code: str = "already-addressed", when: str | None = None) -> dict:
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": "urn:rls-cds:override-reason", "code": code}},
        "outcomeTimestamp": when or iso(b.NOW),
    }


@pytest.fixture
def ehrs(live, two_ehrs, es384, ehr_b) -> tuple[Ehr, Ehr]:
    service = live(two_ehrs)
    return Ehr(service, es384, ISS, FHIR), Ehr(service, ehr_b, OTHER_ISS, OTHER_FHIR)


class TestTenantBoundSuppression:
    def test_another_tenants_override_never_hides_a_card_for_the_same_patient_id(self, ehrs):
        a, b_ = ehrs
        a_cards = a.cards("p1")
        b_cards = b_.cards("p1")  # B's patient p1 is another person than A's
        assert b_.feedback([override(b_cards[ANTIHISTAMINE])]).status_code == 200
        assert ANTIHISTAMINE not in b_.cards("p1")  # B's own suppression still works
        assert ANTIHISTAMINE in a.cards("p1")  # A's patient is untouched
        assert ANTIHISTAMINE in a_cards

    def test_the_same_issuer_with_another_tenant_claim_is_another_client(
        self, live, es384, ehr_entry
    ):
        """An entry without a tenant serves several tenants, named by the token's claim."""
        service = live([ehr_entry])
        one = Ehr(service, es384, ISS, FHIR, tenant="t1")
        two = Ehr(service, es384, ISS, FHIR, tenant="t2")
        one_cards, two_cards = one.cards("p1"), two.cards("p1")
        assert two.feedback([override(two_cards[ANTIHISTAMINE])]).status_code == 200
        assert ANTIHISTAMINE not in two.cards("p1")
        assert ANTIHISTAMINE in one.cards("p1")
        # and t1 cannot answer t2's card
        assert one.feedback([override(two_cards[IRON])]).status_code == 404
        assert IRON in two.cards("p1") and one_cards

    def test_the_same_patient_id_on_another_fhir_server_is_another_patient(
        self, live, es384, ehr_entry
    ):
        second = FHIR.replace("/R4", "/R4-north")
        service = live([{**ehr_entry, "fhir_servers": [FHIR, second]}])
        ehr = Ehr(service, es384, ISS, FHIR)
        north = ehr.cards("p1", fhir=second)
        assert ehr.feedback([override(north[ANTIHISTAMINE])]).status_code == 200
        assert ANTIHISTAMINE not in ehr.cards("p1", fhir=second)
        assert ANTIHISTAMINE in ehr.cards("p1", fhir=FHIR)


class TestFeedbackOnlyFromTheIssuedClient:
    def test_feedback_on_another_clients_card_is_404_and_hides_nothing(self, ehrs):
        a, b_ = ehrs
        a_cards = a.cards("p1")
        response = b_.feedback([override(a_cards[ANTIHISTAMINE])])
        assert response.status_code == 404, response.text[:300]
        assert response.json()["error"] == "unknown-card"
        assert [d["loc"] for d in response.json()["details"]] == ["feedback[0].card"]
        assert ANTIHISTAMINE in a.cards("p1")

    def test_through_another_services_feedback_url_it_is_404_too(self, ehrs):
        a, b_ = ehrs
        a_cards = a.cards("p1")
        for ehr in (b_, a):  # not even A may answer its patient-view card at order-sign
            response = ehr.feedback([override(a_cards[ANTIHISTAMINE])], ORDER_SIGN_FEEDBACK)
            assert response.status_code == 404, response.text[:300]
        assert ANTIHISTAMINE in a.cards("p1")

    def test_the_answer_does_not_say_the_card_exists_elsewhere(self, ehrs):
        a, b_ = ehrs
        a_card = a.cards("p1")[ANTIHISTAMINE]
        foreign = b_.feedback([override(a_card)])
        unknown = b_.feedback([override({"uuid": str(uuid.uuid4())})])
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json() == unknown.json()
        assert a_card["uuid"] not in foreign.text

    def test_the_owner_may_answer_its_card(self, ehrs):
        a, _ = ehrs
        a_cards = a.cards("p1")
        assert a.feedback([override(a_cards[ANTIHISTAMINE])]).json()["stored"] == 1
        assert ANTIHISTAMINE not in a.cards("p1")


class TestTimestamps:
    @pytest.mark.parametrize(
        "when",
        [
            "2099-12-31T00:00:00Z",  # the red team's: hidden until 2100
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-01:00",  # valid RFC 3339, beyond year 9999 in UTC
            "9999-12-31T23:59:59.999999+14:00",
            iso(b.NOW + timedelta(minutes=6)),  # beyond the 5 minutes of clock skew
        ],
    )
    def test_an_outcome_later_than_its_receipt_is_400_naming_the_item(self, ehrs, when):
        a, _ = ehrs
        cards = a.cards("p1")
        items = [override(cards[IRON]), override(cards[ANTIHISTAMINE], when=when)]
        response = a.feedback(items)
        assert response.status_code == 400, response.text[:300]
        details = response.json()["details"]
        assert [d["loc"] for d in details] == ["feedback[1].outcomeTimestamp"]
        assert ANTIHISTAMINE in a.cards("p1") and IRON in a.cards("p1")  # nothing stored

    @pytest.mark.parametrize(
        "when",
        [
            "2020-12-11T00:00:00Z",
            iso(b.NOW - timedelta(minutes=6)),
            "0001-01-01T00:00:00+01:00",  # valid, before year 1 in UTC
            "0001-01-01T00:00:00Z",
        ],
    )
    def test_an_outcome_earlier_than_its_card_is_400_naming_the_item(self, ehrs, when):
        a, _ = ehrs
        card = a.cards("p1")[ANTIHISTAMINE]
        response = a.feedback([override(card, when=when)])
        assert response.status_code == 400, response.text[:300]
        assert response.json()["details"][0]["loc"] == "feedback[0].outcomeTimestamp"
        assert ANTIHISTAMINE in a.cards("p1")

    @pytest.mark.parametrize("minutes", [-4, 4])
    def test_clock_skew_of_a_few_minutes_is_allowed(self, ehrs, minutes):
        a, _ = ehrs
        card = a.cards("p1")[ANTIHISTAMINE]
        when = iso(b.NOW + timedelta(minutes=minutes))
        assert a.feedback([override(card, when=when)]).status_code == 200


EXTREMES = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31", "0001"]


@pytest.mark.parametrize("when", EXTREMES)
def test_extreme_dates_in_every_date_of_a_hook_never_give_a_500(live, es384, when):
    """Every date the rules read, at the edges of what RFC 3339 and FHIR allow."""
    observation = b.observation(b.FERRITIN, 38, "ng/mL", when=when)
    observation["issued"] = when
    observation["effectivePeriod"] = {"start": when, "end": when}
    condition = b.rls(onset=when)
    condition["recordedDate"] = when
    patient = b.patient(birth_date=when[:10])
    patient["deceasedDateTime"] = when
    request = b.medication_request(text="Diphenhydramine 25 mg tablet")
    request["authoredOn"] = when
    statement = b.medication_statement(text="Sertraline 50 mg tablet")
    statement |= {"effectiveDateTime": when, "dateAsserted": when}
    order = b.service_request("2276-4", status="completed")
    order |= {"authoredOn": when, "occurrenceDateTime": when}
    prefetch = b.prefetch(
        condition, observation, request, statement, order, b.kidney_ok(when=when),
        with_patient=patient,
    )  # fmt: skip
    service = live()
    token = es384.token()
    response = service.hook(token, b.hook_request(prefetch))
    assert response.status_code == 200, response.text[:300]
    draft = b.medication_request(text="Hydroxyzine 25 mg tablet", status="draft")
    draft["authoredOn"] = when
    sign = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/example",
            "patientId": b.PATIENT_ID,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
        },
        "prefetch": prefetch,
    }
    path = "/cds-services/rls-order-sign"
    signed = service.post(path, sign, es384.token(aud=LOCAL + path))
    assert signed.status_code == 200, signed.text[:300]
