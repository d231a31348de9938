"""The demo page's server side: demo mode only, and bad choices explained with a 400."""

from __future__ import annotations

import pytest

from cds_service.app import create_app
from cds_service.settings import Settings


def test_page_and_assets_are_404_outside_demo_mode(tmp_path):
    client = create_app(
        Settings(data_dir=tmp_path, log_level="ERROR", public_base_url="https://cds.example.org")
    ).test_client()
    assert client.get("/").status_code == 404
    assert client.post("/", data={"patient": "rls-ckd"}).status_code == 404
    assert client.get("/demo/static/demo.js").status_code == 404


def test_page_without_a_choice_shows_the_form(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b'id="chooser"' in response.data and b'id="result"' not in response.data


def test_a_demo_patient_can_be_asked_for_in_the_query(client):
    response = client.get("/?patient=rls-pad")
    assert response.status_code == 200
    assert b'data-topic="peripheral-arterial-disease"' in response.data


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"patient": "../../etc/passwd"}, b"there is no such demo patient"),
        ({"patient": "rls-ckd", "hook": "order-sign"}, b"choose a draft order"),
        ({"patient": "rls-ckd", "hook": "order-sign", "draft": "example:../x"}, b"choose a draft"),
        ({"patient": "rls-ckd", "hook": "launch-missiles"}, b"there is no such hook"),
        ({"bundle": "{not json"}, b"not JSON (line 1)"),
        ({"bundle": '{"resourceType": "Bundle", "entry": []}'}, b"no Patient with an id"),
    ],
)
def test_bad_choices_are_explained(client, form, message):
    response = client.post("/", data=form)
    assert response.status_code == 400
    assert message in response.data


def test_a_chosen_medication_becomes_a_draft_for_the_patient(client):
    form = {
        "patient": "rls-antihistamine",
        "hook": "order-select",
        "draft": "medication:sertraline",
    }
    response = client.post("/", data=form)
    assert response.status_code == 200
    assert b'data-topic="serotonergic-antidepressant"' in response.data
    assert b"&#34;reference&#34;: &#34;Patient/rls-antihistamine&#34;" in response.data
