"""The demo page in a real browser, around feedback: a card overridden as already addressed is
named in a notice on the next call (with its reason and dates) instead of vanishing; the
page's reset brings it back. And the page's furniture: patient descriptions in the picker, a
favicon, and no console error or failed request on the way."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page, Response, expect

from tests.builders import NOW
from tests.demo.conftest import LiveApp
from tests.demo.test_demo_page import show

#: Not used by the other browser tests' overrides (the session shares one store).
PATIENT = "rls-venous-dvt"
VENOUS = "venous-insufficiency"


def watch(page: Page) -> list[str]:
    """Console errors, uncaught exceptions and failed requests of the page, as text."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def response(answer: Response) -> None:
        if answer.status >= 400:
            problems.append(f"HTTP {answer.status} {answer.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", response)
    return problems


def test_an_override_is_named_on_the_next_call_and_forgetting_brings_the_card_back(
    page: Page, live_app: LiveApp, output_dir: Path
):
    problems = watch(page)
    show(page, live_app, PATIENT)
    cards = page.locator("article.card")
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.topic)") == [VENOUS, "prior-dvt"]
    expect(page.locator("#hidden-cards")).to_have_count(0)
    venous = page.locator(f"article.card[data-topic={VENOUS}]")
    venous.locator("select.override__reason").select_option(label="Already assessed or treated")
    venous.locator("button.override__send").click()
    expect(venous.locator(".card__status")).to_contain_text("feedback stored")

    show(page, live_app, PATIENT)
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.topic)") == ["prior-dvt"]
    notice = page.locator("#hidden-cards")
    until = (NOW + timedelta(days=90)).date().isoformat()
    expect(notice.locator(f"li[data-topic={VENOUS}]")).to_contain_text(VENOUS)
    expect(notice).to_contain_text("overridden as “Already assessed or treated”")
    expect(notice).to_contain_text(f"on {NOW.date().isoformat()}; hidden until {until}")
    page.screenshot(path=str(output_dir / "demo-page-hidden-by-feedback.png"), full_page=True)

    with page.expect_navigation(wait_until="load"):
        page.click("#forget-feedback")
    # The override, and any feedback other tests of this session sent about the patient.
    forgotten = re.compile(r"Forgot [1-9][0-9]* feedback items? about this patient\.")
    expect(page.locator("#forgotten")).to_have_text(forgotten)
    expect(page.locator("#hidden-cards")).to_have_count(0)
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.topic)") == [VENOUS, "prior-dvt"]
    assert problems == []


def test_the_picker_describes_the_patients_and_the_page_has_a_favicon(
    page: Page, live_app: LiveApp
):
    problems = watch(page)
    page.goto(live_app.base + "/", wait_until="load")
    option = page.locator("#patient option[value=rls-ckd]")
    expect(option).to_have_text(
        "rls-ckd · ESRD on dialysis, ferritin 150 ng/mL, TSAT 18 %, creatinine in µmol/L"
    )
    page.select_option("#patient", "rls-child")
    expect(page.locator("#patient-description")).to_have_text("girl of 9, 28 kg, ferritin 22 ng/mL")
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert href == "/demo/static/favicon.svg"
    icon = page.request.get(live_app.base + href)
    assert icon.status == 200 and icon.headers["content-type"] == "image/svg+xml; charset=utf-8"
    page.wait_for_timeout(300)  # time for a favicon request the browser might make
    assert problems == []
