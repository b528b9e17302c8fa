"""The web UI in a real headless browser (Debian's chromium driven by Playwright).

Signs in with a key, uploads a photo and sees its caption and boxes, asks a question, sends a
file that is not an image and sees the error in the caption card, creates a collection, uploads
into it and watches the job, browses the thumbnail grid, searches by text (a query that matches
nothing shows nothing; weaker matches sit under a divider), opens an item's detail view (caption,
objects, text, boxes) and runs "find similar", signs out and back in (the tabs reset); a
read-only key is not offered Upload or Create; and on a 390 px phone nothing scrolls sideways
and the header keeps the user and "Sign out" on screen. Screenshots go under the pytest tmp dir
(and ``$OCULI_UI_SCREENSHOT_DIR``). Runs once with the test-double engine (fast) and once with
the real models (slow). Skips with the reason when chromium or playwright is
missing: ``apt-get install -y chromium`` and ``pip install playwright`` (no browser download).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from oculi.config import Settings
from tests.serverutil import ServerThread

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("OCULI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install -y chromium, or set OCULI_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _samples(tmp: Path) -> dict[str, Path]:
    try:
        from oculi.demo import sample_images

        return {p.stem: p for p in sample_images(tmp)}
    except ImportError:  # scikit-image missing: plain generated pictures
        from PIL import Image, ImageDraw

        out = {}
        for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
            img = Image.new("RGB", (320, 240), (40 * i, 120, 200))
            ImageDraw.Draw(img).rectangle((60, 40, 200, 180), fill=(200, 40 + 30 * i, 40))
            p = tmp / f"{name}.png"
            img.save(p)
            out[name] = p
        return out


@pytest.fixture(scope="module", params=["double", pytest.param("real", marks=pytest.mark.slow)])
def ui_server(request, tmp_path_factory):
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig

    tmp = tmp_path_factory.mktemp(f"ui-{request.param}")
    if request.param == "real":
        engine = request.getfixturevalue("engine")  # the session's warmed-up engine (skips without assets)
        settings = Settings(home=tmp / "home", assets_dir=engine.settings.assets_dir)
    else:
        from tests.unit.server.conftest import FakeEngine

        settings = Settings(home=tmp / "home")
        engine = FakeEngine(settings)
    keys = KeyStore(settings.home)
    key, _ = keys.create("write", name="ui-test")
    read_key, _ = keys.create("read", name="viewer")
    app = create_app(settings, engine, config=ServerConfig(rate_per_minute=0))
    samples = _samples(tmp_path_factory.mktemp("samples"))
    with ServerThread(app, ready_path="/readyz", timeout=120) as url:
        yield {"url": url, "key": key, "read_key": read_key, "samples": samples, "kind": request.param, "tmp": tmp}


def _sign_in(page, url: str, key: str) -> None:
    page.goto(url + "/")
    page.fill("#key", key)
    page.click("#login-btn")
    page.wait_for_selector("body[data-ready='1']")


def _save(page, tmp_path: Path, name: str, *, full_page: bool = False) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=full_page)
    if os.environ.get("OCULI_UI_SCREENSHOT_DIR"):
        out = Path(os.environ["OCULI_UI_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / name)
    return shot


def _check_relevance_cut(page) -> None:
    """Search results: no 0.000 scores; at most one "Weaker matches" divider, and everything
    under it scores below half the best (strong results above it may be exact matches)."""
    grid = []
    for i in range(page.locator("#grid > *").count()):
        node = page.locator("#grid > *").nth(i)
        if node.get_attribute("class") == "divider":
            grid.append("divider")
        else:
            grid.append(float(node.locator(".score").inner_text().split()[-1]))
    scores = [x for x in grid if x != "divider"]
    assert all(x > 0 for x in scores), grid
    assert grid.count("divider") <= 1 and grid[:1] != ["divider"], grid
    if "divider" in grid:
        weak = grid[grid.index("divider") + 1:]
        assert weak and all(x < 0.5 * scores[0] for x in weak), grid
    note = page.inner_text("#grid-note")
    assert f"{grid.index('divider') if 'divider' in grid else len(scores)} match" in note, (note, grid)


def test_ui_flow(browser, ui_server, tmp_path):
    from playwright.sync_api import expect

    url, key, samples, kind = ui_server["url"], ui_server["key"], ui_server["samples"], ui_server["kind"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    # signed out: only the sign-in form
    assert page.is_visible("#login") and not page.is_visible("#app")
    page.fill("#key", "oculi_aaaaaaaaaaaa_" + "b" * 43)
    page.click("#login-btn")
    page.wait_for_selector("#login-error:has-text('refused')")
    page.fill("#key", key)
    page.click("#login-btn")
    page.wait_for_selector("body[data-ready='1']")
    assert page.is_visible("#app") and "write" in page.inner_text("#who")
    assert page.is_visible("#create-form") is False  # on the Collections tab, not this one

    # analyze: a file that is not an image: the caption card says why, nothing stays at "…"
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"these are my notes, not a picture")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("body[data-captioned='error']", timeout=60_000)
    assert "not an image" in page.inner_text("#caption")
    assert page.inner_text("#text-read") == "—"

    # analyze: upload, caption, boxes, ask
    page.set_input_files("#file", str(samples["astronaut"]))
    page.wait_for_selector("body[data-captioned='1']", timeout=60_000)
    caption = page.inner_text("#caption")
    assert caption and "Looking" not in caption and "Could not" not in caption
    assert page.is_visible("#canvas")
    if kind == "real":
        assert "person" in caption.lower()
    page.fill("#question", "How many people are there?")
    page.click("#ask-btn")
    page.wait_for_selector("body[data-answered='1']", timeout=60_000)
    answer = page.inner_text("#answer")
    assert answer
    if kind == "real":
        assert answer.startswith("1")
    _save(page, tmp_path, f"ui-analyze-{kind}.png")

    # collections: create, upload (a job with progress), browse, search
    page.click("#tab-collections")
    assert page.is_visible("#create-form")
    page.fill("#new-collection", "photos")
    page.click("#create-form button")
    page.wait_for_selector("#collection-list li[data-name='photos'].active")
    page.set_input_files("#upload", [str(p) for p in samples.values()])
    page.wait_for_selector("#job-box:not(.hidden)")
    # (no wait_for_function: the page's CSP forbids eval, which it needs)
    page.wait_for_selector("body[data-job-done='done']", timeout=180_000)
    expect(page.locator("#grid .tile img")).to_have_count(len(samples), timeout=30_000)

    # results that matched nothing are not listed (no scores of 0.000)
    page.fill("#search-text", "xylophone quartet")
    page.click("#search-btn")
    page.wait_for_selector("body[data-searched='1']", timeout=60_000)
    _check_relevance_cut(page)

    page.fill("#search-text", "a cat" if kind == "real" else "brown dog")
    page.click("#search-btn")
    page.wait_for_selector("body[data-searched='1']", timeout=60_000)
    page.wait_for_selector("#grid .tile .score")
    first = page.inner_text("#grid .tile .cap")
    if kind == "real":
        assert "cat" in first.lower()
        # the cat first, then the rest under "Weaker matches"
        expect(page.locator("#grid .divider")).to_have_count(1)
        assert page.locator("#grid > *").nth(1).get_attribute("class") == "divider"
    _check_relevance_cut(page)
    page.wait_for_selector("#grid .tile img")
    shot = _save(page, tmp_path, f"ui-search-{kind}.png", full_page=True)
    assert shot.stat().st_size > 10_000

    # the detail view of the first result: caption, objects, text, boxes; then "find similar"
    page.click("#grid .tile >> nth=0")
    page.wait_for_selector("body[data-detail='1']", timeout=30_000)
    assert page.is_visible("#detail")
    assert page.inner_text("#detail-caption") == first or kind == "real"
    assert page.locator("#detail-objects li").count() >= 1
    assert page.inner_text("#detail-text") not in ("", "…", "—")
    meta = page.inner_text("#detail-meta")
    assert "×" in meta and ", ," not in meta and "undefined" not in meta, meta
    if kind == "double":
        assert page.inner_text("#detail-text") == "HELLO" and "dog" in page.inner_text("#detail-objects")
        assert "golden retriever" in meta
    box = page.locator("#detail-canvas").bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50
    _save(page, tmp_path, f"ui-detail-{kind}.png")
    page.click("#detail-similar")
    page.wait_for_selector("body[data-similar='1']", timeout=60_000)
    assert not page.is_visible("#detail")
    if kind == "real":  # the item itself comes first (its thumbnail is the query)
        assert page.inner_text("#grid .tile .cap") == first
    _check_relevance_cut(page)

    # jobs tab lists the job
    page.click("#tab-jobs")
    page.wait_for_selector("#jobs-body tr td:has-text('done')")

    # sign out on the Jobs tab: signing in again starts on Analyze, nothing of the last session shown
    page.click("#logout")
    assert page.is_visible("#login")
    page.fill("#key", key)
    page.click("#login-btn")
    page.wait_for_selector("body[data-ready='1']")
    assert page.get_attribute("#tab-analyze", "class") == "tab active"
    assert "active" not in page.get_attribute("#tab-jobs", "class")
    assert "active" not in page.get_attribute("#tab-collections", "class")
    assert page.is_visible("#view-analyze") and not page.is_visible("#view-jobs")
    assert page.inner_text("#caption") == "No image yet."
    assert errors == [], errors
    page.close()


def test_read_only_key_is_not_offered_writes(browser, ui_server):
    url = ui_server["url"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, url, ui_server["read_key"])
    assert "read" in page.inner_text("#who")
    page.click("#tab-collections")
    page.wait_for_selector("#collection-list li")
    assert not page.is_visible("#create-form")
    if page.locator("#collection-list li[data-name]").count():
        page.click("#collection-list li[data-name] >> nth=0")
        page.wait_for_selector("#col-tools:not(.hidden)")
        assert page.is_visible("#search-form") and not page.is_visible("#upload-btn")
    page.close()


def test_phone_width_has_no_sideways_scroll(browser, ui_server, tmp_path):
    url, kind = ui_server["url"], ui_server["kind"]
    width = 390
    page = browser.new_page(viewport={"width": width, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the sign-in page
    _sign_in(page, url, ui_server["key"])

    def fits() -> None:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for sel in ("#who", "#logout", "#tab-jobs"):
            b = page.locator(sel).bounding_box()
            assert b is not None and b["x"] >= 0 and b["x"] + b["width"] <= width + 0.5, (sel, b)
        header = page.locator("header.top").bounding_box()
        assert header["height"] < 120, header  # two rows at most, not a column of words
        assert page.locator("#logout").bounding_box()["height"] < 40  # "Sign out" on one line

    fits()
    page.set_input_files("#file", str(ui_server["samples"]["astronaut"]))
    page.wait_for_selector("body[data-captioned='1']", timeout=60_000)
    fits()
    _save(page, tmp_path, f"ui-phone-analyze-{kind}.png", full_page=True)
    page.click("#tab-collections")
    page.wait_for_selector("#collection-list li")
    if page.locator("#collection-list li[data-name]").count():
        page.click("#collection-list li[data-name] >> nth=0")
        page.wait_for_selector("#grid .tile img", timeout=30_000)
    fits()
    _save(page, tmp_path, f"ui-phone-collections-{kind}.png", full_page=True)
    page.click("#tab-jobs")
    page.wait_for_selector("#jobs-body tr")
    fits()
    assert errors == [], errors
    page.close()
