"""The web UI's Reports tab in a real headless browser: upload images and records, follow the
job, download the PDF; records that do not parse are refused with the server's message; a
camera's day from stored footage (collection, camera, day), and an incident report whose
records' times are checked against that footage."""

from __future__ import annotations

import pytest

from oculi.config import Settings
from tests.chat_server import ChatServer, engine_with_models, openai_model_toml
from tests.e2e.test_web_ui import browser  # noqa: F401 - the shared chromium fixture
from tests.serverutil import ServerThread

pytestmark = pytest.mark.browser
NARRATION = "A feline is visible in the middle of the picture. A wooden ladder leans against the wall."


@pytest.fixture(scope="module")
def report_server(engine, tmp_path_factory):
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig

    from oculi.store import open_store
    from tests.footage_records import fill_collection

    with ChatServer(lambda body: NARRATION) as chat:  # a configured chat model that can narrate the summary
        eng = engine_with_models(engine, tmp_path_factory.mktemp("ui-reports") / "home",
                                 openai_model_toml("story", chat.url, "storyteller"))
        settings = eng.settings
        fill_collection(open_store(settings).create_collection("cams"))  # footage records, written by hand
        key, _ = KeyStore(settings.home).create("read", name="ui-reports")
        app = create_app(settings, eng, config=ServerConfig(rate_per_minute=0), warmup=False)
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


def _signed_in(browser, url: str, key: str):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.fill("#key", key)
    page.click("#login-btn")
    page.wait_for_selector("body[data-ready='1']")
    page.click("#tab-reports")
    return page, errors


def test_reports_tab_offers_the_configured_chat_models_to_write_the_summary(browser, report_server, samples_dir):  # noqa: F811
    import json

    url, key = report_server
    page, errors = _signed_in(browser, url, key)
    page.wait_for_selector("body[data-report-models='1']")  # from GET /api/v1/models: the one that chats
    opts = page.locator("#rp-model option")
    assert [opts.nth(i).get_attribute("value") for i in range(opts.count())] == ["", "story"]
    assert page.input_value("#rp-model") == ""  # the built-in template unless one is chosen
    page.select_option("#rp-model", "story")
    page.set_input_files("#rp-images", str(samples_dir / "chelsea.png"))
    page.select_option("#rp-format", "json")
    page.click("#rp-form button[type=submit]")
    page.wait_for_selector("body[data-report-state='done']", timeout=120_000)
    row = page.locator("#rp-jobs tr[data-state='done']").first
    assert "summary by story" in row.locator("td").nth(1).inner_text()
    with page.expect_download() as dl:
        row.locator("button", has_text="download").click()
    doc = json.loads(open(dl.value.path()).read())
    assert doc["narrator"] == "story" and doc["summary"] == ["A feline is visible in the middle of the picture."]
    assert [x["sentence"] for x in doc["grounding"]["rejected"]] == ["A wooden ladder leans against the wall."]
    assert not errors, errors


def test_reports_tab_writes_a_cameras_day_from_stored_footage(browser, report_server, tmp_path):  # noqa: F811
    import json

    url, key = report_server
    page, errors = _signed_in(browser, url, key)
    assert page.is_visible("#rp-images") and page.is_hidden("#rp-footage-fields")
    page.select_option("#rp-kind", "footage")
    assert page.is_hidden("#rp-images") and page.is_visible("#rp-camera")
    page.wait_for_selector("body[data-report-cameras='2']")  # the collection's cameras, from its sources
    assert page.input_value("#rp-collection") == "cams"
    assert [page.locator("#rp-cameras option").nth(i).get_attribute("value") for i in range(2)] == ["front door", "main gate"]
    page.fill("#rp-camera", "main gate")
    page.fill("#rp-day", "2026-11-27")
    page.fill("#rp-tz", "UTC")
    with page.expect_download(timeout=60_000) as dl:
        page.click("#rp-form button[type=submit]")
    assert dl.value.suggested_filename == "footage-main-gate-2026-11-27.pdf"
    pdf = tmp_path / "gate.pdf"
    dl.value.save_as(str(pdf))
    assert pdf.read_bytes()[:4] == b"%PDF"
    page.wait_for_selector("body[data-report-state='done']")
    assert page.inner_text("#rp-footage-title").startswith("Footage report — main gate, 2026-11-27 · threat level ")
    assert page.inner_text("#rp-footage-summary").startswith("Footage from main gate covers")
    page.select_option("#rp-format", "json")
    with page.expect_download(timeout=60_000) as dl:
        page.click("#rp-form button[type=submit]")
    doc = json.loads(open(dl.value.path()).read())
    assert doc["camera"] == "main gate" and doc["day"] == "2026-11-27" and doc["events_total"] > 0
    assert any(f["kind"] == "loitering" for f in doc["findings"])
    page.fill("#rp-camera", "back door")  # no such camera: the server's message, nothing written
    page.click("#rp-form button[type=submit]")
    page.wait_for_selector("body[data-report-state='refused']")
    assert "back door" in page.inner_text("#rp-error") and "main gate" in page.inner_text("#rp-error")
    page.screenshot(path=str(tmp_path / "ui-reports-footage.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the fields wrap, nothing scrolls sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "ui-reports-footage-phone.png"), full_page=True)
    assert not errors, errors


def test_reports_tab_checks_an_incident_against_footage(browser, report_server, samples_dir, tmp_path):  # noqa: F811
    import json

    url, key = report_server
    page, errors = _signed_in(browser, url, key)
    page.select_option("#rp-kind", "incident")
    assert page.is_visible("#rp-images") and page.is_visible("#rp-collection")  # both: images and footage
    page.select_option("#rp-collection", "cams")
    page.wait_for_selector("body[data-report-cameras='2']")
    page.fill("#rp-camera", "main gate")
    page.fill("#rp-day", "2026-11-27")
    page.fill("#rp-tz", "UTC")
    log = tmp_path / "guard.csv"
    log.write_text("time,text\n16:55,Main gate closed and locked\n")
    page.set_input_files("#rp-images", str(samples_dir / "chelsea.png"))
    page.set_input_files("#rp-records", str(log))
    page.select_option("#rp-format", "json")
    page.click("#rp-form button[type=submit]")
    page.wait_for_selector("body[data-report-state='done']", timeout=120_000)
    row = page.locator("#rp-jobs tr[data-state='done']", has_text="Incident report").first
    assert row.locator("td").nth(5).inner_text() == "1"  # the gate was closed, but a person is in the footage
    with page.expect_download() as dl:
        row.locator("button", has_text="download").click()
    doc = json.loads(open(dl.value.path()).read())
    gate = [c for c in doc["cross_checks"] if c["claim"] == "closed at 16:55"][0]
    assert gate["status"] == "conflict" and "person at 16:59" in gate["text"]
    assert doc["events"] and all(e["camera"] == "main gate" for e in doc["events"])
    assert not errors, errors
