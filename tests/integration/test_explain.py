"""`rls-cds explain` and `--explain`: every topic of the hook, fired or the engine's own
reason why not, on every demo patient; the same decisions in the debug log, as codes only."""

from __future__ import annotations

import json
import logging

import pytest
import requests
from flask import g

from cds_service.app import create_app
from cds_service.cli import main
from cds_service.clinical.engine import ORDER_TOPICS, UNEXPLAINED
from cds_service.clinical.findings import Decision, Reason
from cds_service.explain import SUPPRESSED, explain
from cds_service.settings import Settings
from tests import builders as b
from tests.fake_fhir import FHIR
from tests.fixture_requests import DRAFTS, PATIENTS

NOW = "2026-11-28T12:00:00Z"
HOOK = "/cds-services/rls-secondary-causes"
PATIENT_VIEW_TOPICS = list(b.ENGINE._rules)
BUNDLES = sorted(PATIENTS.glob("*.json"))
DRAFT_FILES = sorted(DRAFTS.glob("*.json"))


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def explained(capsys, *args: str) -> list[dict]:
    code, out, _ = run(capsys, "explain", *args, "--now", NOW, "--format", "json")
    assert code == 0
    return json.loads(out)


def cards_of(capsys, *args: str) -> list[str]:
    code, out, _ = run(capsys, "evaluate", *args, "--now", NOW)
    assert code == 0
    return [card["source"]["topic"]["code"] for card in json.loads(out)["cards"]]


def assert_every_topic_explained(decisions: list[dict], topics: list[str], fired: list[str]):
    assert [d["topic"] for d in decisions] == topics
    assert sorted(d["topic"] for d in decisions if d["fired"]) == sorted(set(fired))
    for decision in decisions:
        if not decision["fired"]:
            assert decision["reason"], decision
            assert decision["code"] not in (None, UNEXPLAINED.code), decision


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.stem)
def test_explain_names_a_reason_for_every_patient_view_topic_that_did_not_fire(capsys, bundle):
    args = ("--hook", "patient-view", "--bundle", str(bundle))
    decisions = explained(capsys, *args)
    assert_every_topic_explained(decisions, PATIENT_VIEW_TOPICS, cards_of(capsys, *args))


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("drafts", DRAFT_FILES, ids=lambda p: p.stem)
def test_explain_names_a_reason_for_every_order_topic_that_did_not_fire(capsys, hook, drafts):
    patient = PATIENTS / f"{drafts.name.split('.')[0]}.json"
    args = ("--hook", hook, "--bundle", str(patient), "--draft-orders", str(drafts))
    decisions = explained(capsys, *args)
    assert_every_topic_explained(decisions, list(ORDER_TOPICS), cards_of(capsys, *args))


def test_explain_says_the_gate_is_closed_with_the_conditions_it_read(capsys):
    code, out, _ = run(
        capsys, "explain", "--hook", "patient-view", "--bundle", str(PATIENTS / "no-rls.json"),
        "--now", NOW,
    )  # fmt: skip
    assert code == 0
    reason = "no active RLS condition: rules not run (conditions read: 2, 1 RLS, none active)"
    assert out.count(reason) == len(PATIENT_VIEW_TOPICS)


def test_explain_gives_the_value_date_and_threshold_that_kept_a_card_quiet(capsys):
    decisions = explained(
        capsys, "--hook", "patient-view", "--bundle", str(PATIENTS / "rls-normal-iron.json")
    )
    reasons = {d["topic"]: d["reason"] for d in decisions}
    assert reasons["iron-below-target"].startswith("ferritin ")
    assert " ng/mL on 20" in reasons["iron-below-target"]
    assert "is above 100" in reasons["iron-below-target"]  # cards/iron-below-target.toml


def test_evaluate_explain_keeps_stdout_identical_and_explains_on_stderr(capsys):
    args = ("--hook", "patient-view", "--bundle", str(PATIENTS / "rls-low-ferritin.json"))
    code, plain, plain_err = run(capsys, "evaluate", *args, "--now", NOW)
    code_x, out, err = run(capsys, "evaluate", *args, "--now", NOW, "--explain")
    assert code == code_x == 0
    assert json.loads(out)["cards"] and plain_err == ""
    assert _without_uuids(out) == _without_uuids(plain)
    assert err.startswith("explanation (each topic of the hook):")
    assert "  fired    iron-below-target" in err


def _without_uuids(text: str) -> str:
    return json.dumps(b.strip_uuids(json.loads(text)))


def test_labs_that_time_out_are_named_with_the_cause_and_logged_as_codes(
    fetching_client, fhir, caplog
):
    """The rules needing labs say why they did not run; the debug log carries only topic
    and reason codes, never a value or a date."""
    fhir.get(f"{FHIR}/Observation", body=requests.ReadTimeout("slow"))
    prefetch = b.prefetch(b.rls(), b.observation(b.FERRITIN, 38, "ng/mL"), b.kidney_ok())
    del prefetch["labs"]
    body = b.hook_request(prefetch, fhirServer=FHIR)
    with fetching_client, caplog.at_level(logging.DEBUG, logger="cds_service"):
        response = fetching_client.post("/cds-services/rls-secondary-causes", json=body)
        decisions = {d.topic: d.reason for d in g.hook_outcome.decisions}
    assert response.status_code == 200
    labs_reason = decisions["iron-below-target"]
    assert labs_reason is not None and labs_reason.code == "not-read"
    assert (
        labs_reason.text == "labs not read (the FHIR server did not answer in time): rule not run"
    )
    (record,) = [r for r in caplog.records if r.getMessage() == "hook explained"]
    assert record.decisions["iron-below-target"] == "not-read"
    assert set(record.decisions) == set(PATIENT_VIEW_TOPICS)
    assert set(record.decisions.values()) <= {
        "fired", "not-read", "no-condition", "no-medication", "not-pregnant", "no-gabapentinoid",
    }  # fmt: skip
    logged = json.dumps([vars(r) for r in caplog.records], default=str)
    assert "ng/mL" not in logged and "Patient/" not in logged


def test_a_suppressed_card_is_explained_as_overridden_by_feedback():
    decisions = explain(
        [Decision("iron-below-target"), Decision("prior-dvt", Reason("no-condition", "none"))],
        suppressed={"iron-below-target"},
    )
    assert decisions[0].reason == SUPPRESSED and decisions[0].reason.text.startswith("suppressed")
    assert decisions[1].reason == Reason("no-condition", "none")


class _CountingCpuClock:
    """A CPU clock that advances `step_s` per look: the budget runs out after a few reads."""

    def __init__(self, step_s: float):
        self.step_s = step_s
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def test_data_left_unread_by_the_cpu_budget_is_named_as_such(tmp_path):
    settings = Settings(demo=True, data_dir=tmp_path, domain_cpu_budget_s=0.5, log_level="ERROR")
    app = create_app(settings, clock=lambda: b.NOW, cpu_clock=_CountingCpuClock(0.01))
    labs = [b.observation(b.FERRITIN, 38 + n % 5, "ng/mL") for n in range(200)]
    with app.test_client() as client:
        response = client.post(HOOK, json=b.hook_request(b.prefetch(b.rls(), *labs)))
        decisions = g.hook_outcome.decisions
    assert response.status_code == 200
    reason = decisions[0].reason
    assert reason is not None and reason.code == "not-read"
    assert reason.text.startswith("conditions not read (the CPU budget for reading one call")
