"""The demo page in a real browser: each demo patient's cards as an EHR shows them, feedback
from a clicked suggestion stored by the service, and no markup from patient text."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.demo.conftest import LiveApp
from tests.fixture_requests import PATIENTS
from tests.test_fixtures import EXPECTED_TOPICS

#: The border colour of each indicator (demo.css): info blue, warning amber, critical red.
COLOURS = {
    "info": "rgb(26, 115, 232)",
    "warning": "rgb(240, 165, 0)",
    "critical": "rgb(217, 48, 37)",
}
WARNING_TOPICS = {
    "iron-below-target",
    "sedating-antihistamine",
    "dopamine-antagonist-antiemetic",
    "gabapentinoid-renal-dose",
}
#: ESRD on dialysis makes the kidney card a warning (info otherwise).
WARNING_FOR = {("rls-ckd", "kidney-disease")}
XSS_SCRIPT = '<script>window.__xss = 1; alert("script")</script>'
XSS_IMG = '<img src="x" onerror="window.__xss = 2; alert(\'img\')">'


def expected_indicator(patient: str, topic: str) -> str:
    return "warning" if topic in WARNING_TOPICS or (patient, topic) in WARNING_FOR else "info"


def show(page: Page, live: LiveApp, patient: str, hook: str = "patient-view") -> None:
    page.goto(live.base + "/")
    page.select_option("#patient", patient)
    page.check(f"input[name=hook][value={hook}]")
    submit(page)


def submit(page: Page) -> None:
    """Send the form and wait until the answer page has loaded, stylesheet included."""
    with page.expect_navigation(wait_until="load"):
        page.click("#run")


def accepted(live: LiveApp, topic: str) -> int:
    """Accepted feedback on cards of `topic`, as the service's own report counts it."""
    feedback = live.app.extensions["rls_cds"].feedback
    assert feedback.recorder.flush()
    topics, _ = feedback.store.report(None)
    return next((t.accepted for t in topics if t.topic == topic), 0)


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize("patient", sorted(EXPECTED_TOPICS))
def test_demo_patient_shows_its_cards_and_accepting_a_suggestion_sends_feedback(
    page: Page, live_app: LiveApp, output_dir: Path, patient: str
):
    show(page, live_app, patient)
    cards = page.locator("article.card")
    topics = EXPECTED_TOPICS[patient]
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.topic)") == topics
    for index, topic in enumerate(topics):
        card = cards.nth(index)
        indicator = expected_indicator(patient, topic)
        assert card.get_attribute("data-indicator") == indicator
        assert card.evaluate("c => getComputedStyle(c).borderLeftColor") == COLOURS[indicator]
        expect(card.locator(".card__badge")).to_have_text(indicator)
        expect(card.locator(".card__source a")).to_have_attribute("href", re.compile(r"^https://"))
        # evidence once per card: the source (and links) lines, not again in the detail
        expect(card.locator(".card__detail")).not_to_contain_text("Evidence:")
        href = card.locator(".card__source a").get_attribute("href")
        assert card.locator(f'.card__detail a[href="{href}"]').count() == 0
    if not topics:
        expect(page.locator("#no-cards")).to_be_visible()
    screenshot = str(output_dir / f"demo-page-{patient}.png")
    card = page.locator("article.card:has(button.suggestion__accept)").first
    if card.count() == 0:
        page.screenshot(path=screenshot, full_page=True)
        return
    suggestion = card.locator("button.suggestion__accept").first
    topic = card.get_attribute("data-topic")
    assert topic is not None
    before = accepted(live_app, topic)
    suggestion.click()
    expect(card.locator(".card__status")).to_contain_text("feedback stored")
    actions = card.locator(".suggestion__actions").first
    expect(actions).to_be_visible()
    assert actions.locator(".action").count() >= 1
    expect(card.locator(".card__feedback")).to_contain_text('"outcome": "accepted"')
    wait_for(lambda: accepted(live_app, topic) == before + 1)
    page.screenshot(path=screenshot, full_page=True)


def test_card_detail_shows_the_data_used_as_a_list(page: Page, live_app: LiveApp):
    show(page, live_app, "rls-low-ferritin")
    used = page.locator("article.card .card__detail ul li").all_inner_texts()
    assert any(item.startswith("Ferritin") and "38 ng/mL" in item for item in used)
    assert page.locator("article.card .card__detail strong", has_text="Data used").count() == 1


def test_raw_request_and_response_toggle(page: Page, live_app: LiveApp):
    show(page, live_app, "rls-low-ferritin")
    expect(page.locator("#raw")).to_be_hidden()
    page.click("#toggle-raw")
    expect(page.locator("#raw")).to_be_visible()
    request = json.loads(page.locator("#raw-request").inner_text())
    response = json.loads(page.locator("#raw-response").inner_text())
    assert request["hook"] == "patient-view"
    assert request["context"]["patientId"] == "rls-low-ferritin"
    assert [c["source"]["topic"]["code"] for c in response["cards"]] == ["iron-below-target"]


