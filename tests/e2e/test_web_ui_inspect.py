"""The web UI's Inspect tab in a real headless browser: upload a defective and a clean part,
see FAIL with the heat-map overlay and pass (a real inspector fitted on generated parts)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oculi.config import Settings
from tests.e2e.test_web_ui import browser  # noqa: F401 - the shared chromium fixture
from tests.serverutil import ServerThread

pytestmark = pytest.mark.browser
SIDE = 128


@pytest.fixture(scope="module")
def inspect_server(tmp_path_factory):
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig
    from oculi.tasks.inspect import fit_inspector
    from oculi.tasks.inspect.synth import add_defect, crop, texture
    from tests.unit.server.conftest import FakeEngine

    root = tmp_path_factory.mktemp("ui-inspect")
    settings = Settings(home=root / "home", assets_dir=Settings().assets_dir)
    rng = np.random.default_rng(11)
    tex = texture("grain", seed=3)
    (root / "good").mkdir()
    for i in range(24):  # enough good crops to cover the surface at the fine features' detail
        Image.fromarray(crop(tex, SIDE, rng)).save(root / "good" / f"{i}.png")
    fit_inspector(root / "good", "line-ui", settings=settings)
    Image.fromarray(add_defect(crop(tex, SIDE, rng), "hole", "large", rng)[0]).save(root / "bad.png")
    Image.fromarray(crop(tex, SIDE, rng)).save(root / "clean.png")
    key, _ = KeyStore(settings.home).create("read", name="ui-inspect")
    app = create_app(settings, FakeEngine(settings), config=ServerConfig(rate_per_minute=0))
    with ServerThread(app, ready_path="/readyz", timeout=120) as url:
        yield url, key, root


def test_inspect_tab_shows_fail_with_heatmap_and_pass(browser, inspect_server, tmp_path):  # noqa: F811
    url, key, root = inspect_server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.fill("#key", key)
    page.click("#login-btn")
    page.wait_for_selector("body[data-ready='1']")
    page.click("#tab-inspect")
    page.fill("#in-name", "line-ui")
    page.set_input_files("#in-files", [str(root / "bad.png"), str(root / "clean.png")])
    page.click("#in-form button")
    page.wait_for_selector("body[data-inspect-ready='2']", timeout=120_000)
    assert page.locator(".inspect-result[data-pass='false']").count() == 1
    assert page.locator(".inspect-result[data-pass='true']").count() == 1
    assert "dark" in page.inner_text(".inspect-result[data-pass='false']")
    assert page.locator(".inspect-result img.heatmap[src^='data:image/png;base64,']").count() == 2
    page.screenshot(path=str(tmp_path / "ui-inspect.png"), full_page=True)
    assert not errors, errors
