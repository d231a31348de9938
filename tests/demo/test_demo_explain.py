"""The demo page's explain view in a real browser: under the cards, a collapsed list of
every topic of the hook, fired or the engine's reason why not."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.demo.conftest import LiveApp

PATIENT_VIEW_TOPICS = 15
ORDER_TOPICS = 6


def call(page: Page, live: LiveApp, patient: str, hook: str = "patient-view", draft: str = ""):
    page.goto(live.base + "/")
    page.select_option("#patient", patient)
    page.check(f"input[name=hook][value={hook}]")
    if draft:
        page.select_option("#draft", draft)
    with page.expect_navigation(wait_until="load"):
        page.click("#run")


def open_explanation(page: Page):
    explain = page.locator("details#explain")
    expect(explain).to_be_visible()
    topics = explain.locator("li.explain__topic")
    expect(topics.first).to_be_hidden()  # collapsed until asked for
    explain.locator("summary").click()
    expect(topics.first).to_be_visible()
    return topics


def test_explain_view_shows_what_fired_and_why_the_rest_did_not(page: Page, live_app: LiveApp):
    call(page, live_app, "rls-low-ferritin")
    expect(page.locator("#cards [data-topic=iron-below-target]")).to_have_count(1)
    topics = open_explanation(page)
    expect(topics).to_have_count(PATIENT_VIEW_TOPICS)
    expect(page.locator("li.explain__topic[data-code=fired]")).to_have_count(1)
    expect(page.locator("li[data-topic=iron-below-target]")).to_contain_text("fired")
    expect(page.locator("li[data-topic=iron-studies-due]")).to_contain_text(
        "no card, measured in the last 365 days: ferritin 38 ng/mL on 2026-10-15"
    )
    expect(page.locator("li[data-topic=antipsychotic]")).to_contain_text(
        "no antipsychotic among the medications"
    )


def test_explain_view_says_why_a_patient_without_rls_gets_no_cards(page: Page, live_app: LiveApp):
    call(page, live_app, "no-rls")
    expect(page.locator("#no-cards")).to_be_visible()
    topics = open_explanation(page)
    expect(topics).to_have_count(PATIENT_VIEW_TOPICS)
    expect(topics.filter(has_text="no active RLS condition: rules not run")).to_have_count(
        PATIENT_VIEW_TOPICS
    )


def test_explain_view_covers_the_order_topics_at_order_sign(page: Page, live_app: LiveApp):
    call(
        page, live_app, "rls-gabapentin-ckd", "order-sign", "example:rls-gabapentin-ckd.pregabalin"
    )
    topics = open_explanation(page)
    expect(topics).to_have_count(ORDER_TOPICS)
    expect(page.locator("li[data-topic=gabapentinoid-renal-dose]")).to_contain_text("fired")
    expect(page.locator("li[data-topic=sedating-antihistamine]")).to_contain_text("no card, ")