def test_order_sign_with_a_chosen_medication_shows_the_critical_dose_card(
    page: Page, live_app: LiveApp, output_dir: Path
):
    """A gabapentin draft above the renal limit at signing: critical, red, update suggested."""
    page.goto(live_app.base + "/")
    page.select_option("#patient", "rls-gabapentin-ckd")
    page.check("input[name=hook][value=order-sign]")
    page.select_option("#draft", "medication:pregabalin")
    submit(page)
    card = page.locator("article.card")
    expect(card).to_have_count(1)
    assert card.get_attribute("data-topic") == "gabapentinoid-renal-dose"
    assert card.evaluate("c => getComputedStyle(c).borderLeftColor") == COLOURS["critical"]
    page.locator("button.suggestion__accept.is-recommended").click()
    action = card.locator(".suggestion__actions .action").first
    expect(action).to_be_visible()
    assert action.get_attribute("data-action-type") == "update"
    updated = json.loads(action.locator(".action__resource").inner_text())
    assert updated["id"] == "draft-pregabalin"
    assert updated["subject"] == {"reference": "Patient/rls-gabapentin-ckd"}
    page.screenshot(path=str(output_dir / "demo-page-order-sign-pregabalin.png"), full_page=True)


def test_order_sign_with_an_example_draft_names_the_order_to_delete(page: Page, live_app: LiveApp):
    page.goto(live_app.base + "/")
    page.select_option("#patient", "rls-low-ferritin")
    page.check("input[name=hook][value=order-sign]")
    page.select_option("#draft", "example:rls-low-ferritin.hydroxyzine-and-sertraline")
    submit(page)
    cards = page.locator("article.card")
    topics = cards.evaluate_all("cs => cs.map(c => c.dataset.topic)")
    assert topics == ["sedating-antihistamine", "serotonergic-antidepressant"]
    cards.first.locator("button.suggestion__accept").first.click()
    expect(cards.first.locator(".card__status")).to_contain_text("feedback stored")
    ids = cards.first.locator(".suggestion__actions .action__id").all_inner_texts()
    assert "MedicationRequest/draft-hydroxyzine" in ids


def test_override_with_a_reason_is_stored(page: Page, live_app: LiveApp):
    show(page, live_app, "rls-pad")
    card = page.locator("article.card").first
    card.locator("select.override__reason").select_option(index=0)
    card.locator("button.override__send").click()
    expect(card.locator(".card__status")).to_contain_text("Overridden")
    expect(card.locator(".card__status")).to_contain_text("feedback stored")
    expect(card.locator(".card__feedback")).to_contain_text('"outcome": "overridden"')


def xss_bundle() -> dict:
    """rls-neuropathy-spine with markup in the patient's name and a condition's text."""
    bundle = json.loads((PATIENTS / "rls-neuropathy-spine.json").read_text("utf-8"))
    bundle = copy.deepcopy(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource["name"] = [{"text": f"Pat {XSS_IMG} Xss"}]
        if resource["resourceType"] == "Condition" and "radiculopathy" in json.dumps(resource):
            resource["code"]["text"] = f"{XSS_SCRIPT}{XSS_IMG} [click](javascript:alert(3))"
            for coding in resource["code"].get("coding", []):
                coding["display"] = f"Radiculopathy {XSS_IMG}"
    return bundle


def test_markup_in_patient_text_is_shown_literally_and_never_runs(
    page: Page, live_app: LiveApp, output_dir: Path
):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(live_app.base + "/")
    page.locator("details summary").click()
    page.fill("#bundle", json.dumps(xss_bundle()))
    submit(page)
    card = page.locator("article.card")
    expect(card).to_have_count(1)
    expect(page.locator("#patient-name")).to_have_text(f"Pat {XSS_IMG} Xss")
    detail = card.locator(".card__detail")
    expect(detail).to_contain_text(XSS_SCRIPT)
    expect(detail).to_contain_text("[click](javascript:alert(3))")
    assert page.locator("#result script, #result img").count() == 0
    assert page.locator("#result a[href^=javascript]").count() == 0
    page.wait_for_timeout(300)  # time for an injected handler to have fired
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    page.screenshot(path=str(output_dir / "demo-page-xss.png"), full_page=True)


def test_a_pasted_text_that_is_not_a_bundle_is_explained(page: Page, live_app: LiveApp):
    page.goto(live_app.base + "/")
    page.locator("details summary").click()
    page.fill("#bundle", '{"resourceType": "Patient"}')
    submit(page)
    expect(page.locator("#error")).to_contain_text("not a FHIR Bundle")
