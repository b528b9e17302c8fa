"""The web UI's Reports tab in a real headless browser: upload images and records, follow the
job, download the PDF; records that do not parse are refused with the server's message."""

from __future__ import annotations

import pytest

from oculi.config import Settings
from tests.e2e.test_web_ui import browser  # noqa: F401 - the shared chromium fixture
from tests.serverutil import ServerThread

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report_server(engine, tmp_path_factory):
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig

    settings = engine.settings.model_copy(update={"home": tmp_path_factory.mktemp("ui-reports") / "home"})
    key, _ = KeyStore(settings.home).create("read", name="ui-reports")
    app = create_app(settings, engine, config=ServerConfig(rate_per_minute=0), warmup=False)
    with ServerThread(app, ready_path="/readyz", timeout=120) as url:
        yield url, key


def test_reports_tab_writes_and_downloads_a_pdf(browser, report_server, samples_dir, tmp_path):  # noqa: F811
    url, key = report_server
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.fill("#key", key)
    page.click("#login-btn")
    page.wait_for_selector("body[data-ready='1']")
    page.click("#tab-reports")
    notes = tmp_path / "notes.csv"
    notes.write_text("image,text\nchelsea.png,The dog is asleep on the sofa\n")
    page.set_input_files("#rp-images", [str(samples_dir / "chelsea.png"), str(samples_dir / "coffee.png")])
    page.set_input_files("#rp-records", str(notes))
    page.click("#rp-form button[type=submit]")
    page.wait_for_selector("body[data-report-state='done']", timeout=120_000)
    row = page.locator("#rp-jobs tr[data-state='done']").first
    assert row.locator("td").nth(5).inner_text() == "1"  # one conflict: the record's dog is a cat
    with page.expect_download() as dl:
        row.locator("button", has_text="download").click()
    pdf = tmp_path / "dl.pdf"
    dl.value.save_as(str(pdf))
    assert pdf.read_bytes()[:4] == b"%PDF"
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    page.set_input_files("#rp-records", str(bad))
    page.click("#rp-form button[type=submit]")
    page.wait_for_selector("body[data-report-state='refused']")
    assert "not valid JSON" in page.inner_text("#rp-error")
    page.screenshot(path=str(tmp_path / "ui-reports.png"), full_page=True)
    assert not errors, errors
