"""Browser-test fixtures: Debian's Chromium (installed by `make test`), a live demo app on a
free port, and a fresh browser page per test.

Playwright drives /usr/bin/chromium; ``playwright install`` (its own browser download)
cannot work on these machines and is never called.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright

from cds_service.app import create_app
from cds_service.settings import Settings
from tests.builders import NOW
from tests.live import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


def ensure_chromium() -> Path:
    """/usr/bin/chromium, or a failure saying how to get it: `make test` installs Debian's
    package (scripts/prereqs.sh); a test never installs anything."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Debian's Chromium at {CHROMIUM}: run `make test` "
            "(it installs it when it can) or `apt-get install chromium`"
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@dataclass(frozen=True)
class LiveApp:
    app: Flask
    base: str


@pytest.fixture(scope="session")
def live_app(tmp_path_factory) -> Iterator[LiveApp]:
    """The demo app on a free port (werkzeug in a thread), SQLite in a temp dir, fixed clock."""
    settings = Settings(demo=True, data_dir=tmp_path_factory.mktemp("demo"), log_level="ERROR")
    app = create_app(settings, clock=lambda: NOW)
    with serving(app) as base_url:
        yield LiveApp(app, base_url)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    # The browser's clock reads the service's fixed clock: feedback is stamped (and checked
    # against the card's issue time) as it would be with real clocks that agree.
    context.clock.set_system_time(NOW)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
