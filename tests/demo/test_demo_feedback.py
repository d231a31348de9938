"""The demo page and feedback, server side: the notice naming cards hidden by an override, and
the demo-only reset (POST /demo/forget), which deletes only the demo client's feedback about
one patient and exists only in demo mode."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.auth.model import Client, PatientScope
from cds_service.feedback.store import IssuedCards
from cds_service.hooks.wire import FeedbackItem
from cds_service.settings import Settings
from tests.builders import NOW
from tests.feedback.conftest import feedback_url, flush, overridden
from tests.fixture_requests import REQUESTS

PAD = "peripheral-arterial-disease"
OTHER = Client(issuer="https://ehr.example.org", tenant="clinic-a")


def pad_card(client: FlaskClient) -> dict:
    """The rls-pad patient's card, from the shipped patient-view request."""
    body = json.loads((REQUESTS / "patient-view-rls-pad.json").read_text("utf-8"))
    response = client.post("/cds-services/rls-secondary-causes", json=body)
    assert response.status_code == 200
    (card,) = response.get_json()["cards"]
    return card


def override_pad(app: Flask, client: FlaskClient, code: str = "already-addressed") -> None:
    card = pad_card(client)
    flush(app)
    sent = client.post(feedback_url(), json={"feedback": [overridden(card["uuid"], code)]})
    assert sent.status_code == 200 and sent.get_json()["stored"] == 1


def feedback_rows(app: Flask) -> list[tuple[str, str]]:
    """(client, tenant) of every stored feedback item."""
    store = app.extensions["rls_cds"].feedback.store
    with store.engine.connect() as connection:
        return [
            tuple(row) for row in connection.exec_driver_sql("SELECT client, tenant FROM feedback")
        ]


def forget(client: FlaskClient, patient_id: str = "rls-pad"):
    form = {"patient_id": patient_id, "patient": patient_id, "hook": "patient-view"}
    return client.post("/demo/forget", data=form)


def test_the_page_names_the_card_an_override_hid_with_its_reason_and_dates(app, client):
    assert b"hidden-cards" not in client.get("/?patient=rls-pad").data
    override_pad(app, client)
    page = client.get("/?patient=rls-pad").get_data(as_text=True)
    assert f'data-topic="{PAD}"' in page  # in the notice, not as a card
    assert 'class="card' not in page.replace('class="cards"', "")
    notice = re.search(r'<aside class="hidden-cards".*?</aside>', page, re.S)
    assert notice is not None
    text = notice.group(0)
    until = (NOW + timedelta(days=90)).date().isoformat()
    assert "Peripheral" in text and "Already assessed" in text
    assert f"on {NOW.date().isoformat()}" in text and f"hidden until {until}" in text


def test_the_explanation_names_the_override_that_suppressed_a_topic(app, client):
    """Issue 19 point 3: "suppressed: overridden as already-addressed on <day>, until <day>"."""
    override_pad(app, client)
    page = client.get("/?patient=rls-pad").get_data(as_text=True)
    item = re.search(
        rf'<li class="explain__topic[^"]*" data-topic="{PAD}"[^>]*>.*?</li>', page, re.S
    )
    assert item is not None and 'data-code="suppressed"' in item.group(0)
    until = (NOW + timedelta(days=90)).date().isoformat()
    expected = f"overridden as Already assessed on {NOW.date().isoformat()}, until {until}"
    assert expected in item.group(0)


def test_an_override_that_hides_nothing_gives_no_notice(app, client):
    override_pad(app, client, code="not-clinically-relevant")
    page = client.get("/?patient=rls-pad").get_data(as_text=True)
    assert "hidden-cards" not in page and f'data-topic="{PAD}"' in page


def test_forget_deletes_the_patients_feedback_and_the_card_shows_again(app, client):
    override_pad(app, client)
    answer = forget(client)
    assert answer.status_code == 307
    assert answer.location == "/?forgotten=1"  # the browser posts the same form there
    assert feedback_rows(app) == []
    page = client.get("/?patient=rls-pad").get_data(as_text=True)
    assert "hidden-cards" not in page and f'data-topic="{PAD}"' in page


def test_forget_leaves_other_patients_and_other_tenants_alone(app, client):
    override_pad(app, client)
    service = app.extensions["rls_cds"].feedback
    # The same patient id at another client's tenant: a card issued to it, and its override.
    scope = PatientScope(OTHER.issuer, OTHER.tenant, None, "rls-pad")
    card = {"uuid": "other-card", "source": {"topic": {"code": PAD}}}
    service.store.record(
        [
            IssuedCards(
                "rls-secondary-causes",
                "h",
                OTHER.issuer,
                OTHER.tenant,
                service.store.patient_key(scope),
                NOW,
                [card],
            )
        ]
    )
    item = FeedbackItem.model_validate(overridden("other-card", "already-addressed"))
    assert service.store_feedback([item], "rls-secondary-causes", OTHER, NOW).stored == 1
    assert forget(client, "rls-low-ferritin").location == "/?forgotten=0"
    assert len(feedback_rows(app)) == 2
    assert forget(client).location == "/?forgotten=1"
    assert feedback_rows(app) == [(OTHER.issuer, OTHER.tenant)]
    assert service.suppressed(scope, [PAD], NOW) == {PAD}


def test_forget_needs_a_fhir_id(client):
    answer = client.post("/demo/forget", data={"patient_id": "../rls-pad"})
    assert answer.status_code == 400
    assert answer.get_json()["message"] == "patient_id must be a FHIR id"
    assert "rls-pad" not in answer.get_data(as_text=True)


def test_forget_is_404_outside_demo_mode(tmp_path):
    settings = Settings(
        data_dir=tmp_path, log_level="ERROR", public_base_url="https://cds.example.org"
    )
    client = create_app(settings, clock=lambda: NOW).test_client()
    assert client.post("/demo/forget", data={"patient_id": "rls-pad"}).status_code == 404
    assert client.get("/demo/forget").status_code == 404
    assert client.get("/demo/static/favicon.svg").status_code == 404


def test_the_picker_describes_each_demo_patient(client):
    page = client.get("/").get_data(as_text=True)
    assert "rls-ckd · ESRD on dialysis" in page
    assert 'id="patient-description">woman of 58, ferritin 38 ng/mL' in page


def test_the_favicon_is_served_and_linked(client):
    icon = client.get("/demo/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.data.startswith(b"<svg")
    assert (
        b'rel="icon" type="image/svg+xml" href="/demo/static/favicon.svg"' in client.get("/").data
    )
