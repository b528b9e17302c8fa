"""The web UI's Footage tab in a real headless browser: a source's timeline, its events with
their keyframes, and a question about the footage. The records are written by hand into the
server's store (no models needed); the browser is Debian's chromium driven by Playwright."""

from __future__ import annotations

import pytest

from oculi.config import Settings
from tests.e2e.test_web_ui import browser  # noqa: F401 - the shared chromium fixture
from tests.footage_records import fill_collection
from tests.serverutil import ServerThread

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def footage_server(tmp_path_factory):
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig
    from oculi.store import open_store
    from tests.unit.server.conftest import FakeEngine

    settings = Settings(home=tmp_path_factory.mktemp("ui-footage") / "home", timezone="UTC")
    fill_collection(open_store(settings).create_collection("cams"))
    key, _ = KeyStore(settings.home).create("read", name="ui-footage")
    app = create_app(settings, FakeEngine(settings), config=ServerConfig(rate_per_minute=0))
    with ServerThread(app, ready_path="/readyz", timeout=120) as url:
        yield url, key


def test_footage_tab_draws_a_timeline_with_keyframes_and_answers(browser, footage_server, tmp_path):  # noqa: F811
    url, key = footage_server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.fill("#key", key)
    page.click("#login-btn")
    page.wait_for_selector("body[data-ready='1']")
    page.click("#tab-footage")
    page.wait_for_selector("#fg-sources li[data-source]")
    assert page.locator("#fg-sources li[data-source]").count() == 3
    page.locator("#fg-sources li[data-source]", has_text="main gate").first.click()
    page.wait_for_selector("body[data-footage-ready]")
    n_events = int(page.get_attribute("body", "data-footage-ready"))
    assert n_events > 0
    assert page.locator("#fg-timeline .mark, #fg-timeline .span").count() == n_events
    assert page.locator("#fg-events tr.fg-event").count() == n_events
    page.wait_for_selector("#fg-events img[src^='blob:']")  # keyframes fetched with the key
    page.locator("#fg-timeline .span").first.click()
    assert page.locator("#fg-events tr.sel").count() == 1
    page.fill("#fg-question", "How many cars came in after 5 pm on 2026-11-27?")  # a date: never the real today
    page.click("#fg-ask-form button")
    page.wait_for_selector("#fg-answer:has-text('car')")
    assert page.inner_text("#fg-answer").startswith("1 car")
    page.screenshot(path=str(tmp_path / "ui-footage.png"), full_page=True)
    assert not errors, errors
