"""The `rls-cds evaluate` contract: same cards as the HTTP service, exit 2 on bad input."""

from __future__ import annotations

import json

import pytest

from cds_service.cli import main
from tests.builders import strip_uuids
from tests.fixture_requests import PATIENTS, REQUESTS

NOW = "2026-11-28T12:00:00Z"


def evaluate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("bundle", sorted(PATIENTS.glob("*.json")), ids=lambda p: p.stem)
def test_evaluate_prints_the_same_cards_as_the_http_service(capsys, client, bundle):
    code, out, _ = evaluate(capsys, "--hook", "patient-view", "--bundle", str(bundle), "--now", NOW)
    assert code == 0
    request = json.loads((REQUESTS / f"patient-view-{bundle.stem}.json").read_text("utf-8"))
    over_http = client.post("/cds-services/rls-secondary-causes", json=request).get_json()
    assert strip_uuids(json.loads(out)) == strip_uuids(over_http)


def test_evaluate_accepts_a_bundle_with_urn_uuid_references(capsys, tmp_path):
    """Patient anywhere in the bundle; references by fullUrl resolve like on a server."""
    bundle = json.loads((PATIENTS / "rls-low-ferritin.json").read_text("utf-8"))
    entries = bundle["entry"][1:] + bundle["entry"][:1]
    patient_url = bundle["entry"][0]["fullUrl"]
    for entry in entries:
        resource = entry["resource"]
        if "subject" in resource:
            resource["subject"] = {"reference": patient_url}
    bundle["entry"] = entries
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    code, out, _ = evaluate(capsys, "--hook", "patient-view", "--bundle", str(path), "--now", NOW)
    assert code == 0
    assert [c["source"]["topic"]["code"] for c in json.loads(out)["cards"]] == ["iron-below-target"]


def test_order_sign_with_draft_orders_answers_cards_json(capsys, tmp_path):
    drafts = tmp_path / "drafts.json"
    drafts.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}))
    bundle = str(PATIENTS / "rls-antihistamine.json")
    code, out, _ = evaluate(
        capsys, "--hook", "order-sign", "--bundle", bundle, "--draft-orders", str(drafts)
    )
    assert code == 0
    assert json.loads(out) == {"cards": []}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ('{"resourceType": "Patient", "id": "x"}', "not a FHIR Bundle"),
        ('{"resourceType": "Bundle", "type": "collection", "entry": []}', "no Patient"),
    ],
)
def test_unreadable_input_exits_2_with_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "input.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, out, err = evaluate(capsys, "--hook", "patient-view", "--bundle", str(path))
    assert code == 2
    assert out == ""
    assert message in err and err.count("\n") == 1


def test_order_hook_without_draft_orders_exits_2(capsys):
    bundle = str(PATIENTS / "rls-antihistamine.json")
    code, _, err = evaluate(capsys, "--hook", "order-select", "--bundle", bundle)
    assert code == 2
    assert "--draft-orders" in err


def test_bad_now_is_a_usage_error(capsys):
    bundle = str(PATIENTS / "rls-antihistamine.json")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--hook", "patient-view", "--bundle", bundle, "--now", "yesterday"])
    assert exit_info.value.code == 2


# --- issue 15 through `rls-cds evaluate` -------------------------------------------------


def _bundle_with(tmp_path, *resources: dict, without: str | None = None) -> str:
    """rls-low-ferritin's bundle with more resources of the same patient (and without the
    entries that mention `without`)."""
    bundle = json.loads((PATIENTS / "rls-low-ferritin.json").read_text("utf-8"))
    if without:
        bundle["entry"] = [e for e in bundle["entry"] if without not in json.dumps(e)]
    patient = bundle["entry"][0]["resource"]["id"]
    for resource in resources:
        resource = {**resource, "subject": {"reference": f"Patient/{patient}"}}
        bundle["entry"].append({"resource": resource})
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return str(path)


def _cards(capsys, *args: str) -> dict[str, dict]:
    code, out, err = evaluate(capsys, *args, "--now", NOW)
    assert code == 0, err
    return {c["source"]["topic"]["code"]: c for c in json.loads(out)["cards"]}


def test_evaluate_gralise_below_crcl_30_is_not_recommended(capsys, tmp_path):
    from tests import builders as b

    gralise = b.medication_request(text="Gralise 600 MG Oral Tablet")
    egfr = b.observation(b.EGFR, 22, "mL/min/{1.73_m2}")
    cards = _cards(
        capsys, "--hook", "patient-view", "--bundle", _bundle_with(tmp_path, gralise, egfr)
    )
    card = cards["gabapentinoid-renal-dose"]
    assert card["summary"].startswith("Gralise is not recommended at eGFR 22")
    assert "Gralise" in card["source"]["label"]


def test_evaluate_absolute_maximum_with_unknown_kidney_function(capsys, tmp_path):
    from tests import builders as b

    order = b.medication_request(text="pregabalin 300 MG Oral Capsule")
    order["dosageInstruction"] = [{"text": "300 mg three times daily"}]
    path = _bundle_with(tmp_path, order, without='"2160-0"')
    cards = _cards(capsys, "--hook", "patient-view", "--bundle", path)
    card = cards["gabapentinoid-renal-dose"]
    assert "above the label maximum of 600 mg/day" in card["summary"]


def test_evaluate_antihistamine_for_anxiety_offers_no_replacement(capsys, tmp_path):
    from tests import builders as b

    order = b.medication_request(text="hydroxyzine hydrochloride 25 MG Oral Tablet")
    order["reasonCode"] = [{"text": "Generalized anxiety disorder"}]
    cards = _cards(capsys, "--hook", "patient-view", "--bundle", _bundle_with(tmp_path, order))
    card = cards["sedating-antihistamine"]
    assert [s["label"] for s in card["suggestions"]] == ["Stop it without a replacement"]
    assert "on record for anxiety" in card["detail"]


def test_kb_check_on_the_shipped_cards_exits_0(capsys):
    assert main(["kb", "check", "cards"]) == 0
    assert "knowledge base OK" in capsys.readouterr().out
